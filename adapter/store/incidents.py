"""Repository for incidents, their alerts and their timeline; every function takes a connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from adapter.store.schema import alerts, incidents, ref_counters, timeline

Row = dict[str, Any]
OPEN = ("investigating", "identified", "monitoring")


def _one(conn: Connection, query: Any) -> Row | None:
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def _all(conn: Connection, query: Any) -> list[Row]:
    return [dict(row) for row in conn.execute(query).mappings()]


def next_ref(conn: Connection, year: int) -> str:
    """The next `INC-YYYY-NNNN`; gapless because it is taken inside the caller's transaction."""
    last: int | None = conn.execute(
        update(ref_counters)
        .where(ref_counters.c.year == year)
        .values(last=ref_counters.c.last + 1)
        .returning(ref_counters.c.last)
    ).scalar()
    if last is None:
        last = 1
        conn.execute(insert(ref_counters).values(year=year, last=last))
    return f"INC-{year}-{last:04d}"


def insert_incident(conn: Connection, values: Row) -> int:
    return int(conn.execute(insert(incidents).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def update_incident(conn: Connection, incident_id: int, values: Row) -> None:
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))


def get_incident(conn: Connection, incident_id: int) -> Row | None:
    return _one(conn, select(incidents).where(incidents.c.id == incident_id))


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
    return _one(
        conn,
        select(alerts).where(
            alerts.c.source == source,
            alerts.c.fingerprint == fingerprint,
            alerts.c.starts_at == starts_at,
        ),
    )


def _incident_holding(conn: Connection, condition: Any, statuses: tuple[str, ...]) -> Row | None:
    query = (
        select(incidents)
        .join(alerts, alerts.c.incident_id == incidents.c.id)
        .where(condition, incidents.c.status.in_(statuses))
        .order_by(incidents.c.id.desc())
        .limit(1)
    )
    return _one(conn, query)


def open_incident_for(conn: Connection, fingerprint: str, group_key: str) -> Row | None:
    """The open incident that holds this fingerprint, else the one of this group."""
    return _incident_holding(conn, alerts.c.fingerprint == fingerprint, OPEN) or _incident_holding(
        conn, alerts.c.group_key == group_key, OPEN
    )


def reopenable_incident_for(
    conn: Connection, fingerprint: str, group_key: str, resolved_since: datetime
) -> Row | None:
    """A recently resolved incident of this fingerprint or group, to reopen instead of opening anew."""
    recent = incidents.c.resolved_at >= resolved_since
    for condition in (alerts.c.fingerprint == fingerprint, alerts.c.group_key == group_key):
        found = _incident_holding(conn, and_(condition, recent), ("resolved",))
        if found:
            return found
    return None


def insert_alert(conn: Connection, values: Row) -> int:
    return int(conn.execute(insert(alerts).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def update_alert(conn: Connection, alert_id: int, values: Row) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def alerts_of(conn: Connection, incident_id: int) -> list[Row]:
    return _all(
        conn,
        select(alerts).where(alerts.c.incident_id == incident_id).order_by(alerts.c.starts_at, alerts.c.id),
    )


def add_timeline(
    conn: Connection, incident_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    conn.execute(
        insert(timeline).values(incident_id=incident_id, at=at, kind=kind, message=message, data=data)
    )


def timeline_of(conn: Connection, incident_id: int) -> list[Row]:
    return _all(
        conn,
        select(timeline).where(timeline.c.incident_id == incident_id).order_by(timeline.c.at, timeline.c.id),
    )
