"""Storage: SQLAlchemy Core schema, repositories, the outbox, and migrations."""

from adapter.store.db import Store

__all__ = ["Store"]
