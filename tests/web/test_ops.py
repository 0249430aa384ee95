"""/-/ready: a read of its own, never behind the write lock, 503 within about a second when the
database is locked or unreachable."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.store import Store
from tests.conftest import base_config
from tests.support.server import free_port

# A generous bound on the client side: the server's own timeouts are about a second; the old
# readiness check waited 30 s behind a writer.
CLIENT_TIMEOUT = 15


@pytest.fixture
def ask_ready(clock: Any) -> Iterator[Callable[..., Any]]:
    """GET /-/ready on an app over `store`, from another thread, waiting at most CLIENT_TIMEOUT."""
    with ThreadPoolExecutor(max_workers=1) as pool:

        def ask(settings: Any, store: Store) -> Any:
            client = create_app(settings, clock=clock, store=store, metrics=Metrics()).test_client()
            return pool.submit(client.get, "/-/ready").result(timeout=CLIENT_TIMEOUT)

        yield ask


def test_ready_answers_ok(settings, store, ask_ready):
    response = ask_ready(settings, store)
    assert response.status_code == 200
    assert response.text == "OK\n"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_ready_does_not_wait_for_a_writer(settings, store, ask_ready):
    """A write transaction holds the write lock (SQLite: BEGIN IMMEDIATE behind the file lock;
    PostgreSQL: the advisory lock) for as long as the check runs: it still answers 200."""
    with store.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version WHERE version_num = 'none'")
        response = ask_ready(settings, store)
    assert response.status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ready_is_503_while_another_connection_holds_an_exclusive_lock(settings, ask_ready):
    path = make_url(settings.storage.url).database
    assert path
    migrated = Store(settings.storage.url)
    migrated.migrate()
    migrated.dispose()
    # In WAL mode only a connection in EXCLUSIVE locking mode keeps readers out, and it must
    # take the lock while no other connection has the file open.
    locker = sqlite3.connect(path, isolation_level=None)
    store = Store(settings.storage.url)
    try:
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        locker.execute("DELETE FROM alembic_version WHERE version_num = 'none'")
        locked = ask_ready(settings, store)
        locker.execute("ROLLBACK")
        locker.close()
        released = ask_ready(settings, store)
    finally:
        locker.close()
        store.dispose()
    assert locked.status_code == 503
    assert locked.get_json()["error"]["code"] == "not_ready"
    assert released.status_code == 200


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ready_is_503_while_another_connection_locks_the_schema(settings, store, ask_ready):
    url = make_url(settings.storage.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as locker:
        locker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        locked = ask_ready(settings, store)
        locker.rollback()
        released = ask_ready(settings, store)
    assert locked.status_code == 503
    assert locked.get_json()["error"]["code"] == "not_ready"
    assert released.status_code == 200


def test_ready_is_503_when_postgresql_is_unreachable(make_settings, ask_ready, caplog):
    config = base_config()
    config["storage"]["url"] = (
        f"postgresql+psycopg://dualtrack:pw-not-logged@127.0.0.1:{free_port()}/dualtrack"
    )
    settings = make_settings(config)
    store = Store(settings.storage.url)
    try:
        response = ask_ready(settings, store)
    finally:
        store.dispose()
    assert response.status_code == 503
    assert response.get_json()["error"] == {
        "code": "not_ready",
        "message": "database unavailable",
        "details": [],
    }
    (line,) = [r.getMessage() for r in caplog.records if r.name == "adapter.web.ops"]
    assert line.startswith("not ready: PostgreSQL at 127.0.0.1:")
    assert "pw-not-logged" not in caplog.text
