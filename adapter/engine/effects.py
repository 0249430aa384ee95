"""What a write transaction asks to run once it has committed: logs, metrics, waking the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from adapter.store import Store

log = logging.getLogger(__name__)


class Effects:
    """Collected while a transaction runs, run by its caller once it has committed.

    Logs and metrics then describe only what was stored; a rolled-back transaction's are dropped.
    """

    def __init__(self) -> None:
        self._queued: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def add(self, effect: Callable[..., Any], *args: Any) -> None:
        self._queued.append((effect, args))

    def run(self) -> None:
        queued, self._queued = self._queued, []
        for effect, args in queued:
            try:
                effect(*args)
            except Exception:  # the transaction is committed: its caller must not hear otherwise
                log.exception("after-commit effect failed")


@contextmanager
def writing(store: Store) -> Iterator[tuple[Connection, Effects]]:
    """A write transaction and the effects its work collects, run once it has committed."""
    effects = Effects()
    with store.transaction() as conn:
        yield conn, effects
    effects.run()
