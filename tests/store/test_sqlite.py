"""SQLite specifics of the Store: group commit through the WAL, and readers beside a writer."""

from __future__ import annotations

import fcntl
import os
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


def _lock_is_free(lock_path: str) -> bool:
    with open(lock_path, "ab") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True


def test_full_syncs_the_wal_after_commit_and_outside_the_write_lock(sqlite_store, tmp_path, monkeypatch):
    database = tmp_path / "dualtrack.db"
    wal_inode = None
    synced: list[tuple[bool, bool]] = []  # (the WAL, the lock free) per fsync
    real_fsync = os.fdatasync

    def fsync(fd: int) -> None:
        nonlocal wal_inode
        real_fsync(fd)
        wal_inode = os.stat(f"{database}-wal").st_ino
        synced.append((os.fstat(fd).st_ino == wal_inode, _lock_is_free(f"{database}.lock")))

    with sqlite_store.transaction() as conn:
        # SQLite itself does not sync at commit: the writer does, after the lock is released.
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    monkeypatch.setattr(os, "fdatasync", fsync)
    with sqlite_store.transaction() as conn:
        conn.execute(text("INSERT INTO leases (name, owner, expires_at) VALUES ('x', 'y', '2026-01-01')"))
        assert synced == []  # nothing synced before the commit
    assert synced and synced[0] == (True, True)
    # The commit is in the WAL that was synced.
    other = Store(f"sqlite:///{database}")
    try:
        with other.read() as conn:
            assert conn.execute(text("SELECT owner FROM leases")).scalar() == "y"
    finally:
        other.dispose()


def test_normal_never_syncs_from_the_writer(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/dualtrack.db", sqlite_synchronous="NORMAL")
    try:
        store.migrate()
        calls: list[int] = []
        monkeypatch.setattr(os, "fsync", calls.append)
        monkeypatch.setattr(os, "fdatasync", calls.append)
        with store.transaction() as conn:
            conn.execute(text("INSERT INTO leases (name, owner, expires_at) VALUES ('x', 'y', '2026-01-01')"))
        assert calls == []
    finally:
        store.dispose()


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


def test_the_wal_is_checkpointed_off_the_writers_path_so_it_stops_growing(
    sqlite_store, tmp_path, monkeypatch
):
    from adapter.store import db

    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 10)
    checkpointers: list[threading.Thread] = []  # the thread of each checkpoint
    real = sqlite_store._checkpoint

    def checkpoint() -> None:
        checkpointers.append(threading.current_thread())
        real()

    monkeypatch.setattr(sqlite_store, "_checkpoint", checkpoint)
    with sqlite_store.transaction() as conn:
        # SQLite's own checkpoints would run inside a commit, under the write lock.
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    blob = "x" * 8192
    for n in range(300):
        with sqlite_store.transaction() as conn:
            conn.execute(
                text("INSERT INTO leases (name, owner, expires_at) VALUES (:n, :o, '2026-01-01')"),
                {"n": f"lease-{n}", "o": blob},
            )
    # 300 commits of over 8 KiB each: without checkpoints the WAL grows past 2.4 MB.
    assert os.path.getsize(f"{tmp_path}/dualtrack.db-wal") < 600_000
    sqlite_store.dispose()  # lets a checkpoint in progress finish
    # Asked for every 10 commits (asks while one runs are served by the next), never by a writer.
    assert 3 <= len(checkpointers) <= 30
    assert {t.name for t in checkpointers} == {"dualtrack-checkpointer"}


def test_the_wal_is_reused_while_other_writers_never_stop(sqlite_store, tmp_path, monkeypatch):
    """A checkpoint racing writers never copies all of the WAL, and only a fully copied WAL is
    reused: the last frames are copied holding the write lock."""
    from adapter.store import db

    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 5)
    other = Store(f"sqlite:///{tmp_path}/dualtrack.db")  # another worker process
    stop = threading.Event()
    blob = "x" * 8192
    written = [0]

    def keep_writing() -> None:
        while not stop.is_set():
            with other.transaction() as conn:
                conn.execute(
                    text("INSERT INTO leases (name, owner, expires_at) VALUES (:n, :o, '2026-01-01')"),
                    {"n": f"other-{written[0]}", "o": blob},
                )
            written[0] += 1

    real = sqlite_store._checkpoint
    racing = [0]

    def checkpoint_with_a_commit_in_between() -> None:
        before = written[0]
        real()
        racing[0] += written[0] > before

    monkeypatch.setattr(sqlite_store, "_checkpoint", checkpoint_with_a_commit_in_between)
    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        for n in range(200):
            with sqlite_store.transaction() as conn:
                conn.execute(
                    text("INSERT INTO leases (name, owner, expires_at) VALUES (:n, :o, '2026-01-01')"),
                    {"n": f"lease-{n}", "o": blob},
                )
        # Each commit writes over 8 KiB: a WAL never reused holds them all.
        commits = written[0] + 200
        assert os.path.getsize(f"{tmp_path}/dualtrack.db-wal") < commits * 8192 / 4, commits
    finally:
        stop.set()
        writer.join()
        other.dispose()
        sqlite_store.dispose()  # lets a checkpoint in progress finish
    assert racing[0] >= 5, "the other writer seldom committed during a checkpoint"


def test_an_incidents_held_notices_are_found_through_its_own_index(sqlite_store):
    """Suppressing on resolve must not scan every held notice of every incident under the lock."""
    from adapter.store.outbox import _SUPPRESS_HELD

    with sqlite_store.read() as conn:
        sql = str(_SUPPRESS_HELD.statement.compile(dialect=conn.dialect))
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("suppressed", "x", 1, "held")).fetchall()
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
