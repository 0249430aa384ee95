"""The operator's desk (/desk): incidents, declare, compose with live previews, as named people with roles."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError

from adapter.config import Role
from adapter.engine.drafts import Draft
from adapter.engine.humans import Author, Conflict, Declaration, HumanUpdate, Invalid, NotFound
from adapter.engine.planning import PHASES, STATUS_TEXT, next_notices
from adapter.sources.fields import error_details
from adapter.store import audit, feedback, outbox
from adapter.store import incidents as repo
from adapter.store.records import Answer, AwaitingNotice, Incident, Notice
from adapter.web import desklogin, identity
from adapter.web.api import (
    DeclareBody,
    PatchBody,
    PostmortemBody,
    ResolveBody,
    UpdateBody,
    call_list,
    communication_report,
    csv_response,
    human,
    human_update,
    read_history,
)
from adapter.web.errors import ApiError
from adapter.web.services import Services, services

bp = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates")
# The desk runs its own script (htmx and the countdowns), from this server only.
DESK_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
Done = TypeVar("Done")
PER_PAGE = 25
# After an incident of this level or more, its templates are reviewed against readers' feedback.
REVIEW_LEVEL = 3
STATUSES = ("investigating", "identified", "monitoring")


class FormError(Exception):
    """A form that does not validate: its fields' messages, shown beside them."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Due:
    """An audience's next notice of an incident: when, and whether it is already late."""

    audience: str
    at: datetime
    late: bool


@dataclass(frozen=True)
class Row:
    """An incident as the list shows it."""

    incident: Incident
    segments: dict[str, int]
    due: list[Due]
    awaiting: int = 0  # notices waiting for an approver


# --------------------------------------------------------------------------------------------
# who is at the desk


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DESK_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def _visitor() -> ResponseReturnValue | None:
    if request.endpoint == "desk.login":
        return None
    svc = services()
    visitor = desklogin.visitor(svc, request)
    if visitor is None:
        proxied = identity.proxied_author(request, svc.settings)
        if proxied is not None and request.method == "GET" and svc.settings.auth.session_secret:
            response = redirect(request.full_path.rstrip("?"), 303)
            desklogin.start(svc, response, proxied.name, _secure(svc))
            return response
        if request.method == "GET":
            return redirect(url_for("desk.login", next=request.full_path.rstrip("?")), 303)
        raise ApiError(401, "unauthorized", "log in to the desk first")
    g.visitor = visitor
    if request.method == "POST" and not desklogin.csrf_ok(visitor.csrf, request.form.get("csrf")):
        raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong; reload the page")
    return None


def _secure(svc: Services) -> bool:
    return request.is_secure or svc.settings.server.public_url.startswith("https://")


def _author(role: Role) -> Author:
    author: Author = g.visitor.author
    identity.require(author, role)
    return author


def _page(name: str, status: int = 200, **context: Any) -> Response:
    svc = services()
    html = render_template(name, visitor=g.get("visitor"), now=svc.clock.now(), **context)
    return Response(html, status, mimetype="text/html")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    svc = services()
    token = desklogin.login_token(request)
    wanted = request.args.get("next", "")
    next_url = (
        wanted if wanted.startswith("/desk") and not wanted.startswith("//") else url_for("desk.incidents")
    )
    enabled = svc.settings.auth.session_secret is not None and bool(svc.settings.users)
    error, status = None, 200
    if request.method == "POST":
        name, password = request.form.get("name", "").strip(), request.form.get("password", "")
        if not desklogin.csrf_ok(request.cookies.get(desklogin.LOGIN_COOKIE), request.form.get("csrf")):
            error, status = "The form expired; please try again.", 403
        elif not enabled:
            error, status = "Log-in is not set up: set users and auth.session_secret.", 403
        elif (wait := desklogin.attempts_left(svc, request.remote_addr or "-", name)) > 0:
            error, status = f"Too many attempts; try again in {int(wait) + 1} seconds.", 429
        elif (author := desklogin.check_password(svc.settings, name, password)) is None:
            error, status = "Wrong user name or password.", 401
        else:
            response = redirect(next_url, 303)
            desklogin.start(svc, response, author.name, _secure(svc))
            return response
    response = _page("desk/login.html", status, csrf=token, error=error, next=next_url, enabled=enabled)
    if status == 429:
        response.headers["Retry-After"] = "60"
    desklogin.set_login_token(response, token, _secure(svc))
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    response = redirect(url_for("desk.login"), 303)
    desklogin.end(services(), request, response)
    return response


