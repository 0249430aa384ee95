"""The outbox: notices written with the incident change, claimed under a lease, marked after delivery."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapter.store.db import Store
from adapter.store.schema import notices

Row = dict[str, Any]
WAITING = ("pending", "failed")
# A notice in one of these states holds back later notices of its (incident, provider, tenant).
UNFINISHED = ("held", "pending", "failed")


def insert_notices(conn: Connection, rows: list[Row]) -> list[Row]:
    """Insert notices in one statement; those whose dedupe key exists already are skipped.

    Returns the rows inserted: a key that exists means the event was planned before.
    """
    if not rows:
        return []
    statement = (
        (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(notices)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(notices.c.dedupe_key)
    )
    inserted = {row.dedupe_key for row in conn.execute(statement, rows)}
    return [row for row in rows if row["dedupe_key"] in inserted]


def notices_of(conn: Connection, incident_ids: Iterable[int]) -> list[Row]:
    ids = list(incident_ids)
    if not ids:
        return []
    query = select(notices).where(notices.c.incident_id.in_(ids)).order_by(notices.c.created_at, notices.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def published(conn: Connection, incident_ids: Iterable[int], providers: Iterable[str]) -> list[Row]:
    """Delivered notices of the given providers, oldest first."""
    ids, names = list(incident_ids), list(providers)
    if not ids or not names:
        return []
    query = (
        select(notices)
        .where(
            notices.c.incident_id.in_(ids),
            notices.c.provider.in_(names),
            notices.c.state == "delivered",
        )
        .order_by(notices.c.delivered_at, notices.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def stream_of(notice: Mapping[str, Any]) -> tuple[int, str, str | None]:
    """Notices of one stream go out in the order they were written."""
    return (notice["incident_id"], notice["provider"], notice["tenant"])


def claim_due(store: Store, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Row]:
    """Lease up to `limit` due notices, in order: each stream from its oldest unfinished notice on.

    A stream's notices are claimed only as a prefix of its unfinished ones, so a notice never
    overtakes an earlier one that is held, waiting for a retry, or leased elsewhere.
    """
    with store.transaction() as conn:
        due = (
            select(notices.c.incident_id)
            .where(
                notices.c.state.in_(WAITING),
                notices.c.due_at <= now,
                or_(notices.c.lease_until.is_(None), notices.c.lease_until < now),
            )
            .order_by(notices.c.due_at, notices.c.id)
            .limit(limit)
        )
        incident_ids = set(conn.execute(due).scalars())
        if not incident_ids:
            return []
        unfinished = (
            select(notices)
            .where(notices.c.incident_id.in_(incident_ids), notices.c.state.in_(UNFINISHED))
            .order_by(notices.c.id)
        )
        if not store.is_sqlite:
            unfinished = unfinished.with_for_update(skip_locked=True)
        stopped: set[tuple[int, str, str | None]] = set()
        claimed: list[Row] = []
        for mapping in conn.execute(unfinished).mappings():
            row = dict(mapping)
            stream = stream_of(row)
            if stream in stopped:
                continue
            ready = (
                row["state"] in WAITING
                and row["due_at"] <= now
                and (row["lease_until"] is None or row["lease_until"] < now)
            )
            if not ready or len(claimed) >= limit:
                stopped.add(stream)
                continue
            claimed.append(row)
        if not claimed:
            return []
        ids = [row["id"] for row in claimed]
        conn.execute(
            update(notices).where(notices.c.id.in_(ids)).values(lease_owner=owner, lease_until=now + lease)
        )
        return [{**row, "lease_owner": owner, "lease_until": now + lease} for row in claimed]


def _finish(store: Store, notice_id: int, owner: str, values: Row) -> bool:
    with store.transaction() as conn:
        result = conn.execute(
            update(notices)
            .where(notices.c.id == notice_id, notices.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, **values)
        )
        return result.rowcount == 1


def mark_delivered(store: Store, notice_id: int, owner: str, now: datetime, ref: str) -> bool:
    return _finish(
        store,
        notice_id,
        owner,
        {
            "state": "delivered",
            "delivered_at": now,
            "provider_ref": ref,
            "attempts": notices.c.attempts + 1,
            "last_error": None,
        },
    )


def mark_retry(store: Store, notice_id: int, owner: str, due_at: datetime, error: str) -> bool:
    return _finish(
        store,
        notice_id,
        owner,
        {
            "state": "failed",
            "due_at": due_at,
            "attempts": notices.c.attempts + 1,
            "last_error": error,
        },
    )


def mark_dead(store: Store, notice_id: int, owner: str, error: str) -> bool:
    return _finish(
        store,
        notice_id,
        owner,
        {"state": "dead", "attempts": notices.c.attempts + 1, "last_error": error},
    )


def release(store: Store, notice_ids: Iterable[int], owner: str) -> None:
    """Give back leases on notices this owner claimed but did not start."""
    ids = list(notice_ids)
    if not ids:
        return
    with store.transaction() as conn:
        conn.execute(
            update(notices)
            .where(notices.c.id.in_(ids), notices.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def first_ref(conn: Connection, incident_id: int, provider: str, tenant: str | None) -> str | None:
    """The provider's id for this incident, from the first delivered notice of the stream."""
    query = (
        select(notices.c.provider_ref)
        .where(
            and_(
                notices.c.incident_id == incident_id,
                notices.c.provider == provider,
                notices.c.tenant.is_not_distinct_from(tenant),
                notices.c.state == "delivered",
            )
        )
        .order_by(notices.c.id)
        .limit(1)
    )
    return conn.execute(query).scalar()


def backlog(conn: Connection, now: datetime) -> tuple[int, float]:
    """How many notices wait for delivery, and the age in seconds of the oldest."""
    count, oldest = conn.execute(
        select(func.count(), func.min(notices.c.created_at)).where(notices.c.state.in_(WAITING))
    ).one()
    if oldest is None:
        return int(count), 0.0
    return int(count), max(0.0, (now - oldest).total_seconds())
