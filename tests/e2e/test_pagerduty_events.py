"""A real Alertmanager whose pagerduty_configs point at dualtrack's Events API v2 endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.server import (
    AM_BASIC,
    AM_TOKEN,
    API_TOKEN,
    PROVIDER_BUILTIN,
    am_alert,
    rfc3339,
    wait_until,
)

pytestmark = pytest.mark.e2e
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
LABELS = {
    "alertname": "CheckoutDown",
    "service": "checkout",
    "severity": "critical",
    "instance": "10.0.0.1:8080",
}


def test_alertmanager_pagerduty_notifier_drives_an_incident_to_resolved(
    dualtrack_factory, alertmanager_factory
):
    dt = dualtrack_factory(
        workers=2,
        providers=[PROVIDER_BUILTIN],
        extra={
            "auth": {
                "alertmanager": {
                    "bearer_tokens": [AM_TOKEN],
                    "basic_auth": [{"username": AM_BASIC[0], "password": AM_BASIC[1]}],
                },
                "events": {"routing_keys": [ROUTING_KEY]},
            },
            "api": {"tokens": [API_TOKEN]},
        },
    )
    dt.start()
    am = alertmanager_factory(
        [],
        pagerduty_configs=[
            {
                "routing_key": ROUTING_KEY,
                "url": f"{dt.url}/v2/enqueue",
                "send_resolved": True,
                "severity": "critical",
                # Services come from payload.component, then payload.group.
                "component": "{{ .CommonLabels.service }}",
                "group": "{{ .CommonLabels.job }}",
            }
        ],
    )
    am.start()
    started = rfc3339(datetime.now(UTC) - timedelta(seconds=30))
    alert = am_alert(LABELS, annotations={"summary": "Checkout is down"}, starts_at=started)
    am.post_alerts([alert])

    opened = wait_until(
        lambda: dt.incidents("open"),
        timeout=30,
        message=lambda: f"an open incident\n{dt.logs()}\n{am.logs()}",
    )
    (incident,) = opened
    assert incident["source"] == "events"
    assert incident["services"] == ["checkout"]
    assert incident["level"] == 4  # severity critical on a service that is not critical infrastructure
    ref = incident["ref"]
    # Repeats (Alertmanager re-triggers every repeat_interval) add nothing.
    first = dt.incident(ref)
    wait_until(
        lambda: am.metric("alertmanager_notifications_total", integration="pagerduty") >= 3,
        timeout=30,
        message="three PagerDuty notifications from Alertmanager",
    )
    assert [n["id"] for n in dt.incident(ref)["notices"]] == [n["id"] for n in first["notices"]]
    assert len(dt.incidents("all")) == 1

    am.post_alerts([{**alert, "endsAt": rfc3339()}])
    resolved = wait_until(
        lambda: (lambda i: i if i["status"] == "resolved" else None)(dt.incident(ref)),
        timeout=30,
        message=lambda: f"resolution of {dt.incident(ref)}\n{am.logs()}",
    )
    phases = [n["phase"] for n in resolved["notices"]]
    assert phases.count("acknowledgement") == phases.count("resolution") == 2
    assert len(dt.incidents("all")) == 1