# --------------------------------------------------------------------------------------------
# the list


def _due(svc: Services, incident: Incident, heard: Mapping[tuple[int, str], datetime | None]) -> list[Due]:
    """Each audience's next notice (see planning.next_notices), and whether it is late."""
    now = svc.clock.now()
    due = next_notices(svc.settings, incident, lambda audience: heard.get((incident.id, audience)))
    return [Due(audience, at, at < now) for at, audience, _ in due]


def _segments(svc: Services, incident: Incident) -> dict[str, int]:
    catalog = svc.settings.catalog
    counts = Counter(t.segment for t in map(catalog.tenant, incident.tenants) if t is not None)
    return dict(sorted(counts.items()))


def _int_arg(name: str, low: int, high: int) -> int | None:
    value = request.args.get(name, "")
    if not value:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(
            400, "bad_request", f"{name} must be {low} to {high}", [{"field": name, "message": value}]
        )
    return int(value)


@bp.get("/")
def incidents() -> ResponseReturnValue:
    _author("viewer")
    svc = services()
    status = request.args.get("status", "all")
    if status not in ("open", "resolved", "all"):
        raise ApiError(400, "bad_request", "status must be open, resolved or all")
    level = _int_arg("level", 1, 5)
    service = request.args.get("service") or None
    page = _int_arg("page", 1, 10_000) or 1
    with svc.store.read() as conn:
        rows = repo.list_incidents(
            conn,
            status,
            PER_PAGE + 1,
            offset=(page - 1) * PER_PAGE,
            level=level,
            service=service,
            open_first=True,
        )
        heard = outbox.last_heard_open(conn)
        waiting = Counter(w.ref for w in outbox.awaiting_approval(conn, timedelta(0)))
    listed = [
        Row(i, _segments(svc, i), [] if i.status == "resolved" else _due(svc, i, heard), waiting[i.ref])
        for i in rows[:PER_PAGE]
    ]
    return _page(
        "desk/incidents.html",
        rows=listed,
        more=len(rows) > PER_PAGE,
        page=page,
        filters={"status": status, "level": level, "service": service},
        services=svc.settings.catalog.services,
    )


# --------------------------------------------------------------------------------------------
# forms


