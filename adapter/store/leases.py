"""Named leases: work that one process at a time may do (the scheduler), taken over on expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, update

from adapter.store.schema import leases, upsert


def acquire(conn: Connection, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; False while another owner holds an unexpired one.

    One atomic upsert, so two takers racing for a free or expired lease cannot both win, even
    outside the serialized write transaction.
    """
    take = upsert(conn, leases).values(name=name, owner=owner, expires_at=now + ttl)
    take_or_renew = take.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"owner": take.excluded.owner, "expires_at": take.excluded.expires_at},
        where=or_(leases.c.owner == owner, leases.c.expires_at <= now),
    )
    return conn.execute(take_or_renew.returning(leases.c.name)).first() is not None


def release(conn: Connection, name: str, owner: str) -> None:
    conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.owner == owner)
        .values(expires_at=datetime.fromtimestamp(0).astimezone())
    )
