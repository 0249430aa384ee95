"""The built-in status page: HTML per audience and per tenant, JSON, and Atom feeds of published notices."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, json, render_template, request, url_for
from flask.typing import ResponseReturnValue

from adapter.catalog import Service, Tenant
from adapter.config import Settings
from adapter.feedback import LinkMaker
from adapter.feedback import Links as FeedbackLinks
from adapter.rendering import human_duration
from adapter.store import incidents as repo
from adapter.store import pages
from adapter.store.pages import Readers
from adapter.store.records import IncidentSpan, PageIncident, PageNotice
from adapter.text import printable
from adapter.web.errors import ApiError
from adapter.web.pagecache import Rendered
from adapter.web.serialize import iso
from adapter.web.services import Services, services

bp = Blueprint(
    "status", __name__, template_folder="templates", static_folder="static", static_url_path="/status/static"
)
AUDIENCES = ("business", "technical")
OPEN = repo.OPEN
# Incident level → (CSS class, words) for a service's state and its uptime bars.
STATES: dict[int, tuple[str, str]] = {
    0: ("ok", "Operational"),
    1: ("degraded", "Degraded"),
    2: ("degraded", "Degraded"),
    3: ("partial", "Partial outage"),
    4: ("partial", "Partial outage"),
    5: ("major", "Major outage"),
}
# Uptime counts time without a partial or major outage.
OUTAGE_LEVEL = 3
# A tenant's page is theirs alone: no token in a Referer (and PageCache keeps it private).
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer"}
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")

Interval = tuple[datetime, datetime, int]
Entry = dict[str, Any]


def tenant_token(settings: Settings, tenant: Tenant) -> str | None:
    """The tenant's status page token: the catalog's, else derived from the secret; None: no page."""
    if tenant.status_token:
        return tenant.status_token
    secret = settings.status_page.tenant_token_secret
    if not secret:
        return None
    return hmac.new(secret.encode(), tenant.id.encode(), hashlib.sha256).hexdigest()[:32]


def _tenant_for(settings: Settings, token: str) -> Tenant:
    """The tenant whose token this is, compared in constant time against every tenant's."""
    given = token.encode()
    found: Tenant | None = None
    for tenant in settings.catalog.tenants:
        expected = tenant_token(settings, tenant)
        if expected is not None and hmac.compare_digest(expected.encode(), given):
            found = tenant
    if found is None:
        raise ApiError(404, "not_found", "no such status page")
    return found


# --------------------------------------------------------------------------------------------
# what a page shows: bounded, and printable


def _cut(text: str, limit: int | None) -> tuple[str, bool]:
    """`text` shown at most `limit` characters long (None: whole), and whether it was cut."""
    if limit is None or len(text) <= limit:
        return printable(text), False
    return printable(text[:limit].rstrip()) + "…", True


@dataclass(frozen=True, slots=True)
class Update:
    """A published notice as a page shows it: subject and body cut to fit; `truncated`, the body was."""

    id: int
    audience: str
    phase: str
    subject: str
    body: str
    delivered_at: datetime
    truncated: bool


def _shown_incident(row: PageIncident) -> PageIncident:
    return replace(row, title=_cut(row.title, pages.LINE_CHARS)[0])


def _shown_notice(row: PageNotice, body_chars: int | None) -> Update:
    body, truncated = _cut(row.body, body_chars)
    subject = _cut(row.subject, pages.LINE_CHARS)[0]
    return Update(row.id, row.audience, row.phase, subject, body, row.delivered_at, truncated)


def _readers(svc: Services, audiences: tuple[str, ...], tenant: Tenant | None = None) -> Readers:
    builtin = tuple(p.name for p in svc.settings.providers if p.type == "builtin")
    if tenant is None:
        return Readers(audiences, builtin)
    return Readers(audiences, builtin, tenant.id, tenant.timezone)


