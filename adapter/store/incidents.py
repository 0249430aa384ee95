"""Repository for incidents, their alerts and their timeline; every function takes a connection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.schema import alerts, inbound_events, incidents, ref_counters, timeline

Row = dict[str, Any]
OPEN = ("investigating", "identified", "monitoring")

# Built once: the webhook path runs these on every request, and building is most of their cost.
_INSERT_INCIDENT = insert(incidents)
_UPDATE_INCIDENT = update(incidents).where(incidents.c.id == bindparam("b_id"))
_GET_INCIDENT = select(incidents).where(incidents.c.id == bindparam("b_id"))
_INSERT_ALERT = insert(alerts)
_UPDATE_ALERT = update(alerts).where(alerts.c.id == bindparam("b_id"))
_ALERTS_OF = (
    select(alerts).where(alerts.c.incident_id == bindparam("b_id")).order_by(alerts.c.starts_at, alerts.c.id)
)
_FIND_ALERT = select(alerts).where(
    alerts.c.source == bindparam("source"),
    alerts.c.fingerprint == bindparam("fingerprint"),
    alerts.c.starts_at == bindparam("starts_at"),
)
_FP = bindparam("fingerprint", type_=alerts.c.fingerprint.type)
_RELATED = (
    select(incidents, func.max(case((alerts.c.fingerprint == _FP, 1), else_=0)).label("by_fingerprint"))
    .join(alerts, alerts.c.incident_id == incidents.c.id)
    .where(or_(alerts.c.fingerprint == _FP, alerts.c.group_key.in_(bindparam("group_keys", expanding=True))))
    .where(or_(incidents.c.status.in_(OPEN), incidents.c.resolved_at >= bindparam("since")))
    .group_by(incidents.c.id)
)
_INSERT_TIMELINE = insert(timeline)
_TIMELINE_OF = (
    select(timeline).where(timeline.c.incident_id == bindparam("b_id")).order_by(timeline.c.at, timeline.c.id)
)


def _one(conn: Connection, query: Any, params: Row | None = None) -> Row | None:
    row = conn.execute(query, params).mappings().first()
    return dict(row) if row is not None else None


def _all(conn: Connection, query: Any, params: Row | None = None) -> list[Row]:
    return [dict(row) for row in conn.execute(query, params).mappings()]


def _upsert(conn: Connection, table: Any) -> Any:
    """INSERT … ON CONFLICT for the connection's dialect (both speak the same clause)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def next_ref(conn: Connection, year: int) -> str:
    """The next `INC-YYYY-NNNN`; gapless because it is taken inside the caller's transaction.

    One atomic upsert: concurrent callers queue on the counter row's lock (should writers not be
    serialized already), and a rolled-back caller gives its number back.
    """
    statement = _upsert(conn, ref_counters).values(year=year, last=1)
    statement = statement.on_conflict_do_update(
        index_elements=[ref_counters.c.year], set_={"last": ref_counters.c.last + 1}
    ).returning(ref_counters.c.last)
    last = int(conn.execute(statement).scalar_one())
    return f"INC-{year}-{last:04d}"


def insert_incident(conn: Connection, values: Row) -> int:
    return int(conn.execute(_INSERT_INCIDENT, values).inserted_primary_key[0])  # type: ignore[index]


def update_incident(conn: Connection, incident_id: int, values: Row) -> None:
    conn.execute(_UPDATE_INCIDENT, {"b_id": incident_id, **values})


def get_incident(conn: Connection, incident_id: int) -> Row | None:
    return _one(conn, _GET_INCIDENT, {"b_id": incident_id})


def incidents_by_id(conn: Connection, incident_ids: Iterable[int]) -> list[Row]:
    return _all(conn, select(incidents).where(incidents.c.id.in_(list(incident_ids))))


def get_incident_by_ref(conn: Connection, ref: str) -> Row | None:
    return _one(conn, select(incidents).where(incidents.c.ref == ref))


def list_incidents(conn: Connection, status: str = "all", limit: int = 200) -> list[Row]:
    query = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    if status == "open":
        query = query.where(incidents.c.status.in_(OPEN))
    elif status == "resolved":
        query = query.where(incidents.c.status == "resolved")
    return _all(conn, query.limit(limit))


def incidents_for_page(conn: Connection, resolved_since: datetime) -> list[Row]:
    """Open incidents, then those resolved since the given time, newest first within each."""
    query = (
        select(incidents)
        .where(
            or_(
                incidents.c.status.in_(OPEN),
                and_(incidents.c.status == "resolved", incidents.c.resolved_at >= resolved_since),
            )
        )
        .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    )
    rows = _all(conn, query)
    return [r for r in rows if r["status"] != "resolved"] + [r for r in rows if r["status"] == "resolved"]


