"""The approval gate: customer notices of a gated audience and level wait for an approver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapter.engine.humans import Conflict, HumanUpdate, NotFound
from adapter.sources import alertmanager
from adapter.store import audit, outbox, pages
from adapter.store import incidents as repo
from tests.payloads import am_alert, am_body
from tests.support.catalog import catalog_data, with_shops
from tests.support.people import APPROVER, ONCALL
from tests.support.scripted import Reply, ScriptedServer

STATUS = {"name": "status", "type": "builtin", "audience": "all"}
GATE = {"business": {"min_level": 3}}
BUSINESS_PAGE = pages.Readers(("business",), ("status",))
TECHNICAL_PAGE = pages.Readers(("technical",), ("status",))


@pytest.fixture
def hook():
    with ScriptedServer(Reply(200)) as server:
        yield server


@pytest.fixture
def make_world(world, hook):
    """The built-in page and a webhook `hook` for both audiences; `approval` as policy.approval."""

    def make(approval=GATE, policy=None, providers=None, catalog=None):
        hooked = {"name": "hook", "type": "webhook", "audience": "all", "url": f"{hook.url}/hook"}
        policy = {"approval": approval, **(policy or {})}
        return world(providers or [STATUS, hooked], catalog or catalog_data(), policy)

    return make


def fire(svc, severity="error", fingerprint="a000000000000001", **kw):
    """An alert on checkout (acme: technical, bloom: business); error is level 3, warning 2."""
    labels = {"alertname": "Slow", "service": "checkout", "severity": severity}
    alert = am_alert(fingerprint, labels, starts_at=svc.clock.now(), **kw)
    result = svc.engine.ingest(alertmanager.parse(am_body([alert], group_key=f"g-{fingerprint}")))
    svc.expander.drain()
    return result


def notices(svc, ref="INC-2026-0001"):
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, ref)
        return outbox.notices_of(conn, [incident.id])


def states(svc, phase=None):
    return sorted(
        (n.provider, n.audience, n.phase, n.state) for n in notices(svc) if phase in (None, n.phase)
    )


def one(svc, provider, audience, phase="acknowledgement"):
    (found,) = [n for n in notices(svc) if (n.provider, n.audience, n.phase) == (provider, audience, phase)]
    return found


def on_page(svc, readers):
    with svc.store.read() as conn:
        return pages.incident(conn, readers, "INC-2026-0001") is not None


def deliver_all(svc):
    while svc.dispatcher.run_once():
        pass


def posted(hook):
    """(audience, phase, subject) of each notice the webhook received, in order."""
    return [(b["audience"], b["phase"], b["subject"]) for b in (json.loads(r.body) for r in hook.requests)]


def entries(svc, action):
    with svc.store.read() as conn:
        return [e for e in audit.entries(conn) if e.action == action]


def test_gated_notices_wait_unsent_and_unpublished(make_world, hook):
    svc = make_world(approval={**GATE, "technical": {"min_level": 4}})
    fire(svc)  # level 3: the technical gate is above it
    assert states(svc) == [
        ("hook", "business", "acknowledgement", "awaiting_approval"),
        ("hook", "technical", "acknowledgement", "pending"),
        ("status", "business", "acknowledgement", "awaiting_approval"),
        ("status", "technical", "acknowledgement", "delivered"),
    ]
    # Rendered, for the approver to read.
    assert one(svc, "hook", "business").subject
    deliver_all(svc)
    assert [audience for audience, _, _ in posted(hook)] == ["technical"]
    assert on_page(svc, TECHNICAL_PAGE) and not on_page(svc, BUSINESS_PAGE)
    with svc.store.read() as conn:
        backlog = outbox.backlog(conn, svc.clock.now())
    assert (backlog.pending, backlog.awaiting_approval) == (0, 2)


def test_an_approved_notice_goes_out_as_written_or_as_edited(make_world, hook, clock):
    svc = make_world()
    fire(svc)
    page, hooked = one(svc, "status", "business"), one(svc, "hook", "business")
    clock.advance(timedelta(minutes=3))
    svc.humans.approve(page.id, APPROVER)
    approved = one(svc, "status", "business")
    # The built-in page publishes it at once; from now it counts as written.
    assert (approved.state, approved.delivered_at, approved.created_at) == (
        "delivered",
        clock.now(),
        clock.now(),
    )
    assert (approved.subject, approved.body) == (page.subject, page.body)
    assert on_page(svc, BUSINESS_PAGE)

    svc.humans.approve(hooked.id, APPROVER, subject="Checkout is slow", body="We are on it.")
    assert one(svc, "hook", "business").state == "pending"
    deliver_all(svc)
    assert ("business", "acknowledgement", "Checkout is slow") in posted(hook)
    assert json.loads(hook.requests[-1].body)["body"] == "We are on it."

    first, second = entries(svc, "approve")
    assert (first.author, first.role, first.ref) == ("lead", "approver", "INC-2026-0001")
    assert first.changes == {
        "notice": page.id,
        "provider": "status",
        "audience": "business",
        "phase": "acknowledgement",
    }
    assert second.changes["subject"] == {"from": hooked.subject, "to": "Checkout is slow"}
    assert second.changes["body"] == {"from": hooked.body, "to": "We are on it."}


def test_a_discarded_notice_is_never_sent_and_both_actions_want_one_awaiting(make_world, hook):
    svc = make_world()
    fire(svc)
    hooked, page = one(svc, "hook", "business"), one(svc, "status", "business")
    svc.humans.discard(hooked.id, APPROVER)
    deliver_all(svc)
    assert one(svc, "hook", "business").state == "discarded"
    assert [audience for audience, _, _ in posted(hook)] == ["technical"]
    (entry,) = entries(svc, "discard")
    assert (entry.author, entry.changes["notice"], entry.changes["provider"]) == ("lead", hooked.id, "hook")

    svc.humans.approve(page.id, APPROVER)
    delivered = one(svc, "status", "technical")
    for notice_id in (hooked.id, page.id, delivered.id):
        with pytest.raises(Conflict):
            svc.humans.approve(notice_id, APPROVER)
        with pytest.raises(Conflict):
            svc.humans.discard(notice_id, APPROVER)
    with pytest.raises(NotFound):
        svc.humans.approve(999_999, APPROVER)
    with pytest.raises(NotFound):
        svc.humans.discard(999_999, APPROVER)


def test_later_notices_of_a_stream_wait_behind_one_awaiting_approval(make_world, hook):
    """The technical update goes to the same providers, after the first notice in each one's stream:
    it waits for the approval, and goes when the waiting one is approved or discarded."""
    svc = make_world()
    fire(svc)
    deliver_all(svc)
    svc.humans.update("INC-2026-0001", HumanUpdate(technical="Rolling back."), ONCALL)
    # Neither published on commit nor claimed: the page's and the hook's streams are held back.
    assert one(svc, "status", "technical", "update").state == "pending"
    deliver_all(svc)
    assert one(svc, "hook", "technical", "update").state == "pending"
    assert [phase for _, phase, _ in posted(hook)] == ["acknowledgement"]

    svc.humans.approve(one(svc, "status", "business").id, APPROVER)
    svc.humans.discard(one(svc, "hook", "business").id, APPROVER)
    deliver_all(svc)
    assert one(svc, "status", "technical", "update").state == "delivered"
    page = [n for n in notices(svc) if n.provider == "status" and n.state == "delivered"]
    # In the order they were written: the approved first notice before the update.
    assert [(n.audience, n.phase) for n in sorted(page, key=lambda n: n.delivered_at)][1:] == [
        ("business", "acknowledgement"),
        ("technical", "update"),
    ]
    assert posted(hook)[1][:2] == ("technical", "update")


def test_each_tenants_notices_are_gated_by_its_own_audience(make_world, hook):
    direct = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}
    svc = make_world(providers=[direct], catalog=with_shops(4, hook.url))
    fire(svc)
    found = sorted((n.tenant, n.audience, n.state) for n in notices(svc))
    assert found == [
        ("shop-0000", "technical", "pending"),
        ("shop-0001", "business", "awaiting_approval"),
        ("shop-0002", "technical", "pending"),
        ("shop-0003", "business", "awaiting_approval"),
    ]
    deliver_all(svc)
    assert sorted(r.path for r in hook.requests) == ["/shop-0000", "/shop-0002"]


def test_a_held_first_notice_is_released_into_the_gate(make_world, clock):
    svc = make_world(approval={"business": {"min_level": 2}})
    fire(svc, severity="warning")  # level 2: business readers are held 10 minutes
    assert one(svc, "hook", "business").state == "held"
    clock.advance(timedelta(minutes=10))
    svc.scheduler.run_once()
    released = one(svc, "hook", "business")
    assert released.state == "awaiting_approval" and released.subject
    assert released.created_at == clock.now()
    assert one(svc, "status", "business").state == "awaiting_approval"


def test_progress_updates_of_a_gated_audience_wait_too(make_world, clock):
    svc = make_world()
    fire(svc)
    for notice in (one(svc, "status", "business"), one(svc, "hook", "business")):
        svc.humans.approve(notice.id, APPROVER)
    clock.advance(timedelta(hours=1, minutes=1))  # level 3: both audiences every hour
    svc.scheduler.run_once()
    assert states(svc, "update") == [
        ("hook", "business", "update", "awaiting_approval"),
        ("hook", "technical", "update", "pending"),
        ("status", "business", "update", "awaiting_approval"),
        ("status", "technical", "update", "delivered"),
    ]


def test_the_scheduler_publishes_what_waited_auto_publish_after(make_world, hook, clock):
    svc = make_world(approval={**GATE, "auto_publish_after": "10m"})
    fire(svc)
    clock.advance(timedelta(minutes=9))
    svc.scheduler.run_once()
    assert one(svc, "hook", "business").state == "awaiting_approval"
    clock.advance(timedelta(minutes=1))
    svc.scheduler.run_once()
    assert one(svc, "status", "business").state == "delivered"
    assert one(svc, "hook", "business").state == "pending"
    deliver_all(svc)
    assert [audience for audience, _, _ in posted(hook)] == ["technical", "business"]
    published = entries(svc, "auto_publish")
    assert [(e.author, e.role, e.ref, e.changes["provider"]) for e in published] == [
        ("dualtrack", "admin", "INC-2026-0001", "status"),
        ("dualtrack", "admin", "INC-2026-0001", "hook"),
    ]
    assert published[0].changes["waited"] == "10m"


def test_without_auto_publish_a_notice_waits_for_a_person_however_long(make_world, clock):
    svc = make_world()
    fire(svc)
    for _ in range(3):
        clock.advance(timedelta(days=1))
        svc.scheduler.run_once()
    assert one(svc, "hook", "business").state == "awaiting_approval"
    assert entries(svc, "auto_publish") == []


def missed(svc, audience="business", phase="acknowledgement"):
    labels = {"audience": audience, "phase": phase}
    return svc.metrics.registry.get_sample_value("dualtrack_deadline_missed_total", labels) or 0


def test_a_first_notice_approved_past_its_deadline_counts_as_missed(make_world, hook, clock):
    business = {"name": "hook", "type": "webhook", "audience": "business", "url": hook.url}
    svc = make_world(providers=[STATUS, business])
    fire(svc)  # level 3: the business first notice is due within 15 minutes
    page, hooked = one(svc, "status", "business"), one(svc, "hook", "business")
    clock.advance(timedelta(minutes=10))
    svc.humans.approve(page.id, APPROVER)
    assert missed(svc) == 0
    clock.advance(timedelta(minutes=10))
    svc.humans.approve(hooked.id, APPROVER)
    deliver_all(svc)
    assert missed(svc) == 1
    assert missed(svc, "technical") == 0


def test_the_approvals_read_says_when_waiting_makes_a_notice_late(make_world, clock):
    svc = make_world(approval={**GATE, "auto_publish_after": "20m"})
    opened = clock.now()
    fire(svc)
    with svc.store.read() as conn:
        waiting = outbox.awaiting_approval(conn, svc.settings.policy.approval.auto_publish_after)
    assert [(w.notice.provider, w.ref) for w in waiting] == [
        ("status", "INC-2026-0001"),
        ("hook", "INC-2026-0001"),
    ]
    first = waiting[0]
    assert first.deadline == opened + timedelta(minutes=15)
    assert first.auto_publish_at == opened + timedelta(minutes=20)
    # Published unapproved at 20 minutes, it would miss its 15-minute deadline.
    assert first.late(clock.now())
    with svc.store.read() as conn:
        (never,) = outbox.awaiting_approval(conn, timedelta(0), limit=1)
    assert never.auto_publish_at is None and not never.late(clock.now())
    assert never.late(clock.now() + timedelta(minutes=16))
