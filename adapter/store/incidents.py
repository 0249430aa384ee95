"""Repository for incidents, their alerts and their timeline; every function takes a connection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from adapter.store.records import Alert, Incident, TimelineEntry
from adapter.store.schema import alerts, inbound_events, incidents, ref_counters, timeline, upsert

Row = dict[str, Any]
# "triage": open, but published nowhere until a human assigns services (or publishes it as is).
OPEN = ("triage", "investigating", "identified", "monitoring")
Kind = TypeVar("Kind", Incident, Alert, TimelineEntry)


def _all(conn: Connection, record: type[Kind], query: Any) -> list[Kind]:
    return [record.from_row(row) for row in conn.execute(query).mappings()]


def _first(conn: Connection, record: type[Kind], query: Any) -> Kind | None:
    row = conn.execute(query).mappings().first()
    return record.from_row(row) if row is not None else None


_NEXT_REF = {
    name: dialect.insert(ref_counters)
    .on_conflict_do_update(index_elements=[ref_counters.c.year], set_={"last": ref_counters.c.last + 1})
    .returning(ref_counters.c.last)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def next_ref(conn: Connection, year: int) -> str:
    """The next `INC-YYYY-NNNN`; gapless because it is taken inside the caller's transaction.

    One atomic upsert: concurrent callers queue on the counter row's lock (should writers not be
    serialized already), and a rolled-back caller gives its number back.
    """
    last = int(conn.execute(_NEXT_REF[conn.dialect.name], {"year": year, "last": 1}).scalar_one())
    return f"INC-{year}-{last:04d}"


# The ingest path's statements are built once; each call passes only its values, so SQLAlchemy
# finds them compiled in its cache without building and hashing a new statement (about 1 ms of a
# 4 ms webhook). Values of an UPDATE name the columns it sets.
_INSERT_INCIDENT = insert(incidents).returning(incidents.c.id)
_UPDATE_INCIDENT = update(incidents).where(incidents.c.id == bindparam("b_id"))
_INSERT_ALERT = insert(alerts).returning(alerts.c.id)
_UPDATE_ALERT = update(alerts).where(alerts.c.id == bindparam("b_id"))
_INSERT_TIMELINE = insert(timeline)
_FIND_ALERTS = select(alerts).where(
    alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    alerts.c.starts_at.in_(bindparam("starts", expanding=True)),
)
_ALERTS_OF = (
    select(alerts)
    .where(alerts.c.incident_id == bindparam("incident_id"))
    .order_by(alerts.c.starts_at, alerts.c.id)
)
_RELATED = (
    select(incidents, alerts.c.fingerprint.label("m_fingerprint"), alerts.c.group_key.label("m_group_key"))
    .join(alerts, alerts.c.incident_id == incidents.c.id)
    .where(
        or_(
            alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
            alerts.c.group_key.in_(bindparam("group_keys", expanding=True)),
        )
    )
    .where(or_(incidents.c.status.in_(OPEN), incidents.c.resolved_at >= bindparam("resolved_since")))
)


def insert_incident(conn: Connection, values: Row) -> int:
    return int(conn.execute(_INSERT_INCIDENT, values).scalar_one())


def update_incident(conn: Connection, incident: Incident, values: Row) -> Incident:
    """Store these values of the incident; the incident as updated."""
    conn.execute(_UPDATE_INCIDENT, {"b_id": incident.id, **values})
    return replace(incident, **values)


def current(resolved_since: datetime) -> ColumnElement[bool]:
    """Open incidents, and those resolved since the time: two indexed terms (status, resolved_at),
    so that older history is never read."""
    return or_(incidents.c.status.in_(OPEN), incidents.c.resolved_at >= resolved_since)


def get_incident(conn: Connection, incident_id: int) -> Incident | None:
    return _first(conn, Incident, select(incidents).where(incidents.c.id == incident_id))


def incidents_by_id(conn: Connection, incident_ids: Iterable[int]) -> list[Incident]:
    return _all(conn, Incident, select(incidents).where(incidents.c.id.in_(set(incident_ids))))


def get_incident_by_ref(conn: Connection, ref: str) -> Incident | None:
    return _first(conn, Incident, select(incidents).where(incidents.c.ref == ref))


def list_incidents(
    conn: Connection,
    status: str = "all",
    limit: int = 200,
    *,
    offset: int = 0,
    level: int | None = None,
    service: str | None = None,
    open_first: bool = False,
) -> list[Incident]:
    """Newest first (`open_first`: open ones before resolved ones); narrowed by level and service."""
    order = [incidents.c.opened_at.desc(), incidents.c.id.desc()]
    query = select(incidents)
    if status == "open":
        query = query.where(incidents.c.status.in_(OPEN))
    elif status == "resolved":
        query = query.where(incidents.c.status == "resolved")
    elif open_first:
        order.insert(0, (incidents.c.status == "resolved").asc())
    if level is not None:
        query = query.where(incidents.c.level == level)
    if service is not None:
        query = query.where(contains(conn, incidents.c.services, service))
    return _all(conn, Incident, query.order_by(*order).limit(limit).offset(offset))


def contains(conn: Connection, column: Any, value: str) -> ColumnElement[bool]:
    """The JSON array in `column` holds the string `value` (whole, not as a part of another)."""
    if conn.dialect.name == "postgresql":
        found: ColumnElement[bool] = cast(column, JSONB).has_key(value)
        return found
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


def open_levels(conn: Connection) -> list[tuple[int, int]]:
    """(id, level) of every open incident."""
    query = select(incidents.c.id, incidents.c.level).where(incidents.c.status.in_(OPEN))
    return [(int(r.id), int(r.level)) for r in conn.execute(query.order_by(incidents.c.id))]


def owing_after_resolution(
    conn: Connection,
    since: datetime,
    *,
    postmortem_before: datetime,
    postmortem_min_level: int,
    followup_before: datetime | None,
    followup_min_level: int,
) -> list[Incident]:
    """Incidents resolved since `since` that still owe a post-mortem reminder (resolved before
    `postmortem_before`, at `postmortem_min_level` or above, no post-mortem, not reminded yet) or
    SLA follow-ups (resolved before `followup_before`, at `followup_min_level` or above, none
    planned yet)."""

    def never(kind: str) -> Any:
        return ~exists().where(timeline.c.incident_id == incidents.c.id, timeline.c.kind == kind)

    owing = and_(
        incidents.c.postmortem_at.is_(None),
        incidents.c.resolved_at <= postmortem_before,
        incidents.c.level >= postmortem_min_level,
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
    return _all(conn, Incident, query.order_by(incidents.c.id))


def find_alerts(conn: Connection, instances: Iterable[tuple[str, str, datetime]]) -> list[Alert]:
    """The stored alerts of these instances, each (source, fingerprint, startsAt)."""
    wanted = set(instances)
    if not wanted:
        return []
    # One lookup of every fingerprint and start, sorted out here: a few rows more at most.
    values = {"fingerprints": sorted({f for _, f, _ in wanted}), "starts": sorted({s for _, _, s in wanted})}
    found = (Alert.from_row(row) for row in conn.execute(_FIND_ALERTS, values).mappings())
    return [a for a in found if (a.source, a.fingerprint, a.starts_at) in wanted]


@dataclass
class Related:
    """An incident new alerts may join, with the fingerprints and group keys it is known by."""

    incident: Incident
    fingerprints: set[str] = field(default_factory=set)
    group_keys: set[str] = field(default_factory=set)

    def rank(self, fingerprint: str) -> tuple[bool, bool, int]:
        """Open before resolved, then holding the fingerprint before sharing the group, then newest."""
        return (self.incident.status in OPEN, fingerprint in self.fingerprints, self.incident.id)


def related_incidents(
    conn: Connection, fingerprints: Iterable[str], group_keys: Iterable[str], resolved_since: datetime
) -> dict[int, Related]:
    """Incidents holding any of these fingerprints or group keys: open, or resolved since
    `resolved_since` (to reopen, not open anew); by incident id."""
    wanted = {
        "fingerprints": sorted(set(fingerprints)),
        "group_keys": sorted(set(group_keys)),
        "resolved_since": resolved_since,
    }
    out: dict[int, Related] = {}
    for row in conn.execute(_RELATED, wanted).mappings():
        values = dict(row)
        fingerprint, group_key = values.pop("m_fingerprint"), values.pop("m_group_key")
        related = out.setdefault(values["id"], Related(Incident.from_row(values)))
        related.fingerprints.add(fingerprint)
        related.group_keys.add(group_key)
    return out


def assign_services(conn: Connection, incident_id: int, services: list[str]) -> None:
    """A human's word on what the incident's alerts are about: every one of them names these."""
    conn.execute(update(alerts).where(alerts.c.incident_id == incident_id).values(services=services))


def open_since(conn: Connection, since: datetime) -> list[Incident]:
    """Open incidents opened at `since` or later, oldest first."""
    query = select(incidents).where(incidents.c.status.in_(OPEN), incidents.c.opened_at >= since)
    return _all(conn, Incident, query.order_by(incidents.c.opened_at, incidents.c.id))


def insert_alert(conn: Connection, values: Row) -> int:
    return int(conn.execute(_INSERT_ALERT, values).scalar_one())


def update_alert(conn: Connection, alert_id: int, values: Row) -> None:
    conn.execute(_UPDATE_ALERT, {"b_id": alert_id, **values})


def resolve_alerts(conn: Connection, incident_id: int, source: str, now: datetime) -> None:
    """End the incident's firing alerts from `source`."""
    conn.execute(
        update(alerts)
        .where(alerts.c.incident_id == incident_id, alerts.c.source == source, alerts.c.status == "firing")
        .values(status="resolved", ends_at=now, updated_at=now)
    )


