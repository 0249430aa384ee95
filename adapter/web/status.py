"""The built-in status page: HTML per audience, JSON, and Atom feeds of published notices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.web.errors import ApiError
from adapter.web.serialize import iso
from adapter.web.services import Services, services

bp = Blueprint("status", __name__, template_folder="templates")
RESOLVED_SHOWN_FOR = timedelta(days=7)
AUDIENCES = ("business", "technical")


def _page_data(svc: Services, audiences: tuple[str, ...]) -> list[dict[str, Any]]:
    """Incidents with published notices for these audiences: open first, then recently resolved."""
    builtin = [p.name for p in svc.settings.providers if p.type == "builtin"]
    now = svc.clock.now()
    with svc.store.read() as conn:
        rows = repo.incidents_for_page(conn, now - RESOLVED_SHOWN_FOR)
        notices = outbox.published(conn, [r["id"] for r in rows], builtin)
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for notice in notices:
        if notice["audience"] in audiences:
            by_incident.setdefault(notice["incident_id"], []).append(notice)
    catalog = svc.settings.catalog
    page = []
    for row in rows:
        updates = by_incident.get(row["id"])
        if not updates:
            continue
        services_ = [s for s in map(catalog.service, row["services"]) if s is not None]
        page.append({"incident": row, "updates": updates, "services": services_})
    return page


def _html(audience: str) -> ResponseReturnValue:
    svc = services()
    entries = _page_data(svc, (audience,))
    open_entries = [e for e in entries if e["incident"]["status"] != "resolved"]
    resolved_entries = [e for e in entries if e["incident"]["status"] == "resolved"]
    return render_template(
        "status.html",
        audience=audience,
        open_entries=open_entries,
        resolved_entries=resolved_entries,
        now=svc.clock.now(),
        feed_url=url_for("status.feed", audience=audience),
    )


@bp.get("/status")
def business_page() -> ResponseReturnValue:
    return _html("business")


@bp.get("/status/technical")
def technical_page() -> ResponseReturnValue:
    return _html("technical")


@bp.get("/status.json")
def status_json() -> ResponseReturnValue:
    svc = services()
    entries = _page_data(svc, AUDIENCES)
    return jsonify(
        {
            "generated_at": iso(svc.clock.now()),
            "status": "degraded" if any(e["incident"]["status"] != "resolved" for e in entries) else "ok",
            "incidents": [
                {
                    "ref": e["incident"]["ref"],
                    "status": e["incident"]["status"],
                    "level": e["incident"]["level"],
                    "opened_at": iso(e["incident"]["opened_at"]),
                    "resolved_at": iso(e["incident"]["resolved_at"]),
                    "services": [
                        {"id": s.id, "name": s.name, "business_name": s.business_name} for s in e["services"]
                    ],
                    "updates": [
                        {
                            "audience": n["audience"],
                            "phase": n["phase"],
                            "subject": n["subject"],
                            "body": n["body"],
                            "published_at": iso(n["delivered_at"]),
                        }
                        for n in e["updates"]
                    ],
                }
                for e in entries
            ],
        }
    )


@bp.get("/status/feed.atom")
def feed() -> ResponseReturnValue:
    audience = request.args.get("audience", "business")
    if audience not in AUDIENCES:
        raise ApiError(
            400,
            "bad_request",
            "audience must be technical or business",
            [{"field": "audience", "message": f"got {audience!r}"}],
        )
    svc = services()
    entries = _page_data(svc, (audience,))
    items = sorted(
        ((e, n) for e in entries for n in e["updates"]),
        key=lambda pair: (pair[1]["delivered_at"], pair[1]["id"]),
        reverse=True,
    )
    public = svc.settings.server.public_url.rstrip("/")
    body = render_template(
        "feed.atom.xml",
        audience=audience,
        items=items,
        updated=items[0][1]["delivered_at"] if items else svc.clock.now(),
        public=public,
        page_url=public + ("/status" if audience == "business" else "/status/technical"),
        self_url=f"{public}/status/feed.atom?audience={audience}",
    )
    return Response(body, mimetype="application/atom+xml")
