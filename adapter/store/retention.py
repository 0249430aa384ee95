"""Retention: the texts of incidents resolved long ago removed, what uptime and SLA figures need kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from adapter.store.schema import alerts, incidents, notices

REMOVED = "This notice's text was removed after the retention period."


def prune(conn: Connection, resolved_before: datetime, now: datetime, limit: int) -> int:
    """Remove the notice texts and alert annotations of up to `limit` incidents resolved before
    `resolved_before`, oldest first; how many incidents were pruned.

    Incidents keep their rows (times, levels, services, tenants: the uptime bars and SLA figures),
    and notices their subjects, states and times. SQLite reuses the freed pages: the file stops
    growing rather than shrinking (VACUUM shrinks it).
    """
    query = (
        select(incidents.c.id)
        .where(incidents.c.pruned_at.is_(None), incidents.c.resolved_at < resolved_before)
        .order_by(incidents.c.resolved_at)
        .limit(limit)
    )
    ids = list(conn.execute(query).scalars())
    if ids:
        conn.execute(update(notices).where(notices.c.incident_id.in_(ids)).values(body=REMOVED))
        conn.execute(update(alerts).where(alerts.c.incident_id.in_(ids)).values(annotations={}))
        conn.execute(update(incidents).where(incidents.c.id.in_(ids)).values(pruned_at=now))
    return len(ids)
