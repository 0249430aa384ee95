"""Reads for the public status pages, each bounded by what a page shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, literal, or_, select

from adapter.store.incidents import contains, current
from adapter.store.records import IncidentSpan, PageIncident, PageNotice
from adapter.store.schema import incidents, notices

# Titles and subjects are one line on a page: longer ones are cut there.
LINE_CHARS = 300


@dataclass(frozen=True)
class Readers:
    """Who reads a page: the audiences it shows, the built-in providers publishing to it, and the
    tenant whose page it is (None: a public page) with its time zone."""

    audiences: tuple[str, ...]
    providers: tuple[str, ...]
    tenant: str | None = None
    zone: str | None = None


def _published(readers: Readers) -> Any:
    """Notices these readers may see: delivered by a built-in page, in their audience, meant for
    everyone or for their tenant."""
    meant_for: Any = notices.c.tenant.is_(None)
    if readers.tenant is not None:
        meant_for = or_(meant_for, notices.c.tenant == readers.tenant)
    return and_(
        notices.c.provider.in_(readers.providers),
        notices.c.state == "delivered",
        notices.c.audience.in_(readers.audiences),
        meant_for,
    )


def _affects(conn: Connection, tenant: str) -> Any:
    """The incident lists `tenant` among those it affects (a JSON array in the row)."""
    return contains(conn, incidents.c.tenants, tenant)


def _visible(conn: Connection, readers: Readers) -> Any:
    """Incidents these readers may see: with a notice published to them, affecting their tenant."""
    clause: Any = exists().where(notices.c.incident_id == incidents.c.id, _published(readers))
    if readers.tenant is not None:
        clause = and_(clause, _affects(conn, readers.tenant))
    return clause


_IS_OPEN = case((incidents.c.status == "resolved", 0), else_=1)
_INCIDENT_COLUMNS = (
    incidents.c.id,
    incidents.c.ref,
    func.substr(incidents.c.title, 1, LINE_CHARS + 1).label("title"),
    incidents.c.status,
    incidents.c.level,
    incidents.c.services,
    incidents.c.opened_at,
    incidents.c.resolved_at,
    incidents.c.updated_at,
)


def _notice_columns(readers: Readers, body_chars: int | None) -> tuple[Any, ...]:
    """A notice as a page shows it: in the readers' time zone where it was written in it too (see
    engine.planning._zoned), subject and body cut in the query at LINE_CHARS and `body_chars`
    (one character more tells a cut one), or whole (None)."""
    subject: Any = notices.c.subject
    body: Any = notices.c.body
    if readers.zone is not None:
        subject = func.coalesce(notices.c.data[("zoned", readers.zone, "subject")].as_string(), subject)
        body = func.coalesce(notices.c.data[("zoned", readers.zone, "body")].as_string(), body)
    if body_chars is not None:
        subject = func.substr(subject, 1, LINE_CHARS + 1)
        body = func.substr(body, 1, body_chars + 1)
    return (
        notices.c.id,
        notices.c.incident_id,
        notices.c.audience,
        notices.c.phase,
        subject.label("subject"),
        body.label("body"),
        notices.c.delivered_at,
    )


def counts(conn: Connection, readers: Readers, resolved_since: datetime) -> tuple[int, int]:
    """(open, all) incidents on the readers' pages: open ones, and those resolved since the time."""
    query = select(func.coalesce(func.sum(_IS_OPEN), 0), func.count()).where(
        current(resolved_since), _visible(conn, readers)
    )
    open_count, total = conn.execute(query).one()
    return int(open_count), int(total)


def current_incidents(
    conn: Connection, readers: Readers, resolved_since: datetime, *, limit: int, offset: int = 0
) -> list[PageIncident]:
    """One page of the readers' incidents: open first, then resolved since the time, newest first
    within each; titles cut at LINE_CHARS (one more character tells a cut one)."""
    query = (
        select(*_INCIDENT_COLUMNS)
        .where(current(resolved_since), _visible(conn, readers))
        .order_by(_IS_OPEN.desc(), incidents.c.opened_at.desc(), incidents.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [PageIncident.from_row(row) for row in conn.execute(query).mappings()]


def incident(conn: Connection, readers: Readers, ref: str) -> PageIncident | None:
    """The incident if these readers may see it, whenever it was resolved."""
    query = select(*_INCIDENT_COLUMNS).where(incidents.c.ref == ref, _visible(conn, readers))
    rows = conn.execute(query).mappings().all()
    return PageIncident.from_row(rows[0]) if rows else None


def latest_notices(
    conn: Connection,
    readers: Readers,
    incident_ids: Sequence[int],
    *,
    count: int,
    skip: int = 0,
    body_chars: int,
) -> list[PageNotice]:
    """Per incident and audience, the published notices ranked `skip + 1` to `skip + count` from
    the newest, oldest first; each with `total`, how many its incident and audience has.

    A page reads no more of a notice than it shows (see `_notice_columns`).
    """
    if not incident_ids:
        return []
    per_stream = (notices.c.incident_id, notices.c.audience)
    ranked = (
        select(
            notices.c.id,
            func.row_number()
            .over(partition_by=per_stream, order_by=(notices.c.delivered_at.desc(), notices.c.id.desc()))
            .label("rank"),
            func.count().over(partition_by=per_stream).label("total"),
        )
        .where(notices.c.incident_id.in_(list(incident_ids)), _published(readers))
        .subquery()
    )
    query = (
        select(*_notice_columns(readers, body_chars), ranked.c.total)
        .join(ranked, ranked.c.id == notices.c.id)
        .where(ranked.c.rank > skip, ranked.c.rank <= skip + count)
        .order_by(notices.c.incident_id, notices.c.delivered_at, notices.c.id)
    )
    return [PageNotice.from_row(row) for row in conn.execute(query).mappings()]


def notice(conn: Connection, readers: Readers, notice_id: int) -> PageNotice | None:
    """One notice published to these readers, in full, if they may see its incident."""
    query = (
        select(*_notice_columns(readers, None), literal(1).label("total"))
        .join(incidents, incidents.c.id == notices.c.incident_id)
        .where(notices.c.id == notice_id, _published(readers))
    )
    if readers.tenant is not None:
        query = query.where(_affects(conn, readers.tenant))
    rows = conn.execute(query).mappings().all()
    return PageNotice.from_row(rows[0]) if rows else None


def incident_by_id(conn: Connection, incident_id: int) -> PageIncident | None:
    rows = conn.execute(select(*_INCIDENT_COLUMNS).where(incidents.c.id == incident_id)).mappings().all()
    return PageIncident.from_row(rows[0]) if rows else None


def history(conn: Connection, start: datetime, end: datetime) -> list[IncidentSpan]:
    """What uptime bars need of the incidents open at some moment in [start, end)."""
    query = select(
        incidents.c.services,
        incidents.c.status,
        incidents.c.level,
        incidents.c.opened_at,
        incidents.c.resolved_at,
        incidents.c.updated_at,
    ).where(current(start))
    # Opened before `end` is checked here: in the query it would lead the database to walk the
    # whole history by its opening time instead of the open and recently resolved incidents.
    spans = [IncidentSpan.from_row(row) for row in conn.execute(query).mappings()]
    return [span for span in spans if span.opened_at < end]
