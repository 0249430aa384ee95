"""POST /webhooks/alertmanager: auth, every bad input with its 4xx, and nothing stored on error."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import AM_TOKEN, am_headers, api_headers, fixture_bytes
from tests.payloads import am_alert, am_body, encode

URL = "/webhooks/alertmanager"
FIRING = "alertmanager/alertmanager-firing.json"


def stored(store) -> tuple[int, int]:
    with store.read() as conn:
        incidents = repo.list_incidents(conn)
        notices = outbox.notices_of(conn, [i["id"] for i in incidents])
    return len(incidents), len(notices)


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_accepts_captured_payload_and_answers_refs(client, store):
    response = client.post(URL, data=fixture_bytes(FIRING), headers=am_headers())
    assert response.status_code == 202
    assert response.get_json() == {"incidents": ["INC-2026-0001"]}
    assert stored(store) == (1, 2)


def test_put_is_accepted_like_grafana_can_send(client, store):
    response = client.put(URL, data=fixture_bytes("grafana/grafana-webhook.json"), headers=am_headers())
    assert response.status_code == 202


def test_basic_auth_variant(client, store):
    token = base64.b64encode(b"am:am-password").decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    assert client.post(URL, data=fixture_bytes(FIRING), headers=headers).status_code == 202


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {AM_TOKEN}x",
        f"Token {AM_TOKEN}",
        "Basic " + base64.b64encode(b"am:wrong").decode(),
        "Basic !!!not-base64!!!",
        "Bearer " + "api-test-token",  # the API token is not a webhook credential
    ],
)
def test_missing_or_wrong_credentials_are_401_and_store_nothing(client, store, authorization):
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    response = client.post(URL, data=fixture_bytes(FIRING), headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(store) == (0, 0)


def test_malformed_json_is_400(client, store):
    response = client.post(URL, data=b'{"version": "4", "alerts": [', headers=am_headers())
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"
    assert stored(store) == (0, 0)


def test_invalid_utf8_is_400(client, store):
    response = client.post(URL, data=b'{"a": "\xff"}', headers=am_headers())
    assert response.status_code == 400
    assert stored(store) == (0, 0)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_not_json_is_415(client, store, content_type):
    headers = {"Authorization": f"Bearer {AM_TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(URL, data=fixture_bytes(FIRING), headers=headers)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert stored(store) == (0, 0)


def test_json_with_charset_is_accepted(client, store):
    headers = {**am_headers(), "Content-Type": "application/json; charset=utf-8"}
    assert client.post(URL, data=fixture_bytes(FIRING), headers=headers).status_code == 202


def test_body_over_max_body_bytes_is_413(make_settings, clock):
    from adapter.app import create_app
    from adapter.store import Store
    from tests.conftest import base_config

    config = base_config()
    config["server"]["max_body_bytes"] = 1000
    settings = make_settings(config)
    store = Store(settings.storage.url)
    store.migrate()
    client = create_app(settings, clock=clock, store=store).test_client()
    response = client.post(URL, data=fixture_bytes(FIRING), headers=am_headers())
    assert len(fixture_bytes(FIRING)) > 1000
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert stored(store) == (0, 0)
    store.dispose()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("alerts"), "alerts"),
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.update(alerts=[]), "alerts"),
        (lambda b: b["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda b: b["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][1]["labels"].update(severity=5), "alerts.1.labels.severity"),
        (lambda b: b.pop("groupKey"), "groupKey"),
    ],
)
def test_json_that_is_not_a_notification_is_422_naming_the_field(client, store, mutate, field):
    body = json.loads(fixture_bytes(FIRING))
    mutate(body)
    response = client.post(URL, data=json.dumps(body), headers=am_headers())
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_payload"
    assert field in [d["field"] for d in error["details"]]
    assert stored(store) == (0, 0)


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_422(client, store, body):
    response = client.post(URL, data=body, headers=am_headers())
    assert response.status_code == 422
    assert stored(store) == (0, 0)


def test_grafana_test_notification_is_acknowledged_without_incident(client, store):
    alert = am_alert("0123456789abcdef", {"alertname": "TestAlert", "instance": "Grafana"})
    alert["annotations"] = {"summary": "Notification test"}
    body = am_body([alert], group_key="test-0123456789abcdef-1767225600")
    body["version"] = "1"
    response = client.post(URL, data=encode(body), headers=am_headers())
    assert response.status_code == 202
    assert response.get_json() == {"incidents": []}
    assert stored(store) == (0, 0)


def test_unknown_route_and_method_are_json_errors(client):
    response = client.get(URL, headers=am_headers())
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    response = client.get("/nope")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"version": st.sampled_from(["4", "1"]), "groupKey": st.text(max_size=5), "status": st.text()},
            optional={"alerts": st.lists(st.dictionaries(st.text(max_size=8), json_values), max_size=3)},
        ),
    )
)
def test_no_input_gives_a_server_error(client, body):
    response = client.post(URL, data=json.dumps(body), headers=am_headers())
    assert response.status_code in (202, 422)
    assert response.is_json


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_give_a_server_error(client, raw):
    response = client.post(URL, data=raw, headers=am_headers())
    assert response.status_code in (202, 400, 422)


def test_api_lists_what_webhook_stored(client):
    client.post(URL, data=fixture_bytes(FIRING), headers=am_headers())
    listed = client.get("/api/v1/incidents", headers=api_headers()).get_json()["incidents"]
    assert [i["ref"] for i in listed] == ["INC-2026-0001"]
