"""Retention: what incidents resolved long ago said removed, what uptime and SLA figures need kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from adapter.store.schema import alerts, detail_requests, feedback, incidents, notices, timeline


def prune(conn: Connection, resolved_before: datetime, now: datetime, limit: int) -> int:
    """Delete the notices (with their readers' feedback), alerts and timeline of up to `limit`
    incidents resolved before `resolved_before`, oldest first; how many incidents were pruned.

    The incidents' own rows stay (times, levels, services, tenants: what uptime bars and SLA
    figures are computed from). Whole rows go, not just their texts, because SQLite reuses the
    pages deleted rows leave, while a row made shorter keeps its page: the file stops growing
    rather than shrinking (VACUUM shrinks it).
    """
    query = (
        select(incidents.c.id)
        .where(incidents.c.pruned_at.is_(None), incidents.c.resolved_at < resolved_before)
        .order_by(incidents.c.resolved_at)
        .limit(limit)
    )
    ids = list(conn.execute(query).scalars())
    if ids:
        # What readers said of the notices goes with them (the report covers the retained period).
        for table in (feedback, detail_requests, notices, alerts, timeline):
            conn.execute(delete(table).where(table.c.incident_id.in_(ids)))
        conn.execute(update(incidents).where(incidents.c.id.in_(ids)).values(pruned_at=now))
    return len(ids)