def find_alert(conn: Connection, source: str, fingerprint: str, starts_at: datetime) -> Row | None:
    return _one(conn, _FIND_ALERT, {"source": source, "fingerprint": fingerprint, "starts_at": starts_at})


def related_incident(
    conn: Connection, fingerprint: str, group_keys: list[str], resolved_since: datetime
) -> tuple[Row | None, bool]:
    """The incident a new alert belongs to, and whether it must be reopened.

    In order: the open incident holding the fingerprint, the open incident of the group, then
    the same two among incidents resolved since `resolved_since` (to reopen, not open anew).
    """
    rows = _all(
        conn, _RELATED, {"fingerprint": fingerprint, "group_keys": group_keys, "since": resolved_since}
    )

    def rank(row: Row) -> tuple[bool, bool, int]:
        return (row["status"] in OPEN, bool(row["by_fingerprint"]), row["id"])

    if not rows:
        return None, False
    best = max(rows, key=rank)
    best.pop("by_fingerprint")
    return best, best["status"] not in OPEN


def insert_alert(conn: Connection, values: Row) -> int:
    return int(conn.execute(_INSERT_ALERT, values).inserted_primary_key[0])  # type: ignore[index]


def update_alert(conn: Connection, alert_id: int, values: Row) -> None:
    conn.execute(_UPDATE_ALERT, {"b_id": alert_id, **values})


def alerts_of(conn: Connection, incident_id: int) -> list[Row]:
    return _all(conn, _ALERTS_OF, {"b_id": incident_id})


def add_timeline(
    conn: Connection, incident_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    conn.execute(
        _INSERT_TIMELINE,
        {"incident_id": incident_id, "at": at, "kind": kind, "message": message, "data": data},
    )


def timeline_of(conn: Connection, incident_id: int) -> list[Row]:
    return _all(conn, _TIMELINE_OF, {"b_id": incident_id})


def resolved_between(conn: Connection, start: datetime, end: datetime) -> list[Row]:
    query = select(incidents).where(
        incidents.c.status == "resolved", incidents.c.resolved_at >= start, incidents.c.resolved_at < end
    )
    return _all(conn, query.order_by(incidents.c.id))


def overlapping(conn: Connection, start: datetime, end: datetime) -> list[Row]:
    """Incidents open at some moment in [start, end)."""
    query = select(incidents).where(
        incidents.c.opened_at < end, or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= start)
    )
    return _all(conn, query)


def has_timeline(conn: Connection, incident_id: int, kind: str) -> bool:
    query = select(timeline.c.id).where(timeline.c.incident_id == incident_id, timeline.c.kind == kind)
    return conn.execute(query.limit(1)).first() is not None


def seen_before(conn: Connection, source: str, keys: list[str], now: datetime) -> bool:
    """Record these event ids; True when any of them was recorded before.

    A key another transaction records at the same moment counts as seen, not as an error.
    """
    wanted = sorted({k[:255] for k in keys if k})
    if not wanted:
        return False
    known = conn.execute(
        select(inbound_events.c.key).where(
            inbound_events.c.source == source, inbound_events.c.key.in_(wanted)
        )
    ).first()
    if known is not None:
        return True
    statement = _upsert(conn, inbound_events).on_conflict_do_nothing().returning(inbound_events.c.key)
    inserted = conn.execute(statement, [{"source": source, "key": k, "received_at": now} for k in wanted])
    return len(list(inserted)) < len(wanted)


def find_firing(conn: Connection, source: str, fingerprint: str) -> Row | None:
    """The firing instance of an alert whose identity does not include its start (PagerDuty, Events)."""
    query = (
        select(alerts)
        .where(alerts.c.source == source, alerts.c.fingerprint == fingerprint, alerts.c.status == "firing")
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    return _one(conn, query)


def latest_alert(conn: Connection, source: str, fingerprint: str) -> Row | None:
    query = (
        select(alerts)
        .where(alerts.c.source == source, alerts.c.fingerprint == fingerprint)
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    return _one(conn, query)


def open_group_keys(conn: Connection) -> list[tuple[str, int]]:
    """(group key, incident id) of every alert in an open incident."""
    query = (
        select(alerts.c.group_key, alerts.c.incident_id)
        .join(incidents, incidents.c.id == alerts.c.incident_id)
        .where(incidents.c.status.in_(OPEN))
        .distinct()
    )
    return [(r.group_key, r.incident_id) for r in conn.execute(query)]


def firing_alerts_of_open_incidents(conn: Connection, sources: tuple[str, ...]) -> list[Row]:
    query = (
        select(alerts)
        .join(incidents, incidents.c.id == alerts.c.incident_id)
        .where(incidents.c.status.in_(OPEN), alerts.c.status == "firing", alerts.c.source.in_(sources))
        .order_by(alerts.c.incident_id, alerts.c.id)
    )
    return _all(conn, query)
