"""Recorder: outcomes of concurrent deliveries written together, each caller back once its own are."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event

from adapter.store import Store, outbox
from adapter.store.outcomes import Recorder
from tests.store.test_claims import NOW, _per_tenant
from tests.store.test_lookups import _incident


def test_outcomes_that_come_during_a_write_are_written_together_by_the_next(store: Store):
    with store.transaction() as conn:
        outbox.insert_notices(conn, _per_tenant(_incident(conn, "INC-2026-0001"), 3))
    claimed = outbox.claim_due(store, "me", NOW, timedelta(minutes=1), 6)
    first, *others = [n.id for n in claimed]
    recorder = Recorder(store, "me")
    commits: list[int] = []
    writing, go_on = threading.Event(), threading.Event()

    def on_commit(conn) -> None:
        commits.append(1)
        if len(commits) == 1:
            writing.set()
            assert go_on.wait(10)  # the first write is under way while the others come

    results: dict[int, int] = {}

    def record(notice_id: int) -> None:
        results[notice_id] = recorder.record([outbox.Outcome(notice_id, "delivered", at=NOW, ref="r")])

    event.listen(store.engine, "commit", on_commit)
    try:
        threads = [threading.Thread(target=record, args=(first,))]
        threads[0].start()
        assert writing.wait(10)
        threads += [threading.Thread(target=record, args=(i,)) for i in others]
        for thread in threads[1:]:
            thread.start()
        while True:  # every other caller waits for the write under way
            with recorder._changed:
                if len(recorder._waiting) == len(others):
                    break
            threading.Event().wait(0.001)
        assert not any(thread.ident in results for thread in threads[1:])
        go_on.set()
        for thread in threads:
            thread.join(10)
    finally:
        event.remove(store.engine, "commit", on_commit)
    assert len(commits) == 2  # the first outcome's write, then one for the five that came meanwhile
    assert results == {n.id: 1 for n in claimed}
    with store.read() as conn:
        assert {n.state for n in outbox.notices_of(conn, [claimed[0].incident_id])} == {"delivered"}


def test_a_write_that_fails_raises_for_its_caller_and_the_next_write_goes_on(store: Store):
    with store.transaction() as conn:
        outbox.insert_notices(conn, _per_tenant(_incident(conn, "INC-2026-0001"), 1))
    first, second = outbox.claim_due(store, "me", NOW, timedelta(minutes=1), 2)
    recorder = Recorder(store, "me")

    def full_disk(conn) -> None:
        raise OSError("No space left on device")

    event.listen(store.engine, "commit", full_disk)
    try:
        with pytest.raises(OSError, match="No space left"):
            recorder.record([outbox.Outcome(first.id, "delivered", at=NOW, ref="r")])
    finally:
        event.remove(store.engine, "commit", full_disk)
    assert recorder.record([outbox.Outcome(second.id, "delivered", at=NOW, ref="r")]) == 1
    with store.read() as conn:
        assert [n.state for n in outbox.notices_of(conn, [first.incident_id])] == ["pending", "delivered"]
