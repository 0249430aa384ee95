"""Named leases: work that one process at a time may do (the scheduler), taken over on expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from adapter.store.schema import leases


def acquire(conn: Connection, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; False while another owner holds an unexpired one."""
    row = conn.execute(select(leases).where(leases.c.name == name)).mappings().first()
    if row is None:
        conn.execute(insert(leases).values(name=name, owner=owner, expires_at=now + ttl))
        return True
    if row["owner"] != owner and row["expires_at"] > now:
        return False
    conn.execute(update(leases).where(leases.c.name == name).values(owner=owner, expires_at=now + ttl))
    return True


def release(conn: Connection, name: str, owner: str) -> None:
    conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.owner == owner)
        .values(expires_at=datetime.fromtimestamp(0).astimezone())
    )
