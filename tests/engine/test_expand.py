"""Expansion: per-tenant notices written after the webhook's transaction, each exactly once, in order."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from adapter.engine import expand
from adapter.engine.expand import Expander
from adapter.sources import alertmanager
from adapter.store import expansions, outbox
from adapter.store import incidents as repo
from tests.payloads import am_alert, am_body
from tests.support.catalog import with_shops

DIRECT = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}


@pytest.fixture
def make_world(world):
    """A world whose `tenants` customers of checkout each get their notices through a webhook."""
    return lambda tenants: world([DIRECT], with_shops(tenants, "http://127.0.0.1:9"))


def fire(svc, status="firing", group="checkout", **times):
    labels = {"alertname": "Down", "service": "checkout", "severity": "critical", "group": group}
    alert = am_alert(f"{group:0>16}", labels, status=status, **times)
    return svc.engine.ingest(alertmanager.parse(am_body([alert], group_key=group)))


def written(svc, ref: str = "INC-2026-0001") -> list[Any]:
    """The incident's per-tenant notices, in the order they go out."""
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, ref)
        return [n for n in outbox.notices_of(conn, [incident.id]) if n.tenant] if incident else []


def pending(svc) -> int:
    with svc.store.read() as conn:
        return expansions.pending(conn)


def test_a_webhook_writes_no_tenants_notice_and_runs_as_many_statements_for_400_tenants_as_for_4(make_world):
    counts = []
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    for number, tenants in enumerate((4, 400), start=1):
        svc = make_world(tenants)  # the same database: the second incident is INC-2026-0002
        statements.clear()
        event.listen(svc.store.engine, "before_cursor_execute", record)
        fire(svc, group=f"group-{number}")
        event.remove(svc.store.engine, "before_cursor_execute", record)
        ref = f"INC-2026-{number:04d}"
        assert written(svc, ref) == [] and pending(svc) == 1
        counts.append(len(statements))
        svc.expander.drain()
        by_tenant = Counter(n.tenant for n in written(svc, ref))
        assert len(by_tenant) == tenants and set(by_tenant.values()) == {1}
        assert pending(svc) == 0
    assert counts[0] == counts[1]


def test_each_tenant_hears_of_the_incident_before_its_resolution_even_when_both_wait(make_world, clock):
    svc = make_world(450)  # three chunks
    t0 = clock.now()
    fire(svc, starts_at=t0)
    clock.advance(timedelta(minutes=5))
    fire(svc, status="resolved", starts_at=t0, ends_at=clock.now())
    assert pending(svc) == 2
    svc.expander.drain()
    phases: dict[str, list[str]] = {}
    for notice in written(svc):  # in id order: the order they go out
        phases.setdefault(notice.tenant, []).append(notice.phase)
    assert len(phases) == 450
    assert set(map(tuple, phases.values())) == {("acknowledgement", "resolution")}


def test_an_expansion_cut_short_by_a_crash_writes_each_tenant_once_when_another_process_takes_over(
    make_world, clock, monkeypatch
):
    svc = make_world(450)
    fire(svc)
    assert svc.expander.run_once() == expand.CHUNK  # the first chunk is written

    def crash(*_: Any) -> None:
        raise RuntimeError("killed mid-chunk")

    monkeypatch.setattr(expansions, "advance", crash)
    with pytest.raises(RuntimeError):
        svc.expander.run_once()  # the second chunk's notices go with its transaction
    monkeypatch.undo()
    assert len(written(svc)) == expand.CHUNK
    # The crashed process never comes back; another takes over once its lease has run out.
    other = Expander(svc.settings, svc.store, svc.engine.notifier, clock)
    assert other.run_once() == 0
    clock.advance(expand.LEASE_TTL)
    other.drain()
    by_tenant = Counter(n.tenant for n in written(svc))
    assert len(by_tenant) == 450 and set(by_tenant.values()) == {1}