def _services_of(svc: Services, row: PageIncident, tenant: Tenant | None) -> list[Service]:
    shown = [s for s in map(svc.settings.catalog.service, row.services) if s is not None]
    if tenant is not None:
        shown = [s for s in shown if s.id in tenant.services]
    return shown


def _entries(
    svc: Services,
    rows: list[PageIncident],
    notices: list[PageNotice],
    tenant: Tenant | None,
    body_chars: int | None,
) -> list[Entry]:
    """Incidents with the notices shown of each (oldest first), and how many more each has."""
    updates: dict[int, list[Update]] = {}
    totals: dict[int, dict[str, int]] = {}
    for notice in notices:
        updates.setdefault(notice.incident_id, []).append(_shown_notice(notice, body_chars))
        totals.setdefault(notice.incident_id, {})[notice.audience] = notice.total
    return [
        {
            "incident": _shown_incident(row),
            "updates": updates.get(row.id, []),
            "services": _services_of(svc, row, tenant),
            "earlier": sum(totals.get(row.id, {}).values()) - len(updates.get(row.id, [])),
        }
        for row in rows
    ]


def _newest(*times: datetime | None) -> datetime | None:
    return max((t for t in times if t is not None), default=None)


def _shown_since(entries: list[Entry]) -> datetime | None:
    """When what the entries show last changed."""
    return _newest(
        *(e["incident"].updated_at for e in entries),
        *(n.delivered_at for e in entries for n in e["updates"]),
    )


@dataclass(frozen=True)
class Overview:
    """One page of incidents (open first, then recently resolved), with the counts of all."""

    entries: list[Entry]
    open_count: int
    page: int
    pages: int

    @property
    def open_entries(self) -> list[Entry]:
        return [e for e in self.entries if e["incident"].status != "resolved"]

    @property
    def resolved_entries(self) -> list[Entry]:
        return [e for e in self.entries if e["incident"].status == "resolved"]


def _overview(svc: Services, readers: Readers, page: int, tenant: Tenant | None = None) -> Overview:
    config = svc.settings.status_page
    since = svc.clock.now() - timedelta(days=config.resolved_days)
    per_page = config.incidents_per_page
    with svc.store.read() as conn:
        open_count, total = pages.counts(conn, readers, since)
        last_page = max(1, math.ceil(total / per_page))
        if page > last_page:
            raise ApiError(404, "not_found", f"no page {page}: there are {last_page}")
        rows = pages.current_incidents(conn, readers, since, limit=per_page, offset=(page - 1) * per_page)
        notices = pages.latest_notices(
            conn,
            readers,
            [r.id for r in rows],
            count=config.notices_per_incident,
            body_chars=config.body_chars,
        )
    entries = _entries(svc, rows, notices, tenant, config.body_chars)
    return Overview(entries, open_count, page, last_page)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not _PAGE_NUMBER.fullmatch(raw):
        raise ApiError(
            400,
            "bad_request",
            "page must be a whole number from 1",
            [{"field": "page", "message": f"got {raw[:40]!r}"}],
        )
    return int(raw)


@dataclass(frozen=True)
class Links:
    """Where a page links to: the public pages of one audience, or a tenant's own pages."""

    audience: str
    token: str | None = None
    # Each notice's "Was this update helpful?" links (none without feedback.secret), for whom.
    answers: LinkMaker | None = None
    tenant: str | None = None
    now: datetime | None = None

    def feedback(self, notice_id: int, phase: str, audience: str) -> FeedbackLinks | None:
        if self.answers is None or self.now is None:
            return None
        return self.answers.for_notice(notice_id, phase, audience, self.tenant, self.now)

    def _public(self) -> dict[str, Any]:
        return {"audience": "technical"} if self.audience == "technical" else {}

    @staticmethod
    def _paged(page: int) -> dict[str, Any]:
        return {"page": page} if page > 1 else {}

    def overview(self, page: int = 1) -> str:
        if self.token is not None:
            return url_for("status.tenant_page", token=self.token, **self._paged(page))
        endpoint = "status.technical_page" if self.audience == "technical" else "status.business_page"
        return url_for(endpoint, **self._paged(page))

    def feed(self) -> str:
        if self.token is not None:
            return url_for("status.tenant_feed", token=self.token)
        return url_for("status.feed", audience=self.audience)

    def incident(self, ref: str, page: int = 1) -> str:
        if self.token is not None:
            return url_for("status.tenant_incident", token=self.token, ref=ref, **self._paged(page))
        return url_for("status.incident_page", ref=ref, **self._public(), **self._paged(page))

    def notice(self, notice_id: int) -> str:
        if self.token is not None:
            return url_for("status.tenant_notice", token=self.token, notice_id=notice_id)
        return url_for("status.notice_page", notice_id=notice_id)


