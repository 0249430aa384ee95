"""The built-in status page: HTML per audience and per tenant, JSON, and Atom feeds of published notices."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from adapter.catalog import Service, Tenant
from adapter.config import Settings
from adapter.rendering import human_duration
from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.web.errors import ApiError
from adapter.web.serialize import iso
from adapter.web.services import Services, services

bp = Blueprint("status", __name__, template_folder="templates")
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
# A tenant's page is theirs alone: no caching in between, no token in a Referer.
PRIVATE_HEADERS = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}

Interval = tuple[datetime, datetime, int]


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


def _page_data(
    svc: Services, audiences: tuple[str, ...], tenant: Tenant | None = None
) -> list[dict[str, Any]]:
    """Incidents with published notices for these audiences: open first, then recently resolved.

    For a tenant: only incidents affecting it, only its services, only notices not meant for another.
    """
    builtin = [p.name for p in svc.settings.providers if p.type == "builtin"]
    now = svc.clock.now()
    since = now - timedelta(days=svc.settings.status_page.resolved_days)
    with svc.store.read() as conn:
        rows = repo.incidents_for_page(conn, since)
        if tenant is not None:
            rows = [r for r in rows if tenant.id in r["tenants"]]
        notices = outbox.published(conn, [r["id"] for r in rows], builtin)
    readers = {None} if tenant is None else {None, tenant.id}
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for notice in notices:
        if notice["audience"] in audiences and notice["tenant"] in readers:
            by_incident.setdefault(notice["incident_id"], []).append(notice)
    catalog = svc.settings.catalog
    page = []
    for row in rows:
        updates = by_incident.get(row["id"])
        if not updates:
            continue
        services_ = [s for s in map(catalog.service, row["services"]) if s is not None]
        if tenant is not None:
            services_ = [s for s in services_ if s.id in tenant.services]
        page.append({"incident": row, "updates": updates, "services": services_})
    return page


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
    rows: list[dict[str, Any]],
    shown: list[Service],
    audience: str,
    zone: ZoneInfo,
    now: datetime,
) -> list[Health]:
    """Per service: the worst open incident level, a bar per day of `uptime_days`, and uptime.

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
    out = []
    for service in shown:
        mine = [r for r in rows if service.id in {s.id for s in map(catalog.service, r["services"]) if s}]
        current = max((r["level"] for r in mine if r["status"] in OPEN), default=0)
        spans = _clip(
            [(r["opened_at"], r["resolved_at"] or now, r["level"]) for r in mine], period_start, now
        )
        bars = []
        for index, day in enumerate(days):
            inside = _clip(spans, bounds[index], min(bounds[index + 1], now))
            worst = max((level for _, _, level in inside), default=0)
            spent = _covered([(a, b) for a, b, level in inside if level == worst])
            bars.append(Day(day, worst, _day_label(day, worst, spent)))
        outage = _covered([(a, b) for a, b, level in spans if level >= OUTAGE_LEVEL])
        uptime = _uptime(outage, now - period_start)
        name = service.business_name if audience == "business" else service.name
        summary = f"{name}: {STATES[current][1]}, {uptime} uptime over the last {count} days"
        out.append(Health(service, name, current, bars, uptime, summary))
    return out


def _health_for(svc: Services, shown: list[Service], audience: str, zone: ZoneInfo) -> list[Health]:
    now = svc.clock.now()
    count = svc.settings.status_page.uptime_days
    # A day early, so the first local day is covered whatever the zone.
    since = now - timedelta(days=count + 1)
    with svc.store.read() as conn:
        rows = repo.overlapping(conn, since, now + timedelta(seconds=1))
    return health(svc.settings, rows, shown, audience, zone, now)


# --------------------------------------------------------------------------------------------
# views


def _render_page(
    svc: Services,
    audience: str,
    entries: list[dict[str, Any]],
    shown: list[Service],
    zone_name: str,
    feed_url: str,
    tenant: Tenant | None = None,
) -> str:
    zone = ZoneInfo(zone_name)
    return render_template(
        "status.html",
        audience=audience,
        tenant=tenant,
        open_entries=[e for e in entries if e["incident"]["status"] != "resolved"],
        resolved_entries=[e for e in entries if e["incident"]["status"] == "resolved"],
        services=_health_for(svc, shown, audience, zone),
        resolved_days=svc.settings.status_page.resolved_days,
        uptime_days=svc.settings.status_page.uptime_days,
        now=svc.clock.now(),
        tz=zone_name,
        feed_url=feed_url,
    )


def _html(audience: str) -> ResponseReturnValue:
    svc = services()
    entries = _page_data(svc, (audience,))
    return _render_page(
        svc,
        audience,
        entries,
        list(svc.settings.catalog.services),
        "UTC",
        url_for("status.feed", audience=audience),
    )


@bp.get("/status")
def business_page() -> ResponseReturnValue:
    return _html("business")


@bp.get("/status/technical")
def technical_page() -> ResponseReturnValue:
    return _html("technical")


@bp.get("/status/t/<token>")
def tenant_page(token: str) -> ResponseReturnValue:
    svc = services()
    tenant = _tenant_for(svc.settings, token)
    entries = _page_data(svc, (tenant.segment,), tenant)
    catalog = svc.settings.catalog
    shown = [s for s in map(catalog.service, tenant.services) if s is not None]
    body = _render_page(
        svc,
        tenant.segment,
        entries,
        shown,
        tenant.timezone,
        url_for("status.tenant_feed", token=token),
        tenant,
    )
    return Response(body, mimetype="text/html", headers=PRIVATE_HEADERS)


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


def _feed(
    svc: Services, entries: list[dict[str, Any]], audience: str, title: str, page_path: str, self_path: str
) -> Response:
    items = sorted(
        ((e, n) for e in entries for n in e["updates"]),
        key=lambda pair: (pair[1]["delivered_at"], pair[1]["id"]),
        reverse=True,
    )
    public = svc.settings.server.public_url.rstrip("/")
    body = render_template(
        "feed.atom.xml",
        audience=audience,
        title=title,
        items=items,
        updated=items[0][1]["delivered_at"] if items else svc.clock.now(),
        public=public,
        page_url=public + page_path,
        self_url=public + self_path,
    )
    return Response(body, mimetype="application/atom+xml")


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
    title = "Service status" + (" (technical detail)" if audience == "technical" else "")
    page = "/status" if audience == "business" else "/status/technical"
    return _feed(
        svc, _page_data(svc, (audience,)), audience, title, page, f"/status/feed.atom?audience={audience}"
    )


@bp.get("/status/t/<token>/feed.atom")
def tenant_feed(token: str) -> ResponseReturnValue:
    svc = services()
    tenant = _tenant_for(svc.settings, token)
    entries = _page_data(svc, (tenant.segment,), tenant)
    page = f"/status/t/{token}"
    response = _feed(
        svc, entries, tenant.segment, f"Service status for {tenant.name}", page, page + "/feed.atom"
    )
    response.headers.update(PRIVATE_HEADERS)
    return response
