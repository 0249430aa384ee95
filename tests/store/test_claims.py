"""Claims: what a claim reads grows with the batch it leases, not with the notices waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from adapter.store import Store, outbox
from tests.store.test_inserts import _notice
from tests.store.test_lookups import T0, _incident

NOW = T0 + timedelta(minutes=1)


def _per_tenant(incident_id: int, tenants: int, *, first: str = "pending") -> list[dict[str, Any]]:
    """A per-tenant provider's notices: a stream per tenant, each a first notice then an update."""
    rows = []
    for n in range(tenants):
        for phase, state in (("acknowledgement", first), ("update", "pending")):
            key = f"{incident_id}-{n}-{phase}"
            rows.append(
                {
                    **_notice(incident_id, key),
                    "provider": "mail",
                    "tenant": f"t{n}",
                    "phase": phase,
                    "state": state,
                }
            )
    return rows


def _steps(store: Store, work: Callable[[Store], Any]) -> tuple[Any, int]:
    """What `work` returns, and how many steps SQLite's virtual machine took for it: it takes one
    or more for every row it visits."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_progress_handler(count, 1)

    def on_checkin(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_progress_handler(None, 1)

    event.listen(store.engine, "checkout", on_checkout)
    event.listen(store.engine, "checkin", on_checkin)
    try:
        return work(store), steps[0]
    finally:
        event.remove(store.engine, "checkout", on_checkout)
        event.remove(store.engine, "checkin", on_checkin)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_claim_reads_as_much_beside_a_hundred_waiting_notices_as_beside_two_thousand(
    open_store: Callable[[str], Store], tmp_path: Any
):
    costs = []
    for tenants in (50, 1000):
        store = open_store(f"sqlite:///{tmp_path}/claims-{tenants}.db")
        try:
            with store.transaction() as conn:
                outbox.insert_notices(conn, _per_tenant(_incident(conn, "INC-2026-0001"), tenants))
            claimed, steps = _steps(store, lambda s: outbox.claim_due(s, "me", NOW, timedelta(minutes=1), 20))
            # 20 notices: the first 10 tenants' streams, each whole and in order.
            assert [(n.tenant, n.phase) for n in claimed] == [
                (f"t{n}", phase) for n in range(10) for phase in ("acknowledgement", "update")
            ]
            costs.append(steps)
        finally:
            store.dispose()
    assert costs[1] < 1.5 * costs[0], costs


def test_a_claim_takes_each_stream_from_its_first_unfinished_notice_on(store: Store):
    with store.transaction() as conn:
        incident = _incident(conn, "INC-2026-0001")
        # t0's first notice is held: its update waits. t1 and t2 are due.
        outbox.insert_notices(conn, _per_tenant(incident, 1, first="held"))
        outbox.insert_notices(
            conn,
            [
                {**r, "tenant": f"t{n + 1}", "dedupe_key": f"{r['dedupe_key']}-{n}"}
                for n in range(2)
                for r in _per_tenant(incident, 1)
            ],
        )
        shared = outbox.insert_notices(conn, [_notice(incident, "page")])  # tenant None: the page's stream
    claimed = outbox.claim_due(store, "me", NOW, timedelta(minutes=1), 3)
    # In writing order, each stream from its first unfinished notice on: t0 waits for its held one.
    assert [(n.tenant, n.phase) for n in claimed] == [
        ("t1", "acknowledgement"),
        ("t1", "update"),
        ("t2", "acknowledgement"),
    ]
    # t2's update waits for its first notice, leased above; the page's stream is free.
    again = outbox.claim_due(store, "other", NOW, timedelta(minutes=1), 10)
    assert [n.id for n in again] == [shared["page"]]