# --------------------------------------------------------------------------------------------
# service health: current state and uptime bars


@dataclass(frozen=True)
class Day:
    day: date
    level: int
    label: str

    @property
    def css(self) -> str:
        return STATES[self.level][0]


@dataclass(frozen=True)
class Health:
    service: Service
    name: str
    level: int
    days: list[Day]
    uptime: str
    summary: str

    @property
    def css(self) -> str:
        return STATES[self.level][0]

    @property
    def state(self) -> str:
        return STATES[self.level][1]


def _covered(intervals: list[tuple[datetime, datetime]]) -> timedelta:
    """Total time covered by the intervals, overlaps counted once."""
    total = timedelta()
    end: datetime | None = None
    for start, stop in sorted(intervals):
        if end is not None and start < end:
            start = end
        if stop > start:
            total += stop - start
            end = stop
    return total


def _clip(intervals: list[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(a, start), min(b, end), level) for a, b, level in intervals if a < end and b > start]


def _day_label(day: date, level: int, spent: timedelta) -> str:
    when = f"{day.day} {day:%b %Y}"
    if not level:
        return f"{when}: no incidents"
    return f"{when}: {human_duration(spent)} of level {level} incident"


def _uptime(outage: timedelta, period: timedelta) -> str:
    if outage <= timedelta() or period <= timedelta():
        return "100%"
    percent = max(0.0, 100.0 * (1 - outage / period))
    return f"{math.floor(percent * 100) / 100:.2f}%"


def health(
    settings: Settings,
    rows: list[IncidentSpan],
    shown: list[Service],
    audience: str,
    zone: ZoneInfo,
    now: datetime,
    explained: list[IncidentSpan],
) -> list[Health]:
    """Per service: the worst level of the open incidents in `explained` (those the page shows:
    no service looks degraded without the incident that says why), a bar per day of
    `uptime_days`, and uptime.

    Days run midnight to midnight in `zone`; each incident counts at its current level from its
    opening until its resolution (or now).
    """
    count = settings.status_page.uptime_days
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=count - 1 - i) for i in range(count)]
    bounds = [datetime.combine(d, time(), tzinfo=zone).astimezone(UTC) for d in days]
    bounds.append(datetime.combine(today + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC))
    period_start = bounds[0]
    catalog = settings.catalog
    mine: dict[str, list[IncidentSpan]] = {service.id: [] for service in shown}
    for row in rows:
        for service_id in {s.id for s in map(catalog.service, row.services) if s} & mine.keys():
            mine[service_id].append(row)
    current_of: dict[str, int] = {}
    for row in explained:
        if row.status in OPEN:
            for service_id in row.services:
                current_of[service_id] = max(current_of.get(service_id, 0), row.level)
    out = []
    for service in shown:
        current = current_of.get(service.id, 0)
        spans = _clip(
            [(r.opened_at, r.resolved_at or now, r.level) for r in mine[service.id]],
            period_start,
            now,
        )
        # Each span against the days it may touch only: a bisection of the days' bounds finds them.
        by_day: list[list[Interval]] = [[] for _ in days]
        for span in spans:
            first = max(0, bisect_right(bounds, span[0]) - 1)
            for index in range(first, min(count, bisect_left(bounds, span[1]))):
                by_day[index].append(span)
        bars = []
        for index, day in enumerate(days):
            inside = _clip(by_day[index], bounds[index], min(bounds[index + 1], now))
            worst = max((level for _, _, level in inside), default=0)
            spent = _covered([(a, b) for a, b, level in inside if level == worst])
            bars.append(Day(day, worst, _day_label(day, worst, spent)))
        outage = _covered([(a, b) for a, b, level in spans if level >= OUTAGE_LEVEL])
        uptime = _uptime(outage, now - period_start)
        name = service.business_name if audience == "business" else service.name
        summary = f"{name}: {STATES[current][1]}, {uptime} uptime over the last {count} days"
        out.append(Health(service, name, current, bars, uptime, summary))
    return out