def alerts_of(conn: Connection, incident_id: int) -> list[Alert]:
    return [Alert.from_row(row) for row in conn.execute(_ALERTS_OF, {"incident_id": incident_id}).mappings()]


def add_timeline(
    conn: Connection, incident_id: int, at: datetime, kind: str, message: str, **data: Any
) -> None:
    conn.execute(
        _INSERT_TIMELINE,
        {"incident_id": incident_id, "at": at, "kind": kind, "message": message, "data": data},
    )


def timeline_of(conn: Connection, incident_id: int) -> list[TimelineEntry]:
    query = select(timeline).where(timeline.c.incident_id == incident_id)
    return _all(conn, TimelineEntry, query.order_by(timeline.c.at, timeline.c.id))


def overlapping(conn: Connection, start: datetime, end: datetime) -> list[Incident]:
    """Incidents open at some moment in [start, end)."""
    # Opened before `end` is checked here, or the database would walk the history by opening time.
    query = select(incidents).where(current(start))
    return [incident for incident in _all(conn, Incident, query) if incident.opened_at < end]


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
    statement = upsert(conn, inbound_events).on_conflict_do_nothing().returning(inbound_events.c.key)
    inserted = conn.execute(statement, [{"source": source, "key": k, "received_at": now} for k in wanted])
    return len(list(inserted)) < len(wanted)


