"""The audit trail: every human action appended, never changed; read by incident, author and time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from adapter.store.records import AuditEntry, Notice
from adapter.store.schema import audit


def append(
    conn: Connection,
    at: datetime,
    author: str,
    role: str,
    action: str,
    *,
    incident_id: int | None = None,
    ref: str | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(audit).values(
            at=at,
            author=author,
            role=role,
            action=action,
            incident_id=incident_id,
            ref=ref,
            changes=changes or {},
        )
    )


def entries(
    conn: Connection,
    *,
    ref: str | None = None,
    author: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 500,
) -> list[AuditEntry]:
    """Entries oldest first, at most `limit` of them, narrowed by incident ref, author and [start, end)."""
    query = select(audit).order_by(audit.c.at, audit.c.id).limit(limit)
    if ref is not None:
        query = query.where(audit.c.ref == ref)
    if author is not None:
        query = query.where(audit.c.author == author)
    if start is not None:
        query = query.where(audit.c.at >= start)
    if end is not None:
        query = query.where(audit.c.at < end)
    return [AuditEntry.from_row(row) for row in conn.execute(query).mappings()]


def notice_changes(notice: Notice) -> dict[str, Any]:
    """What an entry about a notice acted on records of it (a shared notice has no tenant)."""
    named = {
        "notice": notice.id,
        "provider": notice.provider,
        "audience": notice.audience,
        "phase": notice.phase,
        "tenant": notice.tenant,
    }
    return {key: value for key, value in named.items() if value is not None}