def _health_for(
    svc: Services, shown: list[Service], audience: str, zone: ZoneInfo, explained: list[IncidentSpan]
) -> tuple[list[Health], datetime | None]:
    """The services' health, and when the incidents it is drawn from last changed."""
    now = svc.clock.now()
    count = svc.settings.status_page.uptime_days

    def history() -> list[IncidentSpan]:
        # A day early, so the first local day is covered whatever the zone.
        with svc.store.read() as conn:
            return pages.history(conn, now - timedelta(days=count + 1), now + timedelta(seconds=1))

    # Every page's bars are drawn from the same incidents: read once for all of them.
    rows = svc.pages.keep(("history",), history)
    changed = _newest(*(r.updated_at for r in rows))
    return health(svc.settings, rows, shown, audience, zone, now, explained), changed


# --------------------------------------------------------------------------------------------
# views


@dataclass(frozen=True)
class Scope:
    """Whose pages: one audience's public pages, or one tenant's (in its segment's version)."""

    audience: str
    tenant: Tenant | None = None
    token: str | None = None

    @property
    def zone(self) -> str:
        return self.tenant.timezone if self.tenant is not None else "UTC"

    def links(self, svc: Services) -> Links:
        tenant = self.tenant.id if self.tenant is not None else None
        return Links(self.audience, self.token, svc.feedback_links, tenant, svc.clock.now())

    @property
    def site(self) -> str:
        """The pages' name, atop each of them."""
        if self.tenant is not None:
            return f"Service status for {self.tenant.name}"
        return "Service status" if self.audience == "business" else "Service status — technical detail"

    def key(self, *parts: Any) -> tuple[Any, ...]:
        """A cache key within this scope: a tenant's pages are never another's."""
        owner = ("tenant", self.tenant.id) if self.tenant is not None else ("public", self.audience)
        return (*owner, *parts)

    def readers(self, svc: Services) -> Readers:
        return _readers(svc, (self.audience,), self.tenant)

    def services(self, svc: Services) -> list[Service]:
        catalog = svc.settings.catalog
        if self.tenant is None:
            return list(catalog.services)
        return [s for s in map(catalog.service, self.tenant.services) if s is not None]


def _tenant_scope(svc: Services, token: str) -> Scope:
    tenant = _tenant_for(svc.settings, token)
    return Scope(tenant.segment, tenant, token)


def _cached(
    svc: Services, key: tuple[Any, ...], render: Callable[[], Rendered], *, private: bool
) -> Response:
    """The response under `key` from the page cache; a tenant's is private."""
    response = svc.pages.response(key, render, request, private=private)
    if private:
        response.headers.update(PRIVATE_HEADERS)
    return response


def _html(name: str, last_modified: datetime | None, **context: Any) -> Rendered:
    return Rendered(render_template(name, **context).encode(), "text/html", last_modified)


