"""The approval gate through a real `dualtrack serve`: a business webhook hears what an approver let out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.server import (
    API_TOKEN,
    HOOK_SECRET,
    Dualtrack,
    Sink,
    metric_sum,
    provider_webhook,
    wait_until,
    webhook_body,
)

pytestmark = pytest.mark.e2e

GATED = {"policy": {"approval": {"business": {"min_level": 3}}}}


def notice_state(server: Dualtrack, ref: str, notice_id: int) -> str:
    (notice,) = [n for n in server.incident(ref)["notices"] if n["id"] == notice_id]
    return str(notice["state"])


def test_a_business_webhook_gets_a_level_3_notice_once_approved_and_only_once(
    dualtrack_factory: Callable[..., Dualtrack], sink: Sink
) -> None:
    business: dict[str, Any] = {
        "name": "customers",
        "type": "webhook",
        "audience": "business",
        "url": f"{sink.url}/customers",
        "secret": HOOK_SECRET,
    }
    server = dualtrack_factory(providers=[provider_webhook(f"{sink.url}/ops"), business], extra=GATED)
    server.start()
    body = webhook_body(
        {"alertname": "CheckoutErrors", "service": "checkout"},
        [{"instance": "10.0.0.1:8080", "severity": "error"}],
    )
    response = server.post_alertmanager(body)
    assert response.status_code == 202, response.text
    (ref,) = response.json()["incidents"]

    # The technical webhook hears at once, from the same dispatcher pass; the business one waits.
    wait_until(lambda: sink.received("/ops"), message="the technical first notice")
    (waiting,) = server.api("approvals")["notices"]
    assert (waiting["incident"], waiting["provider"], waiting["state"]) == (
        ref,
        "customers",
        "awaiting_approval",
    )
    assert sink.received("/customers") == []
    assert metric_sum(server.metrics(), "dualtrack_notices_awaiting_approval") == 1

    approved = server.session.post(
        f"{server.url}/api/v1/notices/{waiting['id']}/approve",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert approved.status_code == 200, approved.text
    wait_until(lambda: notice_state(server, ref, waiting["id"]) == "delivered", message="the approved notice")
    # Alertmanager repeats the group: nothing is written again, nothing waits.
    written = len(server.incident(ref)["notices"])
    assert server.post_alertmanager(body).status_code == 202
    assert len(server.incident(ref)["notices"]) == written
    assert server.api("approvals")["notices"] == []
    assert len(sink.received("/ops")) == 1
    (received,) = sink.received("/customers")
    sent = received.json()
    assert (sent["incident"], sent["audience"], sent["phase"]) == (ref, "business", "acknowledgement")
    assert sent["subject"] == waiting["subject"]
    assert metric_sum(server.metrics(), "dualtrack_notices_awaiting_approval") == 0
