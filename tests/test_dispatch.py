"""Dispatcher and outbox: ordering per stream, leases, retries with backoff, dead letters."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest

from adapter.app import create_app
from adapter.config import DeliverySettings
from adapter.dispatch import Dispatcher, backoff
from adapter.metrics import Metrics
from adapter.store import Store, outbox
from adapter.store import incidents as repo
from tests.conftest import base_config, fixture_json
from tests.support.scripted import Reply, ScriptedServer


@pytest.fixture
def hook():
    with ScriptedServer(Reply(200)) as server:
        yield server


@pytest.fixture
def concurrency() -> int:
    """Deliveries under way at once; one, so that these tests can follow each in turn."""
    return 1


@pytest.fixture
def world(open_store, make_settings, clock, hook, concurrency):
    """An app whose only provider is a webhook to the scripted server."""
    config = base_config()
    config["providers"] = [
        {"name": "hook", "type": "webhook", "audience": "all", "url": hook.url, "concurrency": concurrency}
    ]
    config["delivery"] = {"backoff_initial": "10s", "backoff_max": "5m", "max_age": "1h", "lease": "1m"}
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    metrics = Metrics()
    app = create_app(settings, clock=clock, store=store, metrics=metrics)
    yield app.extensions["dualtrack"]
    store.dispose()


def ingest(svc, name: str) -> None:
    from adapter.sources import alertmanager

    svc.engine.ingest(alertmanager.parse(fixture_json(name)))


def notices(svc) -> list[dict]:
    with svc.store.read() as conn:
        return outbox.notices_of(conn, [i.id for i in repo.list_incidents(conn)])


def test_delivers_in_order_and_records_outcome(world, hook):
    ingest(world, "alertmanager/alertmanager-firing.json")
    ingest(world, "alertmanager/alertmanager-resolved.json")
    ingest(world, "alertmanager/alertmanager-mixed.json")
    assert world.dispatcher.run_once() == 4
    rows = notices(world)
    assert [r.state for r in rows] == ["delivered"] * 4
    assert all(r.attempts == 1 and r.delivered_at == world.clock.now() for r in rows)
    sent = [(r.headers["Idempotency-Key"], __import__("json").loads(r.body)["phase"]) for r in hook.requests]
    assert [phase for _, phase in sent] == ["acknowledgement"] * 2 + ["resolution"] * 2
    assert (
        world.metrics.registry.get_sample_value(
            "dualtrack_deliveries_total", {"provider": "hook", "outcome": "delivered"}
        )
        == 4
    )


def test_retryable_failure_backs_off_and_holds_back_the_stream(world, hook, clock):
    hook.replies = [Reply(503), Reply(503), Reply(200)]
    ingest(world, "alertmanager/alertmanager-firing.json")
    ingest(world, "alertmanager/alertmanager-resolved.json")
    ingest(world, "alertmanager/alertmanager-mixed.json")
    world.dispatcher.rng = random.Random(1)
    # Pass 1: the first notice fails; the one behind it in the stream is not attempted.
    world.dispatcher.run_once()
    rows = notices(world)
    assert [r.state for r in rows] == ["failed", "pending", "pending", "pending"]
    assert "HTTP 503" in rows[0].last_error
    first_due = rows[0].due_at - clock.now()
    assert timedelta(seconds=5) <= first_due <= timedelta(seconds=15)
    assert len(hook.requests) == 1
    # Not due yet: nothing happens.
    assert world.dispatcher.run_once() == 0
    clock.advance(first_due)
    world.dispatcher.run_once()
    rows = notices(world)
    assert rows[0].attempts == 2 and rows[0].state == "failed"
    second_due = rows[0].due_at - clock.now()
    assert timedelta(seconds=10) <= second_due <= timedelta(seconds=30)
    clock.advance(second_due)
    while world.dispatcher.run_once():
        pass
    assert [r.state for r in notices(world)] == ["delivered"] * 4
    phases = [__import__("json").loads(r.body)["phase"] for r in hook.requests]
    assert phases == ["acknowledgement"] * 4 + ["resolution"] * 2


def test_retry_after_is_honoured(world, hook, clock):
    hook.replies = [Reply(429, {"Retry-After": "600"}), Reply(200)]
    ingest(world, "alertmanager/alertmanager-firing.json")
    world.dispatcher.run_once()
    row = notices(world)[0]
    assert row.state == "failed"
    assert row.due_at - clock.now() >= timedelta(seconds=600)


def test_permanent_failure_is_dead_with_its_error_and_does_not_block(world, hook):
    hook.replies = [Reply(400), Reply(200)]
    ingest(world, "alertmanager/alertmanager-firing.json")
    while world.dispatcher.run_once():
        pass
    rows = notices(world)
    assert rows[0].state == "dead" and "HTTP 400" in rows[0].last_error
    assert rows[1].state == "delivered"


def test_gives_up_after_max_age(world, hook, clock):
    hook.replies = [Reply(500)]
    ingest(world, "alertmanager/alertmanager-firing.json")
    for _ in range(40):
        world.dispatcher.run_once()
        clock.advance(timedelta(minutes=5))
    rows = notices(world)
    assert [r.state for r in rows] == ["dead", "dead"]
    assert "max_age" in rows[0].last_error
    assert rows[0].attempts > 3


def test_unconfigured_provider_is_dead(world, clock):
    ingest(world, "alertmanager/alertmanager-firing.json")
    # A worker whose configuration no longer has the provider: its loop for such notices takes them.
    dispatcher = Dispatcher(world.store, [], world.settings.delivery, clock, Metrics())
    assert dispatcher.run_once() == 2
    rows = notices(world)
    assert [r.state for r in rows] == ["dead", "dead"]
    assert "provider 'hook' is not configured" in rows[0].last_error


def test_a_lease_keeps_others_off_until_it_expires(world, clock):
    ingest(world, "alertmanager/alertmanager-firing.json")
    claimed = outbox.claim_due(world.store, "crashed-worker", clock.now(), timedelta(minutes=1), 10)
    assert len(claimed) == 2
    assert outbox.claim_due(world.store, "other", clock.now(), timedelta(minutes=1), 10) == []
    # The first owner died; once the lease runs out another dispatcher takes over.
    clock.advance(timedelta(minutes=1, seconds=1))
    assert world.dispatcher.run_once() == 2
    assert [r.state for r in notices(world)] == ["delivered", "delivered"]
    # The late owner's marks are refused: it no longer holds the lease.
    assert not outbox.mark_delivered(world.store, claimed[0].id, "crashed-worker", clock.now(), "x")


def test_concurrent_dispatchers_never_claim_the_same_notice(world, clock, settings):
    for i in range(30):
        from adapter.sources import alertmanager
        from tests.payloads import am_alert, am_body

        labels = {"alertname": "A", "service": "checkout", "severity": "critical"}
        world.engine.ingest(alertmanager.parse(am_body([am_alert(f"{i:016x}", labels)], group_key=f"g{i}")))
    claims: list[list[int]] = []
    lock = threading.Lock()

    def claim(owner: str) -> None:
        store = Store(world.store.engine.url.render_as_string(hide_password=False))
        try:
            while True:
                rows = outbox.claim_due(store, owner, clock.now(), timedelta(minutes=1), 3)
                if not rows:
                    return
                with lock:
                    claims.append([r.id for r in rows])
                for row in rows:
                    outbox.mark_delivered(store, row.id, owner, clock.now(), "ok")
        finally:
            store.dispose()

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in claims for i in batch]
    assert len(ids) == len(set(ids)) == 60


def test_backoff_grows_exponentially_within_jitter_and_cap():
    settings = DeliverySettings(backoff_initial="1s", backoff_max="5m")
    rng = random.Random(0)
    for attempts, base in [(1, 1), (2, 2), (3, 4), (6, 32), (20, 300)]:
        for _ in range(20):
            delay = backoff(attempts, settings, rng).total_seconds()
            assert base * 0.5 <= delay <= base * 1.5


def test_stop_drains_and_hands_back_unstarted_leases(world, clock):
    ingest(world, "alertmanager/alertmanager-firing.json")
    settings = world.settings
    dispatcher = Dispatcher(world.store, settings.providers, settings.delivery, clock, Metrics())
    dispatcher.stop()  # as if SIGTERM arrived just before the pass
    assert dispatcher.run_once() == 0
    rows = notices(world)
    assert len(rows) == 2
    assert all(r.lease_owner is None and r.state == "pending" for r in rows)


def test_a_coalescing_provider_sends_the_first_and_the_newest_of_a_stream(world, hook, clock):
    from adapter.providers.webhook import Webhook

    provider = world.dispatcher.providers["hook"]
    assert isinstance(provider, Webhook)
    type(provider).coalesce = True
    try:
        ingest(world, "alertmanager/alertmanager-firing.json")
        ingest(world, "alertmanager/alertmanager-mixed.json")
        ingest(world, "alertmanager/alertmanager-resolved.json")
        # Three notices per audience stream are due at once: acknowledgement, nothing for the
        # partial resolve, then the resolution; with a level-raise update in between there'd be 3.
        rows = notices(world)
        assert [r.phase for r in rows] == [
            "acknowledgement",
            "acknowledgement",
            "resolution",
            "resolution",
        ]
        world.dispatcher.run_once()
        sent = [__import__("json").loads(r.body)["phase"] for r in hook.requests]
        # The first notice creates the incident at the provider and is never skipped; the newest
        # (the resolution) is never lost.
        assert sent == ["acknowledgement", "acknowledgement", "resolution", "resolution"]
        assert {r.state for r in notices(world)} == {"delivered"}
    finally:
        type(provider).coalesce = False


def test_coalescing_skips_stale_updates_once_the_incident_exists(world, hook, clock):
    from adapter.providers.webhook import Webhook
    from tests.payloads import am_alert, am_body

    type(world.dispatcher.providers["hook"]).coalesce = True
    try:
        labels = {"alertname": "A", "service": "checkout", "severity": "critical"}
        world.engine.ingest(alertmanager_parse(am_body([am_alert("c100000000000001", labels)], "g")))
        world.dispatcher.run_once()  # the acknowledgements: the incident now exists at the provider
        hook.requests.clear()
        for _ in range(3):
            clock.advance(timedelta(hours=1, minutes=1))
            world.scheduler.run_once()  # a progress update per audience each hour at level 4
        world.dispatcher.run_once()
        sent = [__import__("json").loads(r.body) for r in hook.requests]
        assert [(s["audience"], s["phase"]) for s in sent] == [
            ("technical", "update"),
            ("business", "update"),
        ]
        rows = [r for r in notices(world) if r.phase == "update"]
        assert len(rows) == 6 and {r.state for r in rows} == {"delivered"}
        assert sum("coalesced into notice" in (r.provider_ref or "") for r in rows) == 4
        assert isinstance(world.dispatcher.providers["hook"], Webhook)
    finally:
        type(world.dispatcher.providers["hook"]).coalesce = False


def alertmanager_parse(body):
    from adapter.sources import alertmanager

    return alertmanager.parse(body)


def test_rate_limit_tokens_are_shared_through_the_database(world, make_settings):
    from datetime import UTC, datetime

    from adapter.store import buckets

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    other = Store(world.store.engine.url.render_as_string(hide_password=False))
    try:
        with world.store.transaction() as conn:
            assert buckets.take(conn, "sp:key", 1.0, 2, now) == 0
        with other.transaction() as conn:  # another process, same bucket
            assert buckets.take(conn, "sp:key", 1.0, 2, now) == 0
            assert buckets.take(conn, "sp:key", 1.0, 2, now) == pytest.approx(1.0)
        with world.store.transaction() as conn:
            assert buckets.take(conn, "sp:key", 1.0, 2, now + timedelta(milliseconds=500)) == pytest.approx(
                0.5
            )
            assert buckets.take(conn, "sp:key", 1.0, 2, now + timedelta(seconds=1)) == 0
    finally:
        other.dispose()


def test_provider_requests_are_rate_limited_and_measured(world, hook):
    provider = world.dispatcher.providers["hook"]
    type(provider).rate_limit = (20.0, 1)
    try:
        ingest(world, "alertmanager/alertmanager-firing.json")
        ingest(world, "alertmanager/alertmanager-resolved.json")
        ingest(world, "alertmanager/alertmanager-mixed.json")
        world.dispatcher.run_once()
    finally:
        type(provider).rate_limit = None
    assert len(hook.requests) == 4
    registry = world.metrics.registry
    assert (
        registry.get_sample_value(
            "dualtrack_provider_requests_total", {"provider": "hook", "outcome": "success"}
        )
        == 4
    )
    assert registry.get_sample_value("dualtrack_provider_request_seconds_count", {"provider": "hook"}) == 4


def test_breaker_opens_after_failures_probes_then_delivers_everything_in_order(
    open_store, make_settings, clock
):
    from tests.payloads import am_alert, am_body

    with ScriptedServer(Reply(503)) as server:
        config = base_config()
        config["providers"] = [
            {"name": "hook", "type": "webhook", "audience": "technical", "url": server.url}
        ]
        config["delivery"] = {
            "backoff_initial": "1s",
            "backoff_max": "2s",
            "breaker": {"failures": 3, "probe_every": "30s"},
        }
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        svc = create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]
        labels = {"alertname": "A", "service": "checkout", "severity": "critical"}
        for i in range(4):  # four incidents: four independent streams
            svc.engine.ingest(alertmanager_parse(am_body([am_alert(f"b{i:015x}", labels)], f"g{i}")))

        def pass_at(seconds: float) -> int:
            clock.advance(timedelta(seconds=seconds))
            return svc.dispatcher.run_once()

        pass_at(0)
        # Each pass tries the due streams until three failures in a row open the breaker.
        assert len(server.requests) == 4
        hits = len(server.requests)
        for _ in range(5):
            pass_at(3)
        assert len(server.requests) == hits  # open: nothing reaches the provider
        pass_at(30)  # one probe per interval
        assert len(server.requests) == hits + 1
        server.replies = [Reply(200)]
        pass_at(31)  # the probe succeeds and closes the breaker; the rest follow
        while pass_at(3):
            pass
        rows = notices(svc)
        assert [r.state for r in rows] == ["delivered"] * 4
        # Deferred passes were not attempts.
        assert max(r.attempts for r in rows) <= 3
        store.dispose()


# -- each delivery recorded as it completes ------------------------------------------------------


def ingest_incidents(svc, count: int) -> None:
    """`count` incidents (each its own stream per provider), two notices each (both audiences)."""
    from tests.payloads import am_alert, am_body

    labels = {"alertname": "A", "service": "checkout", "severity": "critical"}
    for i in range(count):
        svc.engine.ingest(alertmanager_parse(am_body([am_alert(f"d{i:015x}", labels)], f"g{i}")))


def notice_id(request) -> int:
    return int(request.headers["Idempotency-Key"].removeprefix("dualtrack-notice-"))


def test_each_delivery_is_recorded_before_the_next_one_starts(world, hook):
    ingest_incidents(world, 3)
    states_seen: list[dict[int, str]] = []
    # What the database says while each request is being answered.
    hook.on_request = lambda request: states_seen.append({r.id: r.state for r in notices(world)})
    assert world.dispatcher.run_once() == 6
    sent = [notice_id(r) for r in hook.requests]
    assert len(sent) == 6
    for number, states in enumerate(states_seen):
        assert {states[i] for i in sent[:number]} <= {"delivered"}, (number, states)
        assert {states[i] for i in sent[number:]} == {"pending"}, (number, states)


@pytest.mark.parametrize("concurrency", [3])
def test_streams_go_out_together_and_each_in_order(world, hook):
    ingest_incidents(world, 3)  # three streams of two notices
    together = threading.Barrier(3, timeout=10)  # broken unless three requests are open at once
    first = iter(range(3))

    def wait_for_the_others(request) -> None:
        if next(first, None) is not None:
            together.wait()

    hook.on_request = wait_for_the_others
    assert world.dispatcher.run_once() == 6
    assert not together.broken
    streams: dict[int, list[int]] = {}
    by_id = {r.id: r for r in notices(world)}
    for request in hook.requests:
        number = notice_id(request)
        streams.setdefault(by_id[number].incident_id, []).append(number)
    assert [ids == sorted(ids) and len(ids) == 2 for ids in streams.values()] == [True] * 3
    assert {r.state for r in by_id.values()} == {"delivered"}


@pytest.mark.parametrize("concurrency", [2])
def test_a_stream_sends_its_next_notice_once_the_last_is_recorded_and_two_at_most_are_unrecorded(world, hook):
    ingest_incidents(world, 3)
    by_id = {r.id: r for r in notices(world)}
    lock = threading.Lock()
    sent: list[int] = []
    unrecorded: list[int] = []

    def look(request) -> None:
        number = notice_id(request)
        states = {r.id: r.state for r in notices(world)}
        with lock:
            earlier = [i for i in sent if states[i] != "delivered"]
            same_stream = [i for i in sent if by_id[i].incident_id == by_id[number].incident_id]
            assert all(states[i] == "delivered" for i in same_stream), (number, states)
            unrecorded.append(len(earlier) + 1)
            sent.append(number)

    hook.on_request = look
    assert world.dispatcher.run_once() == 6
    assert len(unrecorded) == 6 and max(unrecorded) <= 2


def test_the_providers_id_from_a_streams_first_delivery_reaches_its_next_notice_in_the_same_pass(
    open_store, make_settings, clock
):
    from tests.support.smtp_server import SmtpServer

    with SmtpServer() as server:
        config = base_config()
        mail = {"host": "127.0.0.1", "port": server.port, "security": "none", "sender": "s@example.com"}
        config["providers"] = [
            {"name": "mail", "type": "smtp", "audience": "technical", "to": ["o@x.example"], **mail}
        ]
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        svc = create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]
        try:
            for name in ("firing", "resolved", "mixed"):
                ingest(svc, f"alertmanager/alertmanager-{name}.json")
            assert svc.dispatcher.run_once() == 2  # the acknowledgement and the resolution, together
        finally:
            store.dispose()
        first, resolution = (r.message for r in server.received)
        assert resolution["In-Reply-To"] == first["Message-ID"]


@pytest.fixture
def failing_writes(world):
    """Makes the next write transactions fail as SQLite does when it cannot write (a full disk,
    a read-only file): `failing_writes.left = n` fails n of them."""
    from sqlalchemy import event

    class Writes:
        left = 0

    writes = Writes()

    def query_only(conn, value: str) -> None:
        conn.connection.driver_connection.execute(f"PRAGMA query_only={value}")

    def on_begin(conn) -> None:
        if writes.left > 0 and not conn.get_execution_options().get("dualtrack_read_only"):
            writes.left -= 1
            query_only(conn, "ON")

    def on_rollback(conn) -> None:
        query_only(conn, "OFF")

    event.listen(world.store.engine, "begin", on_begin)
    event.listen(world.store.engine, "rollback", on_rollback)
    yield writes
    event.remove(world.store.engine, "begin", on_begin)
    event.remove(world.store.engine, "rollback", on_rollback)


def test_an_outcome_that_cannot_be_written_stops_the_pass_and_is_the_only_repeat(
    world, hook, clock, failing_writes, caplog
):
    from sqlalchemy.exc import OperationalError

    ingest_incidents(world, 3)

    def fail_the_next_write(request) -> None:
        hook.on_request = None
        failing_writes.left = 1  # the first delivery's outcome

    hook.on_request = fail_the_next_write
    with pytest.raises(OperationalError, match="readonly database"):
        world.dispatcher.run_once()
    # Nothing was sent after the outcome that could not be written.
    (first,) = [notice_id(r) for r in hook.requests]
    assert "could not be recorded; the pass stops" in caplog.text
    rows = {r.id: r for r in notices(world)}
    assert {r.state for r in rows.values()} == {"pending"}
    # That notice keeps its lease; the others were handed back and go out at once.
    assert rows[first].lease_owner == world.dispatcher.owner
    assert all(r.lease_owner is None for i, r in rows.items() if i != first)
    assert world.dispatcher.run_once() == 4  # the other two streams; `first`'s waits behind it
    # Once the lease expires, it goes out again: the one repeat.
    clock.advance(world.settings.delivery.lease + timedelta(seconds=1))
    while world.dispatcher.run_once():
        pass
    assert {r.state for r in notices(world)} == {"delivered"}
    sent = [notice_id(r) for r in hook.requests]
    assert sorted(sent) == sorted([*rows, first])


def test_a_coalesced_stream_whose_newest_notice_fails_is_retried_together(world, hook, clock):
    from tests.payloads import am_alert, am_body

    type(world.dispatcher.providers["hook"]).coalesce = True
    try:
        labels = {"alertname": "A", "service": "checkout", "severity": "critical"}
        world.engine.ingest(alertmanager_parse(am_body([am_alert("c200000000000001", labels)], "g")))
        world.dispatcher.run_once()  # the acknowledgements
        for _ in range(3):
            clock.advance(timedelta(hours=1, minutes=1))
            world.scheduler.run_once()  # three updates per audience
        hook.requests.clear()
        hook.replies = [Reply(503), Reply(200)]
        world.dispatcher.run_once()
        rows = [r for r in notices(world) if r.phase == "update"]
        newest = max(r.id for r in rows if r.audience == "technical")
        assert [notice_id(r) for r in hook.requests] == [newest]
        by_id = {r.id: r for r in rows}
        retry_at = by_id[newest].due_at
        assert by_id[newest].state == "failed" and retry_at > clock.now()
        # The older technical updates wait for that retry; nothing of the stream overtakes it.
        for row in rows:
            if row.audience == "technical" and row.id != newest:
                assert (row.state, row.attempts, row.due_at) == ("pending", 0, retry_at)
        assert world.dispatcher.run_once() == 0
        clock.advance(retry_at - clock.now())
        world.dispatcher.run_once()
        sent = [__import__("json").loads(r.body) for r in hook.requests[1:]]
        assert [(s["audience"], s["phase"]) for s in sent] == [
            ("technical", "update"),
            ("business", "update"),
        ]
        assert {r.state for r in notices(world)} == {"delivered"}
    finally:
        type(world.dispatcher.providers["hook"]).coalesce = False


def test_stop_lets_the_delivery_in_flight_finish_and_hands_back_the_rest(world, hook):
    ingest_incidents(world, 3)
    arrived, release = threading.Event(), threading.Event()

    def hold_the_first(request) -> None:
        hook.on_request = None
        arrived.set()
        release.wait(10)

    hook.on_request = hold_the_first
    world.dispatcher.start()
    assert arrived.wait(10)
    stopper = threading.Thread(target=world.dispatcher.stop)
    stopper.start()  # as SIGTERM does, while the first delivery waits for its answer
    assert world.dispatcher._stop.wait(10)
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    (sent,) = [notice_id(r) for r in hook.requests]
    rows = {r.id: r for r in notices(world)}
    assert rows[sent].state == "delivered"
    assert [(r.state, r.lease_owner) for i, r in rows.items() if i != sent] == [("pending", None)] * 5
