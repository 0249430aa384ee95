"""Store semantics on both backends; PostgreSQL under concurrency from threads, stores and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, func, select, text

from adapter.app import create_app
from adapter.clock import FakeClock
from adapter.config import Settings
from adapter.metrics import Metrics
from adapter.sources import alertmanager
from adapter.store import Store, buckets, leases, outbox
from adapter.store import incidents as repo
from adapter.store.schema import inbound_events, incidents, metadata, notices, ref_counters
from tests.conftest import fixture_json, migrations_head

T = TypeVar("T")
NOW = datetime(2026, 11, 26, 14, 32, tzinfo=UTC)
on_postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def together(
    count: int, work: Callable[[int], T], timeout: float = 60, gates: tuple[threading.Barrier, ...] = ()
) -> list[T]:
    """Run work(0..count-1) on as many threads, released at the same instant; results in order.

    A failing worker breaks the `gates` the workers meet at, so the others stop instead of waiting.
    """
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait(timeout)
            results[index] = work(index)
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)
            for gate in gates:
                gate.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker is stuck"
    if errors:
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return results


def open_incident(conn: Connection, ref: str, at: datetime = NOW) -> int:
    return repo.insert_incident(
        conn,
        {
            "ref": ref,
            "title": f"Incident {ref}",
            "status": "investigating",
            "level": 3,
            "level_locked": False,
            "reopen_count": 0,
            "incident_type": "web",
            "services": ["checkout"],
            "unknown_services": [],
            "tenants": ["acme"],
            "source": "alertmanager",
            "opened_at": at,
            "updated_at": at,
        },
    )


def notice(incident_id: int, audience: str, at: datetime = NOW) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "provider": "status",
        "audience": audience,
        "phase": "acknowledgement",
        "tenant": None,
        "state": "pending",
        "attempts": 0,
        "subject": "s",
        "body": "b",
        "data": {},
        "created_at": at,
        "due_at": at,
        "dedupe_key": f"{incident_id}:{audience}",
    }


@pytest.fixture
def stores(make_store: Callable[[], Store]) -> Iterator[list[Store]]:
    """Eight stores on one database: eight processes, as far as the database can tell."""
    made = [make_store() for _ in range(8)]
    for store in made:
        store.ping()  # connected already, so the threads of a test start their work together
    yield made


# -- the same semantics on both backends ----------------------------------------------------------


def test_datetimes_go_in_and_come_out_aware_utc(store: Store):
    dublin = datetime(2026, 11, 26, 15, 32, tzinfo=UTC).astimezone()
    with store.transaction() as conn:
        incident_id = open_incident(conn, "INC-2026-0001", at=dublin)
    with store.read() as conn:
        row = repo.get_incident(conn, incident_id)
    assert row is not None
    assert row.opened_at == datetime(2026, 11, 26, 15, 32, tzinfo=UTC)
    assert row.opened_at.tzinfo is UTC


def test_refs_count_per_year_and_a_rolled_back_ref_is_given_back(store: Store):
    with store.transaction() as conn:
        assert [repo.next_ref(conn, 2026) for _ in range(3)] == [
            "INC-2026-0001",
            "INC-2026-0002",
            "INC-2026-0003",
        ]
        assert repo.next_ref(conn, 2027) == "INC-2027-0001"
    with pytest.raises(RuntimeError), store.transaction() as conn:
        assert repo.next_ref(conn, 2026) == "INC-2026-0004"
        raise RuntimeError("abandoned")
    with store.transaction() as conn:
        assert repo.next_ref(conn, 2026) == "INC-2026-0004"


def test_rolled_back_keeps_nothing_and_the_store_writes_on(store: Store):
    with store.rolled_back() as conn:
        open_incident(conn, repo.next_ref(conn, 2026))
        assert conn.execute(select(func.count()).select_from(incidents)).scalar() == 1
    with store.transaction() as conn:
        assert repo.next_ref(conn, 2026) == "INC-2026-0001"
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar() == 0


def test_seen_before_records_keys_once(store: Store):
    with store.transaction() as conn:
        assert repo.seen_before(conn, "pagerduty", ["w-1", "e-1", "e-1", ""], NOW) is False
        assert repo.seen_before(conn, "pagerduty", ["w-2", "e-1"], NOW) is True
        assert repo.seen_before(conn, "events", ["e-1"], NOW) is False
        assert repo.seen_before(conn, "pagerduty", [""], NOW) is False
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(inbound_events)).scalar() == 3


def test_lease_is_taken_renewed_refused_taken_over_and_released(store: Store):
    ttl = timedelta(seconds=30)
    with store.transaction() as conn:
        assert leases.acquire(conn, "scheduler", "a", NOW, ttl)
        assert leases.acquire(conn, "scheduler", "a", NOW + timedelta(seconds=10), ttl)
        assert not leases.acquire(conn, "scheduler", "b", NOW + timedelta(seconds=39), ttl)
        assert leases.acquire(conn, "scheduler", "b", NOW + timedelta(seconds=40), ttl)
        assert not leases.acquire(conn, "scheduler", "a", NOW + timedelta(seconds=41), ttl)
        leases.release(conn, "scheduler", "a")  # not the holder: no effect
        assert not leases.acquire(conn, "scheduler", "a", NOW + timedelta(seconds=42), ttl)
        leases.release(conn, "scheduler", "b")
        assert leases.acquire(conn, "scheduler", "a", NOW + timedelta(seconds=43), ttl)


def test_bucket_starts_full_refills_at_its_rate_and_never_overfills(store: Store):
    with store.transaction() as conn:
        assert [buckets.take(conn, "k", 2.0, 2, NOW) for _ in range(2)] == [0.0, 0.0]
        assert buckets.take(conn, "k", 2.0, 2, NOW) == pytest.approx(0.5)
        assert buckets.take(conn, "k", 2.0, 2, NOW + timedelta(seconds=0.5)) == 0.0
        later = NOW + timedelta(hours=1)
        assert [buckets.take(conn, "k", 2.0, 2, later) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


# -- PostgreSQL under concurrency -----------------------------------------------------------------


@on_postgresql
def test_refs_stay_unique_and_gapless_when_8_threads_open_incidents_at_once(stores: list[Store]):
    def work(index: int) -> list[str]:
        refs = []
        for _ in range(5):
            with stores[index].transaction() as conn:
                ref = repo.next_ref(conn, 2026)
                open_incident(conn, ref)
                refs.append(ref)
        return refs

    refs = [ref for batch in together(8, work) for ref in batch]
    assert sorted(refs) == [f"INC-2026-{n:04d}" for n in range(1, 41)]
    with stores[0].read() as conn:
        assert sorted(conn.execute(select(incidents.c.ref)).scalars()) == sorted(refs)


@on_postgresql
def test_refs_stay_gapless_outside_the_writer_lock_with_rollbacks(stores: list[Store]):
    """next_ref alone is safe: the counter row's lock orders takers, a rollback gives its number back."""

    def work(index: int) -> list[str]:
        kept = []
        for attempt in range(6):
            with stores[index].engine.connect() as conn:
                ref = repo.next_ref(conn, 2026)
                if (index + attempt) % 3 == 0:
                    conn.rollback()
                else:
                    conn.commit()
                    kept.append(ref)
        return kept

    refs = [ref for batch in together(8, work) for ref in batch]
    assert len(refs) == 32
    assert sorted(refs) == [f"INC-2026-{n:04d}" for n in range(1, 33)]
    with stores[0].read() as conn:
        assert conn.execute(select(ref_counters.c.last)).scalar_one() == 32


