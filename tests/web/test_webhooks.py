"""POST /webhooks/alertmanager: auth, every bad input with its 4xx, and nothing stored on error."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.store import incidents as repo
from adapter.store import outbox
from adapter.text import storable
from tests.conftest import AM_TOKEN, am_headers, api_headers, fixture_bytes
from tests.payloads import am_alert, am_body, encode

URL = "/webhooks/alertmanager"
FIRING = "alertmanager/alertmanager-firing.json"


def stored(store) -> tuple[int, int]:
    with store.read() as conn:
        incidents = repo.list_incidents(conn)
        notices = outbox.notices_of(conn, [i.id for i in incidents])
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


def test_body_over_max_body_bytes_is_413(open_store, make_settings, clock):
    from adapter.app import create_app
    from tests.conftest import base_config

    config = base_config()
    config["server"]["max_body_bytes"] = 1000
    settings = make_settings(config)
    store = open_store(settings.storage.url)
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
        (lambda b: b.update(alerts={"0": {}}), "alerts"),
        (lambda b: b.pop("groupKey"), "groupKey"),
        (lambda b: b.update(groupKey=7), "groupKey"),
    ],
)
def test_an_invalid_envelope_is_422_naming_the_field(client, store, mutate, field):
    body = json.loads(fixture_bytes(FIRING))
    mutate(body)
    response = client.post(URL, data=json.dumps(body), headers=am_headers())
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_payload"
    assert field in [d["field"] for d in error["details"]]
    assert stored(store) == (0, 0)


BAD_ALERT = [
    (lambda a: a.pop("fingerprint"), "fingerprint"),
    (lambda a: a.update(fingerprint="f" * 129), "fingerprint"),
    (lambda a: a.update(status="pending"), "status"),
    (lambda a: a.update(startsAt="yesterday"), "startsAt"),
    (lambda a: a.update(startsAt=1764187595), "startsAt"),  # a number where a time belongs
    (lambda a: a.update(startsAt="0001-01-01T00:00:00+14:00"), "startsAt"),  # no UTC value
    (lambda a: a.update(startsAt="9999-12-31T23:00:00-05:00"), "startsAt"),  # year 10000 in UTC
    (lambda a: a.update(endsAt="9999-12-31T23:00:00-05:00"), "endsAt"),
    (lambda a: a["labels"].update(severity=5), "labels.severity"),
    (lambda a: a["labels"].update(incident_type="t" * 65), "labels.incident_type"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_ALERT)
def test_one_bad_alert_is_rejected_and_the_others_are_stored(app, client, store, mutate, field):
    body = json.loads(fixture_bytes(FIRING))
    mutate(body["alerts"][1])
    response = client.post(URL, data=json.dumps(body), headers=am_headers())
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["incidents"] == ["INC-2026-0001"]
    assert [(r["index"], r["field"]) for r in answer["rejected"]] == [(1, f"alerts.1.{field}")]
    assert all(set(r) == {"index", "field", "message"} for r in answer["rejected"])
    with store.read() as conn:
        assert [a.fingerprint for a in repo.alerts_of(conn, 1)] == ["a64770b64ad10dbc"]
    metrics = app.extensions["dualtrack"].metrics.registry
    labels = {"source": "alertmanager"}
    assert metrics.get_sample_value("dualtrack_signals_total", {**labels, "outcome": "rejected"}) == 1
    assert metrics.get_sample_value("dualtrack_signals_total", {**labels, "outcome": "new"}) == 1


@pytest.mark.parametrize(("mutate", "field"), BAD_ALERT)
def test_a_group_whose_every_alert_is_bad_is_422_naming_each(app, client, store, mutate, field):
    body = json.loads(fixture_bytes(FIRING))
    for alert in body["alerts"]:
        mutate(alert)
    response = client.post(URL, data=json.dumps(body), headers=am_headers())
    assert response.status_code == 422
    assert [d["field"] for d in error_of(response)["details"]] == [f"alerts.0.{field}", f"alerts.1.{field}"]
    assert stored(store) == (0, 0)
    metrics = app.extensions["dualtrack"].metrics.registry
    sample = {"source": "alertmanager", "outcome": "rejected"}
    assert metrics.get_sample_value("dualtrack_signals_total", sample) == 2


def test_an_answer_without_rejections_is_unchanged(client, store):
    response = client.post(URL, data=fixture_bytes(FIRING), headers=am_headers())
    assert response.get_json() == {"incidents": ["INC-2026-0001"]}


def test_go_zero_time_still_means_no_end(client, store):
    body = json.loads(fixture_bytes(FIRING))
    assert {a["endsAt"] for a in body["alerts"]} == {"0001-01-01T00:00:00Z"}
    assert "rejected" not in client.post(URL, data=json.dumps(body), headers=am_headers()).get_json()
    assert stored(store) == (1, 2)


ODD_TEXT = ["\x00", "\ud800", "\udfff", "a\x00b\ud83d"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("odd", ODD_TEXT)
def test_odd_text_in_fingerprint_group_key_and_labels_dedupes_and_resolves(client, store, backend, odd):
    alert = am_alert(f"fp{odd}", {"alertname": f"Disk{odd}", "service": "search", f"k{odd}": odd})
    alert["annotations"] = {"summary": f"disk {odd} full", "description": odd}
    body = am_body([alert], group_key=f"{{}}:{{alertname={odd}}}")
    first = client.post(URL, data=encode(body), headers=am_headers())
    assert first.status_code == 202 and first.get_json() == {"incidents": ["INC-2026-0001"]}
    again = client.post(URL, data=encode(body), headers=am_headers())
    assert again.status_code == 202 and again.get_json() == {"incidents": []}  # a duplicate
    resolved = am_body([{**alert, "status": "resolved", "endsAt": "2026-11-26T14:40:00Z"}], body["groupKey"])
    assert client.post(URL, data=encode(resolved), headers=am_headers()).status_code == 202
    with store.read() as conn:
        (incident,) = repo.list_incidents(conn)
        (stored_alert,) = repo.alerts_of(conn, incident.id)
    assert incident.status == "resolved"
    assert stored_alert.fingerprint == "fp" + storable(odd)
    assert stored_alert.labels[f"k{storable(odd)}"] == storable(odd)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"version": "4", "groupKey": ' + b"1" * 5000 + b"}", "number too long"),
    ],
)
def test_json_past_the_parser_limits_is_400_without_a_traceback(client, store, caplog, raw, message):
    response = client.post(URL, data=raw, headers=am_headers())
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_json"
    assert message in error["message"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
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
