"""SQLite specifics of the Store: durable commits, the write lock, and readers beside a writer."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter.store import Store


@pytest.fixture
def sqlite_store(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/dualtrack.db")
    store.migrate()
    yield store
    store.dispose()


def test_sqlite_syncs_its_wal_at_every_commit_unless_told_normal(sqlite_store, tmp_path):
    with sqlite_store.transaction() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store = Store(f"sqlite:///{tmp_path}/dualtrack.db", sqlite_synchronous="NORMAL")
    try:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    finally:
        store.dispose()


def test_a_write_transaction_holds_the_write_lock_from_its_start(sqlite_store, tmp_path):
    """BEGIN IMMEDIATE: no writer finds the lock taken halfway through (no SQLITE_BUSY deadlocks)."""
    other = sqlite3.connect(tmp_path / "dualtrack.db", timeout=0, isolation_level=None)
    try:
        with sqlite_store.transaction(), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free once committed
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_reader_neither_waits_for_nor_blocks_a_writer(sqlite_store, tmp_path):
    other = Store(f"sqlite:///{tmp_path}/dualtrack.db")
    try:
        with sqlite_store.transaction() as conn:
            conn.execute(text("INSERT INTO leases (name, owner, expires_at) VALUES ('a', 'w', '2026-01-01')"))
            # Another process reads while the write is open: it sees the last commit, at once.
            with other.read() as reader:
                assert reader.execute(text("SELECT count(*) FROM leases")).scalar() == 0
        # And a writer goes ahead while a reader's transaction is open.
        done = threading.Event()
        with other.read() as reader:
            reader.execute(text("SELECT count(*) FROM leases")).scalar()

            def write() -> None:
                with sqlite_store.transaction() as conn:
                    conn.execute(
                        text("INSERT INTO leases (name, owner, expires_at) VALUES ('b', 'w', '2026-01-01')")
                    )
                done.set()

            thread = threading.Thread(target=write)
            thread.start()
            assert done.wait(5)
            thread.join()
    finally:
        other.dispose()


def test_an_incidents_held_notices_are_found_through_its_own_index(sqlite_store):
    """Suppressing on resolve must not scan every held notice of every incident under the lock."""
    from sqlalchemy import event

    from adapter.store import outbox

    statements: list[tuple[str, tuple[object, ...]]] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE notices"):
            statements.append((statement, parameters))

    event.listen(sqlite_store.engine, "before_cursor_execute", note)
    try:
        with sqlite_store.rolled_back() as conn:
            outbox.suppress_held(conn, 1, {("status", "technical", None)})
    finally:
        event.remove(sqlite_store.engine, "before_cursor_execute", note)
    ((sql, parameters),) = statements
    with sqlite_store.read() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "ix_notices_incident_state (incident_id=? AND state=?)" in details


def test_datetimes_are_stored_as_sqlalchemys_own_text_and_read_back_aware():
    """The one-step conversion writes what SQLAlchemy's DATETIME wrote (older databases read the
    same, and text order stays time order) and reads any of SQLite's datetime texts."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from adapter.store.schema import UTCDateTime

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect)
    bind, result = ours.bind_processor(dialect), ours.result_processor(dialect, None)
    theirs = DateTime().dialect_impl(dialect)
    their_bind, their_result = theirs.bind_processor(dialect), theirs.result_processor(dialect, None)
    dublin = timezone(timedelta(hours=1))
    for moment in (
        datetime(2026, 11, 30, 14, 5, 18, 37001, tzinfo=UTC),
        datetime(2026, 11, 30, 14, 5, 18, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2026, 3, 29, 1, 30, tzinfo=dublin),
        datetime(1, 1, 1, tzinfo=UTC),
    ):
        stored = bind(moment)
        assert stored == their_bind(moment.astimezone(UTC).replace(tzinfo=None))
        assert result(stored) == moment and result(stored).tzinfo is UTC
    for text_ in ("2026-11-30 14:05:18", "2026-11-30 14:05:18.5", "2026-11-30T14:05:18.000001"):
        assert result(text_) == their_result(text_).replace(tzinfo=UTC)
    assert bind(None) is None and result(None) is None
    with pytest.raises(ValueError, match="naive"):
        bind(datetime(2026, 11, 30))
