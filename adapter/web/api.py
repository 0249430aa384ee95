"""The incident API: what people read and do, through named Bearer tokens with roles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from sqlalchemy import Connection

from adapter.config import Role
from adapter.durations import format_duration, parse_duration
from adapter.engine import reports
from adapter.engine.drafts import Draft
from adapter.engine.humans import Author, Conflict, Declaration, HumanUpdate, Invalid, NotFound
from adapter.engine.planning import PHASES
from adapter.engine.reports import Report
from adapter.sources import SOURCES
from adapter.sources.fields import INCIDENT_TYPE_MAX, error_details, in_range, iso_time
from adapter.sources.fields import Text as StorableText
from adapter.sources.signal import PayloadError
from adapter.store import audit, feedback, outbox
from adapter.store import incidents as repo
from adapter.store.records import Alert, Incident, Notice, TimelineEntry
from adapter.text import storable
from adapter.web import identity
from adapter.web.errors import ApiError, invalid_payload, read_json
from adapter.web.serialize import (
    alert_json,
    audit_json,
    awaiting_json,
    incident_json,
    notice_json,
    preview_notice_json,
    timeline_json,
)
from adapter.web.services import Services, services
from adapter.web.webhooks import RECEIVERS

bp = Blueprint("api", __name__, url_prefix="/api/v1")
STATUSES = ("open", "resolved", "all")
Text = Annotated[StorableText, Field(min_length=1, max_length=20_000)]
Model = TypeVar("Model", bound=BaseModel)
Found = TypeVar("Found")
# Row ids are INTEGER columns: 32 bits on PostgreSQL. A larger id names no row.
ID_MAX = 2**31 - 1
# How far ahead a relative ETA ("2h") may reach.
ETA_MAX = timedelta(days=365)
# The communication report's period when none is asked for.
REPORT_DAYS = timedelta(days=30)
# What the OpenAPI document says of an ETA: its validator is a function, which pydantic cannot describe.
ETA_SCHEMA = {
    "type": "string",
    "description": "An ISO 8601 date and time with an offset, or a duration from now such as 45m or 2h "
    f"(at most {format_duration(ETA_MAX)})",
}


def _eta(value: Any) -> datetime | timedelta:
    """An absolute time (ISO 8601 with an offset, within the years stored) or a duration from now."""
    wrong = "must be an ISO 8601 date and time with an offset, or a duration such as 2h"
    too_far = f"a duration must be at most {format_duration(ETA_MAX)}"
    if not isinstance(value, str):
        raise ValueError(wrong)
    try:
        delta = parse_duration(value)
    except OverflowError:
        raise ValueError(too_far) from None
    except ValueError:
        try:
            moment = iso_time(value)
        except ValueError:
            raise ValueError(wrong) from None
        if moment.tzinfo is None:
            raise ValueError(wrong) from None
        return in_range(moment)
    if delta > ETA_MAX:
        raise ValueError(too_far)
    return delta


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpdateBody(_Body):
    status: Literal["investigating", "identified", "monitoring"] | None = None
    technical: Text | None = None
    business: Text | None = None
    # An absolute time, or a duration from now such as "2h".
    eta: Annotated[datetime | timedelta, PlainValidator(_eta), WithJsonSchema(ETA_SCHEMA)] | None = None
    workaround: Text | None = None
    root_cause: Text | None = None
    action_required: Text | None = None
    # Only these tenants hear of it, through their per-tenant providers.
    tenants: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None


ServiceIds = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
Title = Annotated[StorableText, Field(min_length=1, max_length=500)]


class DeclareBody(_Body):
    services: ServiceIds
    level: int = Field(ge=1, le=5)
    title: Title
    status: Literal["investigating", "identified", "monitoring"] = "investigating"
    technical: Text | None = None
    business: Text | None = None


class PatchBody(_Body):
    level: int | None = Field(default=None, ge=1, le=5)
    # Catalog service ids (or aliases): what the incident is about. Publishes one in triage.
    services: ServiceIds | None = None
    # Publish an incident in triage as it is, without services.
    publish: bool = False
    title: Title | None = None
    incident_type: (
        Annotated[str, Field(min_length=1, max_length=INCIDENT_TYPE_MAX, pattern=r"^[a-z0-9_-]+$")] | None
    ) = None


class ResolveBody(_Body):
    technical: Text | None = None
    business: Text | None = None
    root_cause: Text | None = None


class PostmortemBody(_Body):
    technical: Text
    business: Text | None = None
    root_cause: Text | None = None
    # One text, or a list of measures (written one per line).
    preventive_measures: Text | list[Text] | None = None

    def measures(self) -> str | None:
        value = self.preventive_measures
        if isinstance(value, list):
            return "\n".join(f"- {item.strip()}" for item in value if item.strip()) or None
        return value


def _body(model: type[Model], svc: Services) -> Model:
    data = read_json(request, svc.settings.server.max_body_bytes)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_payload", "request body is not valid", error_details(exc)) from None


def human_update(svc: Services, body: UpdateBody) -> HumanUpdate:
    """An update's body as the engine takes it: a relative ETA made a time from now."""
    eta = body.eta
    if isinstance(eta, timedelta):
        eta = svc.clock.now() + eta
    tenants = tuple(body.tenants) if body.tenants is not None else None
    return HumanUpdate(**{**body.model_dump(), "eta": eta, "tenants": tenants})


