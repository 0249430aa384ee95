"""Cadence with an injected clock: holds, progress updates per level and audience, reminders, SLA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapter.app import create_app
from adapter.engine.scheduler import downtime, month_bounds
from adapter.metrics import Metrics
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.store.records import Incident
from tests.conftest import base_config
from tests.payloads import am_alert, am_body
from tests.support.server import Sink
from tests.templates_support import incident as scene_incident
from tests.templates_support import incident_record

STEP = timedelta(minutes=1)


@pytest.fixture
def make_world(open_store, make_settings, clock):
    made = []

    def make(config_changes=None, catalog=None):
        config = base_config()
        for key, value in (config_changes or {}).items():
            config[key] = value
        settings = make_settings(config, catalog)
        store = open_store(settings.storage.url)
        metrics = Metrics()
        svc = create_app(settings, clock=clock, store=store, metrics=metrics).extensions["dualtrack"]
        made.append(store)
        return svc

    yield make
    for store in made:
        store.dispose()


def fire(svc, fingerprint, severity, service="checkout", status="firing", starts_at=None, ends_at=None):
    labels = {"alertname": "Slow", "service": service, "severity": severity}
    alert = am_alert(
        fingerprint, labels, status=status, starts_at=starts_at or svc.clock.now(), ends_at=ends_at
    )
    return svc.engine.ingest(alertmanager.parse(am_body([alert], group_key=f"g-{fingerprint}")))


def run_for(svc, duration: timedelta, step: timedelta = STEP) -> None:
    end = svc.clock.now() + duration
    while svc.clock.now() < end:
        svc.clock.advance(step)
        svc.scheduler.run_once()


def notices(svc, ref="INC-2026-0001"):
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, ref)
        return outbox.notices_of(conn, [incident.id])


# Written to go out: published by its own transaction (the built-in page), or waiting in the outbox.
SENT = ("pending", "delivered")


def sent_times(rows, audience):
    return [
        r.created_at
        for r in rows
        if r.audience == audience and r.phase in ("acknowledgement", "update") and r.state in SENT
    ]


def test_six_hour_level_2_incident_updates_technical_every_2h_and_business_every_3h(make_world, clock):
    svc = make_world()
    t0 = clock.now()
    fire(svc, "a000000000000001", "warning")
    rows = notices(svc)
    # The built-in page publishes the technical version with the incident itself.
    assert [(r.audience, r.state) for r in rows] == [("technical", "delivered"), ("business", "held")]
    run_for(svc, timedelta(hours=6))
    rows = notices(svc)
    technical = sent_times(rows, "technical")
    business = sent_times(rows, "business")
    assert technical == [t0, t0 + timedelta(hours=2), t0 + timedelta(hours=4), t0 + timedelta(hours=6)]
    # Business: the first notice waits out the 10-minute hold, then every 3 hours.
    assert business == [t0 + timedelta(minutes=10), t0 + timedelta(hours=3, minutes=10)]
    updates = [r for r in rows if r.phase == "update"]
    # The released business notice waits for the dispatcher (never run here), and the page's
    # later notices wait behind it, in order.
    assert all(r.state == "pending" for r in updates)
    # Nothing changed: the updates reassure rather than repeat the first notice.
    technical_update = next(r for r in updates if r.audience == "technical")
    assert technical_update.subject.endswith("- Update")


def test_five_minute_level_1_blip_never_reaches_business(make_world, clock):
    svc = make_world()
    t0 = clock.now()
    fire(svc, "b000000000000001", "info")
    run_for(svc, timedelta(minutes=5))
    fire(svc, "b000000000000001", "info", status="resolved", starts_at=t0, ends_at=clock.now())
    run_for(svc, timedelta(hours=1))
    rows = notices(svc)
    business = [r for r in rows if r.audience == "business"]
    technical = [r for r in rows if r.audience == "technical"]
    assert {r.state for r in business} == {"suppressed"}
    assert [r.phase for r in business] == ["acknowledgement", "resolution"]
    # Never going out, never rendered.
    assert {(r.subject, r.body) for r in business} == {("", "")}
    assert [(r.phase, r.state) for r in technical] == [
        ("acknowledgement", "delivered"),
        ("resolution", "delivered"),
    ]
    # The dispatcher never sends a suppressed notice.
    while svc.dispatcher.run_once():
        pass
    assert {r.state for r in notices(svc) if r.audience == "business"} == {"suppressed"}


def test_raising_level_2_to_4_tightens_both_cadences_at_once(make_world, clock):
    svc = make_world()
    t0 = clock.now()
    fire(svc, "c000000000000001", "warning")
    run_for(svc, timedelta(minutes=30))
    # Level 2 so far: business heard at 10m, technical at 0; no update due before 2h.
    assert sent_times(notices(svc), "technical") == [t0]
    assert sent_times(notices(svc), "business") == [t0 + timedelta(minutes=10)]
    fire(svc, "c000000000000002", "critical")  # same service, new group: its own incident
    fire_same_group = am_alert(
        "c000000000000003", {"alertname": "Slow", "service": "checkout", "severity": "critical"}
    )
    svc.engine.ingest(alertmanager.parse(am_body([fire_same_group], group_key="g-c000000000000001")))
    with svc.store.read() as conn:
        assert repo.get_incident_by_ref(conn, "INC-2026-0001").level == 4
    raised_at = clock.now()
    run_for(svc, timedelta(minutes=100))
    technical = sent_times(notices(svc), "technical")
    business = sent_times(notices(svc), "business")
    # The level change is an update for both tracks at once; from then on both follow level 4's
    # hourly cadence instead of level 2's 2 hours (technical) and 3 hours (business).
    assert technical == [t0, raised_at, raised_at + timedelta(hours=1)]
    assert business == [t0 + timedelta(minutes=10), raised_at, raised_at + timedelta(hours=1)]


def test_held_first_notice_is_rendered_when_released(make_world, clock):
    svc = make_world()
    fire(svc, "d000000000000001", "warning")
    held = next(r for r in notices(svc) if r.state == "held")
    assert held.due_at == clock.now() + timedelta(minutes=10)
    # Not rendered while held: what it says is decided when it goes out.
    assert (held.subject, held.body, held.data["template"]) == ("", "", None)
    run_for(svc, timedelta(minutes=10))
    released = next(r for r in notices(svc) if r.id == held.id)
    assert released.state == "pending"
    assert released.subject.startswith("Service Update: Investigating") and released.body
    assert released.data["template"] == "web/business/acknowledgement.md.j2"
    assert released.created_at == clock.now()
    assert released.data["held_until"] == clock.now().isoformat()


def test_only_one_scheduler_holds_the_lease(make_world, clock):
    svc = make_world()
    from adapter.engine.scheduler import Scheduler

    other = Scheduler(svc.settings, svc.store, svc.engine.notifier, clock, Metrics(), owner="other")
    fire(svc, "e000000000000001", "warning")
    clock.advance(timedelta(minutes=11))
    assert other.run_once() == 1  # takes the lease and releases the held notice
    assert svc.scheduler.run_once() == 0  # lease held by "other"
    clock.advance(timedelta(minutes=5))  # the lease (30s) expired: the survivor takes over
    assert svc.scheduler.run_once() == 0
    with svc.store.read() as conn:
        from sqlalchemy import select

        from adapter.store.schema import leases

        assert conn.execute(select(leases.c.owner)).scalar() == svc.scheduler.owner


def test_postmortem_overdue_reminds_internal_providers_once(make_world, clock):
    svc = make_world(
        {
            "providers": [
                {"name": "status", "type": "builtin", "audience": "all"},
                {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"},
            ],
            "policy": {"internal_providers": ["team"], "postmortem_due": "48h"},
        }
    )
    t0 = clock.now()
    fire(svc, "f000000000000001", "critical")
    clock.advance(timedelta(minutes=20))
    fire(svc, "f000000000000001", "critical", status="resolved", starts_at=t0, ends_at=clock.now())
    run_for(svc, timedelta(hours=47), step=timedelta(hours=1))
    assert not [r for r in notices(svc) if r.phase == "postmortem_reminder"]
    run_for(svc, timedelta(hours=3), step=timedelta(hours=1))
    reminders = [r for r in notices(svc) if r.phase == "postmortem_reminder"]
    assert [(r.provider, r.audience) for r in reminders] == [("team", "technical")]
    assert svc.metrics.registry.get_sample_value("dualtrack_postmortem_overdue_total") == 1


def test_a_pass_takes_no_write_lock_for_what_is_owed_nothing_any_more(make_world, clock, monkeypatch):
    """A month of resolved incidents must not cost a write transaction each, every pass."""
    svc = make_world(
        {
            "policy": {"postmortem_due": "48h", "sla_followup": {"enabled": True, "delay": "2h"}},
        }
    )
    t0 = clock.now()
    fire(svc, "f000000000000001", "warning")  # level 2: below the follow-ups' level
    fire(svc, "f000000000000002", "critical")
    clock.advance(timedelta(minutes=20))
    for fingerprint in ("f000000000000001", "f000000000000002"):
        fire(svc, fingerprint, "warning", status="resolved", starts_at=t0, ends_at=clock.now())
    run_for(svc, timedelta(hours=50), step=timedelta(hours=1))
    with svc.store.read() as conn:
        reminded = [
            i for i in repo.list_incidents(conn) if repo.has_timeline(conn, i.id, "postmortem_overdue")
        ]
        assert len(reminded) == 1  # the level-2 one is below policy.postmortem_min_level
    writes = []
    real = svc.store.transaction

    def counted(**kwargs):
        writes.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(svc.store, "transaction", counted)
    clock.advance(timedelta(minutes=1))
    svc.scheduler.run_once()
    assert len(writes) == 1  # the scheduler's lease, and nothing else


def test_downtime_merges_overlaps_and_clips_to_the_month():
    start, end = month_bounds(datetime(2026, 11, 15, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    h = timedelta(hours=1)

    def spanning(opened_at: datetime, resolved_at: datetime | None) -> Incident:
        return incident_record(scene_incident("Down", [], opened_at=opened_at, resolved_at=resolved_at))

    incidents = [
        spanning(start - h, start + h),  # 1h inside the month
        spanning(start + 10 * h, start + 12 * h),
        spanning(start + 11 * h, start + 13 * h),  # overlaps the previous one
        spanning(end - h, None),  # still open at `now` past the month end
    ]
    assert downtime(incidents, start, end, now=end + 5 * h) == 5 * h


def test_first_notice_time_and_missed_deadlines_are_measured(make_world, clock):
    with Sink() as sink:
        config = base_config()
        config["providers"].append({"name": "hook", "type": "webhook", "audience": "all", "url": sink.url})
        svc = make_world({"providers": config["providers"]})
        t0 = clock.now()
        fire(svc, "a100000000000001", "critical")  # level 4: first notices due within 15 minutes
        clock.advance(timedelta(seconds=30))
        svc.dispatcher.run_once()
        registry = svc.metrics.registry

        def first_notice(audience: str) -> tuple[float | None, float | None]:
            labels = {"audience": audience, "level": "4"}
            return (
                registry.get_sample_value("dualtrack_first_notice_seconds_count", labels),
                registry.get_sample_value("dualtrack_first_notice_seconds_sum", labels),
            )

        def missed(audience: str) -> float:
            labels = {"audience": audience, "phase": "acknowledgement"}
            return registry.get_sample_value("dualtrack_deadline_missed_total", labels) or 0

        # The page published with the incident (0 s); the webhook delivered 30 s later.
        assert first_notice("technical") == (2, 30)
        assert missed("technical") == 0
        # A second incident whose webhook notices only go out after 20 minutes (an outage there).
        fire(svc, "a100000000000002", "critical", service="search")
        clock.advance(timedelta(minutes=20))
        svc.dispatcher.run_once()
        assert missed("business") == 1
        assert len(sink.received()) == 3  # the second incident touches business readers only
    assert t0 < clock.now()


def test_the_page_publishes_a_streams_notices_in_order_even_within_one_event(make_world, clock):
    # Holding technical readers instead of business ones: the page's business notice is written
    # after a held notice of the same stream, so it waits for it like any provider's would.
    svc = make_world(
        {"policy": {"levels": {2: {"technical": {"hold_for": "10m"}, "business": {"hold_for": "0s"}}}}}
    )
    fire(svc, "a200000000000001", "warning")
    assert [(r.audience, r.state) for r in notices(svc)] == [
        ("technical", "held"),
        ("business", "pending"),
    ]
    clock.advance(timedelta(minutes=11))
    svc.scheduler.run_once()
    assert svc.dispatcher.run_once() == 2
    states = {r.audience: (r.state, r.delivered_at) for r in notices(svc)}
    assert states == {"technical": ("delivered", clock.now()), "business": ("delivered", clock.now())}


@pytest.mark.parametrize("window", [None, "2h"])
def test_event_ids_are_forgotten_after_the_dedupe_window(make_world, window):
    from sqlalchemy import func, select

    from adapter.store.schema import inbound_events

    svc = make_world({"pagerduty": {"dedupe_window": window}} if window else None)
    kept = svc.settings.pagerduty.dedupe_window
    assert kept == (timedelta(hours=2) if window else timedelta(hours=48))

    def remembered() -> int:
        with svc.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(inbound_events)).scalar_one())

    with svc.store.transaction() as conn:
        assert not repo.seen_before(conn, "pagerduty", ["old-webhook", "old-event"], svc.clock.now())
    svc.clock.advance(kept - STEP)
    with svc.store.transaction() as conn:
        assert not repo.seen_before(conn, "pagerduty", ["new-webhook"], svc.clock.now())
    svc.scheduler.run_once()
    assert remembered() == 3  # a retry inside the window is still a duplicate
    svc.clock.advance(STEP + timedelta(seconds=1))
    svc.scheduler.run_once()
    assert remembered() == 1
    with svc.store.transaction() as conn:
        assert repo.seen_before(conn, "pagerduty", ["new-webhook"], svc.clock.now())


@pytest.mark.parametrize("retention", [None, "0"])
def test_incidents_resolved_past_the_retention_keep_their_rows_and_nothing_else(make_world, clock, retention):
    storage = {"url": base_config()["storage"]["url"], "retention": retention}
    svc = make_world({"storage": storage} if retention else None)
    t0 = clock.now()
    fire(svc, "old0000000000001", "critical")  # INC-2026-0001: resolved, then 400 days pass
    fire(svc, "old0000000000001", "critical", status="resolved", starts_at=t0, ends_at=t0)
    svc.clock.advance(timedelta(days=2))
    fire(svc, "new0000000000001", "critical")  # INC-2026-0002: resolved two days later
    fire(svc, "new0000000000001", "critical", status="resolved", starts_at=clock.now(), ends_at=clock.now())
    fire(svc, "open000000000001", "critical")  # INC-2026-0003: still open
    with svc.store.read() as conn:
        before = {i.ref: i for i in repo.list_incidents(conn)}
    svc.clock.advance(timedelta(days=399))  # the first resolved 401 days ago, the second 399
    svc.scheduler.run_once()

    def rows_of(ref: str) -> tuple[int, int, int]:
        """(notices, alerts, timeline entries) the incident has."""
        with svc.store.read() as conn:
            incident = repo.get_incident_by_ref(conn, ref)
            assert incident is not None
            found = outbox.notices_of(conn, [incident.id]), repo.alerts_of(conn, incident.id)
            return len(found[0]), len(found[1]), len(repo.timeline_of(conn, incident.id))

    with svc.store.read() as conn:
        after = {i.ref: i for i in repo.list_incidents(conn)}
    if retention == "0":  # kept for ever
        assert all(after[ref].pruned_at is None for ref in after)
        assert all(rows_of(ref) > (0, 0, 0) for ref in after)
        return
    assert rows_of("INC-2026-0001") == (0, 0, 0)
    assert after["INC-2026-0001"].pruned_at == clock.now()
    # What uptime bars and SLA figures are computed from is all still there.
    for field in ("opened_at", "resolved_at", "level", "services", "tenants", "status"):
        assert getattr(after["INC-2026-0001"], field) == getattr(before["INC-2026-0001"], field)
    for ref in ("INC-2026-0002", "INC-2026-0003"):
        assert all(rows_of(ref)) and after[ref].pruned_at is None
    # A day later the second is due too; the first is not pruned again.
    first_pass = clock.now()
    svc.clock.advance(timedelta(days=1, minutes=1))
    svc.scheduler.run_once()
    with svc.store.read() as conn:
        pruned = {i.ref: i.pruned_at for i in repo.list_incidents(conn)}
    assert pruned == {"INC-2026-0001": first_pass, "INC-2026-0002": clock.now(), "INC-2026-0003": None}


def test_an_immediate_first_notice_sent_within_the_grace_is_on_time_and_one_after_it_is_missed(
    make_world, clock
):
    with Sink() as sink:
        config = base_config()
        config["providers"].append({"name": "hook", "type": "webhook", "audience": "all", "url": sink.url})
        svc = make_world({"providers": config["providers"], "policy": {"immediate_grace": "60s"}})
        registry = svc.metrics.registry

        def missed() -> float:
            return sum(
                registry.get_sample_value(
                    "dualtrack_deadline_missed_total", {"audience": a, "phase": "acknowledgement"}
                )
                or 0
                for a in ("technical", "business")
            )

        # Critical infrastructure: level 5, whose first notices are "immediate" (0s).
        fire(svc, "a300000000000001", "critical", service="mysql-shared")
        assert svc.scheduler.settings.policy.audience(5, "technical").first_notice_within == timedelta(0)
        clock.advance(timedelta(seconds=5))
        svc.dispatcher.run_once()
        assert len(sink.received()) == 1 and missed() == 0  # its one tenant is technical
        fire(svc, "a300000000000002", "critical", service="edge")
        clock.advance(timedelta(seconds=90))
        svc.dispatcher.run_once()
        assert missed() >= 1


def test_no_postmortem_is_asked_for_below_postmortem_min_level(make_world, clock):
    svc = make_world(
        {
            "providers": [
                {"name": "status", "type": "builtin", "audience": "all"},
                {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"},
            ],
            "policy": {"internal_providers": ["team"], "postmortem_due": "48h", "postmortem_min_level": 3},
        }
    )
    t0 = clock.now()
    fire(svc, "f000000000000002", "warning")  # level 2: a blip
    clock.advance(timedelta(seconds=8))
    fire(svc, "f000000000000002", "warning", status="resolved", starts_at=t0, ends_at=clock.now())
    run_for(svc, timedelta(hours=50), step=timedelta(hours=1))
    assert svc.metrics.registry.get_sample_value("dualtrack_postmortem_overdue_total") == 0
    assert not [r for r in notices(svc) if r.phase == "postmortem_reminder"]
