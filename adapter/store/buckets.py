"""Token buckets in the database, so a provider's rate limit holds across workers and replicas."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from adapter.store.schema import rate_buckets


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
