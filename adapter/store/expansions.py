"""Expansions: events whose per-tenant notices are written after the transaction that planned them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from adapter.store.records import Expansion
from adapter.store.schema import expansions


def add(
    conn: Connection, incident_id: int, phase: str, event: str, options: dict[str, Any], now: datetime
) -> None:
    values = {"incident_id": incident_id, "phase": phase, "event": event, "options": options}
    conn.execute(insert(expansions).values(**values, created_at=now, after=None))


def oldest(conn: Connection) -> Expansion | None:
    """The expansion to work on: events are expanded in the order they were planned, so each
    tenant's notices are written in order too."""
    row = conn.execute(select(expansions).order_by(expansions.c.id).limit(1)).mappings().first()
    return Expansion.from_row(row) if row is not None else None


def advance(conn: Connection, expansion_id: int, after: str) -> None:
    """The notices of tenants up to `after` (by id) are written."""
    conn.execute(update(expansions).where(expansions.c.id == expansion_id).values(after=after))


def finish(conn: Connection, expansion_id: int) -> None:
    conn.execute(delete(expansions).where(expansions.c.id == expansion_id))


def pending(conn: Connection) -> int:
    """How many events still have per-tenant notices to write."""
    return int(conn.execute(select(func.count()).select_from(expansions)).scalar_one())
