"""Prepared statements answer, write and fail exactly as conn.execute does, on SQLite's own cursor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, event, exc, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store import Store
from adapter.store.prepared import Prepared
from adapter.store.schema import alerts, inbound_events, incidents

T0 = datetime(2026, 11, 30, 9, 15, 30, 123456, tzinfo=UTC)
INCIDENT = {
    "ref": "INC-2026-0001",
    "title": "Checkout down",
    "status": "investigating",
    "level": 4,
    "incident_type": "web",
    "services": ["checkout", "search"],
    "unknown_services": [],
    "tenants": ["acme"],
    "source": "alertmanager",
    "opened_at": T0,
    "resolved_at": None,
    "updated_at": T0 + timedelta(seconds=1),
}
ALERT = {
    "source": "alertmanager",
    "fingerprint": "f1",
    "starts_at": T0,
    "ends_at": None,
    "status": "firing",
    "name": "HighErrorRate",
    "summary": "5xx above 5%",
    "group_key": '{}:{alertname="HighErrorRate"}',
    "level": 4,
    "services": ["checkout"],
    "labels": {"alertname": "HighErrorRate", "instance": "10.0.0.1:9100", "n": "é ✓"},
    "annotations": {"summary": "5xx above 5%"},
    "links": {},
    "updated_at": T0,
    "missing_since": None,
}
INSERT_INCIDENT = Prepared(insert(incidents))
INCIDENT_BY_ID = Prepared(select(incidents).where(incidents.c.id == bindparam("b_id")))
INSERT_ALERT = Prepared(insert(alerts))
FIRING_OF = Prepared(
    select(alerts, incidents.c.ref.label("m_ref"))
    .join(incidents, incidents.c.id == alerts.c.incident_id)
    .where(alerts.c.incident_id == bindparam("b_id"), alerts.c.status != "resolved")
    .order_by(alerts.c.id)
)
UPDATE_INCIDENT = Prepared(update(incidents).where(incidents.c.id == bindparam("b_id")))


@contextmanager
def only_on_the_cursor(conn: Connection) -> Iterator[None]:
    """On SQLite, fail anything that goes through conn.execute meanwhile: the cursor is used."""
    if conn.dialect.name != "sqlite":
        yield
        return

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("conn.execute was used")

    original = conn.execute
    conn.execute = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        conn.execute = original  # type: ignore[method-assign]


def test_rows_are_read_as_conn_execute_reads_them(store: Store):
    with store.transaction() as conn:
        incident_id = int(conn.execute(insert(incidents), INCIDENT).inserted_primary_key[0])
        conn.execute(insert(alerts), [{**ALERT, "incident_id": incident_id}])
        conn.execute(
            insert(alerts), [{**ALERT, "incident_id": incident_id, "fingerprint": "f2", "silenced": True}]
        )
        conn.execute(
            insert(alerts),
            [{**ALERT, "incident_id": incident_id, "fingerprint": "f3", "status": "resolved", "ends_at": T0}],
        )
        params = {"b_id": incident_id}
        want_incident = dict(conn.execute(INCIDENT_BY_ID.statement, params).mappings().one())
        want_alerts = [dict(r) for r in conn.execute(FIRING_OF.statement, params).mappings()]
        with only_on_the_cursor(conn):
            got_incident = INCIDENT_BY_ID.first(conn, params)
            got_alerts = FIRING_OF.all(conn, params)
            missing = INCIDENT_BY_ID.first(conn, {"b_id": incident_id + 100})
    assert got_incident == want_incident
    assert got_incident["opened_at"] == T0 and got_incident["opened_at"].tzinfo is not None
    assert got_incident["services"] == ["checkout", "search"] and got_incident["level_locked"] is False
    assert got_alerts == want_alerts
    assert [(a["fingerprint"], a["silenced"], a["m_ref"]) for a in got_alerts] == [
        ("f1", False, "INC-2026-0001"),
        ("f2", True, "INC-2026-0001"),
    ]
    assert got_alerts[0]["labels"]["n"] == "é ✓"
    assert missing is None


def test_rows_are_written_as_conn_execute_writes_them_defaults_included(store: Store):
    """`level_locked` and `reopen_count` are left out: their column defaults fill them in."""
    with store.transaction() as conn:
        reference = int(conn.execute(insert(incidents), INCIDENT).inserted_primary_key[0])
        with only_on_the_cursor(conn):
            ours = INSERT_INCIDENT.inserted_id(conn, {**INCIDENT, "ref": "INC-2026-0002"})
            changed = UPDATE_INCIDENT.run(conn, {"b_id": ours, "level": 5, "resolved_at": T0})
            UPDATE_INCIDENT.run(conn, {"resolved_at": None, "b_id": ours, "level": 4})  # another order
        rows = {r["id"]: dict(r) for r in conn.execute(select(incidents)).mappings()}
    assert changed == 1
    assert ours != reference
    expected = {**rows[reference], "id": ours, "ref": "INC-2026-0002"}
    assert rows[ours] == expected
    assert rows[ours]["level_locked"] is False and rows[ours]["reopen_count"] == 0


def test_many_rows_in_one_statement_count_only_those_that_went_in(store: Store):
    dialect = postgresql if store.is_postgresql else sqlite
    record = Prepared(dialect.insert(inbound_events).on_conflict_do_nothing())
    rows = [{"source": "pagerduty", "key": k, "received_at": T0} for k in ("a", "b", "c")]
    with store.transaction() as conn:
        with only_on_the_cursor(conn):
            first = record.run(conn, rows[:2])
            second = record.run(conn, rows)
        stored = sorted(conn.execute(select(inbound_events.c.key, inbound_events.c.received_at)).all())
    if store.is_sqlite:  # psycopg counts no rows for several parameter sets
        assert (first, second) == (2, 1)
    assert stored == [("a", T0), ("b", T0), ("c", T0)]


def test_a_statement_with_one_row_answers_its_value_and_refuses_none_or_several(store: Store):
    count_open = Prepared(select(incidents.c.ref).where(incidents.c.status != "resolved"))
    with store.transaction() as conn:
        with only_on_the_cursor(conn), pytest.raises(exc.NoResultFound):
            count_open.scalar(conn)
        INSERT_INCIDENT.run(conn, INCIDENT)
        with only_on_the_cursor(conn):
            assert count_open.scalar(conn) == "INC-2026-0001"
        INSERT_INCIDENT.run(conn, {**INCIDENT, "ref": "INC-2026-0002"})
        with only_on_the_cursor(conn), pytest.raises(exc.MultipleResultsFound):
            count_open.scalar(conn)


def test_database_errors_are_raised_as_sqlalchemy_raises_them(store: Store):
    with store.transaction() as conn:
        INSERT_INCIDENT.run(conn, INCIDENT)
        with only_on_the_cursor(conn), pytest.raises(exc.IntegrityError) as raised:
            INSERT_INCIDENT.run(conn, INCIDENT)  # the same ref again
        assert "ref" in str(raised.value.orig)
        conn.rollback()


def test_a_missing_parameter_is_an_error_naming_it(store: Store):
    with (
        store.transaction() as conn,
        only_on_the_cursor(conn),
        pytest.raises(exc.StatementError, match="b_id"),
    ):
        INCIDENT_BY_ID.all(conn)


def test_statement_listeners_see_every_statement(store: Store):
    """Tracing and tests that listen for SQLAlchemy's statement events still see these statements."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.transaction() as conn:
            incident_id = INSERT_INCIDENT.inserted_id(conn, INCIDENT)
            assert INCIDENT_BY_ID.first(conn, {"b_id": incident_id})["ref"] == "INC-2026-0001"  # type: ignore[index]
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert [s.split()[0] for s in seen if "incidents" in s] == ["INSERT", "SELECT"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_read_begins_the_transaction_its_next_reads_share(store: Store):
    """As conn.execute would: on SQLite one snapshot, however many writes commit between reads."""
    with store.read() as conn:
        assert INCIDENT_BY_ID.first(conn, {"b_id": 1}) is None
        assert conn.in_transaction()
        with store.transaction() as writer:
            INSERT_INCIDENT.run(writer, INCIDENT)
        assert INCIDENT_BY_ID.first(conn, {"b_id": 1}) is None
    with store.read() as conn:
        assert INCIDENT_BY_ID.first(conn, {"b_id": 1})["ref"] == "INC-2026-0001"  # type: ignore[index]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_statements_rendered_at_run_time_are_refused(store: Store):
    """An IN list is rendered anew for every length: such a statement gains nothing here."""
    by_refs = Prepared(select(incidents.c.id).where(incidents.c.ref.in_(["a", "b"])))
    with store.read() as conn, pytest.raises(ValueError, match="rendered at run time"):
        by_refs.all(conn)


def test_a_logged_database_error_carries_no_parameter_values(store: Store, caplog):
    import logging

    from adapter.store import incidents as repo
    from adapter.store.schema import timeline

    secret = "customer text 7f3a9"
    row = {"incident_id": 424242, "at": T0, "kind": "note", "message": secret, "data": {"x": secret}}
    log = logging.getLogger("test.database")
    # The incident does not exist: a foreign-key error, through the prepared path and conn.execute.
    for write in (repo.add_timeline, lambda conn, **values: conn.execute(insert(timeline), values)):
        with pytest.raises(exc.IntegrityError) as raised, store.transaction() as conn:
            write(conn, **row)
        log.error("write failed", exc_info=raised.value)
    assert caplog.text.count("write failed") == 2
    assert secret not in caplog.text
