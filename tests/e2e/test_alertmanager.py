"""A real Alertmanager notifies a real `dualtrack serve`: open, repeat, resolve."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.catalog import catalog_data
from tests.support.server import (
    HOOK_SECRET,
    PROVIDER_BUILTIN,
    SIGNATURE_HEADER,
    Alertmanager,
    Dualtrack,
    Sink,
    am_alert,
    provider_webhook,
    rfc3339,
    signature_ok,
    wait_until,
)

pytestmark = pytest.mark.e2e

EXPECTED = {("status", "technical"), ("status", "business"), ("ops-hook", "technical")}
HOOK_KEYS = {"incident", "phase", "audience", "level", "subject", "body", "services", "tenants"}

DB_LABELS = {
    "alertname": "MySQLDown",
    "service": "mysql-shared",
    "severity": "critical",
    "instance": "mysql-cluster-03:3306",
    "job": "mysqld-exporter",
}
WEB_LABELS = {
    "alertname": "CheckoutLatencyHigh",
    "service": "checkout",
    # Level 3: no hold, so business readers hear at once (level 2 holds them 10 minutes).
    "severity": "error",
    "instance": "10.0.0.1:8080",
    "job": "checkout-api",
}


def notices(incident: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    return [n for n in incident["notices"] if n["phase"] == phase]


def pairs(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((n["provider"], n["audience"]) for n in items)


def hook_posts(sink: Sink, ref: str, phase: str) -> list[dict[str, Any]]:
    found = []
    for record in sink.received("/hook"):
        body = record.json()
        if body.get("incident") == ref and body.get("phase") == phase:
            found.append(body)
    return found


def delivered(dt: Dualtrack, ref: str, phase: str) -> dict[str, Any] | None:
    """The incident once all its `phase` notices are delivered, else None."""
    incident = dt.incident(ref)
    items = notices(incident, phase)
    if pairs(items) == Counter(EXPECTED) and all(n["state"] == "delivered" for n in items):
        return incident
    return None


def check_hook_requests(sink: Sink) -> None:
    """Every webhook POST is signed with the shared secret and is technical-only."""
    posts = sink.received("/hook")
    assert posts, "the webhook provider posted nothing"
    for record in posts:
        assert record.method == "POST"
        assert signature_ok(HOOK_SECRET, record.body, record.header(SIGNATURE_HEADER)), (
            f"bad signature {record.header(SIGNATURE_HEADER)!r} on {record.body[:200]!r}"
        )
        body = record.json()
        assert body.keys() >= HOOK_KEYS, f"missing keys {HOOK_KEYS - body.keys()}"
        assert body["audience"] == "technical"


def check_status_pages(dt: Dualtrack, ref: str) -> None:
    """The built-in pages show the open incident; the business one without jargon."""
    business = dt.session.get(f"{dt.url}/status", timeout=10)
    technical = dt.session.get(f"{dt.url}/status/technical", timeout=10)
    as_json = dt.session.get(f"{dt.url}/status.json", timeout=10)
    assert business.status_code == technical.status_code == as_json.status_code == 200
    assert "text/html" in business.headers["Content-Type"]
    assert "Website databases" in business.text
    for jargon in ("mysql-cluster-03", "10.0.0.1", "MySQLDown", "severity", "mysql-shared"):
        assert jargon not in business.text, f"business status page shows {jargon!r}"
    assert ref in technical.text or "Shared MySQL" in technical.text
    assert ref in json.dumps(as_json.json())


def test_alertmanager_open_repeat_resolve(dualtrack_factory, alertmanager_factory, sink, sink_factory):
    catalog = catalog_data()
    catalog["tenants"][1]["services"].append("mysql-shared")  # a business tenant on each incident
    dt: Dualtrack = dualtrack_factory(
        workers=2, providers=[PROVIDER_BUILTIN, provider_webhook(f"{sink.url}/hook")], catalog=catalog
    )
    dt.start()
    # Alertmanager talks to dualtrack through a recording proxy, so the test sees every
    # notification (first, repeats, resolved) and what dualtrack answered to it.
    proxy = sink_factory(forward=dt.url).start()
    am: Alertmanager = alertmanager_factory([Alertmanager.dualtrack_receiver(proxy.url)])
    am.start()

    def seen(status: str = "firing") -> Counter[str]:
        """Notifications per groupKey that dualtrack accepted."""
        return Counter(
            r.json()["groupKey"]
            for r in proxy.received("/webhooks/alertmanager")
            if 200 <= r.answered < 300 and r.json()["status"] == status
        )

    started = rfc3339(datetime.now(UTC) - timedelta(seconds=30))
    db_alert = am_alert(
        DB_LABELS,
        annotations={"summary": "MySQL primary is down", "description": "mysqld not responding"},
        starts_at=started,
    )
    web_alert = am_alert(
        WEB_LABELS,
        annotations={"summary": "Checkout p99 latency above 2s"},
        starts_at=started,
    )
    am.post_alerts([db_alert, web_alert])

    # --- open: two groups -> two incidents -------------------------------------------------
    opened = wait_until(
        lambda: (lambda items: items if len(items) >= 2 else None)(dt.incidents("open")),
        timeout=30,
        message=lambda: f"two open incidents; have {dt.incidents('all')}\n{dt.logs()}",
    )
    assert len(opened) == 2, opened
    by_service = {tuple(i["services"]): i for i in opened}
    assert set(by_service) == {("mysql-shared",), ("checkout",)}, opened
    db, web = by_service[("mysql-shared",)], by_service[("checkout",)]
    assert db["ref"] != web["ref"]

    assert db["level"] == 5, db
    assert db["incident_type"] == "database"
    assert set(db["tenants"]) == {"acme", "bloom"}
    assert web["level"] == 3, web
    assert web["incident_type"] == "web"
    assert set(web["tenants"]) == {"acme", "bloom"}
    for incident in (db, web):
        assert incident["status"] in {"investigating", "identified", "monitoring"}
        assert incident["unknown_services"] == []
        assert incident["opened_at"]
        assert not incident["resolved_at"]

    # Acknowledgements: one per provider per audience, delivered; webhook posts signed.
    for incident in (db, web):
        ref = incident["ref"]
        wait_until(
            lambda ref=ref: delivered(dt, ref, "acknowledgement"),
            timeout=30,
            message=lambda ref=ref: f"delivered acknowledgements of {dt.incident(ref)}",
        )
        detail = dt.incident(ref)
        assert len(detail["alerts"]) == 1, detail["alerts"]
        assert [n for n in detail["notices"] if n["phase"] != "acknowledgement"] == []
        posts = wait_until(lambda ref=ref: hook_posts(sink, ref, "acknowledgement"), timeout=10)
        assert len(posts) == 1, posts
        assert posts[0]["level"] == incident["level"]
    check_hook_requests(sink)
    check_status_pages(dt, db["ref"])

    # --- repeats: Alertmanager re-sends both groups; nothing new may appear ----------------
    before = {i["ref"]: dt.incident(i["ref"]) for i in opened}

    baseline = seen()
    assert len(baseline) == 2, baseline
    wait_until(
        lambda: all(seen()[key] >= baseline[key] + 2 for key in baseline),
        timeout=30,
        message=lambda: f"two accepted repeat notifications per group; seen={seen()}",
    )

    assert len(dt.incidents("all")) == 2
    for ref, old in before.items():
        new = dt.incident(ref)
        new_ids = sorted(n["id"] for n in new["notices"])
        assert new_ids == sorted(n["id"] for n in old["notices"]), f"repeat made notices: {ref}"
        assert len(new["alerts"]) == len(old["alerts"])
        assert new["level"] == old["level"]
    assert all(len(hook_posts(sink, ref, "acknowledgement")) == 1 for ref in before)

    # --- resolve ----------------------------------------------------------------------------
    now = rfc3339()
    am.post_alerts([{**db_alert, "endsAt": now}, {**web_alert, "endsAt": now}])

    for ref in before:
        resolved = wait_until(
            lambda ref=ref: delivered(dt, ref, "resolution"),
            timeout=30,
            message=lambda ref=ref: f"delivered resolution notices of {dt.incident(ref)}",
        )
        assert resolved["status"] == "resolved"
        assert resolved["resolved_at"]
        assert pairs(resolved["notices"]) == Counter(EXPECTED) + Counter(EXPECTED), (
            f"expected exactly acknowledgement + resolution per provider and audience: {resolved['notices']}"
        )
        posts = wait_until(lambda ref=ref: hook_posts(sink, ref, "resolution"), timeout=10)
        assert len(posts) == 1, posts

    assert {i["ref"] for i in dt.incidents("resolved")} == set(before)
    assert dt.incidents("open") == []
    assert len(dt.incidents("all")) == 2
    check_hook_requests(sink)
    assert set(seen("resolved")) == set(baseline)
    answers = Counter(r.answered for r in proxy.received())
    assert set(answers) == {202}, f"dualtrack answered Alertmanager with {answers}"

    # SIGTERM drains and exits cleanly.
    assert dt.stop() == 0, dt.logs()
