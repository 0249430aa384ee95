"""The read API over incidents and their notices (Bearer API token)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.web import auth
from adapter.web.errors import ApiError
from adapter.web.serialize import alert_json, incident_json, notice_json, timeline_json
from adapter.web.services import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
STATUSES = ("open", "resolved", "all")


@bp.before_request
def _authenticate() -> None:
    auth.require(request, services().settings.api.tokens)


@bp.get("/incidents")
def list_incidents() -> ResponseReturnValue:
    status = request.args.get("status", "all")
    if status not in STATUSES:
        raise ApiError(
            400,
            "bad_request",
            "status must be open, resolved or all",
            [{"field": "status", "message": f"got {status!r}"}],
        )
    with services().store.read() as conn:
        rows = repo.list_incidents(conn, status)
    return jsonify({"incidents": [incident_json(r) for r in rows]})


@bp.get("/incidents/<ref>")
def get_incident(ref: str) -> ResponseReturnValue:
    with services().store.read() as conn:
        row = repo.get_incident_by_ref(conn, ref)
        if row is None:
            raise ApiError(404, "not_found", f"no incident {ref}")
        alerts = repo.alerts_of(conn, row["id"])
        notices = outbox.notices_of(conn, [row["id"]])
        timeline = repo.timeline_of(conn, row["id"])
    return jsonify(
        {
            **incident_json(row),
            "alerts": [alert_json(a) for a in alerts],
            "notices": [notice_json(n) for n in notices],
            "timeline": [timeline_json(t) for t in timeline],
        }
    )
