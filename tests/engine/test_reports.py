"""The communication report's arithmetic, on notices and answers made up to test it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapter.engine.reports import communication
from adapter.store.records import Answer, DetailRequest, NoticeFacts

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def notice(
    n, *, phase="acknowledgement", audience="business", tenant=None, state="delivered", late=False, after=60
):
    deadline = T0 + timedelta(minutes=15)
    delivered = deadline + timedelta(minutes=1) if late else T0 + timedelta(seconds=after)
    return NoticeFacts(
        id=n,
        incident_id=1,
        ref=f"INC-2026-000{1 + n % 2}",
        incident_type="web",
        provider="mail",
        audience=audience,
        phase=phase,
        tenant=tenant,
        state=state,
        data={"level": 3, "deadline": deadline.isoformat()},
        created_at=T0,
        delivered_at=delivered if state == "delivered" else None,
    )


def test_deadlines_deliveries_feedback_and_detail_requests(settings):
    notices = [
        notice(1, tenant="bloom"),  # business tenant: on time
        notice(2, tenant="nordlys", late=True),  # business tenant: late
        notice(3, audience="technical", tenant="acme", after=30),  # technical tenant
        notice(4, phase="update", tenant="bloom"),
        notice(5, tenant="bloom", state="dead"),  # never delivered: late, and a failed delivery
        notice(6, tenant="bloom", state="suppressed"),  # never meant to go out: not counted
    ]
    answers = [
        Answer(notices[0], "business", True, "Clear, thanks"),
        Answer(notices[1], "business", False, None),
        Answer(notices[2], "technical", True, None),
    ]
    details = [DetailRequest("INC-2026-0001", "bloom", "business", T0)] * 3 + [
        DetailRequest("INC-2026-0001", "nordlys", "business", T0)
    ]
    report = communication(settings, notices, answers, details, T0, T0 + timedelta(days=1)).json()

    firsts = {
        (r["audience"], r["segment"]): (r["good"], r["total"], r["percent"]) for r in report["first_notices"]
    }
    assert firsts == {("business", "business"): (1, 3, 33.3), ("technical", "technical"): (1, 1, 100.0)}
    assert [(r["good"], r["total"]) for r in report["updates"]] == [(1, 1)]
    deliveries = {r["audience"]: r for r in report["deliveries"]}
    assert (deliveries["business"]["delivered"], deliveries["business"]["failed"]) == (3, 1)
    assert deliveries["business"]["success_percent"] == 75.0
    assert deliveries["technical"]["latency_p50_seconds"] == 30.0
    said = {r["segment"]: r for r in report["feedback"]}
    assert (said["business"]["helpful"], said["business"]["not_helpful"], said["business"]["comments"]) == (
        1,
        1,
        ["Clear, thanks"],
    )
    assert said["business"]["helpful_percent"] == 50.0
    assert [(r["tenant"], r["count"], r["flagged"]) for r in report["detail_requests"]] == [
        ("bloom", 3, True),
        ("nordlys", 1, False),
    ]
    exported = communication(settings, notices, answers, details, T0, T0 + timedelta(days=1)).csv()
    assert exported.splitlines()[0].startswith("figure,audience,segment,level")
    assert "detail_requests,,business,,,,bloom,,3," in exported
