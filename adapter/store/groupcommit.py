"""Group commit: what concurrent writers of one process submit is applied in one transaction."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Connection

from adapter.store.db import Effect, Store, run_effects

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
# A bound on one shared transaction, so that no writer waits long behind a flood.
MAX_BATCH = 32


class _Submission(Generic[Item, Outcome]):
    __slots__ = ("error", "finished", "item", "outcome", "wake")

    def __init__(self, item: Item):
        self.item = item
        self.wake = threading.Event()
        self.finished = False
        self.outcome: Outcome | None = None
        self.error: Exception | None = None


class GroupCommit(Generic[Item, Outcome]):
    """`submit(item)` applies the item with `apply(conn, items)`, together with what else waits.

    `apply` takes items in submission order and returns one outcome each, as if each had been
    applied alone in that order. The first submitter leads: once it holds the write lock it takes
    the queue (its own item first), applies it in one transaction, hands the lead to the next
    waiter once committed, and syncs the commit while that one runs; the others sleep until their
    outcome is there and durable. One transaction, one commit and one WAL sync then serve every
    webhook that arrived while the previous one held the write lock, which the other writers of
    every process wait for.

    When a shared transaction fails, each of its items is applied again alone, so that only the
    submitter whose item fails sees the error.
    """

    def __init__(
        self,
        store: Store,
        apply: Callable[[Connection, list[Item]], list[Outcome]],
        *,
        max_batch: int = MAX_BATCH,
    ):
        self.store = store
        self.apply = apply
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Submission[Item, Outcome]] = []
        self._leading = False
        self.transactions = 0  # written by the leader only

    @property
    def waiting(self) -> int:
        """Items submitted and not yet taken into a transaction."""
        with self._mutex:
            return len(self._queue)

    def submit(self, item: Item) -> Outcome:
        mine: _Submission[Item, Outcome] = _Submission(item)
        with self._mutex:
            self._queue.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            mine.wake.wait()  # with its outcome, or to lead the next transaction
        if not mine.finished:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.outcome  # type: ignore[return-value]

    def _lead(self) -> None:
        group: list[_Submission[Item, Outcome]] = []
        effects: list[Effect] = []
        try:
            self._commit(group, effects)
        finally:
            # The next transaction may start while this one is synced: the sync needs no lock.
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
            if successor is not None:
                successor.wake.set()
            try:
                if any(s.finished and s.error is None for s in group):
                    self.store.sync()
                # The logs and metrics of what is stored (and of nothing else), before anyone hears.
                run_effects(effects)
            except OSError as exc:  # committed, but not known to be durable: nobody hears "done"
                for submission in group:
                    if submission.error is None:
                        submission.error = exc
            finally:
                for submission in group:
                    if not submission.finished:  # the leader was interrupted (BaseException)
                        submission.error = RuntimeError("the shared write transaction was interrupted")
                        submission.finished = True
                    submission.wake.set()

    def _commit(self, group: list[_Submission[Item, Outcome]], effects: list[Effect]) -> None:
        """Take the queue into `group` once the write lock is held, and apply it."""

        def take() -> list[Item]:
            # Taken only now: whatever arrived while the leader waited for the lock joins.
            with self._mutex:
                group.extend(self._queue[: self.max_batch])
                del self._queue[: self.max_batch]
            return [s.item for s in group]

        try:
            outcomes = self._transaction(take, effects)
        except Exception as exc:
            if not group:  # failed before taking anything: each then tries alone
                take()
            if len(group) == 1:
                group[0].error, group[0].finished = exc, True
                return
            for submission in group:
                try:
                    (submission.outcome,) = self._transaction(
                        functools.partial(list, [submission.item]), effects
                    )
                except Exception as alone:
                    submission.error = alone
                submission.finished = True
            return
        for submission, outcome in zip(group, outcomes, strict=True):
            submission.outcome, submission.finished = outcome, True

    def _transaction(self, items: Callable[[], list[Item]], effects: list[Effect]) -> list[Outcome]:
        with self.store.transaction(sync=False, effects=effects) as conn:
            taken = items()
            self.transactions += 1
            outcomes = self.apply(conn, taken)
            if len(outcomes) != len(taken):
                raise RuntimeError(f"apply returned {len(outcomes)} outcomes for {len(taken)} items")
        return outcomes
