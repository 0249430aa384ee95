"""Readers' answers to "Was this update helpful?", their detail requests, and what the report reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from adapter.store.records import Answer, DetailRequest, NoticeFacts
from adapter.store.schema import detail_requests, feedback, incidents, notices, upsert

_NOTICE = (
    notices.c.id,
    notices.c.incident_id,
    incidents.c.ref,
    incidents.c.incident_type,
    notices.c.provider,
    notices.c.audience,
    notices.c.phase,
    notices.c.tenant,
    notices.c.state,
    notices.c.data,
    notices.c.created_at,
    notices.c.delivered_at,
)


def _facts(row: Any) -> NoticeFacts:
    return NoticeFacts(**{column.name: row[column.name] for column in _NOTICE})


def notice_facts(conn: Connection, notice_id: int) -> NoticeFacts | None:
    query = select(*_NOTICE).join(incidents, incidents.c.id == notices.c.incident_id)
    row = conn.execute(query.where(notices.c.id == notice_id)).mappings().first()
    return _facts(row) if row is not None else None


def answer(
    conn: Connection,
    notice_id: int,
    incident_id: int,
    reader: str,
    segment: str,
    helpful: bool,
    now: datetime,
) -> bool:
    """Record the reader's answer, replacing an earlier one to the same notice; True if it is new."""
    key = and_(feedback.c.notice_id == notice_id, feedback.c.reader == reader)
    known = conn.execute(select(feedback.c.id).where(key)).first() is not None
    values = {
        "notice_id": notice_id,
        "incident_id": incident_id,
        "reader": reader,
        "segment": segment,
        "helpful": helpful,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(
        upsert(conn, feedback)
        .values(values)
        .on_conflict_do_update(
            index_elements=[feedback.c.notice_id, feedback.c.reader],
            set_={"helpful": helpful, "updated_at": now},
        )
    )
    return not known


def comment(conn: Connection, notice_id: int, reader: str, text: str, now: datetime) -> bool:
    """The reader's comment on their answer; False if they have not answered."""
    key = and_(feedback.c.notice_id == notice_id, feedback.c.reader == reader)
    done = conn.execute(update(feedback).where(key).values(comment=text, updated_at=now))
    return bool(done.rowcount)


def request_details(
    conn: Connection, notice_id: int, incident_id: int, tenant: str | None, segment: str, now: datetime
) -> None:
    values = {
        "notice_id": notice_id,
        "incident_id": incident_id,
        "tenant": tenant,
        "segment": segment,
        "at": now,
    }
    conn.execute(insert(detail_requests).values(values))


def answers(
    conn: Connection,
    start: datetime | None = None,
    end: datetime | None = None,
    incident_id: int | None = None,
) -> list[Answer]:
    """Answers given in [start, end), or to one incident's notices, with their notices."""
    query = (
        select(*_NOTICE, feedback.c.segment, feedback.c.helpful, feedback.c.comment)
        .join(notices, notices.c.id == feedback.c.notice_id)
        .join(incidents, incidents.c.id == notices.c.incident_id)
        .order_by(feedback.c.id)
    )
    if start is not None:
        query = query.where(feedback.c.created_at >= start)
    if end is not None:
        query = query.where(feedback.c.created_at < end)
    if incident_id is not None:
        query = query.where(feedback.c.incident_id == incident_id)
    rows = conn.execute(query).mappings()
    return [Answer(_facts(r), r["segment"], bool(r["helpful"]), r["comment"]) for r in rows]


def details_asked(conn: Connection, start: datetime, end: datetime) -> list[DetailRequest]:
    query = (
        select(incidents.c.ref, detail_requests.c.tenant, detail_requests.c.segment, detail_requests.c.at)
        .join(incidents, incidents.c.id == detail_requests.c.incident_id)
        .where(detail_requests.c.at >= start, detail_requests.c.at < end)
        .order_by(detail_requests.c.id)
    )
    return [DetailRequest.from_row(r) for r in conn.execute(query).mappings()]


def customer_notices(
    conn: Connection, start: datetime, end: datetime, phases: tuple[str, ...]
) -> list[NoticeFacts]:
    """Notices of `phases` written in [start, end): for deadlines kept and deliveries made."""
    query = (
        select(*_NOTICE)
        .join(incidents, incidents.c.id == notices.c.incident_id)
        .where(notices.c.created_at >= start, notices.c.created_at < end, notices.c.phase.in_(phases))
        .order_by(notices.c.id)
    )
    return [_facts(r) for r in conn.execute(query).mappings()]
