"""Repository for incidents, their alerts and their timeline; every function takes a connection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.prepared import Prepared, fetch_rows
from adapter.store.schema import alerts, inbound_events, incidents, ref_counters, timeline

Row = dict[str, Any]
OPEN = ("investigating", "identified", "monitoring")

# Built once: the webhook path runs these on every request, and building is most of their cost.
_INSERT_INCIDENT = Prepared(insert(incidents))
_UPDATE_INCIDENT = Prepared(update(incidents).where(incidents.c.id == bindparam("b_id")))
_GET_INCIDENT = Prepared(select(incidents).where(incidents.c.id == bindparam("b_id")))
_UPDATE_ALERT = Prepared(update(alerts).where(alerts.c.id == bindparam("b_id")))
_ALERTS_OF = Prepared(
    select(alerts).where(alerts.c.incident_id == bindparam("b_id")).order_by(alerts.c.starts_at, alerts.c.id)
)

OneOf = Callable[[Any, str], Any]


def _sqlite_one_of(column: Any, name: str) -> Any:
    return column.in_(select(func.json_each(bindparam(name, type_=JSON)).table_valued("value").c.value))


def _postgresql_one_of(column: Any, name: str) -> Any:
    return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))


def _per_dialect(build: Callable[[OneOf], Any]) -> dict[str, Prepared]:
    """A statement for each dialect, `build(one_of)` testing membership with `one_of(column, name)`.

    The list is bound as one parameter (a JSON array on SQLite, an array on PostgreSQL), so the
    statement's text is the same whatever the list's length: an IN list of one placeholder per
    value is rendered again on every run, and prepared again by the database for every length.
    """
    return {"sqlite": Prepared(build(_sqlite_one_of)), "postgresql": Prepared(build(_postgresql_one_of))}


_INCIDENTS_BY_ID = _per_dialect(lambda one_of: select(incidents).where(one_of(incidents.c.id, "ids")))
_ALERTS_OF_MANY = _per_dialect(
    lambda one_of: (
        select(alerts).where(one_of(alerts.c.incident_id, "ids")).order_by(alerts.c.starts_at, alerts.c.id)
    )
)
# Instances are matched exactly in Python: the range keeps the lookup to a few index entries.
_FIND_ALERTS = _per_dialect(
    lambda one_of: select(alerts).where(
        alerts.c.source == bindparam("source"),
        one_of(alerts.c.fingerprint, "fingerprints"),
        alerts.c.starts_at.between(bindparam("earliest"), bindparam("latest")),
    )
)
# Every alert of a joinable incident (open, or resolved recently enough to reopen) that shares a
# fingerprint or a group key with the batch, with its incident's columns.
_RELATED = _per_dialect(
    lambda one_of: (
        select(
            incidents, alerts.c.fingerprint.label("m_fingerprint"), alerts.c.group_key.label("m_group_key")
        )
        .join(alerts, alerts.c.incident_id == incidents.c.id)
        .where(or_(one_of(alerts.c.fingerprint, "fingerprints"), one_of(alerts.c.group_key, "group_keys")))
        # Open is every status but resolved; `status IN OPEN` would be an expanding parameter too.
        .where(or_(incidents.c.status != "resolved", incidents.c.resolved_at >= bindparam("since")))
    )
)
# PostgreSQL: matched back by instance, as keeping parameter order would cost a sort.
_INSERT_ALERTS_POSTGRESQL = insert(alerts).returning(
    alerts.c.id, alerts.c.source, alerts.c.fingerprint, alerts.c.starts_at
)
_INSERT_ALERTS_SQLITE = Prepared(insert(alerts))
_LAST_ROWID = Prepared(select(func.last_insert_rowid()))
_INSERT_TIMELINE = Prepared(insert(timeline))
_TIMELINE_OF = Prepared(
    select(timeline).where(timeline.c.incident_id == bindparam("b_id")).order_by(timeline.c.at, timeline.c.id)
)


def _one(conn: Connection, query: Any, params: Row | None = None) -> Row | None:
    row = conn.execute(query, params).mappings().first()
    return dict(row) if row is not None else None


def _upsert(conn: Connection, table: Any) -> Any:
    """INSERT … ON CONFLICT for the connection's dialect (both speak the same clause)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _next_ref_statement(insert_into: Any) -> Any:
    return (
        insert_into(ref_counters)
        .values(year=bindparam("b_year"), last=1)
        .on_conflict_do_update(index_elements=[ref_counters.c.year], set_={"last": ref_counters.c.last + 1})
        .returning(ref_counters.c.last)
    )