@on_postgresql
def test_two_replicas_ingesting_one_group_at_once_open_one_incident_with_one_set_of_notices(
    settings: Settings, make_store: Callable[[], Store], clock: FakeClock
):
    replicas = [
        create_app(settings, clock=clock, store=make_store(), metrics=Metrics()).extensions["dualtrack"]
        for _ in range(2)
    ]
    body = fixture_json("alertmanager/alertmanager-firing.json")
    results = together(2, lambda i: replicas[i].engine.ingest(alertmanager.parse(body)))
    assert sorted(r.refs for r in results) == [[], ["INC-2026-0001"]]
    assert sorted(r.duplicates for r in results) == [0, 2]
    with replicas[0].store.read() as conn:
        (incident,) = repo.list_incidents(conn)
        assert incident.ref == "INC-2026-0001"
        assert len(repo.alerts_of(conn, incident.id)) == 2
        sent = outbox.notices_of(conn, [incident.id])
    assert [(n.provider, n.audience, n.phase) for n in sent] == [
        ("status", "technical", "acknowledgement"),
        ("status", "business", "acknowledgement"),
    ]


@on_postgresql
def test_four_concurrent_claimers_never_claim_a_notice_twice(stores: list[Store]):
    with stores[0].transaction() as conn:
        for n in range(1, 31):
            incident_id = open_incident(conn, f"INC-2026-{n:04d}")
            outbox.insert_notices(conn, [notice(incident_id, "technical"), notice(incident_id, "business")])

    def work(index: int) -> list[int]:
        claimed: list[int] = []
        while batch := outbox.claim_due(stores[index], f"claimer-{index}", NOW, timedelta(minutes=5), 4):
            claimed += [row.id for row in batch]
        return claimed

    claims = together(4, work)
    everything = [notice_id for batch in claims for notice_id in batch]
    assert len(everything) == len(set(everything)) == 60
    with stores[0].read() as conn:
        owners = dict(conn.execute(select(notices.c.id, notices.c.lease_owner)).all())
    for index, batch in enumerate(claims):
        assert all(owners[notice_id] == f"claimer-{index}" for notice_id in batch)


