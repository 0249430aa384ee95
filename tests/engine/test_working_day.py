"""A working day on the injected clock: every deadline kept, except those a provider's outage broke."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from adapter.app import create_app
from adapter.engine.humans import HumanUpdate
from adapter.metrics import Metrics
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.store.records import Notice
from tests.conftest import base_config
from tests.payloads import am_alert, am_body
from tests.support.people import ONCALL
from tests.support.server import Sink

OUTAGE = (200, 220)  # minutes of the day the webhook receiver answers 503
# Levels 1-4 by severity on ordinary services; 5 is critical on critical infrastructure.
SEVERITY = {1: "info", 2: "warning", 3: "error", 4: "critical", 5: "critical"}
SERVICES = ["checkout", "search", "objects", "mail"]


def plan() -> dict[int, list[tuple[str, int]]]:
    """Minute of the day → what happens then, to which of the 40 incidents."""
    events: dict[int, list[tuple[str, int]]] = {}
    for n in range(40):
        start = 5 + n * 11
        events.setdefault(start, []).append(("fire", n))
        if n % 6 == 1:  # its level rises: a critical alert joins the group
            events.setdefault(start + 10, []).append(("raise", n))
        if n % 7 == 2 and n % 4:  # an engineer posts an update (a blip is over by then)
            events.setdefault(start + 15, []).append(("human", n))
        length = 3 if n % 4 == 0 else 20 + (n * 37) % 130  # every fourth a blip
        events.setdefault(start + length, []).append(("resolve", n))
    return events


def test_a_working_day_keeps_every_deadline_but_those_an_outage_broke(open_store, make_settings, clock):
    with Sink() as sink:
        config = base_config()
        config["providers"].append({"name": "hook", "type": "webhook", "audience": "all", "url": sink.url})
        config["delivery"] = {"backoff_initial": "10s", "backoff_max": "1m"}
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        try:
            svc = create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]
            day_start = clock.now()
            refs: dict[int, str] = {}

            def alert(n: int, status: str = "firing", severity: str | None = None, suffix: str = "a"):
                level = n % 5 + 1
                service = "mysql-shared" if level == 5 else SERVICES[n % len(SERVICES)]
                labels = {
                    "alertname": f"Day{n}",
                    "service": service,
                    "severity": severity or SEVERITY[level],
                    "instance": f"host-{n}-{suffix}:9100",
                }
                started = day_start + timedelta(minutes=5 + n * 11)
                ends = clock.now() if status == "resolved" else None
                return am_alert(
                    f"{n:08x}{suffix:0>8}", labels, status=status, starts_at=started, ends_at=ends
                )

            def ingest(n: int, *alerts_: dict) -> None:
                result = svc.engine.ingest(alertmanager.parse(am_body(list(alerts_), group_key=f"day-{n}")))
                refs.setdefault(n, result.refs[0]) if result.refs else None

            actions: dict[str, Callable[[int], None]] = {
                "fire": lambda n: ingest(n, alert(n)),
                "raise": lambda n: ingest(n, alert(n, severity="critical", suffix="b")),
                "human": lambda n: svc.humans.update(
                    refs[n], HumanUpdate(technical="Working on it.", business="We're on it."), ONCALL
                ),
                "resolve": lambda n: ingest(
                    n,
                    alert(n, "resolved"),
                    *([alert(n, "resolved", "critical", "b")] if n % 6 == 1 else []),
                ),
            }
            events = plan()
            for minute in range(1, max(events) + 30):
                clock.advance(timedelta(minutes=1))
                sink.status = 503 if OUTAGE[0] <= minute < OUTAGE[1] else 200
                for action, n in events.get(minute, []):
                    actions[action](n)
                svc.scheduler.run_once()
                svc.dispatcher.run_once()

            with store.read() as conn:
                incidents = repo.list_incidents(conn)
                notices = outbox.notices_of(conn, [i.id for i in incidents])
        finally:
            store.dispose()

    assert len(incidents) == 40 and {i.status for i in incidents} == {"resolved"}
    assert {i.level for i in incidents} == {1, 2, 3, 4, 5}
    outage_start = day_start + timedelta(minutes=OUTAGE[0])
    outage_end = day_start + timedelta(minutes=OUTAGE[1])

    def deadline(n: Notice) -> datetime | None:
        value = (n.data or {}).get("deadline")
        return datetime.fromisoformat(value) if value else None

    timed = [n for n in notices if n.state == "delivered" and deadline(n) is not None]
    late = [n for n in timed if n.delivered_at > deadline(n)]
    assert {n.phase for n in timed} == {"acknowledgement", "update"}
    assert len(timed) > 100  # first notices and cadence updates of both audiences, on two providers
    # Every late one was written before the outage ended and had its deadline after it began.
    assert late, "the outage should have made some notice late"
    for notice in late:
        assert notice.provider == "hook", notice
        assert notice.created_at < outage_end and deadline(notice) >= outage_start, notice
    registry = svc.metrics.registry
    missed = sum(
        registry.get_sample_value("dualtrack_deadline_missed_total", {"audience": audience, "phase": phase})
        or 0
        for audience in ("technical", "business")
        for phase in ("acknowledgement", "update")
    )
    assert missed == len(late)
    # Nothing is left undelivered, and nothing went twice.
    assert {n.state for n in notices} <= {"delivered", "suppressed"}
    keys = [r.header("Idempotency-Key") for r in sink.received() if r.answered == 200]
    assert len(keys) == len(set(keys))