def forget_inbound_events(conn: Connection, before: datetime) -> int:
    """Delete the event ids recorded before `before`; how many there were."""
    return int(conn.execute(delete(inbound_events).where(inbound_events.c.received_at < before)).rowcount)


def find_firing(conn: Connection, source: str, fingerprint: str) -> Alert | None:
    """The firing instance of an alert whose identity does not include its start (PagerDuty, Events)."""
    query = (
        select(alerts)
        .where(alerts.c.source == source, alerts.c.fingerprint == fingerprint, alerts.c.status == "firing")
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    return _first(conn, Alert, query)


def latest_alert(conn: Connection, source: str, fingerprint: str) -> Alert | None:
    query = (
        select(alerts)
        .where(alerts.c.source == source, alerts.c.fingerprint == fingerprint)
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    return _first(conn, Alert, query)


def open_group_keys(conn: Connection) -> list[tuple[str, int]]:
    """(group key, incident id) of every alert in an open incident."""
    query = (
        select(alerts.c.group_key, alerts.c.incident_id)
        .join(incidents, incidents.c.id == alerts.c.incident_id)
        .where(incidents.c.status.in_(OPEN))
        .distinct()
    )
    return [(r.group_key, r.incident_id) for r in conn.execute(query)]


def firing_alerts_of_open_incidents(conn: Connection, sources: tuple[str, ...]) -> list[Alert]:
    query = (
        select(alerts)
        .join(incidents, incidents.c.id == alerts.c.incident_id)
        .where(incidents.c.status.in_(OPEN), alerts.c.status == "firing", alerts.c.source.in_(sources))
        .order_by(alerts.c.incident_id, alerts.c.id)
    )
    return _all(conn, Alert, query)
