"""Approvals through the API: the notices awaiting approval, approving (with edits) and discarding."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapter.app import create_app
from adapter.metrics import Metrics
from tests.conftest import (
    API_TOKEN,
    APPROVER_TOKEN,
    AUTHOR_TOKEN,
    VIEWER_TOKEN,
    am_headers,
    base_config,
)
from tests.payloads import am_alert, am_body, encode


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def world(open_store, make_settings, clock):
    config = base_config()
    config["policy"] = {"approval": {"business": {"min_level": 3}, "auto_publish_after": "20m"}}
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    client = app.test_client()
    # Level 3 on checkout: acme (technical) and bloom (business) are affected.
    labels = {"alertname": "Slow", "service": "checkout", "severity": "error"}
    alert = am_alert("c000000000000001", labels, starts_at=clock.now())
    response = client.post("/webhooks/alertmanager", data=encode(am_body([alert])), headers=am_headers())
    assert response.status_code == 202
    yield client
    store.dispose()


def approvals(client, token=VIEWER_TOKEN):
    response = client.get("/api/v1/approvals", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["notices"]


def test_the_approvals_list_shows_what_waits_and_whether_it_will_be_late(world, clock):
    opened = clock.now()
    (waiting,) = approvals(world)
    assert {k: waiting[k] for k in ("incident", "provider", "audience", "tenant", "phase", "state")} == {
        "incident": "INC-2026-0001",
        "provider": "status",
        "audience": "business",
        "tenant": None,
        "phase": "acknowledgement",
        "state": "awaiting_approval",
    }
    assert waiting["subject"] and waiting["body"]
    assert waiting["created_at"] == "2026-11-26T14:32:00Z"
    # Due within 15 minutes (level 3), published unapproved after 20: waiting makes it late.
    assert waiting["deadline"] == (opened + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    assert waiting["auto_publish_at"] == "2026-11-26T14:52:00Z"
    assert waiting["late"] is True
    listed = world.get("/api/v1/notices?state=awaiting_approval", headers=bearer(VIEWER_TOKEN))
    assert [n["id"] for n in listed.get_json()["notices"]] == [waiting["id"]]
    assert world.get("/api/v1/approvals").status_code == 401


def test_an_approver_publishes_a_notice_with_their_edits(world):
    (waiting,) = approvals(world)
    url = f"/api/v1/notices/{waiting['id']}/approve"
    edits = {"subject": "Checkout is slow", "body": "Some payments take longer. We are on it."}
    response = world.post(url, data=json.dumps(edits), headers=bearer(APPROVER_TOKEN))
    assert response.status_code == 200, response.get_json()
    notice = response.get_json()
    assert (notice["id"], notice["state"], notice["subject"]) == (
        waiting["id"],
        "delivered",
        "Checkout is slow",
    )
    assert approvals(world) == []
    page = world.get("/status").get_data(as_text=True)
    assert "Some payments take longer" in page
    entries = world.get("/api/v1/audit?author=lead-bot", headers=bearer(VIEWER_TOKEN)).get_json()["entries"]
    (entry,) = entries
    assert entry["action"] == "approve" and entry["role"] == "approver"
    assert entry["changes"]["subject"] == {"from": waiting["subject"], "to": "Checkout is slow"}
    again = world.post(url, headers=bearer(APPROVER_TOKEN))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"


def test_approving_as_written_needs_no_body(world, clock):
    (waiting,) = approvals(world)
    assert waiting["subject"] not in world.get("/status").get_data(as_text=True)
    response = world.post(f"/api/v1/notices/{waiting['id']}/approve", headers=bearer(APPROVER_TOKEN))
    assert response.status_code == 200
    clock.advance(timedelta(seconds=6))  # past status_page.cache
    assert (response.get_json()["state"], response.get_json()["subject"]) == ("delivered", waiting["subject"])
    assert waiting["subject"] in world.get("/status").get_data(as_text=True)


def test_a_discarded_notice_is_never_published(world):
    (waiting,) = approvals(world)
    response = world.post(f"/api/v1/notices/{waiting['id']}/discard", headers=bearer(APPROVER_TOKEN))
    assert response.status_code == 200 and response.get_json()["state"] == "discarded"
    assert waiting["subject"] not in world.get("/status").get_data(as_text=True)
    assert approvals(world) == []
    conflict = world.post(f"/api/v1/notices/{waiting['id']}/approve", headers=bearer(API_TOKEN))
    assert conflict.status_code == 409
    entries = world.get("/api/v1/audit?author=lead-bot", headers=bearer(VIEWER_TOKEN)).get_json()["entries"]
    assert [e["action"] for e in entries] == ["discard"]


@pytest.mark.parametrize("action", ["approve", "discard"])
def test_only_approvers_decide_and_errors_are_the_house_json(world, action):
    (waiting,) = approvals(world)
    url = f"/api/v1/notices/{waiting['id']}/{action}"
    for token in (VIEWER_TOKEN, AUTHOR_TOKEN):
        refused = world.post(url, headers=bearer(token))
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    missing = world.post("/api/v1/notices/999/" + action, headers=bearer(APPROVER_TOKEN))
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert world.post(url, headers={"Content-Type": "application/json"}).status_code == 401
    assert approvals(world)[0]["state"] == "awaiting_approval"


def test_an_approval_body_is_checked(world):
    (waiting,) = approvals(world)
    url = f"/api/v1/notices/{waiting['id']}/approve"
    for body in ({"subject": ""}, {"colour": "red"}, {"body": 5}):
        answer = world.post(url, data=json.dumps(body), headers=bearer(APPROVER_TOKEN))
        assert answer.status_code == 422, body
        assert answer.get_json()["error"]["code"] == "invalid_payload"
    assert world.post(url, data="{", headers=bearer(APPROVER_TOKEN)).status_code == 400
    assert approvals(world)[0]["state"] == "awaiting_approval"
