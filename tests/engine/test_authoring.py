"""Senior authoring requests: from policy.senior_authoring.min_level, senior staff are asked to write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapter.engine.humans import Declaration
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.payloads import am_alert, am_body
from tests.support.catalog import catalog_data
from tests.support.people import ONCALL

STATUS = {"name": "status", "type": "builtin", "audience": "all"}
SENIORS = {"name": "seniors", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/s"}
TEAM = {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"}


@pytest.fixture
def make_world(world):
    def make(senior_authoring=None, policy=None):
        senior = {"providers": ["seniors"], **(senior_authoring or {})}
        policy = {"senior_authoring": senior, "internal_providers": ["team"], **(policy or {})}
        return world([STATUS, SENIORS, TEAM], catalog_data(), policy)

    return make


def fire(svc, severity, fingerprint="b000000000000001", status="firing", **kw):
    """An alert on checkout; warning is level 2, error 3, critical 4."""
    labels = {"alertname": "Slow", "service": "checkout", "severity": severity, "instance": "10.1.2.3:8080"}
    alert = am_alert(fingerprint, labels, status=status, **kw)
    return svc.engine.ingest(alertmanager.parse(am_body([alert], group_key="g-checkout")))


def requests(svc, ref="INC-2026-0001"):
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, ref)
        found = outbox.notices_of(conn, [incident.id]) if incident else []
    return [n for n in found if n.phase == "authoring_request"]


def test_an_incident_opened_at_level_3_asks_the_seniors_once(make_world, clock):
    svc = make_world()
    opened = clock.now()
    fire(svc, "error", starts_at=opened)
    (request,) = requests(svc)
    assert (request.provider, request.audience, request.state) == ("seniors", "technical", "pending")
    assert request.subject == "INC-2026-0001: Slow - Authoring Request"
    body = request.body
    assert "Level 3 (significant outage) in progress since 14:32 UTC" in body
    assert "Affected Services: Checkout API (checkout-api)" in body
    assert "Desk: http://status.example.test/desk/incidents/INC-2026-0001" in body
    # Both audiences heard at once (level 3: no hold) and are next due an update within the hour.
    assert "- Technical update due by 15:32 UTC (in 1 hour)" in body
    assert "- Business update due by 15:32 UTC (in 1 hour)" in body
    clock.advance(timedelta(minutes=5))
    fire(svc, "critical", fingerprint="b000000000000002", starts_at=opened)  # raised to 4: no second
    assert len(requests(svc)) == 1


def test_a_raise_from_2_to_3_asks_once_per_generation(make_world, clock):
    svc = make_world()
    opened = clock.now()
    fire(svc, "warning", starts_at=opened)
    assert requests(svc) == []
    clock.advance(timedelta(minutes=20))
    fire(svc, "error", fingerprint="b000000000000002", starts_at=opened)
    (request,) = requests(svc)
    # Business readers, held at level 2, were released by the raise: both are due an update.
    assert "- Technical update due by 15:52 UTC (in 1 hour)" in request.body
    assert "- Business update due by 15:52 UTC (in 1 hour)" in request.body
    # Lowered and raised again by hand in the same generation: not asked again.
    svc.humans.patch("INC-2026-0001", 2, None, None, None, False, ONCALL)
    svc.humans.patch("INC-2026-0001", 3, None, None, None, False, ONCALL)
    assert len(requests(svc)) == 1
    # Resolved and reopened: a new generation, asked again when raised to 3 once more.
    clock.advance(timedelta(minutes=5))
    fire(svc, "warning", status="resolved", starts_at=opened, ends_at=clock.now())
    fire(
        svc, "error", fingerprint="b000000000000002", status="resolved", starts_at=opened, ends_at=clock.now()
    )
    clock.advance(timedelta(minutes=5))
    fire(svc, "warning", fingerprint="b000000000000003", starts_at=clock.now())
    svc.humans.patch("INC-2026-0001", 2, None, None, None, False, ONCALL)
    assert len(requests(svc)) == 1
    svc.humans.patch("INC-2026-0001", 3, None, None, None, False, ONCALL)
    assert [n.dedupe_key.split("/")[1] for n in requests(svc)] == [
        "authoring-request-g0",
        "authoring-request-g1",
    ]


def test_a_raise_by_hand_and_a_declaration_ask_too(make_world):
    svc = make_world()
    fire(svc, "warning")
    svc.humans.patch("INC-2026-0001", 3, None, None, None, False, ONCALL)
    assert len(requests(svc)) == 1
    ref = svc.humans.declare(Declaration(services=("search",), level=4, title="Search is down"), ONCALL)
    (declared,) = requests(svc, ref)
    assert declared.subject == f"{ref}: Search is down - Authoring Request"


def test_below_min_level_or_without_providers_nobody_is_asked(make_world):
    svc = make_world(senior_authoring={"min_level": 4})
    fire(svc, "error")
    assert requests(svc) == []
    fire(svc, "critical", fingerprint="b000000000000002")
    assert len(requests(svc)) == 1
    quiet = make_world(senior_authoring={"providers": []})
    quiet_ref = quiet.humans.declare(Declaration(services=("search",), level=5, title="Down"), ONCALL)
    assert requests(quiet, quiet_ref) == []


def test_requests_go_to_the_senior_providers_only_and_the_executive_briefing_to_the_team(make_world):
    svc = make_world()
    svc.humans.declare(Declaration(services=("search",), level=5, title="Search is down"), ONCALL)
    with svc.store.read() as conn:
        found = outbox.notices_of(conn, [1])
    internal = sorted((n.phase, n.provider) for n in found if n.phase in ("authoring_request", "executive"))
    assert internal == [("authoring_request", "seniors"), ("executive", "team")]
