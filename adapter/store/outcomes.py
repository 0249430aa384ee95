"""Delivery outcomes written as they come, those of concurrent deliveries in one transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from adapter.store import outbox
from adapter.store.db import Store


@dataclass
class _Entry:
    outcomes: list[outbox.Outcome]
    release: list[int]
    recorded: int = 0
    done: bool = False
    error: BaseException | None = None


class Recorder:
    """`record()` returns once its outcomes are written, so a crash repeats at most the deliveries
    in flight. A caller that finds no write under way writes what every caller is waiting for:
    eight senders share one transaction (and one fsync) rather than queue for eight.
    """

    def __init__(self, store: Store, owner: str):
        self.store = store
        self.owner = owner
        self._changed = threading.Condition()
        self._waiting: list[_Entry] = []
        self._writing = False

    def record(self, outcomes: list[outbox.Outcome], release: Iterable[int] = ()) -> int:
        """Write the outcomes and give back the leases of `release`; how many outcomes were
        recorded (see outbox.finish). Raises what the write raised."""
        entry = _Entry(outcomes, list(release))
        with self._changed:
            self._waiting.append(entry)
            while self._writing and not entry.done:
                self._changed.wait()
            if not entry.done:
                self._writing = True
                batch, self._waiting = self._waiting, []
        if not entry.done:
            self._write(batch)
        if entry.error is not None:
            raise entry.error
        return entry.recorded

    def _write(self, batch: list[_Entry]) -> None:
        error: BaseException | None = None
        recorded: set[int] = set()
        try:
            outcomes = [outcome for entry in batch for outcome in entry.outcomes]
            release = [notice_id for entry in batch for notice_id in entry.release]
            recorded = outbox.finish(self.store, self.owner, outcomes, release)
        except BaseException as exc:
            error = exc
        with self._changed:
            for entry in batch:
                entry.recorded = sum(outcome.notice_id in recorded for outcome in entry.outcomes)
                entry.error, entry.done = error, True
            self._writing = False
            self._changed.notify_all()