def _overview_page(svc: Services, scope: Scope) -> Response:
    page = _page_number()
    config = svc.settings.status_page

    def render() -> Rendered:
        overview = _overview(svc, scope.readers(svc), page, scope.tenant)
        health: list[Health] = []
        changed = None
        if page == 1:  # the services' state and uptime head the first page only
            explained = [e["incident"] for e in overview.open_entries]
            health, changed = _health_for(
                svc, scope.services(svc), scope.audience, ZoneInfo(scope.zone), explained
            )
        return _html(
            "status.html",
            _newest(changed, _shown_since(overview.entries)),
            site=scope.site,
            audience=scope.audience,
            tenant=scope.tenant,
            overview=overview,
            services=health,
            resolved_days=config.resolved_days,
            uptime_days=config.uptime_days,
            now=svc.clock.now(),
            tz=scope.zone,
            links=scope.links(svc),
        )

    return _cached(svc, scope.key("page", page), render, private=scope.tenant is not None)


def _incident_page(svc: Services, scope: Scope, ref: str) -> Response:
    """One incident with all its published notices, newest first, a page of them at a time."""
    page = _page_number()
    config = svc.settings.status_page

    def render() -> Rendered:
        readers = scope.readers(svc)
        per_page = config.notices_per_page
        with svc.store.read() as conn:
            row = pages.incident(conn, readers, ref)
            if row is None:
                raise ApiError(404, "not_found", "no such incident")
            notices = pages.latest_notices(
                conn,
                readers,
                [row.id],
                count=per_page,
                skip=(page - 1) * per_page,
                body_chars=config.body_chars,
            )
        if not notices and page > 1:
            raise ApiError(404, "not_found", f"no page {page} of this incident's updates")
        (entry,) = _entries(svc, [row], notices, scope.tenant, config.body_chars)
        total = notices[0].total if notices else 0
        return _html(
            "incident.html",
            _shown_since([entry]),
            site=scope.site,
            audience=scope.audience,
            tenant=scope.tenant,
            entry=entry,
            page=page,
            pages=max(1, math.ceil(total / per_page)),
            now=svc.clock.now(),
            tz=scope.zone,
            links=scope.links(svc),
        )

    return _cached(svc, scope.key("incident", ref, page), render, private=scope.tenant is not None)


def _notice_page(svc: Services, scope: Scope | None, notice_id: int) -> Response:
    """One published notice in full, where pages that cut it short link to.

    `scope` None: the public pages, where either audience's notices are read, each in its own.
    """
    tenant = scope.tenant if scope is not None else None
    audiences = AUDIENCES if scope is None else (scope.audience,)

    def render() -> Rendered:
        with svc.store.read() as conn:
            notice = pages.notice(conn, _readers(svc, audiences, tenant), notice_id)
            row = pages.incident_by_id(conn, notice.incident_id) if notice is not None else None
        if notice is None or row is None:
            raise ApiError(404, "not_found", "no such notice")
        shown = scope or Scope(notice.audience)
        (entry,) = _entries(svc, [row], [notice], tenant, None)
        return _html(
            "incident.html",
            notice.delivered_at,
            site=shown.site,
            audience=shown.audience,
            tenant=tenant,
            entry=entry,
            single=True,
            page=1,
            pages=1,
            now=svc.clock.now(),
            tz=shown.zone,
            links=shown.links(svc),
        )

    key = scope.key("notice", notice_id) if scope is not None else ("public", "notice", notice_id)
    return _cached(svc, key, render, private=tenant is not None)


def _audience_arg() -> str:
    audience = request.args.get("audience", "business")
    if audience not in AUDIENCES:
        raise ApiError(
            400,
            "bad_request",
            "audience must be technical or business",
            [{"field": "audience", "message": f"got {audience[:40]!r}"}],
        )
    return audience


@bp.get("/status")
def business_page() -> ResponseReturnValue:
    return _overview_page(services(), Scope("business"))


@bp.get("/status/technical")
def technical_page() -> ResponseReturnValue:
    return _overview_page(services(), Scope("technical"))