def _form(model: type[BaseModel], lists: tuple[str, ...] = (), lines: tuple[str, ...] = ()) -> Any:
    """The posted form as the API's body model; FormError names each bad field."""
    data: dict[str, Any] = {}
    for key in model.model_fields:
        if key in lists:
            values = [v.strip() for raw in request.form.getlist(key) for v in raw.split(",") if v.strip()]
            if values:
                data[key] = values
        elif key in lines:
            items = [line.strip() for line in request.form.get(key, "").splitlines() if line.strip()]
            if items:
                data[key] = items
        elif (value := request.form.get(key, "").strip()) != "":
            data[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for item in error_details(exc):
            errors.setdefault(item["field"].split(".")[0], item["message"])
        raise FormError(errors) from None


def _update_from_form(svc: Services) -> HumanUpdate:
    return human_update(svc, _form(UpdateBody, lists=("tenants",)))


def _declaration_from_form() -> Declaration:
    body: DeclareBody = _form(DeclareBody, lists=("services",))
    return Declaration(**{**body.model_dump(), "services": tuple(body.services)})


def _act(action: Callable[..., Done], *args: Any) -> Done:
    """An engine action; its refusals become the form's errors."""
    try:
        return action(*args)
    except Invalid as exc:
        raise FormError({exc.field: str(exc)}) from None
    except Conflict as exc:
        raise FormError({"": str(exc)}) from None
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _drafts(form: str, ref: str | None) -> list[Draft]:
    svc = services()
    author = _author("author")
    drafts = svc.drafts
    if form == "declare":
        return _act(drafts.declare, _declaration_from_form(), author)
    assert ref is not None
    if form == "update":
        return _act(drafts.update, ref, _update_from_form(svc), author)
    if form == "resolve":
        body: ResolveBody = _form(ResolveBody)
        return _act(drafts.resolve, ref, body.technical, body.business, author)
    if form == "postmortem":
        review: PostmortemBody = _form(PostmortemBody, lines=("preventive_measures",))
        args = (ref, review.technical, review.business, review.measures(), author)
        return _act(drafts.postmortem, *args)
    if form == "sla_followup":
        return _act(drafts.sla_followup, ref)
    raise ApiError(404, "not_found", f"no form {form}")


@bp.post("/preview/<form>")
@bp.post("/incidents/<ref>/preview/<form>")
def preview(form: str, ref: str | None = None) -> ResponseReturnValue:
    """The next notices as the form now stands, technical and business side by side (htmx)."""
    try:
        drafts, errors = _drafts(form, ref), {}
    except FormError as exc:
        drafts, errors = [], exc.errors
    return _page("desk/_preview.html", drafts=drafts, errors=errors)


@bp.route("/declare", methods=["GET", "POST"])
def declare() -> ResponseReturnValue:
    author = _author("author")
    svc = services()
    if request.method == "POST":
        try:
            ref = _act(svc.humans.declare, _declaration_from_form(), author)
        except FormError as exc:
            return _page(
                "desk/declare.html", 422, values=request.form, errors=exc.errors, catalog=svc.settings.catalog
            )
        return redirect(url_for("desk.incident", ref=ref), 303)
    said = STATUS_TEXT["investigating"]  # the phrase the templates use for the status
    values = {"status": "investigating", "technical": said, "business": said}
    return _page("desk/declare.html", values=values, errors={}, catalog=svc.settings.catalog)


# --------------------------------------------------------------------------------------------
# an incident


@dataclass
class TemplateUse:
    """A template an incident's notices were written with, and what their readers said."""

    name: str
    notices: int = 0
    helpful: int = 0
    not_helpful: int = 0
    comments: list[str] = field(default_factory=list)


def _reviewable(incident: Incident) -> bool:
    """Resolved incidents of level 3 or more have their templates reviewed against the feedback."""
    return incident.status == "resolved" and incident.level >= REVIEW_LEVEL


def _templates(notices: list[Notice], answers: list[Answer]) -> list[TemplateUse]:
    uses: dict[str, TemplateUse] = {}
    for notice in notices:
        name = notice.data.get("template")
        if name and notice.phase in PHASES:
            uses.setdefault(name, TemplateUse(name)).notices += 1
    for answer in answers:
        use = uses.get(answer.notice.data.get("template") or "")
        if use is not None:
            use.helpful += answer.helpful
            use.not_helpful += not answer.helpful
            if answer.comment:
                use.comments.append(answer.comment)
    return sorted(uses.values(), key=lambda u: u.name)


def _incident_page(ref: str, status: int = 200, form: str | None = None, **extra: Any) -> ResponseReturnValue:
    svc = services()
    with svc.store.read() as conn:
        found = read_history(conn, ref)
        incident = found.incident
        trail = audit.entries(conn, ref=ref)
        auto_publish_after = svc.settings.policy.approval.auto_publish_after
        waiting = outbox.awaiting_approval(conn, auto_publish_after, incident_id=incident.id)
        answers = feedback.answers(conn, incident_id=incident.id) if _reviewable(incident) else None
        # This incident's only, not every open incident's as the list reads them.
        heard = {(incident.id, a): outbox.last_heard(conn, incident.id, a) for a in ("technical", "business")}
    return _page(
        "desk/incident.html",
        status,
        incident=incident,
        alerts=found.alerts,
        notices=found.notices,
        timeline=found.timeline,
        trail=trail,
        due=_due(svc, incident, heard) if incident.status != "resolved" else [],
        segments=_segments(svc, incident),
        call_list=call_list(svc, incident),
        waiting=waiting,
        templates=None if answers is None else _templates(found.notices, answers),
        reviewed=any(t.kind == "templates_reviewed" for t in found.timeline),
        catalog=svc.settings.catalog,
        statuses=STATUSES,
        form=form,
        values=extra.pop("values", {}),
        errors=extra.pop("errors", {}),
        done=request.args.get("done"),
        **extra,
    )


@bp.get("/incidents/<ref>")
def incident(ref: str) -> ResponseReturnValue:
    _author("viewer")
    return _incident_page(ref)


@bp.post("/incidents/<ref>/<form>")
def act(ref: str, form: str) -> ResponseReturnValue:
    """Post an update, change, resolve, or write the post-mortem; a refused form comes back filled."""
    svc = services()
    humans = svc.humans
    try:
        if form == "update":
            author = _author("author")
            _act(humans.update, ref, _update_from_form(svc), author)
        elif form == "change":
            author = _author("author")
            body: PatchBody = _form(PatchBody, lists=("services",))
            args = (body.level, body.title, body.incident_type, body.services, body.publish, author)
            _act(humans.patch, ref, *args)
        elif form == "resolve":
            author = _author("author")
            done: ResolveBody = _form(ResolveBody)
            _act(humans.resolve, ref, done.technical, done.business, done.root_cause, author)
        elif form == "postmortem":
            author = _author("author")
            review: PostmortemBody = _form(PostmortemBody, lines=("preventive_measures",))
            _act(
                humans.postmortem,
                ref,
                review.technical,
                review.business,
                review.measures(),
                review.root_cause,
                author,
            )
        else:
            raise ApiError(404, "not_found", f"no form {form}")
    except FormError as exc:
        return _incident_page(ref, 422, form=form, values=request.form, errors=exc.errors)
    return redirect(url_for("desk.incident", ref=ref, done=form) + f"#{form}", 303)


@bp.post("/notices/<int:notice_id>/retry")
def retry(notice_id: int) -> ResponseReturnValue:
    author = _author("admin")
    svc = services()
    human(svc.humans.retry, notice_id, author)
    svc.dispatcher.wake()
    ref = request.form.get("ref", "")
    target = url_for("desk.incident", ref=ref, done="retry") if ref else url_for("desk.incidents")
    return redirect(target, 303)


# --------------------------------------------------------------------------------------------
# approvals


def _awaiting(svc: Services) -> list[AwaitingNotice]:
    with svc.store.read() as conn:
        return outbox.awaiting_approval(conn, svc.settings.policy.approval.auto_publish_after)


@bp.get("/approvals")
def approvals() -> ResponseReturnValue:
    _author("viewer")
    return _page("desk/approvals.html", waiting=_awaiting(services()))


@bp.post("/notices/<int:notice_id>/<decision>")
def decide(notice_id: int, decision: str) -> ResponseReturnValue:
    """An approver publishes a waiting notice (with the edits made in the form) or discards it."""
    author = _author("approver")
    svc = services()
    if decision == "approve":
        with svc.store.read() as conn:
            notice = outbox.one(conn, notice_id)
        if notice is None:
            raise ApiError(404, "not_found", f"no notice {notice_id}")
        # Only what the approver changed counts as an edit (browsers send \r\n in text areas).
        subject = request.form.get("subject", notice.subject).strip()
        body = request.form.get("body", notice.body).replace("\r\n", "\n").strip()
        edits = (
            subject if subject != notice.subject else None,
            body if body != notice.body.strip() else None,
        )
        action: Callable[..., int] = svc.humans.approve
        args: tuple[Any, ...] = (notice_id, author, *edits)
    elif decision == "discard":
        action, args = svc.humans.discard, (notice_id, author)
    else:
        raise ApiError(404, "not_found", f"no action {decision}")
    human(action, *args)
    svc.dispatcher.wake()
    ref = request.form.get("ref", "")
    target = url_for("desk.incident", ref=ref) if ref else url_for("desk.approvals")
    return redirect(f"{target}?done={decision}", 303)


# --------------------------------------------------------------------------------------------
# the communication report, and reviewing templates against it


def _report_args() -> dict[str, str]:
    """The form's days as the API's bounds: `to` is the last day shown, so the day after it."""
    args = {"from": request.args.get("from", ""), "to": request.args.get("to", "")}
    if len(args["to"]) == 10:  # a date, from the form's date field; a bad one time_bounds refuses
        with contextlib.suppress(ValueError):
            args["to"] = (date.fromisoformat(args["to"]) + timedelta(days=1)).isoformat()
    return args


@bp.get("/reports")
def report() -> ResponseReturnValue:
    _author("viewer")
    svc = services()
    shown = communication_report(svc, _report_args())
    return _page("desk/report.html", report=shown, args=request.args)


@bp.get("/reports.csv")
def report_csv() -> ResponseReturnValue:
    _author("viewer")
    return csv_response(communication_report(services(), _report_args()))


@bp.post("/incidents/<ref>/templates-reviewed")
def templates_reviewed(ref: str) -> ResponseReturnValue:
    author = _author("author")
    human(services().humans.templates_reviewed, ref, author)
    return redirect(url_for("desk.incident", ref=ref, done="templates_reviewed") + "#templates", 303)
