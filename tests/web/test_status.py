"""The built-in status page: HTML per audience, JSON and Atom, only published notices, escaped."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from xml.etree import ElementTree

from markupsafe import escape
from sqlalchemy import select

from adapter.store.schema import notices
from tests.conftest import am_headers, base_config, fixture_bytes
from tests.payloads import am_alert, am_body, encode

ATOM = "{http://www.w3.org/2005/Atom}"
# status_page.cache's default: a page is rendered again once it has been kept this long.
CACHE = timedelta(seconds=5)


def post(client, data):
    response = client.post("/webhooks/alertmanager", data=data, headers=am_headers())
    assert response.status_code == 202


def subjects(app, audience: str) -> list[str]:
    with app.extensions["dualtrack"].store.read() as conn:
        rows = conn.execute(select(notices.c.subject).where(notices.c.audience == audience))
        return list(rows.scalars())


def deliver(app) -> None:
    dispatcher = app.extensions["dualtrack"].dispatcher
    while dispatcher.run_once():
        pass


class _Checker(HTMLParser):
    """Tracks open elements to catch unbalanced markup."""

    VOID = {"meta", "link", "br", "img", "input", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def assert_well_formed_html(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport"' in text
    checker = _Checker()
    checker.feed(text)
    assert checker.errors == [] and checker.stack == []


def test_empty_page_says_operational(client):
    response = client.get("/status")
    assert response.status_code == 200
    assert "All systems operational" in response.text
    assert_well_formed_html(response.text)


def test_the_page_publishes_with_the_webhook_that_opens_the_incident(app, client):
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    # No dispatcher pass: the transaction that stored the incident published its notices.
    business = client.get("/status").text
    technical = client.get("/status/technical").text
    assert_well_formed_html(business)
    assert_well_formed_html(technical)
    assert "Online checkout" in business
    (subject,) = subjects(app, "business")
    assert escape(subject) in business
    assert "1 ongoing incident" in business
    # The business view carries no infrastructure detail; the technical one does.
    for jargon in ("10.0.0.1", "HighErrorRate", "checkout-api", "INC-2026-0001: Checkout API 5xx"):
        assert jargon not in business
    assert "INC-2026-0001: Checkout API 5xx ratio above 5%" in technical
    assert "10.0.0.1:8080" in technical


def test_a_held_notice_is_not_on_the_page_until_its_hold_ends(app, client, clock):
    # Level 2: business readers are spared blips for 10 minutes; technical readers hear at once.
    alert = am_alert("d0d0000000000001", {"alertname": "Slow", "service": "checkout", "severity": "warning"})
    post(client, encode(am_body([alert])))
    assert "All systems operational" in client.get("/status").text
    assert "INC-2026-0001" in client.get("/status/technical").text
    clock.advance(timedelta(minutes=11))
    svc = app.extensions["dualtrack"]
    svc.scheduler.run_once()  # releases the held notice to the outbox
    assert "All systems operational" in client.get("/status").text
    deliver(app)
    assert "All systems operational" in client.get("/status").text  # as kept
    clock.advance(CACHE)
    assert "1 ongoing incident" in client.get("/status").text


def test_resolved_incident_moves_below_and_disappears_after_7_days(app, client, clock):
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    post(client, fixture_bytes("alertmanager/alertmanager-resolved.json"))
    post(client, fixture_bytes("alertmanager/alertmanager-mixed.json"))
    deliver(app)
    page = client.get("/status").text
    assert "All systems operational" in page
    assert page.index("Resolved in the last 7 days") < page.index("working normally again")
    clock.advance(timedelta(days=7, minutes=1))
    assert "working normally again" not in client.get("/status").text


def test_resolved_days_comes_from_the_settings(make_settings, store, clock):
    from adapter.app import create_app
    from adapter.metrics import Metrics

    config = base_config()
    config["status_page"] = {"resolved_days": 2}
    app = create_app(make_settings(config), clock=clock, store=store, metrics=Metrics())
    client = app.test_client()
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    post(client, fixture_bytes("alertmanager/alertmanager-resolved.json"))
    post(client, fixture_bytes("alertmanager/alertmanager-mixed.json"))
    deliver(app)
    clock.advance(timedelta(days=1, hours=23))
    page = client.get("/status").text
    assert "Resolved in the last 2 days" in page and "working normally again" in page
    clock.advance(timedelta(hours=1, minutes=1))
    assert "working normally again" not in client.get("/status").text


def test_html_in_alert_text_is_escaped(app, client):
    evil = '<script>alert("x")</script>'
    alert = am_alert("abcd000000000001", {"alertname": "X", "service": "checkout", "severity": "warning"})
    alert["annotations"] = {"summary": evil, "description": evil}
    post(client, encode(am_body([alert])))
    deliver(app)
    technical = client.get("/status/technical").text
    assert "<script>" not in technical
    assert "&lt;script&gt;" in technical


def test_status_json_lists_both_tracks(app, client):
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    deliver(app)
    body = client.get("/status.json").get_json()
    assert body["status"] == "degraded"
    (incident,) = body["incidents"]
    assert incident["ref"] == "INC-2026-0001"
    assert incident["services"][0]["business_name"] == "Online checkout"
    assert [u["audience"] for u in incident["updates"]] == ["technical", "business"]


def test_atom_feed_is_valid_per_audience(app, client, clock):
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    deliver(app)
    clock.advance(timedelta(minutes=5))
    post(client, fixture_bytes("alertmanager/alertmanager-resolved.json"))
    post(client, fixture_bytes("alertmanager/alertmanager-mixed.json"))
    deliver(app)
    for audience in ("business", "technical"):
        response = client.get(f"/status/feed.atom?audience={audience}")
        assert response.status_code == 200
        assert response.mimetype == "application/atom+xml"
        feed = ElementTree.fromstring(response.data)
        assert feed.tag == f"{ATOM}feed"
        for required in ("id", "title", "updated"):
            assert feed.find(f"{ATOM}{required}") is not None
        entries = feed.findall(f"{ATOM}entry")
        assert len(entries) == 2
        for entry in entries:
            for required in ("id", "title", "updated"):
                assert entry.find(f"{ATOM}{required}").text
        # Newest first.
        assert [e.find(f"{ATOM}category").get("term") for e in entries] == ["resolution", "acknowledgement"]
    assert client.get("/status/feed.atom?audience=everyone").status_code == 400


def test_ops_endpoints(client):
    assert client.get("/-/healthy").status_code == 200
    assert client.get("/-/ready").status_code == 200
    post(client, fixture_bytes("alertmanager/alertmanager-firing.json"))
    metrics = client.get("/metrics").text
    assert 'dualtrack_webhooks_total{outcome="accepted",source="alertmanager"} 1.0' in metrics
    # The built-in page published both notices with the incident: nothing waits in the outbox.
    assert "dualtrack_outbox_pending 0.0" in metrics
    assert 'dualtrack_deliveries_total{outcome="delivered",provider="status"} 2.0' in metrics