def human(action: Callable[..., Found], *args: Any) -> Found:
    """An engine action; what it refuses becomes the house error (404, 409, 422)."""
    try:
        return action(*args)
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except Invalid as exc:
        details = [{"field": exc.field, "message": str(exc)}]
        raise ApiError(422, "invalid_payload", str(exc), details) from None


def call_list(svc: Services, incident: Incident) -> list[dict[str, Any]]:
    """Level 3 and up: the affected enterprise tenants to call, largest accounts first."""
    if incident.level < 3:
        return []
    out = []
    for tenant in map(svc.settings.catalog.tenant, incident.tenants):
        if tenant is None or tenant.tier != "enterprise":
            continue
        contacts = tenant.contacts
        account = (contacts.model_extra or {}).get("account")
        out.append(
            {
                "tenant": tenant.id,
                "name": tenant.name,
                "contact": account or contacts.phone or contacts.email,
            }
        )
    return out


@dataclass(frozen=True)
class History:
    """An incident with its alerts, notices and timeline, read together."""

    incident: Incident
    alerts: list[Alert]
    notices: list[Notice]
    timeline: list[TimelineEntry]


def read_history(conn: Connection, ref: str) -> History:
    """The incident `ref` and what happened to it; a 404 if there is none."""
    row = repo.get_incident_by_ref(conn, ref)
    if row is None:
        raise ApiError(404, "not_found", f"no incident {ref}")
    notices = outbox.notices_of(conn, [row.id])
    return History(row, repo.alerts_of(conn, row.id), notices, repo.timeline_of(conn, row.id))


def _incident_document(svc: Services, ref: str) -> dict[str, Any]:
    with svc.store.read() as conn:
        found = read_history(conn, ref)
    return {
        **incident_json(found.incident),
        "call_list": call_list(svc, found.incident),
        "alerts": [alert_json(a) for a in found.alerts],
        "notices": [notice_json(n) for n in found.notices],
        "timeline": [timeline_json(t) for t in found.timeline],
    }


@bp.before_request
def _authenticate() -> None:
    g.author = identity.api_author(request, services().settings)


def _author(role: Role) -> Author:
    """The request's author, if their role includes `role` (else a 403)."""
    author: Author = g.author
    identity.require(author, role)
    return author