@bp.get("/status/incidents/<ref>")
def incident_page(ref: str) -> ResponseReturnValue:
    return _incident_page(services(), Scope(_audience_arg()), ref)


@bp.get("/status/notices/<int:notice_id>")
def notice_page(notice_id: int) -> ResponseReturnValue:
    return _notice_page(services(), None, notice_id)


@bp.get("/status/t/<token>")
def tenant_page(token: str) -> ResponseReturnValue:
    svc = services()
    return _overview_page(svc, _tenant_scope(svc, token))


@bp.get("/status/t/<token>/incidents/<ref>")
def tenant_incident(token: str, ref: str) -> ResponseReturnValue:
    svc = services()
    return _incident_page(svc, _tenant_scope(svc, token), ref)


@bp.get("/status/t/<token>/notices/<int:notice_id>")
def tenant_notice(token: str, notice_id: int) -> ResponseReturnValue:
    svc = services()
    return _notice_page(svc, _tenant_scope(svc, token), notice_id)


@bp.get("/status.json")
def status_json() -> ResponseReturnValue:
    """Both tracks, bounded as the pages are; `page` and `pages` page through the incidents."""
    svc = services()
    page = _page_number()

    def render() -> Rendered:
        overview = _overview(svc, _readers(svc, AUDIENCES), page)
        body = {
            "generated_at": iso(svc.clock.now()),
            "status": "degraded" if overview.open_count else "ok",
            "page": overview.page,
            "pages": overview.pages,
            "incidents": [
                {
                    "ref": e["incident"].ref,
                    "status": e["incident"].status,
                    "level": e["incident"].level,
                    "opened_at": iso(e["incident"].opened_at),
                    "resolved_at": iso(e["incident"].resolved_at),
                    "services": [
                        {"id": s.id, "name": s.name, "business_name": s.business_name} for s in e["services"]
                    ],
                    "updates": [
                        {
                            "audience": n.audience,
                            "phase": n.phase,
                            "subject": n.subject,
                            "body": n.body,
                            "published_at": iso(n.delivered_at),
                            "truncated": n.truncated,
                        }
                        for n in e["updates"]
                    ],
                    "earlier_updates": e["earlier"],
                }
                for e in overview.entries
            ],
        }
        return Rendered(json.dumps(body).encode(), "application/json", _shown_since(overview.entries))

    return _cached(svc, ("public", "json", page), render, private=False)


def _feed(svc: Services, scope: Scope, title: str) -> Response:
    """The notices on the scope's first page, newest first; a cut body says where the rest is."""

    def render() -> Rendered:
        overview = _overview(svc, scope.readers(svc), 1, scope.tenant)
        items = sorted(
            ((e, n) for e in overview.entries for n in e["updates"]),
            key=lambda pair: (pair[1].delivered_at, pair[1].id),
            reverse=True,
        )
        public = svc.settings.server.public_url.rstrip("/")
        links = scope.links(svc)
        body = render_template(
            "feed.atom.xml",
            title=title,
            items=items,
            updated=items[0][1].delivered_at if items else svc.clock.now(),
            public=public,
            links=links,
            page_url=public + links.overview(),
            self_url=public + links.feed(),
        )
        return Rendered(body.encode(), "application/atom+xml", _shown_since(overview.entries))

    return _cached(svc, scope.key("feed"), render, private=scope.tenant is not None)


@bp.get("/status/feed.atom")
def feed() -> ResponseReturnValue:
    audience = _audience_arg()
    title = "Service status" + (" (technical detail)" if audience == "technical" else "")
    return _feed(services(), Scope(audience), title)


@bp.get("/status/t/<token>/feed.atom")
def tenant_feed(token: str) -> ResponseReturnValue:
    svc = services()
    scope = _tenant_scope(svc, token)
    return _feed(svc, scope, printable(scope.site))