_NEXT_REF = {
    "postgresql": Prepared(_next_ref_statement(postgresql.insert)),
    "sqlite": Prepared(_next_ref_statement(sqlite.insert)),
}


def next_ref(conn: Connection, year: int) -> str:
    """The next `INC-YYYY-NNNN`; gapless because it is taken inside the caller's transaction.

    One atomic upsert: concurrent callers queue on the counter row's lock (should writers not be
    serialized already), and a rolled-back caller gives its number back.
    """
    last = int(_NEXT_REF[conn.dialect.name].scalar(conn, {"b_year": year}))
    return f"INC-{year}-{last:04d}"


def insert_incident(conn: Connection, values: Row) -> int:
    return _INSERT_INCIDENT.inserted_id(conn, values)


def update_incident(conn: Connection, incident_id: int, values: Row) -> None:
    _UPDATE_INCIDENT.run(conn, {"b_id": incident_id, **values})


def get_incident(conn: Connection, incident_id: int) -> Row | None:
    return _GET_INCIDENT.first(conn, {"b_id": incident_id})


def incidents_by_id(conn: Connection, incident_ids: Iterable[int]) -> list[Row]:
    return _INCIDENTS_BY_ID[conn.dialect.name].all(conn, {"ids": list(incident_ids)})


def get_incident_by_ref(conn: Connection, ref: str) -> Row | None:
    return _one(conn, select(incidents).where(incidents.c.ref == ref))


def list_incidents(conn: Connection, status: str = "all", limit: int = 200) -> list[Row]:
    query = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    if status == "open":
        query = query.where(incidents.c.status.in_(OPEN))
    elif status == "resolved":
        query = query.where(incidents.c.status == "resolved")
    return fetch_rows(conn, query.limit(limit))


def open_levels(conn: Connection) -> list[tuple[int, int]]:
    """(id, level) of every open incident."""
    query = select(incidents.c.id, incidents.c.level).where(incidents.c.status.in_(OPEN))
    return [(int(r.id), int(r.level)) for r in conn.execute(query.order_by(incidents.c.id))]


def owing_after_resolution(
    conn: Connection,
    since: datetime,
    *,
    postmortem_before: datetime,
    followup_before: datetime | None,
    followup_min_level: int,
) -> list[Row]:
    """Incidents resolved since `since` that still owe a post-mortem reminder (resolved before
    `postmortem_before`, no post-mortem, not reminded yet) or SLA follow-ups (resolved before
    `followup_before`, at `followup_min_level` or above, none planned yet)."""

    def never(kind: str) -> Any:
        return ~exists().where(timeline.c.incident_id == incidents.c.id, timeline.c.kind == kind)

    owing = and_(
        incidents.c.postmortem_at.is_(None),
        incidents.c.resolved_at <= postmortem_before,
        never("postmortem_overdue"),
    )
    if followup_before is not None:
        owing = or_(
            owing,
            and_(
                incidents.c.resolved_at <= followup_before,
                incidents.c.level >= followup_min_level,
                never("sla_followup"),
            ),
        )
    query = select(incidents).where(incidents.c.status == "resolved", incidents.c.resolved_at >= since, owing)
    return fetch_rows(conn, query.order_by(incidents.c.id))


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
    rows = fetch_rows(conn, query)
    return [r for r in rows if r["status"] != "resolved"] + [r for r in rows if r["status"] == "resolved"]


