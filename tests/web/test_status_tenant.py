"""Per-tenant status pages and feeds, tokens, and the service list with uptime bars and state."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_profile
from hypothesis import strategies as st

from adapter.store.records import IncidentSpan
from adapter.web.status import health, tenant_token
from tests.conftest import base_config
from tests.payloads import am_alert, am_body, encode
from tests.support.catalog import catalog_data
from tests.web.test_status import ATOM, CACHE, assert_well_formed_html, deliver, post

SECRET = "tenant-token-secret-0123456789"
BLOOM_TOKEN = "bloom-own-token-0123456789"
NOW = datetime(2026, 11, 26, 14, 32, tzinfo=UTC)


def nov(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def settings(make_settings):
    config = base_config()
    config["status_page"] = {"tenant_token_secret": SECRET}
    catalog = catalog_data()
    catalog["tenants"][0]["timezone"] = "Asia/Tokyo"  # acme: technical, UTC+9 all year
    catalog["tenants"][1]["status_token"] = BLOOM_TOKEN  # bloom: business, Europe/London
    return make_settings(config, catalog)


def acme_token() -> str:
    return hmac.new(SECRET.encode(), b"acme", hashlib.sha256).hexdigest()[:32]


def fire(client, service: str, fingerprint: str, summary: str, severity: str = "critical") -> None:
    labels = {"alertname": f"Alert{fingerprint[-2:]}", "service": service, "severity": severity}
    alert = am_alert(fingerprint, labels, annotations={"summary": summary, "description": summary})
    post(client, encode(am_body([alert], group_key=f'{{}}:{{service="{service}"}}')))


def insert_incident(
    app,
    services: list[str],
    level: int,
    opened: datetime,
    resolved: datetime | None,
    tenants: list[str],
    audiences: tuple[str, ...] = ("technical", "business"),
) -> None:
    """An incident of the past or present, with a first notice on the page for each of `audiences`."""
    from adapter.store import incidents as repo
    from adapter.store import outbox
    from tests.store.test_inserts import _notice

    with app.extensions["dualtrack"].store.transaction() as conn:
        ref = repo.next_ref(conn, opened.year)
        incident_id = repo.insert_incident(
            conn,
            {
                "ref": ref,
                "title": f"History {ref}",
                "status": "resolved" if resolved else "investigating",
                "level": level,
                "level_locked": False,
                "reopen_count": 0,
                "incident_type": "web",
                "services": services,
                "unknown_services": [],
                "tenants": tenants,
                "source": "alertmanager",
                "opened_at": opened,
                "resolved_at": resolved,
                "updated_at": resolved or opened,
            },
        )
        published = {"state": "delivered", "delivered_at": opened, "created_at": opened, "due_at": opened}
        outbox.insert_notices(
            conn,
            [{**_notice(incident_id, f"{ref}-{a}"), "audience": a, **published} for a in audiences],
        )


class _Bars(HTMLParser):
    """Service name, state and (class, label) of every day bar, per service in the list."""

    def __init__(self) -> None:
        super().__init__()
        self.services: list[dict[str, Any]] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        classes = (attr.get("class") or "").split()
        if tag == "h3" and self._in == "list":
            self.services.append({"name": "", "state": "", "days": [], "summary": ""})
            self._in = "name"
        elif tag == "ul" and "services" in classes:
            self._in = "list"
        elif tag == "span" and "state" in classes and self.services:
            self._in = "state"
        elif tag == "svg" and self.services:
            self.services[-1]["summary"] = attr["aria-label"]
        elif tag == "rect" and self.services:
            self.services[-1]["days"].append((classes[0], attr["aria-label"]))
        elif tag == "strong" and self.services:
            self._in = "uptime"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h3", "span", "strong") and self._in in ("name", "state", "uptime"):
            self._in = "list"
        elif tag in ("ul", "main") and self._in == "list":
            self._in = None  # the incidents' headings below are not services

    def handle_data(self, data: str) -> None:
        if self._in in ("name", "state", "uptime"):
            self.services[-1][self._in] = self.services[-1].get(self._in, "") + data.strip()


def bars(html: str) -> dict[str, dict[str, Any]]:
    parser = _Bars()
    parser.feed(html)
    return {s["name"]: s for s in parser.services}


# --------------------------------------------------------------------------------------------
# tokens


def test_tokens_come_from_the_catalog_else_the_secret(settings, make_settings):
    acme, bloom = settings.catalog.tenants
    assert tenant_token(settings, acme) == acme_token()
    assert len(acme_token()) == 32
    assert tenant_token(settings, bloom) == BLOOM_TOKEN
    bare = make_settings()
    assert [tenant_token(bare, t) for t in bare.catalog.tenants] == [None, None]


def test_no_secret_means_no_derived_page(app, client, make_settings, store, clock):
    from adapter.app import create_app
    from adapter.metrics import Metrics

    bare = make_settings()
    other = create_app(bare, clock=clock, store=store, metrics=Metrics()).test_client()
    assert other.get(f"/status/t/{acme_token()}").status_code == 404
    assert client.get(f"/status/t/{acme_token()}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/status/t/nope",
        "/status/t/" + "0" * 32,
        "/status/t/" + BLOOM_TOKEN + "x",
        "/status/t/" + BLOOM_TOKEN[:-1],
        "/status/t/%C3%A9t%C3%A9-0123456789abcdef",
        "/status/t/nope/feed.atom",
        "/status/t/acme",
    ],
)
def test_wrong_token_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_tokens_appear_on_no_public_page(app, client):
    fire(client, "checkout", "c000000000000001", "Checkout errors")
    deliver(app)
    for path in ("/status", "/status/technical", "/status.json", "/status/feed.atom?audience=business"):
        text = client.get(path).text
        assert acme_token() not in text and BLOOM_TOKEN not in text


# --------------------------------------------------------------------------------------------
# what a tenant sees


def test_tenant_page_shows_only_its_incidents_in_its_segment(app, client):
    fire(client, "mysql-shared", "d000000000000001", "Primary database replica lag high")  # acme only
    fire(client, "search", "e000000000000001", "Search index rebuild stuck")  # bloom only
    fire(client, "checkout", "c000000000000001", "Checkout API 5xx ratio high")  # both
    deliver(app)

    acme = client.get(f"/status/t/{acme_token()}")
    assert acme.status_code == 200
    assert acme.headers["Cache-Control"] == "private, max-age=5"  # a browser may keep it; nothing in between
    assert acme.headers["Referrer-Policy"] == "no-referrer"
    page = acme.text
    assert_well_formed_html(page)
    assert "Service status for Acme Ltd" in page
    assert "Primary database replica lag high" in page  # technical version: alert detail
    assert "Checkout API 5xx ratio high" in page
    assert "Search index rebuild stuck" not in page and "Search API" not in page
    assert "Bloom Florists" not in page
    assert "2 ongoing incidents" in page

    bloom = client.get(f"/status/t/{BLOOM_TOKEN}").text
    assert_well_formed_html(bloom)
    assert "Service status for Bloom Florists" in bloom
    assert "Acme Ltd" not in bloom
    # Business version: service business names, no alert text, no other tenant's services.
    # Each incident headed as its newest notice reads.
    assert "Service Update: Investigating Errors Affecting Site search" in bloom
    assert "Service Update: Investigating Errors Affecting Online checkout" in bloom
    for jargon in ("Search index rebuild stuck", "Checkout API 5xx", "replica lag", "Website databases"):
        assert jargon not in bloom
    assert "2 ongoing incidents" in bloom
    # The public business page has all business notices, and no tenant's name either.
    public = client.get("/status").text
    assert "Site search" in public and "Acme Ltd" not in public and "Bloom Florists" not in public


def test_tenant_times_are_in_its_zone(app, client):
    fire(client, "mysql-shared", "d000000000000001", "Primary database replica lag high")
    deliver(app)
    page = client.get(f"/status/t/{acme_token()}").text
    assert "Times in Asia/Tokyo" in page
    assert "2026-11-26 23:32 JST" in page  # 14:32 UTC
    public = client.get("/status/technical").text
    assert "2026-11-26 14:32 UTC" in public and "JST" not in public


def test_tenant_page_bodies_are_in_its_zone_too(app, client):
    """A shared page's notices are written once per zone among the affected tenants: a tenant's
    page shows its zone's text, the public page the page's own."""
    fire(client, "checkout", "c000000000000001", "Checkout API 5xx ratio high")
    deliver(app)

    page = client.get(f"/status/t/{BLOOM_TOKEN}").text
    assert "Times in Europe/London" in page
    public = client.get("/status").text
    shown = [re.sub(r"<[^>]+>", "", body) for body in re.findall(r'<p class="body">(.*?)</p>', page, re.S)]
    assert shown and all("UTC" not in body for body in shown)
    assert any(" GMT" in body for body in shown), shown
    assert " GMT" not in public and "UTC" in public


def test_tenant_feed_is_valid_atom_with_only_its_notices(app, client, clock):
    fire(client, "mysql-shared", "d000000000000001", "Primary database replica lag high")
    fire(client, "search", "e000000000000001", "Search index rebuild stuck")
    deliver(app)
    clock.advance(timedelta(minutes=5))
    fire(client, "checkout", "c000000000000001", "Checkout API 5xx ratio high")
    deliver(app)

    response = client.get(f"/status/t/{BLOOM_TOKEN}/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    assert (
        response.headers["Cache-Control"] == "private, max-age=5"
    )  # a browser may keep it; nothing in between
    feed = ElementTree.fromstring(response.data)
    assert feed.tag == f"{ATOM}feed"
    assert feed.find(f"{ATOM}title").text == "Service status for Bloom Florists"
    self_link = feed.find(f"{ATOM}link[@rel='self']").get("href")
    assert self_link == f"http://status.example.test/status/t/{BLOOM_TOKEN}/feed.atom"
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2  # search and checkout acknowledgements; not the database one
    for entry in entries:
        for required in ("id", "title", "updated", "content"):
            assert entry.find(f"{ATOM}{required}").text
        link = entry.find(f"{ATOM}link").get("href")
        assert link.startswith(f"http://status.example.test/status/t/{BLOOM_TOKEN}#INC-2026-")
    text = response.text
    assert "Acme" not in text and "replica lag" not in text

    acme = ElementTree.fromstring(client.get(f"/status/t/{acme_token()}/feed.atom").data)
    assert len(acme.findall(f"{ATOM}entry")) == 2  # database and checkout, technical version


# --------------------------------------------------------------------------------------------
# services, state and uptime


def test_service_lists_per_page(app, client, catalog):
    tech = bars(client.get("/status/technical").text)
    assert list(tech) == [s.name for s in catalog.services]
    business = bars(client.get("/status").text)
    assert list(business) == [s.business_name for s in catalog.services]
    assert list(bars(client.get(f"/status/t/{BLOOM_TOKEN}").text)) == ["Online checkout", "Site search"]
    acme = bars(client.get(f"/status/t/{acme_token()}").text)
    assert list(acme) == ["Shared MySQL (mysql-cluster-03.region-eu-west)", "Checkout API (checkout-api)"]
    for page in (tech, business, acme):
        for service in page.values():
            assert service["state"] == "Operational"
            assert len(service["days"]) == 90
            assert {css for css, _ in service["days"]} == {"ok"}
            assert service["days"][-1][1] == "26 Nov 2026: no incidents"
            assert service["days"][0][1] == "29 Aug 2026: no incidents"
            assert service["uptime"] == "100%"


def test_current_state_is_the_worst_open_level(app, client, clock):
    insert_incident(app, ["checkout"], 2, NOW - timedelta(hours=1), None, ["acme", "bloom"])
    insert_incident(app, ["checkout"], 4, NOW - timedelta(minutes=30), None, ["acme", "bloom"])
    insert_incident(app, ["search"], 5, NOW - timedelta(hours=3), NOW - timedelta(hours=2), ["bloom"])
    insert_incident(app, ["mysql-shared"], 1, NOW - timedelta(minutes=5), None, ["acme"])
    page = bars(client.get("/status").text)
    assert page["Online checkout"]["state"] == "Partial outage"
    assert page["Site search"]["state"] == "Operational"  # its incident is resolved
    assert page["Website databases"]["state"] == "Degraded"
    insert_incident(app, ["mysql-shared", "search"], 5, NOW - timedelta(minutes=1), None, ["acme", "bloom"])
    clock.advance(CACHE)
    page = bars(client.get("/status").text)
    assert page["Website databases"]["state"] == "Major outage"
    assert page["Site search"]["state"] == "Major outage"
    assert "Major outage" in page["Site search"]["summary"]


def test_a_service_is_degraded_on_a_page_only_beside_the_incident_that_explains_it(app, client):
    # Only technical readers heard of it: the business page shows neither it nor a degraded service.
    insert_incident(app, ["objects"], 3, NOW - timedelta(minutes=10), None, ["acme"], ("technical",))
    assert bars(client.get("/status/technical").text)["Object storage (ceph-eu-west-2)"]["state"] == (
        "Partial outage"
    )
    business = client.get("/status").text
    assert bars(business)["File storage"]["state"] == "Operational"
    assert "INC-2026-" not in business


def test_uptime_bars_for_a_known_history(app, client):
    # 35 minutes of level 4 yesterday, an hour of level 2 on the 20th, 30 minutes of level 5 now.
    insert_incident(app, ["search"], 4, nov(25, 10), nov(25, 10, 35), ["bloom"])
    insert_incident(app, ["search"], 2, nov(20), nov(20, 1), ["bloom"])
    insert_incident(app, ["search"], 5, NOW - timedelta(minutes=30), None, ["bloom"])
    # A level 1 blip overlapping the level 4 one does not change that day's colour or minutes.
    insert_incident(app, ["search"], 1, nov(25, 9), nov(25, 10, 20), ["bloom"])
    # Older than the window: not drawn, not counted.
    old = datetime(2026, 8, 1, tzinfo=UTC)
    insert_incident(app, ["search"], 5, old, old + timedelta(days=1), ["bloom"])

    for path in ("/status", f"/status/t/{BLOOM_TOKEN}"):
        search = bars(client.get(path).text)["Site search"]
        days = dict(reversed(d) for d in search["days"])
        labels = [label for _, label in search["days"]]
        assert days["25 Nov 2026: 35 minutes of level 4 incident"] == "partial"
        assert days["20 Nov 2026: 1 hour of level 2 incident"] == "degraded"
        assert days["26 Nov 2026: 30 minutes of level 5 incident"] == "major"
        assert labels[-1].startswith("26 Nov 2026") and labels[-2].startswith("25 Nov 2026")
        assert [css for css, _ in search["days"]].count("ok") == 87
        # Outage (level 3+) time: 35 + 30 minutes of 89 days 14 h 32 min: 99.9496%, shown floored.
        assert search["uptime"] == "99.94%"
        assert search["state"] == "Major outage"
        checkout = bars(client.get(path).text)["Online checkout"]
        assert checkout["uptime"] == "100%" and checkout["state"] == "Operational"


def test_days_follow_the_tenant_zone(app, client):
    # 16:00 UTC on the 25th is 01:00 on the 26th in Tokyo.
    insert_incident(app, ["mysql-shared"], 3, nov(25, 16), nov(25, 16, 45), ["acme"])
    public = bars(client.get("/status/technical").text)["Shared MySQL (mysql-cluster-03.region-eu-west)"]
    assert public["days"][-2] == ("partial", "25 Nov 2026: 45 minutes of level 3 incident")
    acme = bars(client.get(f"/status/t/{acme_token()}").text)[
        "Shared MySQL (mysql-cluster-03.region-eu-west)"
    ]
    assert acme["days"][-1] == ("partial", "26 Nov 2026: 45 minutes of level 3 incident")
    assert acme["days"][-2] == ("ok", "25 Nov 2026: no incidents")


def test_an_incident_across_midnight_colours_both_days(settings):
    rows = [IncidentSpan(["checkout"], "resolved", 5, nov(23, 23), nov(24, 0, 30), nov(24, 0, 30))]
    from zoneinfo import ZoneInfo

    checkout = settings.catalog.service("checkout")
    (result,) = health(settings, rows, [checkout], "technical", ZoneInfo("UTC"), NOW, rows)
    assert result.days[-4].label == "23 Nov 2026: 1 hour of level 5 incident"
    assert result.days[-3].label == "24 Nov 2026: 30 minutes of level 5 incident"
    assert result.name == "Checkout API (checkout-api)" and result.state == "Operational"


def _bars_day_by_day(settings, rows, service, zone, now):
    """The bars as first written: every span clipped against every day."""
    from adapter.web.status import Day, _clip, _covered, _day_label

    count = settings.status_page.uptime_days
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=count - 1 - i) for i in range(count)]
    bounds = [datetime.combine(d, time(), tzinfo=zone).astimezone(UTC) for d in days]
    bounds.append(datetime.combine(today + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC))
    mine = [r for r in rows if service.id in r.services]
    spans = _clip([(r.opened_at, r.resolved_at or now, r.level) for r in mine], bounds[0], now)
    bars = []
    for index, day in enumerate(days):
        inside = _clip(spans, bounds[index], min(bounds[index + 1], now))
        worst = max((level for _, _, level in inside), default=0)
        spent = _covered([(a, b) for a, b, level in inside if level == worst])
        bars.append(Day(day, worst, _day_label(day, worst, spent)))
    return bars


# `settings` is only read: one per test is enough.
@settings_profile(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    incidents=st.lists(
        st.tuples(
            st.integers(0, 95 * 24 * 60),  # opened, minutes before NOW
            st.one_of(st.none(), st.integers(0, 5 * 24 * 60)),  # minutes open; None: still open
            st.integers(1, 5),
            st.sets(st.sampled_from(["checkout", "search", "mysql-shared"]), min_size=1),
        ),
        max_size=40,
    ),
    zone=st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York", "Europe/London"]),
)
def test_bars_match_a_day_by_day_count(settings, incidents, zone):
    from zoneinfo import ZoneInfo

    rows = []
    for opened_ago, minutes, level, services in incidents:
        opened = NOW - timedelta(minutes=opened_ago)
        resolved = None if minutes is None else min(NOW, opened + timedelta(minutes=minutes))
        status = "investigating" if resolved is None else "resolved"
        rows.append(IncidentSpan(sorted(services), status, level, opened, resolved, resolved or opened))
    shown = list(settings.catalog.services)
    for result in health(settings, rows, shown, "technical", ZoneInfo(zone), NOW, rows):
        assert result.days == _bars_day_by_day(settings, rows, result.service, ZoneInfo(zone), NOW)


@settings_profile(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    incidents=st.lists(
        st.tuples(
            st.integers(1, 5),
            st.sets(st.sampled_from(["checkout", "search", "mysql-shared", "objects"]), min_size=1),
            st.sampled_from([("technical",), ("technical", "business"), ("business",)]),
            st.booleans(),  # resolved
        ),
        max_size=6,
    )
)
def test_a_page_never_shows_a_degraded_service_without_an_open_incident_of_it_that_it_shows(
    app, client, clock, catalog, incidents
):
    for level, services, audiences, resolved in incidents:
        opened = clock.now() - timedelta(minutes=30)
        insert_incident(
            app, sorted(services), level, opened, clock.now() if resolved else None, [], audiences
        )
    clock.advance(CACHE)
    store = app.extensions["dualtrack"].store
    with store.read() as conn:
        from adapter.store import incidents as repo
        from adapter.store import outbox

        rows = repo.list_incidents(conn)
        notices = outbox.notices_of(conn, [r.id for r in rows])
    for page, audience, name in (
        ("/status", "business", "business_name"),
        ("/status/technical", "technical", "name"),
    ):
        heard = {n.incident_id for n in notices if n.audience == audience}
        explained = {
            getattr(catalog.service(s), name)
            for r in rows
            if r.id in heard and r.status != "resolved"
            for s in r.services
        }
        degraded = {
            service for service, row in bars(client.get(page).text).items() if row["state"] != "Operational"
        }
        assert degraded <= explained, (page, degraded, explained)


@settings_profile(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    service=st.from_regex(r"zq[a-z0-9]{4,10}", fullmatch=True),
    title=st.from_regex(r"zq[A-Za-z0-9]{4,12}", fullmatch=True),
)
def test_no_public_page_shows_an_alert_on_an_unknown_service(client, clock, service, title):
    labels = {"alertname": title, "service": service, "severity": "critical", "instance": "10.0.0.9:8080"}
    fingerprint = f"{abs(hash((service, title))):016x}"[:16]
    alert = am_alert(fingerprint, labels, annotations={"summary": f"[FIRING:1] {title} {service}"})
    post(client, encode(am_body([alert], group_key=f"{service}/{title}")))
    clock.advance(CACHE)
    for page in ("/status", "/status/technical", "/status/feed.atom", "/status/technical/feed.atom"):
        text = client.get(page).text
        assert service not in text and title not in text and "10.0.0.9" not in text, page
