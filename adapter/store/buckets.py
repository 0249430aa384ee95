"""Token buckets in the database, so a provider's rate limit holds across workers and replicas."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, update

from adapter.store.schema import rate_buckets

if TYPE_CHECKING:
    from adapter.store.db import Store


def take(conn: Connection, key: str, rate: float, burst: int, now: datetime) -> float:
    """Take one token; 0 when taken, else the seconds until one will be there (nothing taken)."""
    row = conn.execute(select(rate_buckets).where(rate_buckets.c.key == key)).mappings().first()
    if row is None:
        conn.execute(insert(rate_buckets).values(key=key, tokens=burst - 1, updated_at=now))
        return 0.0
    elapsed = max(0.0, (now - row["updated_at"]).total_seconds())
    tokens = min(float(burst), row["tokens"] + elapsed * rate)
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
    sleep: Callable[[float], object] = time.sleep,
) -> float:
    """Wait for a token, in real time; 0 once taken, else the wait that would pass max_wait."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    while True:
        with store.transaction() as conn:
            wait = take(conn, key, rate, burst, datetime.now(UTC))
        if wait <= 0:
            return 0.0
        if deadline is not None and time.monotonic() + wait > deadline:
            return wait
        sleep(wait)