def find_alerts(
    conn: Connection, source: str, instances: Iterable[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Row]:
    """The stored alerts among these (fingerprint, startsAt) instances of one source, by instance."""
    wanted = set(instances)
    if not wanted:
        return {}
    params = {
        "source": source,
        "fingerprints": sorted({fp for fp, _ in wanted}),
        "earliest": min(start for _, start in wanted),
        "latest": max(start for _, start in wanted),
    }
    rows = _FIND_ALERTS[conn.dialect.name].all(conn, params)
    found = {(row["fingerprint"], row["starts_at"]): row for row in rows}
    return {key: row for key, row in found.items() if key in wanted}


@dataclass
class Related:
    """An incident new alerts may join, with the fingerprints and group keys it is known by."""

    incident: Row
    fingerprints: set[str] = field(default_factory=set)
    group_keys: set[str] = field(default_factory=set)

    def rank(self, fingerprint: str) -> tuple[bool, bool, int]:
        """Open before resolved, then holding the fingerprint before sharing the group, then newest."""
        return (self.incident["status"] in OPEN, fingerprint in self.fingerprints, self.incident["id"])


def related_incidents(
    conn: Connection, fingerprints: Iterable[str], group_keys: Iterable[str], resolved_since: datetime
) -> dict[int, Related]:
    """Incidents holding any of these fingerprints or group keys: open, or resolved since
    `resolved_since` (to reopen, not open anew); by incident id."""
    params = {
        "fingerprints": sorted(set(fingerprints)),
        "group_keys": sorted(set(group_keys)),
        "since": resolved_since,
    }
    out: dict[int, Related] = {}
    for row in _RELATED[conn.dialect.name].all(conn, params):
        fingerprint, group_key = row.pop("m_fingerprint"), row.pop("m_group_key")
        related = out.setdefault(row["id"], Related(row))
        related.fingerprints.add(fingerprint)
        related.group_keys.add(group_key)
    return out


def sqlite_inserted_ids(conn: Connection, statement: Prepared, rows: list[Row]) -> range:
    """Run an INSERT of `rows` (no RETURNING) on SQLite; the ids of the rows it inserted, in order.

    RETURNING over several rows costs SQLAlchemy twice what the plain statement does. SQLite gives
    a new row the id one above the largest in its table, so the rows one statement inserts have
    consecutive ids, ending at last_insert_rowid(); rows an ON CONFLICT skips take none.
    """
    count = statement.run(conn, rows)
    last = int(_LAST_ROWID.scalar(conn))
    return range(last - count + 1, last + 1)


def insert_alerts(conn: Connection, rows: list[Row]) -> list[int]:
    """Insert alerts in one statement; their ids, in the order given."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        return list(sqlite_inserted_ids(conn, _INSERT_ALERTS_SQLITE, rows))
    returned = conn.execute(_INSERT_ALERTS_POSTGRESQL, rows)
    ids = {(r.source, r.fingerprint, r.starts_at): int(r.id) for r in returned}
    return [ids[(row["source"], row["fingerprint"], row["starts_at"])] for row in rows]


def update_alert(conn: Connection, alert_id: int, values: Row) -> None:
    _UPDATE_ALERT.run(conn, {"b_id": alert_id, **values})


def update_alerts(conn: Connection, changes: list[tuple[int, Row]]) -> None:
    """Several alerts, each with the same columns changed, in one statement."""
    if changes:
        _UPDATE_ALERT.run(conn, [{"b_id": alert_id, **values} for alert_id, values in changes])


def alerts_of(conn: Connection, incident_id: int) -> list[Row]:
    return _ALERTS_OF.all(conn, {"b_id": incident_id})


def alerts_of_many(conn: Connection, incident_ids: list[int]) -> dict[int, list[Row]]:
    """`alerts_of` for several incidents in one query (none for an empty list)."""
    found: dict[int, list[Row]] = {}
    if incident_ids:
        for row in _ALERTS_OF_MANY[conn.dialect.name].all(conn, {"ids": incident_ids}):
            found.setdefault(row["incident_id"], []).append(row)
    return found


def add_timeline(
    conn: Connection, incident_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    _INSERT_TIMELINE.run(
        conn, {"incident_id": incident_id, "at": at, "kind": kind, "message": message, "data": data}
    )


def add_timeline_many(conn: Connection, rows: list[Row]) -> None:
    """Timeline entries (incident_id, at, kind, message, data) in one statement, in order."""
    if rows:
        _INSERT_TIMELINE.run(conn, rows)


def timeline_of(conn: Connection, incident_id: int) -> list[Row]:
    return _TIMELINE_OF.all(conn, {"b_id": incident_id})


def overlapping(conn: Connection, start: datetime, end: datetime) -> list[Row]:
    """Incidents open at some moment in [start, end)."""
    query = select(incidents).where(
        incidents.c.opened_at < end, or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= start)
    )
    return fetch_rows(conn, query)


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


def forget_inbound_events(conn: Connection, before: datetime) -> int:
    """Delete the event ids recorded before `before`; how many there were."""
    return int(conn.execute(delete(inbound_events).where(inbound_events.c.received_at < before)).rowcount)


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
    return fetch_rows(conn, query)
