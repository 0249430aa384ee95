"""Group commit: concurrent submissions share one transaction, and one failure stays its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection

from adapter.store import Store
from adapter.store import incidents as repo
from adapter.store.groupcommit import GroupCommit
from tests.support.server import wait_until

Work = Callable[[Connection], Any]


def apply_each(conn: Connection, items: list[Work]) -> list[Any]:
    return [item(conn) for item in items]


def take_ref(conn: Connection) -> str:
    return repo.next_ref(conn, 2026)


def refuse(conn: Connection) -> str:
    take_ref(conn)  # written, then rolled back with the failure
    raise ValueError("this item is refused")


class Submitter(threading.Thread):
    def __init__(self, group: GroupCommit[Work, Any], item: Work):
        super().__init__(daemon=True)
        self.group, self.item = group, item
        self.outcome: Any = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.outcome = self.group.submit(self.item)
        except Exception as exc:
            self.error = exc


def queue_behind_a_busy_leader(
    group: GroupCommit[Work, Any], items: list[Work]
) -> tuple[Submitter, list[Submitter], threading.Event]:
    """A leader stuck inside its transaction, and `items` submitted in order behind it."""
    inside, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> str:
        inside.set()
        assert release.wait(10)
        return take_ref(conn)

    leader = Submitter(group, slow)
    leader.start()
    assert inside.wait(10)
    waiting = []
    for n, item in enumerate(items, start=1):
        waiting.append(Submitter(group, item))
        waiting[-1].start()
        wait_until(lambda n=n: group.waiting == n, timeout=10, interval=0.005, message="a queued submission")
    return leader, waiting, release


def test_a_lone_submission_is_applied_in_its_own_transaction(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    assert group.submit(take_ref) == "INC-2026-0001"
    assert group.submit(take_ref) == "INC-2026-0002"
    assert group.transactions == 2
    assert group.waiting == 0


def test_submissions_waiting_behind_a_transaction_share_the_next_one_in_order(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    leader, waiting, release = queue_behind_a_busy_leader(group, [take_ref] * 3)
    release.set()
    for submitter in [leader, *waiting]:
        submitter.join(10)
    assert leader.outcome == "INC-2026-0001"
    assert [s.outcome for s in waiting] == ["INC-2026-0002", "INC-2026-0003", "INC-2026-0004"]
    assert group.transactions == 2  # the leader's, then one for all three
    with store.read() as conn:
        assert take_ref(conn) == "INC-2026-0005"  # all four committed


def test_a_failing_item_fails_alone_and_the_others_commit(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    leader, waiting, release = queue_behind_a_busy_leader(group, [take_ref, refuse, take_ref])
    release.set()
    for submitter in [leader, *waiting]:
        submitter.join(10)
    first, refused, last = waiting
    assert isinstance(refused.error, ValueError) and refused.outcome is None
    assert first.error is None and last.error is None
    # The shared transaction rolled back; each item then ran alone, in order.
    assert [first.outcome, last.outcome] == ["INC-2026-0002", "INC-2026-0003"]
    assert group.transactions == 1 + 1 + 3


def test_a_lone_failure_reaches_its_submitter(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    with pytest.raises(ValueError, match="refused"):
        group.submit(refuse)
    assert group.submit(take_ref) == "INC-2026-0001"  # the refused ref was given back


def test_a_transaction_takes_at_most_max_batch_items(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each, max_batch=2)
    leader, waiting, release = queue_behind_a_busy_leader(group, [take_ref] * 5)
    release.set()
    for submitter in [leader, *waiting]:
        submitter.join(10)
    assert [s.outcome for s in waiting] == [f"INC-2026-000{n}" for n in range(2, 7)]
    assert group.transactions == 1 + 3  # 2 + 2 + 1


def test_apply_must_answer_every_item(store: Store):
    group: GroupCommit[Work, Any] = GroupCommit(store, lambda conn, items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.submit(take_ref)


def test_the_next_transaction_commits_while_the_last_one_syncs(store: Store, monkeypatch):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    syncing, second_done = threading.Event(), threading.Event()
    real_sync, calls = store.sync, []

    def slow_first_sync() -> None:
        calls.append(None)
        if len(calls) == 1:
            syncing.set()
            assert second_done.wait(10)
        real_sync()

    monkeypatch.setattr(store, "sync", slow_first_sync)
    first = Submitter(group, take_ref)
    first.start()
    assert syncing.wait(10)
    second = Submitter(group, take_ref)
    second.start()
    second.join(10)
    # The second committed and was synced while the first still waited for its sync: the first
    # has not heard back, as its commit is not yet known to be durable.
    assert second.outcome == "INC-2026-0002" and first.outcome is None and first.is_alive()
    second_done.set()
    first.join(10)
    assert first.outcome == "INC-2026-0001"


def test_a_failed_sync_reaches_every_submitter_of_its_transaction(store: Store, monkeypatch):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)

    def broken_sync() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store, "sync", broken_sync)
    with pytest.raises(OSError, match="Input/output error"):
        group.submit(take_ref)


def test_what_arrives_while_the_leader_waits_for_the_write_lock_joins_its_transaction(
    store: Store, make_store
):
    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    other = make_store()  # another process's writer
    with other.transaction():
        submitters = []
        for n in range(1, 4):
            submitters.append(Submitter(group, take_ref))
            submitters[-1].start()
            # The leader waits for the lock with its own item still queued; the rest queue behind.
            wait_until(lambda n=n: group.waiting == n, timeout=10, interval=0.005, message="queued")
    for submitter in submitters:
        submitter.join(10)
    assert sorted(s.outcome for s in submitters) == ["INC-2026-0001", "INC-2026-0002", "INC-2026-0003"]
    assert group.transactions == 1


# -- after-commit effects --------------------------------------------------------------------


def test_effects_run_after_commit_and_never_for_what_rolled_back(store: Store):
    from adapter.store.db import after_commit

    seen: list[str] = []

    def note(conn: Connection, what: str) -> None:
        after_commit(conn, lambda: seen.append(what))

    with store.transaction() as conn:
        note(conn, "first")
        note(conn, "second")
        assert seen == []  # not while the transaction may still roll back
    assert seen == ["first", "second"]
    with pytest.raises(ValueError), store.transaction() as conn:
        note(conn, "rolled back")
        raise ValueError("refused")
    with store.rolled_back() as conn:
        note(conn, "previewed")
    with store.transaction() as conn:
        note(conn, "third")
    assert seen == ["first", "second", "third"]


def test_a_failing_effect_does_not_undo_what_its_caller_hears(store: Store, caplog):
    from adapter.store.db import after_commit

    def broken() -> None:
        raise RuntimeError("metrics are down")

    with store.transaction() as conn:
        after_commit(conn, broken)
        ref = take_ref(conn)
    assert ref == "INC-2026-0001"
    assert "after-commit effect failed" in caplog.text
    with store.read() as conn:
        assert take_ref(conn) == "INC-2026-0002"  # committed


def test_a_group_hears_back_after_the_effects_of_its_transaction(store: Store):
    from adapter.store.db import after_commit

    seen: list[str] = []

    def noted(what: str) -> Work:
        def item(conn: Connection) -> str:
            after_commit(conn, lambda: seen.append(what))
            return what

        return item

    def refused_after_noting(conn: Connection) -> str:
        after_commit(conn, lambda: seen.append("refused"))
        raise ValueError("this item is refused")

    group: GroupCommit[Work, Any] = GroupCommit(store, apply_each)
    leader, waiting, release = queue_behind_a_busy_leader(
        group, [noted("a"), refused_after_noting, noted("b")]
    )
    release.set()
    for submitter in [leader, *waiting]:
        submitter.join(10)
    # The shared transaction rolled back with its effects; each item's own replay kept its own.
    assert seen == ["a", "b"]
    assert [s.outcome for s in waiting] == ["a", None, "b"]