@bp.url_value_preprocessor
def _storable_ref(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    # A reference is looked up as text: a NUL in the URL must find nothing, not fail the query.
    if values and "ref" in values:
        values["ref"] = storable(values["ref"])


@bp.get("/incidents")
def list_incidents() -> ResponseReturnValue:
    _author("viewer")
    status = request.args.get("status", "all")
    if status not in STATUSES:
        raise ApiError(
            400,
            "bad_request",
            "status must be open, resolved or all",
            [{"field": "status", "message": f"got {status!r}"}],
        )
    svc = services()
    with svc.store.read() as conn:
        rows = repo.list_incidents(conn, status)
    return jsonify({"incidents": [{**incident_json(r), "call_list": call_list(svc, r)} for r in rows]})


@bp.post("/incidents")
def declare_incident() -> ResponseReturnValue:
    """A person opens an incident no alert covers (a customer reported it, say)."""
    author = _author("author")
    svc = services()
    body = _body(DeclareBody, svc)
    declaration = Declaration(**{**body.model_dump(), "services": tuple(body.services)})
    ref = human(svc.humans.declare, declaration, author)
    return jsonify({"ref": ref, **_incident_document(svc, ref)}), 201


@bp.get("/incidents/<ref>")
def get_incident(ref: str) -> ResponseReturnValue:
    _author("viewer")
    return jsonify(_incident_document(services(), ref))


@bp.post("/incidents/<ref>/updates")
def post_update(ref: str) -> ResponseReturnValue:
    author = _author("author")
    svc = services()
    update = human_update(svc, _body(UpdateBody, svc))
    human(svc.humans.update, ref, update, author)
    return jsonify(_incident_document(svc, ref)), 201


@bp.patch("/incidents/<ref>")
def patch_incident(ref: str) -> ResponseReturnValue:
    author = _author("author")
    svc = services()
    body = _body(PatchBody, svc)
    human(
        svc.humans.patch, ref, body.level, body.title, body.incident_type, body.services, body.publish, author
    )
    return jsonify(_incident_document(svc, ref))


@bp.post("/incidents/<ref>/resolve")
def resolve_incident(ref: str) -> ResponseReturnValue:
    author = _author("author")
    svc = services()
    body = _body(ResolveBody, svc)
    human(svc.humans.resolve, ref, body.technical, body.business, body.root_cause, author)
    return jsonify(_incident_document(svc, ref))


@bp.post("/incidents/<ref>/postmortem")
def post_postmortem(ref: str) -> ResponseReturnValue:
    author = _author("author")
    svc = services()
    body = _body(PostmortemBody, svc)
    human(svc.humans.postmortem, ref, body.technical, body.business, body.measures(), body.root_cause, author)
    return jsonify(_incident_document(svc, ref)), 201


@bp.post("/preview")
def preview() -> ResponseReturnValue:
    """What an inbound payload would open and every first notice, rendered; nothing stored or sent."""
    _author("viewer")
    svc = services()
    source = request.args.get("source", "alertmanager")
    if source not in SOURCES:
        *others, last = SOURCES
        raise ApiError(
            400,
            "bad_request",
            f"source must be {', '.join(others)} or {last}",
            [{"field": "source", "message": f"got {source!r}"}],
        )
    body = read_json(request, svc.settings.server.max_body_bytes)
    try:
        payload = SOURCES[source].parse(body, {})
    except PayloadError as exc:
        raise invalid_payload(exc) from None
    batch = RECEIVERS[source].preview(svc, payload)
    results = svc.engine.preview(batch)
    incidents = [
        {
            **incident_json(incident),
            "call_list": call_list(svc, incident),
            "notices": [preview_notice_json(n) for n in notices],
        }
        for incident, notices in results
    ]
    first = incidents[0] if incidents else None
    answer = {
        "incident": {k: v for k, v in first.items() if k != "notices"} if first else None,
        "notices": first["notices"] if first else [],
        "incidents": incidents,
    }
    if batch.rejected:
        answer["rejected"] = batch.rejected  # what the webhook would store without
    return jsonify(answer)


@bp.get("/notices")
def list_notices() -> ResponseReturnValue:
    """Notices by state: `?state=dead|failed|pending|awaiting_approval|…` (comma-separated allowed)."""
    _author("viewer")
    wanted = [s for s in request.args.get("state", "dead").split(",") if s]
    unknown = [s for s in wanted if s not in outbox.STATES]
    if unknown or not wanted:
        raise ApiError(
            400,
            "bad_request",
            f"state must be among {', '.join(outbox.STATES)}",
            [{"field": "state", "message": f"got {', '.join(unknown) or 'nothing'}"}],
        )
    with services().store.read() as conn:
        rows = outbox.by_state(conn, wanted)
    return jsonify({"notices": [notice_json(r) for r in rows]})


@bp.post(f"/notices/<int(max={ID_MAX}):notice_id>/retry")
def retry_notice(notice_id: int) -> ResponseReturnValue:
    author = _author("admin")
    svc = services()
    human(svc.humans.retry, notice_id, author)
    svc.dispatcher.wake()
    with svc.store.read() as conn:
        row = outbox.one(conn, notice_id)
    assert row is not None
    return jsonify(notice_json(row))


def time_bounds(args: Any) -> dict[str, datetime]:
    """`from` and `to` of a query, as times (ISO 8601; without an offset, UTC); a 400 naming a bad one."""
    bounds = {}
    for name in ("from", "to"):
        if args.get(name):
            try:
                moment = iso_time(args[name])
                bounds[name] = in_range(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
            except ValueError:
                raise ApiError(
                    400,
                    "bad_request",
                    f"{name} must be an ISO 8601 date and time",
                    [{"field": name, "message": f"got {args[name]!r}"}],
                ) from None
    return bounds


def communication_report(svc: Services, args: Any) -> Report:
    """The communication report over `from` to `to` (default: the 30 days up to now)."""
    bounds = time_bounds(args)
    end = bounds.get("to") or svc.clock.now()
    start = bounds.get("from") or end - REPORT_DAYS
    with svc.store.read() as conn:
        notices = feedback.customer_notices(conn, start, end, PHASES)
        answers = feedback.answers(conn, start, end)
        details = feedback.details_asked(conn, start, end)
    return reports.communication(svc.settings, notices, answers, details, start, end)


@bp.get("/reports/communication")
def report_communication() -> ResponseReturnValue:
    """Deadlines kept, deliveries, feedback and detail requests by audience, segment, level, type
    and provider; `?format=csv` for a spreadsheet."""
    _author("viewer")
    svc = services()
    report = communication_report(svc, request.args)
    if request.args.get("format") == "csv":
        return csv_response(report)
    return jsonify(report.json())


def csv_response(report: Report) -> Response:
    """The report as a CSV file to download."""
    filename = f"communication-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(report.csv(), mimetype="text/csv", headers=headers)


@bp.post("/incidents/<ref>/templates-reviewed")
def review_templates(ref: str) -> ResponseReturnValue:
    """A person has reviewed the templates a resolved incident of level 3 or more used."""
    author = _author("author")
    svc = services()
    human(svc.humans.templates_reviewed, ref, author)
    return jsonify(_incident_document(svc, ref))


@bp.get("/audit")
def list_audit() -> ResponseReturnValue:
    """Who did what: `?incident=<ref>&author=<name>&from=<time>&to=<time>`, oldest first."""
    _author("viewer")
    args = request.args
    bounds = time_bounds(args)
    with services().store.read() as conn:
        rows = audit.entries(
            conn,
            ref=storable(args["incident"]) if "incident" in args else None,
            author=storable(args["author"]) if "author" in args else None,
            start=bounds.get("from"),
            end=bounds.get("to"),
        )
    return jsonify({"entries": [audit_json(r) for r in rows]})


class ApproveBody(_Body):
    # The approver's text instead of the one written; each is kept as written when left out.
    subject: Title | None = None
    body: Text | None = None


@bp.get("/approvals")
def list_approvals() -> ResponseReturnValue:
    """Notices awaiting approval, oldest first: their deadline, whether waiting makes them late,
    and when they go out unapproved (policy.approval.auto_publish_after)."""
    _author("viewer")
    svc = services()
    with svc.store.read() as conn:
        waiting = outbox.awaiting_approval(conn, svc.settings.policy.approval.auto_publish_after)
    now = svc.clock.now()
    return jsonify({"notices": [awaiting_json(w, now) for w in waiting]})


def _decided(svc: Services, notice_id: int) -> ResponseReturnValue:
    with svc.store.read() as conn:
        row = outbox.one(conn, notice_id)
    assert row is not None
    return jsonify(notice_json(row))


@bp.post(f"/notices/<int(max={ID_MAX}):notice_id>/approve")
def approve_notice(notice_id: int) -> ResponseReturnValue:
    """Publish a notice awaiting approval; an optional body `{subject?, body?}` edits it first."""
    author = _author("approver")
    svc = services()
    body = _body(ApproveBody, svc) if request.get_data(cache=True).strip() else ApproveBody()
    human(svc.humans.approve, notice_id, author, body.subject, body.body)
    return _decided(svc, notice_id)


@bp.post(f"/notices/<int(max={ID_MAX}):notice_id>/discard")
def discard_notice(notice_id: int) -> ResponseReturnValue:
    """A notice awaiting approval is never sent."""
    author = _author("approver")
    svc = services()
    human(svc.humans.discard, notice_id, author)
    return _decided(svc, notice_id)


# --------------------------------------------------------------------------------------------
# drafts: the desk's previews, for scripts and bots


def _drafts_json(drafts: list[Draft]) -> ResponseReturnValue:
    return jsonify({"drafts": [asdict(d) for d in drafts]})


@bp.post("/drafts/declare")
def draft_declaration() -> ResponseReturnValue:
    """The first notices a declaration would send, rendered for every kind of reader; nothing kept."""
    author = _author("author")
    svc = services()
    body = _body(DeclareBody, svc)
    declaration = Declaration(**{**body.model_dump(), "services": tuple(body.services)})
    return _drafts_json(human(svc.drafts.declare, declaration, author))


@bp.post("/incidents/<ref>/drafts/<form>")
def draft(ref: str, form: str) -> ResponseReturnValue:
    """The notices an update, resolution, post-mortem or SLA follow-up would send; nothing kept."""
    author = _author("author")
    svc = services()
    drafts = svc.drafts
    if form == "update":
        update = human_update(svc, _body(UpdateBody, svc))
        return _drafts_json(human(drafts.update, ref, update, author))
    if form == "resolve":
        done = _body(ResolveBody, svc)
        return _drafts_json(human(drafts.resolve, ref, done.technical, done.business, author))
    if form == "postmortem":
        review = _body(PostmortemBody, svc)
        texts = (review.technical, review.business, review.measures())
        return _drafts_json(human(drafts.postmortem, ref, *texts, author))
    if form == "sla_followup":
        return _drafts_json(human(drafts.sla_followup, ref))
    raise ApiError(404, "not_found", f"no draft {form}: update, resolve, postmortem or sla_followup")
