"""PagerDuty Webhooks V3 envelopes parsed into one PagerDutyEvent."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.sources.pagerduty import PagerDutyEvent, parse
from adapter.sources.signal import PayloadError
from tests.conftest import fixture_json

TRIGGERED = "pagerduty/pagerduty-v3-incident-triggered.json"
PRIORITY = "pagerduty/pagerduty-v3-incident-priority-updated.json"
RESOLVED = "pagerduty/pagerduty-v3-incident-resolved.json"
ANNOTATED = "pagerduty/pagerduty-v3-incident-annotated.json"
STATUS_UPDATE = "pagerduty/pagerduty-v3-incident-status-update-published.json"
PING = "pagerduty/pagerduty-v3-ping.json"
SIGNATURE_BODY = "pagerduty/pagerduty-v3-signature-example.body.json"
ALL_V3 = [TRIGGERED, PRIORITY, RESOLVED, ANNOTATED, STATUS_UPDATE, PING, SIGNATURE_BODY]

INCIDENT = "Q2K8W7ZJ1XNB4R"
INCIDENT_URL = "https://acme-status.pagerduty.com/incidents/Q2K8W7ZJ1XNB4R"
DEDUP = "97510b418c30a6bc221ab8cd7f4d49d287215a8f33fc7173ad6f03934114edfb"
TITLE = "[FIRING:1] HighErrorRate checkout (10.0.0.1:8080 checkout-api critical)"


def body(name: str) -> dict[str, Any]:
    data = fixture_json(name)
    assert isinstance(data, dict)
    return data


def details_of(payload: Any) -> list[dict[str, Any]]:
    with pytest.raises(PayloadError) as info:
        parse(payload)
    assert info.value.details, "a PayloadError must name at least one field"
    return info.value.details


def fields_of(payload: Any) -> list[str]:
    return [d["field"] for d in details_of(payload)]


# --- fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_V3)
def test_every_fixture_parses_with_an_aware_time(name: str) -> None:
    event = parse(body(name))
    assert isinstance(event, PagerDutyEvent)
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() is not None


def test_triggered_with_null_priority() -> None:
    event = parse(body(TRIGGERED))
    assert event == PagerDutyEvent(
        event_id="01GZ7XK3Q8V2M5N4R6T9W1Y0AB",
        event_type="incident.triggered",
        occurred_at=datetime(2026, 3, 4, 10, 16, 2, 514000, tzinfo=UTC),
        incident_id=INCIDENT,
        incident_number=1042,
        incident_key=DEDUP,
        title=TITLE,
        status="triggered",
        urgency="high",
        priority=None,
        service_id="PSVC123",
        service_name="Checkout API",
        html_url=INCIDENT_URL,
        merged_into=None,
        message=None,
        agent="Checkout API",
    )
    assert not event.is_ping


def test_priority_updated_reads_p1() -> None:
    event = parse(body(PRIORITY))
    assert event.event_type == "incident.priority_updated"
    assert event.priority == "P1"
    assert event.urgency == "high"
    assert event.status == "triggered"
    assert event.incident_id == INCIDENT
    assert event.agent == "Dana Oncall"


def test_resolved() -> None:
    event = parse(body(RESOLVED))
    assert event.event_type == "incident.resolved"
    assert event.status == "resolved"
    assert event.incident_id == INCIDENT
    assert event.incident_key == DEDUP
    assert event.merged_into is None
    assert event.occurred_at == datetime(2026, 3, 4, 10, 58, 31, 201000, tzinfo=UTC)


def test_merge_resolved_names_the_surviving_incident() -> None:
    payload = body(RESOLVED)
    payload["event"]["data"]["resolve_reason"] = {
        "type": "merge_resolve_reason",
        "incident": {
            "id": "Q2SURVIVOR000A",
            "type": "incident_reference",
            "html_url": "https://acme-status.pagerduty.com/incidents/Q2SURVIVOR000A",
        },
    }
    event = parse(payload)
    assert event.status == "resolved"
    assert event.incident_id == INCIDENT
    assert event.merged_into == "Q2SURVIVOR000A"


@pytest.mark.parametrize(
    "reason",
    [
        {"type": "some_future_reason", "incident": {"id": "Q2OTHER"}},
        {"type": "merge_resolve_reason"},
        {"type": "merge_resolve_reason", "incident": None},
        "merged",
    ],
)
def test_other_resolve_reasons_are_not_merges(reason: Any) -> None:
    payload = body(RESOLVED)
    payload["event"]["data"]["resolve_reason"] = reason
    assert parse(payload).merged_into is None


def test_annotated_reads_note_content_and_incident_reference() -> None:
    event = parse(body(ANNOTATED))
    assert event.event_type == "incident.annotated"
    assert event.incident_id == INCIDENT
    assert event.html_url == INCIDENT_URL
    assert event.message == "Rolled back checkout to v2.3.1; error rate falling."
    assert event.agent == "Dana Oncall"
    # A note says nothing about the incident itself: no status, key or title is invented.
    assert event.status is None
    assert event.incident_key is None
    assert event.incident_number is None
    assert event.title is None
    assert event.priority is None
    assert event.service_id is None


def test_status_update_published_reads_message() -> None:
    event = parse(body(STATUS_UPDATE))
    assert event.event_type == "incident.status_update_published"
    assert event.incident_id == INCIDENT
    assert event.message == "Checkout errors mitigated; monitoring."
    assert event.status is None


def test_ping() -> None:
    event = parse(body(PING))
    assert event.is_ping
    assert event.event_type == "pagey.ping"
    assert event.event_id == "01GZ7X0PING0000000000000000"
    assert event.incident_id is None
    assert event.agent is None  # the ping's agent reference carries no summary
    assert event.message == "Hello from your friend Pagey!"


def test_signature_example_body_has_null_agent_and_client() -> None:
    event = parse(body(SIGNATURE_BODY))
    assert event.is_ping
    assert event.agent is None


# --- tolerance: PagerDuty disables a subscription after repeated 4xx ----------------------------


def test_unknown_event_type_parses() -> None:
    payload = {
        "event": {
            "id": "01GZ7Z0WORKFLOW00000000000",
            "event_type": "incident.workflow.started",
            "resource_type": "incident",
            "occurred_at": "2026-03-04T10:40:00.000Z",
            "agent": None,
            "client": None,
            "data": {
                "id": "PWFI001",
                "type": "incident_workflow_instance",
                "incident": {"id": INCIDENT, "type": "incident_reference", "html_url": INCIDENT_URL},
                "incident_workflow": {"id": "PWF1", "type": "incident_workflow_reference"},
            },
        }
    }
    event = parse(payload)
    assert event.event_type == "incident.workflow.started"
    assert event.incident_id == INCIDENT
    assert event.html_url == INCIDENT_URL
    assert event.agent is None
    assert event.status is None


def test_unknown_data_shape_reads_nothing_but_parses() -> None:
    payload = body(TRIGGERED)
    payload["event"]["event_type"] = "incident.something_new"
    payload["event"]["data"] = {"type": "brand_new_thing", "whatever": [1, 2, 3]}
    event = parse(payload)
    assert event.event_type == "incident.something_new"
    assert event.incident_id is None
    assert event.title is None


def test_misshapen_incident_fields_read_as_none() -> None:
    payload = body(PRIORITY)
    data = payload["event"]["data"]
    data["number"] = "not a number"
    data["priority"] = "P1"
    data["service"] = ["PSVC123"]
    data["title"] = {"text": "nested"}
    data["resolve_reason"] = {"type": 7}
    payload["event"]["agent"] = "a string"
    payload["event"]["client"] = "PagerDuty"
    event = parse(payload)
    assert event.incident_id == INCIDENT
    assert event.incident_number is None
    assert event.priority is None
    assert event.service_id is None
    assert event.service_name is None
    assert event.title is None
    assert event.merged_into is None
    assert event.agent is None
    assert event.status == "triggered"


@pytest.mark.parametrize("number", [1000, "+1 555 0100", None])
def test_conference_bridge_number_may_be_number_string_or_null(number: Any) -> None:
    payload = body(TRIGGERED)
    payload["event"]["data"]["conference_bridge"] = {
        "conference_number": number,
        "conference_url": "https://meet.example.org/checkout",
    }
    assert parse(payload).incident_id == INCIDENT


def test_extra_fields_are_tolerated_everywhere() -> None:
    payload = body(TRIGGERED)
    payload["webhook_version"] = "3"
    payload["event"]["new_top_field"] = {"a": 1}
    payload["event"]["data"]["service"]["new_field"] = True
    payload["event"]["data"]["priority"] = {"id": "P", "summary": "P3", "color": "red"}
    assert parse(payload).priority == "P3"


def test_missing_agent_and_client_are_fine() -> None:
    payload = body(TRIGGERED)
    del payload["event"]["agent"]
    del payload["event"]["client"]
    assert parse(payload).agent is None


def test_service_event_reads_service() -> None:
    payload = {
        "event": {
            "id": "01GZ7Z0SERVICE000000000000",
            "event_type": "service.updated",
            "resource_type": "service",
            "occurred_at": "2026-03-04T11:00:00+01:00",
            "agent": None,
            "client": None,
            "data": {
                "id": "PSVC123",
                "type": "service",
                "summary": "Checkout API",
                "name": "Checkout API",
                "html_url": "https://acme-status.pagerduty.com/services/PSVC123",
            },
        }
    }
    event = parse(payload)
    assert event.service_id == "PSVC123"
    assert event.service_name == "Checkout API"
    assert event.incident_id is None
    assert event.occurred_at == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


# --- not a V3 envelope -------------------------------------------------------------------------


def test_v2_body_is_rejected_with_a_clear_message() -> None:
    v2 = {
        "messages": [
            {
                "id": "bb8b8fe0-e8d5-11e3-9c84-22000af75050",
                "event": "incident.trigger",
                "created_on": "2026-03-04T10:16:02Z",
                "incident": {"id": INCIDENT, "incident_number": 1042, "status": "triggered"},
            }
        ]
    }
    with pytest.raises(PayloadError) as info:
        parse(v2)
    assert str(info.value) == "V2 webhooks are not supported; use a V3 subscription"
    assert info.value.details[0]["field"] == "messages"


@pytest.mark.parametrize("payload", [[], "event", 3, None, [{"event": {}}]])
def test_not_an_object(payload: Any) -> None:
    assert fields_of(payload) == ["(body)"]


def test_empty_object_names_event() -> None:
    assert fields_of({}) == ["event"]


@pytest.mark.parametrize("field", ["id", "event_type", "resource_type", "occurred_at", "data"])
def test_missing_envelope_field(field: str) -> None:
    payload = body(TRIGGERED)
    del payload["event"][field]
    assert fields_of(payload) == [f"event.{field}"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", 17),
        ("event_type", ""),
        ("occurred_at", "yesterday"),
        ("occurred_at", "2026-03-04T10:16:02"),  # naive
        ("data", None),
        ("data", ["x"]),
    ],
)
def test_invalid_envelope_field(field: str, value: Any) -> None:
    payload = body(TRIGGERED)
    payload["event"][field] = value
    assert fields_of(payload) == [f"event.{field}"]


def test_event_that_is_not_an_object() -> None:
    assert fields_of({"event": "incident.triggered"}) == ["event"]


def test_parse_does_not_mutate_the_body() -> None:
    payload = body(RESOLVED)
    before = copy.deepcopy(payload)
    parse(payload)
    assert payload == before
