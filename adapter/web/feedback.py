"""Readers' links from their notices: "helpful?" answers and technical details, keyed by signed tokens."""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from adapter.feedback import BadToken, Link, read
from adapter.store import feedback
from adapter.store.records import NoticeFacts
from adapter.web.services import Services, services

bp = Blueprint("feedback", __name__, template_folder="templates")
COMMENT_MAX = 2000


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> ResponseReturnValue:
    return _page("feedback/refused.html", exc.status, message=exc.message)


def _page(name: str, status: int = 200, **context: object) -> Response:
    response = Response(render_template(name, **context), status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is the reader's key
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _opened(svc: Services, token: str, kinds: tuple[str, ...]) -> tuple[Link, NoticeFacts]:
    """The link's meaning and its notice, or a clear refusal (forged: 400, expired: 410)."""
    secret = svc.settings.feedback.secret
    if secret is None:
        raise Refused(404, "Feedback links are not in use here.")
    try:
        link = read(secret, token, svc.clock.now())
    except BadToken as exc:
        raise Refused(410 if "expired" in str(exc) else 400, f"Sorry: {exc}.") from None
    if link.kind not in kinds:
        raise Refused(400, "Sorry: this link is not one of ours.")
    with svc.store.read() as conn:
        notice = feedback.notice_facts(conn, link.notice_id)
    if notice is None:
        raise Refused(404, "Sorry: this update is no longer kept.")
    return link, notice


def _segment(svc: Services, link: Link, notice: NoticeFacts) -> str:
    tenant = svc.settings.catalog.tenant(link.tenant) if link.tenant else None
    return tenant.segment if tenant is not None else notice.audience


def _comment_key(svc: Services, token: str) -> str:
    """The comment form's CSRF token: bound to the link, so only its page can post a comment."""
    secret = (svc.settings.feedback.secret or "").encode()
    return hmac.new(secret, b"comment:" + token.encode(), hashlib.sha256).hexdigest()[:32]


@bp.route("/feedback/<token>", methods=["GET", "POST"])
def answer(token: str) -> ResponseReturnValue:
    """One click records the answer (a second changes it); a comment may follow."""
    svc = services()
    link, notice = _opened(svc, token, ("yes", "no"))
    reader = link.tenant or ""
    now = svc.clock.now()
    if request.method == "POST":
        given = request.form.get("csrf", "")
        if not hmac.compare_digest(given.encode(), _comment_key(svc, token).encode()):
            raise Refused(403, "Sorry: this form has expired; open the link from your notice again.")
        text = request.form.get("comment", "").strip()[:COMMENT_MAX]
        if text:
            with svc.store.transaction() as conn:
                feedback.comment(conn, notice.id, reader, text, now)
        return _page("feedback/thanks.html", commented=True)
    segment = _segment(svc, link, notice)
    helpful = link.kind == "yes"
    with svc.store.transaction() as conn:
        new = feedback.answer(conn, notice.id, notice.incident_id, reader, segment, helpful, now)
    if new:  # a changed answer is not a new one
        svc.metrics.feedback.labels(notice.audience, segment, link.kind).inc()
    return _page("feedback/thanks.html", helpful=helpful, csrf=_comment_key(svc, token), commented=False)


@bp.get("/details/<token>")
def details(token: str) -> ResponseReturnValue:
    """The technical version of a business notice's incident; each opening is counted."""
    svc = services()
    link, notice = _opened(svc, token, ("details",))
    tenant = svc.settings.catalog.tenant(link.tenant) if link.tenant else None
    segment = _segment(svc, link, notice)
    with svc.store.transaction() as conn:
        feedback.request_details(conn, notice.id, notice.incident_id, link.tenant, segment, svc.clock.now())
    svc.metrics.detail_requests.labels(segment).inc()
    draft = svc.drafts.technical(notice.ref, notice.phase, tenant)
    return _page("feedback/details.html", draft=draft, ref=notice.ref)
