"""PagerDuty Events API v2 enqueue bodies parsed into an EnqueueEvent, with PagerDuty's error strings."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from adapter.sources.events import EnqueueEvent, EventsError, parse
from tests.conftest import fixture_json

TRIGGER = "pagerduty/pagerduty-events-v2-trigger.json"
RESOLVE = "pagerduty/pagerduty-events-v2-resolve.json"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
DEDUP = "97510b418c30a6bc221ab8cd7f4d49d287215a8f33fc7173ad6f03934114edfb"
CLIENT_URL = "http://alertmanager.example.org:9093/#/alerts?receiver=pd"
SEVERITY_INVALID = (
    "'payload.severity' is invalid (must be one of the following: 'critical', 'error', 'warning' or 'info')"
)
ACTION_INVALID = (
    "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
)


def body(name: str = TRIGGER) -> dict[str, Any]:
    data = fixture_json(name)
    assert isinstance(data, dict)
    return data


def minimal(action: str = "trigger") -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": ROUTING_KEY, "event_action": action}
    if action == "trigger":
        event["payload"] = {"summary": "Disk full", "source": "db-1", "severity": "warning"}
    else:
        event["dedup_key"] = "disk/db-1"
    return event


def errors_of(payload: Any) -> list[str]:
    with pytest.raises(EventsError) as info:
        parse(payload)
    assert str(info.value) == "Event object is invalid"
    assert info.value.errors, "an EventsError must list at least one error"
    return info.value.errors


# --- fixtures from Alertmanager's pagerduty_configs ---------------------------------------------


def test_alertmanager_trigger() -> None:
    event = parse(body(TRIGGER))
    assert isinstance(event, EnqueueEvent)
    assert event.routing_key == ROUTING_KEY
    assert event.event_action == "trigger"
    assert event.dedup_key == DEDUP
    assert event.summary == "[FIRING:1] HighErrorRate checkout (10.0.0.1:8080 checkout-api critical)"
    assert event.source == "Alertmanager"
    assert event.severity == "critical"
    assert event.timestamp is None
    assert event.class_ == "HighErrorRate"
    assert event.component == "checkout"
    assert event.group == "checkout-api"
    assert event.client == "Alertmanager"
    assert event.client_url == CLIENT_URL
    assert event.links == []
    # Alertmanager sends every custom_details value as a string.
    assert event.custom_details["num_firing"] == "1"
    assert event.custom_details["num_resolved"] == "0"
    assert event.custom_details["resolved"] == ""
    assert event.custom_details["firing"].startswith("Labels:\n - alertname = HighErrorRate\n")


def test_alertmanager_resolve_still_carries_the_payload() -> None:
    event = parse(body(RESOLVE))
    assert event.event_action == "resolve"
    assert event.dedup_key == DEDUP
    assert event.summary == "[RESOLVED] HighErrorRate checkout (10.0.0.1:8080 checkout-api critical)"
    assert event.severity == "critical"
    assert event.source == "Alertmanager"
    assert event.custom_details["num_resolved"] == "1"
    assert event.client_url == CLIENT_URL


def test_trigger_and_resolve_share_the_dedup_key() -> None:
    assert parse(body(TRIGGER)).dedup_key == parse(body(RESOLVE)).dedup_key


# --- valid variants --------------------------------------------------------------------------


def test_minimal_trigger_without_dedup_key() -> None:
    event = parse(minimal())
    assert event.dedup_key is None
    assert event.custom_details is None
    assert event.links == []
    assert event.client is None


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_need_no_payload(action: str) -> None:
    event = parse(minimal(action))
    assert event.event_action == action
    assert event.dedup_key == "disk/db-1"
    assert event.summary is None
    assert event.severity is None


def test_resolve_payload_is_read_but_never_required() -> None:
    payload = minimal("resolve")
    payload["payload"] = {"summary": "x" * 2000, "severity": "fatal", "source": 3, "timestamp": "soon"}
    event = parse(payload)
    assert event.summary == "x" * 2000
    assert event.severity is None
    assert event.source is None
    assert event.timestamp is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-07-17T08:42:58.315+0000", datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)),
        ("2015-07-17T08:42:58.315+00:00", datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)),
        ("2015-07-17T08:42:58Z", datetime(2015, 7, 17, 8, 42, 58, tzinfo=UTC)),
        (
            "2015-07-17T10:42:58+0200",
            datetime(2015, 7, 17, 10, 42, 58, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2015-07-17T08:42:58", datetime(2015, 7, 17, 8, 42, 58, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_timestamp_formats(text: str, expected: datetime) -> None:
    payload = minimal()
    payload["payload"]["timestamp"] = text
    timestamp = parse(payload).timestamp
    assert timestamp == expected
    assert timestamp is not None and timestamp.tzinfo is not None


@pytest.mark.parametrize("severity", ["critical", "error", "warning", "info"])
def test_every_severity(severity: str) -> None:
    payload = minimal()
    payload["payload"]["severity"] = severity
    assert parse(payload).severity == severity


def test_custom_details_may_be_any_json() -> None:
    payload = minimal()
    payload["payload"]["custom_details"] = {"free_disk": 0.5, "hosts": ["db-1"], "nested": {"a": None}}
    assert parse(payload).custom_details == {"free_disk": 0.5, "hosts": ["db-1"], "nested": {"a": None}}
    payload["payload"]["custom_details"] = "plain text"
    assert parse(payload).custom_details == "plain text"


def test_links_and_optional_fields() -> None:
    payload = minimal()
    payload["links"] = [
        {"href": "https://runbooks.example.org/disk", "text": "Runbook"},
        {"href": "https://x"},
    ]
    payload["images"] = [{"src": "https://graph.example.org/png"}]
    payload["payload"].update({"component": "mysql", "group": "db", "class": "disk"})
    event = parse(payload)
    assert event.links == [
        {"href": "https://runbooks.example.org/disk", "text": "Runbook"},
        {"href": "https://x"},
    ]
    assert (event.component, event.group, event.class_) == ("mysql", "db", "disk")


def test_limits_are_inclusive() -> None:
    payload = minimal()
    payload["dedup_key"] = "k" * 255
    payload["payload"]["summary"] = "s" * 1024
    event = parse(payload)
    assert event.dedup_key == "k" * 255
    assert event.summary == "s" * 1024


def test_blank_dedup_key_on_trigger_means_none() -> None:
    payload = minimal()
    payload["dedup_key"] = "  "
    assert parse(payload).dedup_key is None


# --- invalid events, with PagerDuty's error strings ---------------------------------------------


@pytest.mark.parametrize("payload", [[], "trigger", 3, None, [minimal()]])
def test_not_an_object(payload: Any) -> None:
    assert errors_of(payload) == ["Event must be a JSON object"]


def test_empty_object_lists_routing_key_and_action() -> None:
    assert errors_of({}) == ["'routing_key' is missing or blank", "'event_action' is missing or blank"]


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("summary", "'payload.summary' is missing or blank"),
        ("source", "'payload.source' is missing or blank"),
        ("severity", "'payload.severity' is missing or blank"),
    ],
)
def test_trigger_missing_payload_field(field: str, error: str) -> None:
    payload = body(TRIGGER)
    del payload["payload"][field]
    assert errors_of(payload) == [error]
    payload["payload"][field] = "   "
    assert errors_of(payload) == [error]


@pytest.mark.parametrize("field", ["routing_key", "event_action"])
def test_missing_top_level_field(field: str) -> None:
    payload = body(TRIGGER)
    del payload[field]
    assert errors_of(payload) == [f"'{field}' is missing or blank"]


def test_trigger_without_payload() -> None:
    payload = minimal()
    del payload["payload"]
    assert errors_of(payload) == ["'payload' is missing or blank"]


def test_trigger_with_empty_payload_lists_each_required_field() -> None:
    payload = minimal()
    payload["payload"] = {}
    assert errors_of(payload) == [
        "'payload.summary' is missing or blank",
        "'payload.source' is missing or blank",
        "'payload.severity' is missing or blank",
    ]


def test_trigger_payload_not_an_object() -> None:
    payload = minimal()
    payload["payload"] = "Disk full"
    assert errors_of(payload) == ["'payload' must be an object"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_need_a_dedup_key(action: str) -> None:
    payload = minimal(action)
    del payload["dedup_key"]
    assert errors_of(payload) == ["'dedup_key' is missing or blank"]


def test_alertmanager_resolve_without_dedup_key() -> None:
    payload = body(RESOLVE)
    del payload["dedup_key"]
    assert errors_of(payload) == ["'dedup_key' is missing or blank"]


@pytest.mark.parametrize("action", ["Trigger", "open", "close", "ack", 1])
def test_bad_action(action: Any) -> None:
    payload = minimal()
    payload["event_action"] = action
    expected = ["'event_action' must be a string"] if not isinstance(action, str) else [ACTION_INVALID]
    assert errors_of(payload) == expected


@pytest.mark.parametrize("severity", ["fatal", "Critical", "page", "high"])
def test_bad_severity(severity: str) -> None:
    payload = body(TRIGGER)
    payload["payload"]["severity"] = severity
    assert errors_of(payload) == [SEVERITY_INVALID]


def test_dedup_key_over_255() -> None:
    payload = body(TRIGGER)
    payload["dedup_key"] = "k" * 256
    assert errors_of(payload) == ["Length of 'dedup_key' is too long (maximum is 255 characters)"]


def test_summary_over_1024() -> None:
    payload = body(TRIGGER)
    payload["payload"]["summary"] = "s" * 1025
    assert errors_of(payload) == ["Length of 'payload.summary' is too long (maximum is 1024 characters)"]


@pytest.mark.parametrize(
    ("key", "errors"),
    [
        ("short", ["Length of 'routing_key' is incorrect (should be 32 characters)"]),
        ("R0UTINGKEY0123456789abcdef01234-", ["'routing_key' cannot contain non-alphanumeric characters."]),
        (
            "a b",
            [
                "Length of 'routing_key' is incorrect (should be 32 characters)",
                "'routing_key' cannot contain non-alphanumeric characters.",
            ],
        ),
        (12345, ["'routing_key' must be a string"]),
    ],
)
def test_bad_routing_key(key: Any, errors: list[str]) -> None:
    payload = minimal()
    payload["routing_key"] = key
    assert errors_of(payload) == errors


def test_bad_timestamp() -> None:
    payload = minimal()
    payload["payload"]["timestamp"] = "yesterday at noon"
    assert errors_of(payload) == ["'payload.timestamp' is invalid (must be an ISO 8601 date and time)"]


@pytest.mark.parametrize(
    ("links", "error"),
    [
        ("https://x", "'links' must be an array"),
        (["https://x"], "'links[0]' must be an object"),
        ([{"text": "Runbook"}], "'links[0].href' is missing or blank"),
        ([{"href": "https://x", "text": 3}], "'links[0].text' must be a string"),
    ],
)
def test_bad_links(links: Any, error: str) -> None:
    payload = minimal()
    payload["links"] = links
    assert errors_of(payload) == [error]


def test_all_errors_are_listed_together() -> None:
    payload = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "k" * 300,
        "payload": {"summary": "s" * 2000, "severity": "fatal"},
    }
    assert errors_of(payload) == [
        "Length of 'dedup_key' is too long (maximum is 255 characters)",
        "Length of 'payload.summary' is too long (maximum is 1024 characters)",
        "'payload.source' is missing or blank",
        SEVERITY_INVALID,
    ]


def test_response_body_mimics_pagerduty() -> None:
    with pytest.raises(EventsError) as info:
        parse({"routing_key": ROUTING_KEY, "event_action": "open"})
    assert info.value.response_body() == {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": [ACTION_INVALID],
    }
    assert isinstance(info.value, ValueError)


def test_parse_does_not_mutate_the_body() -> None:
    payload = body(RESOLVE)
    before = copy.deepcopy(payload)
    parse(payload)
    assert payload == before