@on_postgresql
def test_claim_due_skips_notices_another_transaction_holds_instead_of_waiting(stores: list[Store]):
    with stores[0].transaction() as conn:
        first, second = open_incident(conn, "INC-2026-0001"), open_incident(conn, "INC-2026-0002")
        outbox.insert_notices(conn, [notice(first, "technical"), notice(second, "technical")])
    with stores[1].engine.connect() as holder:
        holder.execute(select(notices.c.id).where(notices.c.incident_id == first).with_for_update())
        # Were the locked rows waited for, this would hang until `together` gives up.
        (claimed,) = together(1, lambda _: outbox.claim_due(stores[2], "c", NOW, timedelta(minutes=5), 9), 20)
        holder.rollback()
    assert [row.incident_id for row in claimed] == [second]


@on_postgresql
@pytest.mark.parametrize("serialized", [True, False], ids=["in-transaction", "bare-connection"])
def test_one_lease_owner_at_a_time(stores: list[Store], serialized: bool):
    ttl = timedelta(seconds=30)
    rounds = 5
    gate = threading.Barrier(8)

    def work(index: int) -> list[bool]:
        won = []
        for r in range(rounds):
            gate.wait(30)
            now = NOW + r * 2 * ttl  # every round starts with the last round's lease expired
            store = stores[index]
            with store.transaction() if serialized else store.engine.begin() as conn:
                won.append(leases.acquire(conn, "scheduler", f"owner-{index}", now, ttl))
        return won

    results = together(8, work, gates=(gate,))
    for r in range(rounds):
        assert sum(won[r] for won in results) == 1, f"round {r}"
    with stores[0].read() as conn:
        holder = conn.execute(text("SELECT owner FROM leases WHERE name = 'scheduler'")).scalar_one()
    assert results[int(holder.removeprefix("owner-"))][-1] is True


@on_postgresql
@pytest.mark.parametrize("serialized", [True, False], ids=["in-transaction", "bare-connection"])
def test_a_bucket_token_is_spent_once(stores: list[Store], serialized: bool):
    def work(index: int) -> list[float]:
        waits = []
        for _ in range(3):
            store = stores[index]
            with store.transaction() if serialized else store.engine.begin() as conn:
                waits.append(buckets.take(conn, "provider:key", 1e-6, 5, NOW))
        return waits

    waits = [wait for batch in together(8, work) for wait in batch]
    assert waits.count(0.0) == 5


@on_postgresql
def test_an_event_id_is_new_to_exactly_one_of_many_concurrent_receivers(stores: list[Store]):
    rounds = 5
    gate = threading.Barrier(8)

    def work(index: int) -> list[bool]:
        seen = []
        for r in range(rounds):
            gate.wait(30)
            with stores[index].engine.begin() as conn:  # even without the writer lock
                seen.append(repo.seen_before(conn, "pagerduty", [f"webhook-{r}", f"event-{r}"], NOW))
        return seen

    results = together(8, work, gates=(gate,))
    for r in range(rounds):
        assert sorted(seen[r] for seen in results) == [False] + [True] * 7, f"round {r}"


def _empty_schema(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def _at_head(store: Store) -> bool:
    with store.read() as conn:
        query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        tables = set(conn.execute(text(query)).scalars())
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return tables == {*metadata.tables, "alembic_version"} and versions == [migrations_head()]


@on_postgresql
def test_two_processes_migrating_at_once_both_succeed(storage_url: str):
    store = Store(storage_url)
    try:
        _empty_schema(store)
        script = (
            "import sys; from adapter.store import Store; s = Store(sys.argv[1]); s.migrate(); s.dispose()"
        )
        runs = [subprocess.Popen([sys.executable, "-c", script, storage_url]) for _ in range(2)]
        assert [run.wait(60) for run in runs] == [0, 0]
        assert _at_head(store)
    finally:
        store.dispose()


@on_postgresql
def test_stores_migrating_at_once_in_one_process_both_succeed(storage_url: str):
    stores = [Store(storage_url) for _ in range(3)]
    try:
        _empty_schema(stores[0])
        together(3, lambda i: stores[i].migrate())
        assert _at_head(stores[0])
    finally:
        for store in stores:
            store.dispose()
