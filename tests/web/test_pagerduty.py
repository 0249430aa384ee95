"""PagerDuty in: signed Webhooks V3, the Events API v2 endpoint, and one incident per outage."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.sources.signatures import sign_pagerduty
from tests.conftest import am_headers, api_headers, base_config, fixture_bytes, fixture_json
from tests.support.catalog import catalog_data

SECRET = "whsec-new-0123456789"
OLD_SECRET = "whsec-old-9876543210"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
PD = "pagerduty/pagerduty-v3-incident-{}.json"


@pytest.fixture
def make_client(open_store, make_settings, clock):
    stores = []

    def make(pagerduty_auth=None, pagerduty=None):
        config = base_config()
        config["auth"]["pagerduty"] = pagerduty_auth or {"signing_secrets": [SECRET, OLD_SECRET]}
        config["auth"]["events"] = {"routing_keys": [ROUTING_KEY]}
        if pagerduty:
            config["pagerduty"] = pagerduty
        catalog = catalog_data()
        catalog["pagerduty"] = {"PSVC123": "checkout"}
        settings = make_settings(config, catalog)
        store = open_store(settings.storage.url)
        stores.append(store)
        return create_app(settings, clock=clock, store=store, metrics=Metrics()).test_client()

    yield make
    for store in stores:
        store.dispose()


@pytest.fixture
def client(make_client):
    return make_client()


def send(client, name_or_body, *, secret=SECRET, webhook_id=None, header=None):
    raw = fixture_bytes(PD.format(name_or_body)) if isinstance(name_or_body, str) else name_or_body
    headers = {"Content-Type": "application/json"}
    signature = header if header is not None else sign_pagerduty(secret, raw)
    if signature:
        headers["X-PagerDuty-Signature"] = signature
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    return client.post("/webhooks/pagerduty", data=raw, headers=headers)


def incidents(client):
    return client.get("/api/v1/incidents", headers=api_headers()).get_json()["incidents"]


def incident(client, ref="INC-2026-0001"):
    return client.get(f"/api/v1/incidents/{ref}", headers=api_headers()).get_json()


def enqueue(client, body):
    return client.post("/v2/enqueue", data=json.dumps(body), headers={"Content-Type": "application/json"})


# -- signatures ------------------------------------------------------------------------------


def test_signed_trigger_opens_an_incident_mapped_through_the_catalog(client):
    response = send(client, "triggered", webhook_id="wh-1")
    assert response.status_code == 202
    assert response.get_json()["incidents"] == ["INC-2026-0001"]
    body = incident(client)
    assert body["source"] == "pagerduty"
    assert body["services"] == ["checkout"]  # PSVC123 through the catalog's pagerduty map
    assert body["level"] == 4  # no priority: urgency high
    assert body["tenants"] == ["acme", "bloom"]
    assert {n["phase"] for n in body["notices"]} == {"acknowledgement"}


def test_rotation_header_with_either_secret_is_accepted(client):
    raw = fixture_bytes(PD.format("triggered"))
    both = f"{sign_pagerduty(SECRET, raw)},{sign_pagerduty(OLD_SECRET, raw)}"
    assert send(client, raw, header=both).status_code == 202
    only_old = f"v1=deadbeef, {sign_pagerduty(OLD_SECRET, raw)}"
    assert send(client, raw, header=only_old, webhook_id="other").status_code == 202


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: (raw + b"\n", None),  # one extra byte after signing
        lambda raw: (raw.replace(b"Q2K8W7ZJ1XNB4R", b"Q2K8W7ZJ1XNB4S"), None),
        lambda raw: (raw, ""),  # no header
        lambda raw: (raw, sign_pagerduty("someone-else", raw)),
        lambda raw: (raw, "v0=" + sign_pagerduty(SECRET, raw)[3:]),
    ],
)
def test_bad_signatures_are_401_and_store_nothing(client, tamper):
    raw = fixture_bytes(PD.format("triggered"))
    signed = sign_pagerduty(SECRET, raw)
    body, header = tamper(raw)
    response = send(client, body, header=signed if header is None else header)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert incidents(client) == []


def test_no_secret_rejects_unless_unsigned_is_allowed(make_client):
    strict = make_client({"signing_secrets": []})
    assert send(strict, "triggered", header="").status_code == 401
    relaxed = make_client({"signing_secrets": [], "allow_unsigned": True})
    assert send(relaxed, "triggered", header="").status_code == 202


def test_allow_unsigned_is_warned_about_by_check_config(make_settings, capsys):
    from adapter.cli import main

    config = base_config()
    config["auth"]["pagerduty"] = {"allow_unsigned": True}
    settings = make_settings(config)
    assert main(["check-config", "--config", settings.config_path]) == 0
    assert "auth.pagerduty.allow_unsigned" in capsys.readouterr().err


# -- dedupe and ignoring ----------------------------------------------------------------------


def test_retries_are_deduplicated_by_webhook_id_and_event_id(client):
    assert send(client, "triggered", webhook_id="wh-1").get_json()["outcome"] == "accepted"
    again = send(client, "triggered", webhook_id="wh-1")
    assert again.status_code == 202 and again.get_json()["outcome"] == "duplicate"
    # A retry under another webhook id but the same event id.
    assert send(client, "triggered", webhook_id="wh-2").get_json()["outcome"] == "duplicate"
    assert len(incidents(client)) == 1
    assert len(incident(client)["notices"]) == 2


def test_ping_and_unknown_events_are_acknowledged_and_ignored(client):
    ping = fixture_bytes("pagerduty/pagerduty-v3-ping.json")
    response = send(client, ping)
    assert response.status_code == 202 and response.get_json()["outcome"] == "ignored"
    unknown = fixture_json(PD.format("triggered"))
    unknown["event"]["event_type"] = "incident.workflow.started"
    unknown["event"]["id"] = "01UNKNOWN"
    response = send(client, json.dumps(unknown).encode())
    assert response.status_code == 202 and response.get_json()["outcome"] == "ignored"
    assert incidents(client) == []


def test_not_a_v3_envelope_is_422(client):
    response = send(client, b'{"messages": [{"event": "incident.trigger"}]}')
    assert response.status_code == 422
    assert "V3" in response.get_json()["error"]["message"]


# -- lifecycle --------------------------------------------------------------------------------


def test_priority_acknowledge_note_status_update_and_resolve(client, clock):
    send(client, "triggered")
    clock.advance(timedelta(minutes=2))
    send(client, "priority-updated")
    body = incident(client)
    assert body["level"] == 5  # P1
    assert any(n["phase"] == "update" for n in body["notices"])

    acked = fixture_json(PD.format("triggered"))
    acked["event"].update(id="01ACK", event_type="incident.acknowledged", agent={"summary": "Dana Byrne"})
    send(client, json.dumps(acked).encode())
    body = incident(client)
    assert body["status"] == "investigating"
    assert body["timeline"][-1]["message"] == "Acknowledged in PagerDuty by Dana Byrne"

    before = len(body["notices"])
    send(client, "annotated")
    body = incident(client)
    assert body["timeline"][-1]["kind"] == "note"
    assert len(body["notices"]) == before  # internal notes are never published

    send(client, "status-update-published")
    body = incident(client)
    update = body["notices"][-1]
    message = fixture_json(PD.format("status-update-published"))["event"]["data"]["message"]
    assert (update["audience"], update["phase"]) == ("business", "update")
    assert message.split("\n")[0] in update["body"]

    clock.advance(timedelta(minutes=20))
    send(client, "resolved")
    body = incident(client)
    assert body["status"] == "resolved"
    assert {n["audience"] for n in body["notices"] if n["phase"] == "resolution"} == {"technical", "business"}


def test_acknowledged_status_is_configurable(make_client):
    client = make_client(pagerduty={"acknowledged_status": "identified"})
    send(client, "triggered")
    acked = fixture_json(PD.format("triggered"))
    acked["event"].update(id="01ACK", event_type="incident.acknowledged")
    send(client, json.dumps(acked).encode())
    assert incident(client)["status"] == "identified"


def test_merge_folds_into_the_surviving_incident_without_a_resolution(client):
    send(client, "triggered")
    other = fixture_json(PD.format("triggered"))
    other["event"]["id"] = "01SECOND"
    other["event"]["data"].update(id="Q9SURVIVOR", incident_key="another-key", title="Checkout slow")
    send(client, json.dumps(other).encode())
    assert len(incidents(client)) == 2
    merged = fixture_json(PD.format("resolved"))
    merged["event"]["data"]["resolve_reason"] = {
        "type": "merge_resolve_reason",
        "incident": {"id": "Q9SURVIVOR", "type": "incident_reference"},
    }
    assert send(client, json.dumps(merged).encode()).status_code == 202
    folded = incident(client, "INC-2026-0001")
    survivor = incident(client, "INC-2026-0002")
    assert folded["status"] == "resolved"
    assert not [n for n in folded["notices"] if n["phase"] == "resolution"]
    assert folded["timeline"][-1]["message"] == "Merged into INC-2026-0002"
    assert survivor["status"] != "resolved"
    assert len(survivor["alerts"]) == 2
    assert any(t["message"] == "INC-2026-0001 merged into this incident" for t in survivor["timeline"])


# -- one outage, one incident -----------------------------------------------------------------


def test_alertmanager_then_pagerduty_for_the_same_group_is_one_incident(client):
    response = client.post(
        "/webhooks/alertmanager",
        data=fixture_bytes("alertmanager/alertmanager-firing.json"),
        headers=am_headers(),
    )
    assert response.get_json() == {"incidents": ["INC-2026-0001"]}
    # PagerDuty's incident_key is sha256 of the Alertmanager groupKey.
    assert send(client, "triggered").get_json()["incidents"] == ["INC-2026-0001"]
    assert len(incidents(client)) == 1
    assert [n["phase"] for n in incident(client)["notices"]].count("acknowledgement") == 2


def test_events_then_alertmanager_is_one_incident(client):
    enqueue(client, fixture_json("pagerduty/pagerduty-events-v2-trigger.json"))
    client.post(
        "/webhooks/alertmanager",
        data=fixture_bytes("alertmanager/alertmanager-firing.json"),
        headers=am_headers(),
    )
    assert len(incidents(client)) == 1


def test_cross_source_can_be_switched_off(open_store, make_settings, clock):
    config = base_config()
    config["auth"]["pagerduty"] = {"signing_secrets": [SECRET]}
    config["correlation"] = {**config["correlation"], "cross_source": False}
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    client = create_app(settings, clock=clock, store=store).test_client()
    client.post(
        "/webhooks/alertmanager",
        data=fixture_bytes("alertmanager/alertmanager-firing.json"),
        headers=am_headers(),
    )
    send(client, "triggered")
    assert len(incidents(client)) == 2
    store.dispose()


# -- Events API v2 ----------------------------------------------------------------------------


def test_events_trigger_repeat_and_resolve(client, clock):
    trigger = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    response = enqueue(client, trigger)
    assert response.status_code == 202
    assert response.get_json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": trigger["dedup_key"],
    }
    body = incident(client)
    assert (body["source"], body["services"], body["level"]) == ("events", ["checkout"], 4)
    notices = len(body["notices"])
    clock.advance(timedelta(minutes=5))
    assert enqueue(client, trigger).status_code == 202  # Alertmanager re-sends on every interval
    assert len(incident(client)["notices"]) == notices
    clock.advance(timedelta(minutes=5))
    assert enqueue(client, fixture_json("pagerduty/pagerduty-events-v2-resolve.json")).status_code == 202
    body = incident(client)
    assert body["status"] == "resolved"
    assert len(incidents(client)) == 1


def test_events_trigger_without_dedup_key_gets_one(client):
    trigger = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    del trigger["dedup_key"]
    key = enqueue(client, trigger).get_json()["dedup_key"]
    assert key and len(key) == 32


def test_events_acknowledge_goes_on_the_timeline(client):
    trigger = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    enqueue(client, trigger)
    ack = {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": trigger["dedup_key"]}
    assert enqueue(client, ack).status_code == 202
    assert incident(client)["timeline"][-1]["message"] == "Acknowledged"


def test_events_errors_answer_like_pagerduty(client):
    bad = enqueue(
        client, {"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "x"}}
    )
    assert bad.status_code == 400
    body = bad.get_json()
    assert body["status"] == "invalid event" and body["errors"]
    wrong = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    wrong["routing_key"] = "Z" * 32
    response = enqueue(client, wrong)
    assert response.status_code == 400
    assert response.get_json()["errors"] == ["Invalid routing key"]
    garbage = client.post("/v2/enqueue", data=b"{nope", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.get_json()["status"] == "invalid event"
    assert incidents(client) == []


def test_reopened_in_pagerduty_reopens_the_incident(client, clock):
    send(client, "triggered")
    clock.advance(timedelta(minutes=10))
    send(client, "resolved")
    assert incident(client)["status"] == "resolved"
    clock.advance(timedelta(minutes=5))
    reopened = fixture_json(PD.format("triggered"))
    reopened["event"].update(
        id="01REOPEN", event_type="incident.reopened", occurred_at="2026-11-26T14:47:00Z"
    )
    assert send(client, json.dumps(reopened).encode()).get_json()["incidents"] == ["INC-2026-0001"]
    body = incident(client)
    assert body["status"] == "investigating"
    assert any(t["kind"] == "reopened" for t in body["timeline"])
    assert len(incidents(client)) == 1


# -- input no database can hold ---------------------------------------------------------------


def triggered(**changes) -> dict:
    body = fixture_json(PD.format("triggered"))
    body["event"].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (triggered(id="e" * 65), "event.id"),
        (triggered(occurred_at="0001-01-01T00:00:00+14:00"), "event.occurred_at"),
        (triggered(occurred_at="9999-12-31T23:00:00-05:00"), "event.occurred_at"),
        (triggered(occurred_at=1764167762), "event.occurred_at"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_v3_fields_that_cannot_be_stored_are_422_naming_them(client, backend, body, field):
    response = send(client, json.dumps(body).encode())
    assert response.status_code == 422
    assert [d["field"] for d in response.get_json()["error"]["details"]] == [field]
    assert incidents(client) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_v3_ids_longer_than_their_columns_are_422(client, backend):
    body = triggered()
    body["event"]["data"]["id"] = "Q" * 126  # the fingerprint is "pd-" + this, in 128 characters
    response = send(client, json.dumps(body).encode())
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "event.data.id"
    response = send(client, "triggered", webhook_id="w" * 256)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "X-Webhook-Id"
    assert incidents(client) == []
    assert send(client, "triggered", webhook_id="w" * 255).status_code == 202


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_v3_odd_text_is_stored_and_its_resolve_is_found(client, backend):
    body = triggered()
    body["event"]["data"].update(id="Q2K8\x00\ud800", title="Checkout \x00 down \udfff")
    assert send(client, json.dumps(body).encode()).status_code == 202
    assert incident(client)["title"] == "Checkout \ufffd down \ufffd"
    resolved = fixture_json(PD.format("resolved"))
    resolved["event"]["data"]["id"] = "Q2K8\x00\ud800"
    assert send(client, json.dumps(resolved).encode()).status_code == 202
    assert incident(client)["status"] == "resolved"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_events_odd_text_and_timestamps(client, backend):
    trigger = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    trigger["dedup_key"] = "key\x00\ud800"
    trigger["payload"]["summary"] = "Checkout \x00 down"
    response = enqueue(client, trigger)
    assert response.status_code == 202
    assert response.get_json()["dedup_key"] == "key\ufffd\ufffd"
    resolve = fixture_json("pagerduty/pagerduty-events-v2-resolve.json")
    resolve["dedup_key"] = "key\x00\ud800"
    assert enqueue(client, resolve).status_code == 202
    assert incident(client)["status"] == "resolved"
    for stamp in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-05:00", "1969-12-31T23:59:59Z"):
        trigger["payload"]["timestamp"] = stamp
        response = enqueue(client, trigger)
        assert response.status_code == 400
        assert response.get_json()["errors"][0].startswith("'payload.timestamp' is invalid")
    assert len(incidents(client)) == 1


def test_events_trigger_resolve_trigger_with_one_timestamp_reopens(client, clock):
    trigger = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    trigger["payload"]["timestamp"] = "2026-11-26T14:00:00Z"
    resolve = fixture_json("pagerduty/pagerduty-events-v2-resolve.json")
    resolve["payload"]["timestamp"] = "2026-11-26T14:00:00Z"
    assert enqueue(client, trigger).status_code == 202
    clock.advance(timedelta(minutes=1))
    assert enqueue(client, resolve).status_code == 202
    clock.advance(timedelta(minutes=1))
    assert enqueue(client, trigger).status_code == 202
    body = incident(client)
    assert body["status"] == "investigating"
    assert any(t["kind"] == "reopened" for t in body["timeline"])


def test_enqueue_answers_json_past_the_parser_limits_in_pagerduty_format(client, caplog):
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"routing_key": ' + b"9" * 5000 + b"}"):
        response = client.post("/v2/enqueue", data=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.get_json() == {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["Invalid JSON"],
        }
    assert not [r for r in caplog.records if r.exc_info]
