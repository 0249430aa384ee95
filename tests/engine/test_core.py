"""Engine: dedupe, correlation, severity, reopen, and the notices each incident event plans."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from adapter.engine.core import Engine
from adapter.engine.effects import writing
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import base_config, fixture_json
from tests.payloads import am_alert, am_body


@pytest.fixture
def engine(app) -> Engine:
    return app.extensions["dualtrack"].engine


def ingest(engine: Engine, body: dict[str, Any]):
    return engine.ingest(alertmanager.parse(body))


def incident(store, ref: str) -> dict[str, Any]:
    with store.read() as conn:
        found = repo.get_incident_by_ref(conn, ref)
        assert found is not None
        row = asdict(found)
        row["alerts"] = [asdict(a) for a in repo.alerts_of(conn, found.id)]
        row["notices"] = outbox.notices_of(conn, [found.id])
        row["timeline"] = [asdict(t) for t in repo.timeline_of(conn, found.id)]
    return row


def all_incidents(store) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [asdict(i) for i in repo.list_incidents(conn)]


def test_firing_fixture_opens_one_incident_with_both_versions(engine, store):
    result = ingest(engine, fixture_json("alertmanager/alertmanager-firing.json"))
    assert result.refs == ["INC-2026-0001"]
    inc = incident(store, "INC-2026-0001")
    assert inc["status"] == "investigating"
    assert inc["level"] == 4  # severity critical, checkout is not critical infrastructure
    assert inc["services"] == ["checkout"]
    assert inc["tenants"] == ["acme", "bloom"]
    assert inc["incident_type"] == "web"
    assert inc["title"] == "Checkout API 5xx ratio above 5%"
    assert len(inc["alerts"]) == 2
    assert [(n.provider, n.audience, n.phase, n.state) for n in inc["notices"]] == [
        # The built-in page publishes in the transaction that opens the incident.
        ("status", "technical", "acknowledgement", "delivered"),
        ("status", "business", "acknowledgement", "delivered"),
    ]


def test_repeat_notification_adds_no_notice_and_no_timeline_entry(engine, store, clock):
    body = fixture_json("alertmanager/alertmanager-firing.json")
    ingest(engine, body)
    before = incident(store, "INC-2026-0001")
    clock.advance(timedelta(hours=4))  # repeat_interval
    result = ingest(engine, body)
    assert result.refs == [] and result.duplicates == 2
    after = incident(store, "INC-2026-0001")
    assert len(after["notices"]) == len(before["notices"])
    assert len(after["timeline"]) == len(before["timeline"])
    assert len(all_incidents(store)) == 1


def test_partial_then_full_resolution(engine, store, clock):
    ingest(engine, fixture_json("alertmanager/alertmanager-firing.json"))
    clock.advance(timedelta(minutes=2))
    ingest(engine, fixture_json("alertmanager/alertmanager-mixed.json"))
    inc = incident(store, "INC-2026-0001")
    assert inc["status"] == "investigating"
    assert [a["status"] for a in inc["alerts"]] == ["resolved", "firing"]
    assert len(inc["notices"]) == 2  # an alert resolving inside an open incident is timeline only
    assert inc["timeline"][-1]["kind"] == "alert_resolved"
    assert "10.0.0.1:8080" in inc["timeline"][-1]["message"]
    # The mixed notification again (HA duplicate) changes nothing.
    assert ingest(engine, fixture_json("alertmanager/alertmanager-mixed.json")).refs == []

    clock.advance(timedelta(minutes=1))
    ingest(engine, fixture_json("alertmanager/alertmanager-resolved.json"))
    inc = incident(store, "INC-2026-0001")
    assert inc["status"] == "resolved"
    assert inc["resolved_at"] == clock.now()
    phases = [(n.audience, n.phase) for n in inc["notices"]]
    assert phases[2:] == [("technical", "resolution"), ("business", "resolution")]
    assert "Duration: 3 minutes" in inc["notices"][2].body
    # Resolved again after an Alertmanager restart: nothing new.
    assert ingest(engine, fixture_json("alertmanager/alertmanager-resolved.json")).refs == []
    assert len(incident(store, "INC-2026-0001")["notices"]) == 4


def test_resolved_alert_without_incident_opens_nothing(engine, store):
    result = ingest(engine, fixture_json("alertmanager/alertmanager-resolved.json"))
    assert result.refs == []
    assert all_incidents(store) == []


def _fire(engine, fingerprint, starts_at, severity="warning", service="checkout", group="g1", **extra):
    labels = {"alertname": "Slow", "service": service, "severity": severity, **extra}
    return ingest(engine, am_body([am_alert(fingerprint, labels, starts_at=starts_at)], group_key=group))


def _resolve(engine, fingerprint, starts_at, ends_at, severity="warning", service="checkout", group="g1"):
    labels = {"alertname": "Slow", "service": service, "severity": severity}
    alert = am_alert(fingerprint, labels, status="resolved", starts_at=starts_at, ends_at=ends_at)
    return ingest(engine, am_body([alert], group_key=group))


def test_refire_within_reopen_window_reopens(engine, store, clock):
    t0 = clock.now()
    _fire(engine, "aaaa000000000001", t0)
    clock.advance(timedelta(minutes=5))
    _resolve(engine, "aaaa000000000001", t0, clock.now())
    clock.advance(timedelta(minutes=10))
    result = _fire(engine, "aaaa000000000001", clock.now())
    assert result.refs == ["INC-2026-0001"]
    inc = incident(store, "INC-2026-0001")
    assert inc["status"] == "investigating" and inc["resolved_at"] is None
    # Level 2: business readers are held for 10 minutes, so the 5-minute blip never reached
    # them; the reopen is an update for technical readers and a (held) first notice for them.
    assert [(n.audience, n.phase, n.state) for n in inc["notices"]] == [
        ("technical", "acknowledgement", "delivered"),
        ("business", "acknowledgement", "suppressed"),
        ("technical", "resolution", "delivered"),
        ("business", "resolution", "suppressed"),
        ("technical", "update", "delivered"),
        ("business", "acknowledgement", "held"),
    ]
    assert "reopened" in inc["notices"][4].body
    # It can resolve a second time, with a second resolution notice.
    clock.advance(timedelta(minutes=5))
    _resolve(engine, "aaaa000000000001", clock.now() - timedelta(minutes=5), clock.now())
    notices = incident(store, "INC-2026-0001")["notices"]
    assert [(n.audience, n.phase, n.state) for n in notices[5:]] == [
        ("business", "acknowledgement", "suppressed"),
        ("technical", "resolution", "delivered"),
        ("business", "resolution", "suppressed"),
    ]


def test_refire_after_reopen_window_opens_a_new_incident(engine, store, clock):
    t0 = clock.now()
    _fire(engine, "aaaa000000000001", t0)
    _resolve(engine, "aaaa000000000001", t0, clock.advance(timedelta(minutes=5)))
    clock.advance(timedelta(minutes=31))
    assert _fire(engine, "aaaa000000000001", clock.now()).refs == ["INC-2026-0002"]


def test_fingerprint_correlates_across_group_keys(engine, store, clock):
    t0 = clock.now()
    _fire(engine, "bbbb000000000001", t0, group="old-route")
    # After a routing change the same alert arrives under another groupKey.
    clock.advance(timedelta(minutes=1))
    result = _fire(engine, "bbbb000000000001", clock.now(), group="new-route")
    assert result.refs == ["INC-2026-0001"]
    assert len(all_incidents(store)) == 1


def test_each_alert_of_a_notification_sees_what_the_alerts_before_it_wrote(engine, store, clock):
    t0 = clock.now()
    slow = {"alertname": "Slow", "service": "checkout", "severity": "warning"}
    a, b = am_alert("eeee000000000001", slow, starts_at=t0), am_alert("eeee000000000002", slow, starts_at=t0)
    a_resolved = am_alert("eeee000000000001", slow, status="resolved", starts_at=t0, ends_at=t0)
    result = ingest(engine, am_body([a, a, b, a_resolved], group_key="g1"))
    assert result.refs == ["INC-2026-0001"] and result.duplicates == 1
    inc = incident(store, "INC-2026-0001")
    assert [(x["fingerprint"], x["status"]) for x in inc["alerts"]] == [
        ("eeee000000000001", "resolved"),
        ("eeee000000000002", "firing"),
    ]
    assert [t["kind"] for t in inc["timeline"]] == ["opened", "alert_fired", "alert_resolved"]
    # Another group: a new instance of the first alert joins by its fingerprint, which makes the
    # incident hold this group too, so the next alert joins it by its group.
    clock.advance(timedelta(minutes=1))
    again = am_alert("eeee000000000001", slow, starts_at=clock.now())
    other = am_alert("eeee000000000003", slow, starts_at=clock.now())
    assert ingest(engine, am_body([again, other], group_key="g2")).refs == ["INC-2026-0001"]
    assert len(incident(store, "INC-2026-0001")["alerts"]) == 4
    assert len(all_incidents(store)) == 1


def test_a_notification_reads_the_store_as_often_with_ten_alerts_as_with_one(engine, store, clock):
    reads: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM" in statement.upper().split():
            reads.append(statement)  # a table's rows, not PostgreSQL's writer lock

    def reads_of(body: dict[str, Any]) -> int:
        reads.clear()
        ingest(engine, body)
        return len(reads)

    # On two services: a second group on the same one would join the first's incident.
    services = {"one": "checkout", "ten": "search"}

    def notification(group: str, count: int) -> dict[str, Any]:
        labels = {"alertname": "Slow", "service": services[group], "severity": "warning"}
        alerts = [
            am_alert(f"{group}-{n}", {**labels, "n": str(n)}, starts_at=clock.now()) for n in range(count)
        ]
        return am_body(alerts, group_key=group)

    new = [reads_of(notification(group, count)) for group, count in (("one", 1), ("ten", 10))]
    repeats = [reads_of(notification(group, count)) for group, count in (("one", 1), ("ten", 10))]
    assert new[0] == new[1] and repeats[0] == repeats[1]
    assert repeats[0] == 1  # the stored alerts, read once


def test_alerts_of_one_group_share_an_incident_and_level_rises_but_never_drops(engine, store, clock):
    t0 = clock.now()
    _fire(engine, "cccc000000000001", t0, severity="warning")
    assert incident(store, "INC-2026-0001")["level"] == 2
    clock.advance(timedelta(minutes=1))
    _fire(engine, "cccc000000000002", clock.now(), severity="critical", instance="db-1:3306")
    inc = incident(store, "INC-2026-0001")
    assert inc["level"] == 4
    # Technical readers get an update; the business first notice, held at level 2, goes out now
    # (level 4 holds nothing), rendered at the new level. Both wait for the dispatcher: the page
    # publishes a stream's notices in order, and the update came after the held notice.
    assert [(n.audience, n.phase, n.state) for n in inc["notices"]] == [
        ("technical", "acknowledgement", "delivered"),
        ("business", "acknowledgement", "pending"),
        ("technical", "update", "pending"),
    ]
    assert "Within 2 hours" in inc["notices"][1].body
    assert any(t["kind"] == "level_changed" for t in inc["timeline"])
    # The critical alert resolves; the warning still fires: level stays 4, no notice.
    clock.advance(timedelta(minutes=1))
    _resolve(engine, "cccc000000000002", t0 + timedelta(minutes=1), clock.now(), severity="critical")
    inc = incident(store, "INC-2026-0001")
    assert inc["level"] == 4 and inc["status"] == "investigating"
    assert len(inc["notices"]) == 3


def test_critical_on_critical_infrastructure_is_level_5(engine, store, clock):
    _fire(engine, "dddd000000000001", clock.now(), severity="critical", service="mysql-shared")
    inc = incident(store, "INC-2026-0001")
    assert inc["level"] == 5
    assert inc["incident_type"] == "database"
    assert inc["tenants"] == ["acme"]


def test_incident_level_label_wins(engine, store, clock):
    _fire(engine, "eeee000000000001", clock.now(), severity="critical", incident_level="1")
    assert incident(store, "INC-2026-0001")["level"] == 1


def test_unknown_service_is_kept_and_counted(app, engine, store, clock):
    metrics = app.extensions["dualtrack"].metrics
    _fire(engine, "ffff000000000001", clock.now(), service="billing")
    inc = incident(store, "INC-2026-0001")
    assert inc["services"] == [] and inc["unknown_services"] == ["billing"]
    assert inc["tenants"] == []
    assert metrics.registry.get_sample_value("dualtrack_unknown_services_total") == 1
    # On no catalog service: in triage, counted, and published nowhere.
    assert inc["status"] == "triage" and inc["notices"] == []
    assert metrics.registry.get_sample_value("dualtrack_incidents_triage_total") == 1


def test_service_found_through_job_label_alias(engine, store, clock):
    labels = {"alertname": "Down", "job": "checkout-api", "severity": "warning"}
    ingest(engine, am_body([am_alert("1111000000000001", labels, starts_at=clock.now())]))
    assert incident(store, "INC-2026-0001")["services"] == ["checkout"]


def test_grafana_fixture_opens_an_incident_over_two_services(engine, store):
    result = ingest(engine, fixture_json("grafana/grafana-webhook.json"))
    inc = incident(store, result.refs[0])
    assert inc["source"] == "grafana"
    assert inc["services"] == ["checkout", "search"]
    assert inc["tenants"] == ["acme", "bloom"]
    links = inc["alerts"][0]["links"]
    assert links["dashboard"].startswith("https://grafana.example.org/d/api-overview")
    assert "panel" in links and "runbook" in links
    # The resolved fixture carries only the checkout alert: search still fires.
    ingest(engine, fixture_json("grafana/grafana-webhook-resolved.json"))
    inc = incident(store, result.refs[0])
    assert [a["status"] for a in inc["alerts"]] == ["resolved", "firing"]
    assert inc["status"] == "investigating"


def test_refs_are_sequential_per_year(engine, clock):
    refs = [_fire(engine, f"{i:016x}", clock.now(), group=f"group-{i}").refs[0] for i in range(1, 4)]
    assert refs == ["INC-2026-0001", "INC-2026-0002", "INC-2026-0003"]


def test_broken_template_falls_back_and_is_counted(open_store, make_settings, clock, tmp_path: Path):
    from adapter.app import create_app
    from adapter.metrics import Metrics

    overrides = tmp_path / "config" / "templates" / "business"
    overrides.mkdir(parents=True)
    (overrides / "acknowledgement.md.j2").write_text("{{ incident.ref }\n")  # syntax error
    config = base_config()
    config["templates_dir"] = "templates"
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    metrics = Metrics()
    engine = create_app(settings, clock=clock, store=store, metrics=metrics).extensions["dualtrack"].engine
    ingest(engine, fixture_json("alertmanager/alertmanager-firing.json"))
    inc = incident(store, "INC-2026-0001")
    business = [n for n in inc["notices"] if n.audience == "business"]
    assert len(business) == 1
    assert business[0].subject == "Service update: Initial Response"
    assert business[0].data["template"] == "builtin"
    technical = next(n for n in inc["notices"] if n.audience == "technical")
    assert technical.data["template"] == "web/technical/acknowledgement.md.j2"
    sample = metrics.registry.get_sample_value(
        "dualtrack_template_fallbacks_total", {"audience": "business", "phase": "acknowledgement"}
    )
    assert sample == 1
    store.dispose()


def test_every_provider_gets_its_audiences(open_store, make_settings, clock):
    from adapter.app import create_app

    config = base_config()
    config["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all"},
        {"name": "ops", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/hook"},
        {"name": "biz", "type": "webhook", "audience": "business", "url": "http://127.0.0.1:9/biz"},
    ]
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    engine = create_app(settings, clock=clock, store=store).extensions["dualtrack"].engine
    ingest(engine, fixture_json("alertmanager/alertmanager-firing.json"))
    notices = incident(store, "INC-2026-0001")["notices"]
    assert sorted((n.provider, n.audience) for n in notices) == [
        ("biz", "business"),
        ("ops", "technical"),
        ("status", "business"),
        ("status", "technical"),
    ]
    store.dispose()


# -- notices and the dispatcher ---------------------------------------------------------------


def _body(fingerprint: str, group: str, *, resolved: bool = False) -> dict[str, Any]:
    labels = {"alertname": "Slow", "service": "checkout", "severity": "warning", "instance": fingerprint}
    if resolved:
        alert = am_alert(
            fingerprint, labels, status="resolved", ends_at=datetime(2026, 11, 26, 14, 35, tzinfo=UTC)
        )
    else:
        alert = am_alert(fingerprint, labels)
    return am_body([alert], group_key=group)


def test_the_dispatcher_is_woken_only_for_notices_it_must_deliver(engine, store, clock, make_settings):
    config = base_config()
    config["providers"].append(
        {"name": "ops", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/hook"}
    )
    wakes: list[str] = []
    builtin_only = Engine(
        engine.settings,
        store,
        engine.renderer,
        clock,
        engine.metrics,
        on_commit=lambda: wakes.append("status"),
    )
    with_webhook = Engine(
        make_settings(config),
        store,
        engine.renderer,
        clock,
        engine.metrics,
        on_commit=lambda: wakes.append("ops"),
    )
    assert ingest(builtin_only, _body("0000000000000001", "group-1")).notices == 2
    # The built-in page is published by the transaction itself: nothing for the outbox.
    assert wakes == []
    assert ingest(with_webhook, _body("0000000000000002", "group-2")).notices == 3
    assert wakes == ["ops"]


def test_a_notice_whose_event_was_written_before_is_not_counted(engine, store, clock):
    ref = ingest(engine, _body("a1", "g-a")).refs[0]
    notifier = engine.notifier
    with writing(store) as (conn, effects):
        incident_row = repo.get_incident_by_ref(conn, ref)
        first = notifier.notify(conn, effects, incident_row, "update", "manual-1", clock.now())
        again = notifier.notify(conn, effects, incident_row, "update", "manual-1", clock.now())
    assert first >= 1 and again == 0
    updates = [n for n in incident(store, ref)["notices"] if n.phase == "update"]
    assert len(updates) == first


# -- PagerDuty and Events API alerts triggered again after their resolve ---------------------


def _event(action: str, timestamp: str | None) -> Any:
    from adapter.sources import events

    name = "resolve" if action == "resolve" else "trigger"
    body = fixture_json(f"pagerduty/pagerduty-events-v2-{name}.json")
    if timestamp is not None:
        body["payload"]["timestamp"] = timestamp
    return events.parse(body)


@pytest.mark.parametrize("timestamp", ["2026-11-26T14:00:00Z", None])
def test_events_trigger_resolve_trigger_with_one_timestamp_reopens(app, store, clock, timestamp):
    engine = app.extensions["dualtrack"].engine
    assert engine.ingest(_event("trigger", timestamp)).refs == ["INC-2026-0001"]
    # The clock stands still: without a timestamp, all three carry the same start too.
    assert engine.ingest(_event("resolve", timestamp)).refs == ["INC-2026-0001"]
    assert incident(store, "INC-2026-0001")["status"] == "resolved"
    assert engine.ingest(_event("trigger", timestamp)).refs == ["INC-2026-0001"]
    reopened = incident(store, "INC-2026-0001")
    assert reopened["status"] == "investigating" and reopened["reopen_count"] == 1
    first, second = reopened["alerts"]
    assert (first["status"], second["status"]) == ("resolved", "firing")
    assert second["starts_at"] > first["starts_at"]
    # And once more: every instance gets a start of its own.
    assert engine.ingest(_event("resolve", timestamp)).refs == ["INC-2026-0001"]
    assert engine.ingest(_event("trigger", timestamp)).refs == ["INC-2026-0001"]
    assert len({a["starts_at"] for a in incident(store, "INC-2026-0001")["alerts"]}) == 3


def test_events_trigger_after_the_reopen_window_opens_a_new_incident(app, store, clock):
    engine = app.extensions["dualtrack"].engine
    stamp = "2026-11-26T14:00:00Z"
    engine.ingest(_event("trigger", stamp))
    engine.ingest(_event("resolve", stamp))
    clock.advance(timedelta(minutes=31))
    assert engine.ingest(_event("trigger", stamp)).refs == ["INC-2026-0002"]
    new = incident(store, "INC-2026-0002")
    assert new["alerts"][0]["starts_at"] == clock.now()  # the sender's start was the last one's
    assert incident(store, "INC-2026-0001")["status"] == "resolved"


def test_pagerduty_reopened_with_the_occurred_at_of_its_trigger_reopens(app, store, clock):
    from adapter.sources import pagerduty

    engine = app.extensions["dualtrack"].engine

    def event(name: str, event_id: str, kind: str | None = None):
        body = fixture_json(f"pagerduty/pagerduty-v3-incident-{name}.json")
        body["event"].update(id=event_id, occurred_at="2026-11-26T14:00:00Z")
        if kind:
            body["event"]["event_type"] = kind
        return pagerduty.parse(body)

    assert engine.ingest(event("triggered", "e1")).refs == ["INC-2026-0001"]
    assert engine.ingest(event("resolved", "e2")).refs == ["INC-2026-0001"]
    reopen = event("triggered", "e3", "incident.reopened")
    assert engine.ingest(reopen).refs == ["INC-2026-0001"]
    # Open again, and still in triage: its PagerDuty service is not in the catalog.
    assert incident(store, "INC-2026-0001")["status"] == "triage"


@pytest.mark.parametrize(
    ("window", "after", "incidents"),
    [("10m", timedelta(minutes=3), 1), ("10m", timedelta(minutes=11), 2), ("0s", timedelta(minutes=3), 2)],
)
def test_a_second_alert_group_on_a_service_joins_its_open_incident_within_the_service_window(
    open_store, make_settings, clock, window, after, incidents
):
    """Two alert groups on one catalog service are one outage for its customers."""
    from adapter.app import create_app
    from adapter.metrics import Metrics
    from tests.conftest import base_config

    config = base_config()
    config["correlation"] = {"service_window": window}
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    try:
        svc = create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]
        t0 = clock.now()
        _fire(svc.engine, "dddd000000000001", t0, severity="warning", group="nfs-latency")
        clock.advance(after)
        _fire(svc.engine, "dddd000000000002", clock.now(), severity="critical", group="nfs-errors")
        with store.read() as conn:
            opened = repo.list_incidents(conn)
        assert len(opened) == incidents
        if incidents == 1:
            (joined,) = opened
            assert joined.level == 4  # the higher of the two groups'
            row = incident(store, joined.ref)
            assert {a["group_key"] for a in row["alerts"]} == {"nfs-latency", "nfs-errors"}
            assert any(t["kind"] == "alert_fired" for t in row["timeline"])
            # Its readers hear of one outage: a first notice, then an update for the higher level.
            technical = [n.phase for n in row["notices"] if n.audience == "technical"]
            assert technical == ["acknowledgement", "update"]
    finally:
        store.dispose()
