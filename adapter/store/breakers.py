"""Per-provider circuit breakers in the database, so every worker and replica backs off together."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from adapter.store.schema import breakers


def state(conn: Connection, provider: str) -> tuple[int, datetime | None]:
    """(consecutive failures, open until) for this provider; (0, None) when healthy."""
    row = conn.execute(select(breakers).where(breakers.c.provider == provider)).mappings().first()
    return (row["failures"], row["open_until"]) if row else (0, None)


def take_probe(conn: Connection, provider: str, now: datetime, probe_every: timedelta) -> bool:
    """While open: True for the one caller that may probe now (the next waits an interval)."""
    result = conn.execute(
        update(breakers)
        .where(breakers.c.provider == provider, breakers.c.open_until <= now)
        .values(open_until=now + probe_every)
    )
    return result.rowcount == 1


def record(
    conn: Connection,
    provider: str,
    *,
    reset: bool,
    failures: int,
    now: datetime,
    threshold: int,
    probe_every: timedelta,
) -> bool:
    """Count outcomes: `reset` after a success, then `failures` more; True when it opens now."""
    before, open_until = state(conn, provider)
    count = failures + (0 if reset else before)
    opening = count >= threshold
    values = {"failures": count, "open_until": (open_until or now + probe_every) if opening else None}
    if reset and opening:
        values["open_until"] = now + probe_every
    exists = conn.execute(select(breakers.c.provider).where(breakers.c.provider == provider)).first()
    if exists is None:
        conn.execute(insert(breakers).values(provider=provider, **values))
    else:
        conn.execute(update(breakers).where(breakers.c.provider == provider).values(**values))
    return opening and open_until is None


def open_providers(conn: Connection) -> list[str]:
    query = select(breakers.c.provider).where(breakers.c.open_until.is_not(None))
    return list(conn.execute(query).scalars())
