"""Token buckets in the database, so a provider's rate limit holds across workers and replicas."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from adapter.store.schema import rate_buckets, upsert

if TYPE_CHECKING:
    from adapter.clock import Clock
    from adapter.store.db import Store


def take(conn: Connection, key: str, rate: float, burst: int, now: datetime) -> float:
    """Take one token; 0 when taken, else the seconds until one will be there (nothing taken).

    A new bucket is created full (less the token taken) by an insert that yields to a concurrent
    one; an existing bucket is read under a row lock (PostgreSQL), so no two takers spend one token.
    """
    created = conn.execute(
        upsert(conn, rate_buckets)
        .values(key=key, tokens=burst - 1, updated_at=now)
        .on_conflict_do_nothing(index_elements=[rate_buckets.c.key])
        .returning(rate_buckets.c.key)
    ).first()
    if created is not None:
        return 0.0
    query = select(rate_buckets).where(rate_buckets.c.key == key).with_for_update()
    row = conn.execute(query).mappings().one()
    stored: float = row["tokens"]
    updated_at: datetime = row["updated_at"]
    tokens = min(float(burst), stored + max(0.0, (now - updated_at).total_seconds()) * rate)
    if tokens >= 1.0:
        conn.execute(
            update(rate_buckets).where(rate_buckets.c.key == key).values(tokens=tokens - 1, updated_at=now)
        )
        return 0.0
    return (1.0 - tokens) / rate


def acquire(
    store: Store,
    key: str,
    rate: float,
    burst: int,
    *,
    max_wait: float | None,
    clock: Clock,
    stop: threading.Event | None = None,
) -> float:
    """Wait on `clock` for a token; 0 once taken, else the wait that would pass max_wait (or `stop`)."""
    deadline = None if max_wait is None else clock.now() + timedelta(seconds=max_wait)
    while True:
        with store.transaction() as conn:
            wait = take(conn, key, rate, burst, clock.now())
        if wait <= 0:
            return 0.0
        if deadline is not None and clock.now() + timedelta(seconds=wait) > deadline:
            return wait
        if stop is not None and stop.is_set():
            return wait
        clock.sleep(wait, stop)
