"""Humans in the loop through the API: updates, severity, manual resolution, post-mortem, preview."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.store import incidents as repo
from tests.conftest import am_headers, api_headers, base_config, fixture_bytes
from tests.payloads import am_alert, am_body
from tests.support.catalog import with_shops
from tests.support.scripted import Reply, ScriptedServer

FIRING = "alertmanager/alertmanager-firing.json"


@pytest.fixture
def world(open_store, make_settings, clock):
    config = base_config()
    config["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all"},
        {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/team"},
    ]
    config["policy"] = {
        "internal_providers": ["team"],
        "urgent_contact": "+353 1 555 0100 (incident line)",
        "business_summary": True,
    }
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    yield app.test_client(), app.extensions["dualtrack"]
    store.dispose()


def post(client, url, body):
    return client.post(
        url, data=json.dumps(body), headers={**api_headers(), "Content-Type": "application/json"}
    )


def open_incident(client) -> dict:
    response = client.post("/webhooks/alertmanager", data=fixture_bytes(FIRING), headers=am_headers())
    assert response.status_code == 202
    return client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()


def test_human_update_goes_to_both_audiences_at_once_and_resets_the_cadence(world, clock):
    client, svc = world
    open_incident(client)
    clock.advance(timedelta(minutes=20))
    response = post(
        client,
        "/api/v1/incidents/INC-2026-0001/updates",
        {
            "status": "identified",
            "technical": "Connection pool exhausted after deploy 4.2.1; rolling back.",
            "business": "We found the cause and are rolling back a recent change.",
            "eta": "45m",
            "workaround": "Retry failed checkouts after a minute.",
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "identified"
    updates = [n for n in body["notices"] if n["phase"] == "update"]
    assert sorted((n["provider"], n["audience"]) for n in updates) == [
        ("status", "business"),
        ("status", "technical"),
        ("team", "technical"),
    ]
    technical = next(n for n in updates if n["audience"] == "technical")
    business = next(n for n in updates if n["audience"] == "business")
    assert "rolling back" in technical["body"]
    assert "Retry failed checkouts" in technical["body"]
    assert "rolling back a recent change" in business["body"]
    assert "deploy 4.2.1" not in business["body"]
    assert "15:37" in business["body"]  # ETA 14:52 + 45m, in the provider's zone (UTC)
    # The cadence counts from the human update: nothing more is due for the next hour (level 4).
    clock.advance(timedelta(minutes=59))
    svc.scheduler.run_once()
    again = client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()
    assert len([n for n in again["notices"] if n["phase"] == "update"]) == 3
    clock.advance(timedelta(minutes=2))
    svc.scheduler.run_once()
    again = client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()
    assert len([n for n in again["notices"] if n["phase"] == "update"]) == 6


def test_patch_sets_the_level_and_later_rules_do_not_override_it(world, clock):
    client, _svc = world
    open_incident(client)
    response = client.patch(
        "/api/v1/incidents/INC-2026-0001",
        data=json.dumps({"level": 5, "title": "Checkout errors", "incident_type": "database"}),
        headers={**api_headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["level"], body["title"], body["incident_type"], body["level_locked"]) == (
        5,
        "Checkout errors",
        "database",
        True,
    )
    executive = [n for n in body["notices"] if n["phase"] == "executive"]
    assert [(n["provider"], n["audience"]) for n in executive] == [("team", "technical")]
    assert body["call_list"] == [{"tenant": "acme", "name": "Acme Ltd", "contact": "ops@acme.example"}]
    # A new alert with severity info joins; the human's level stands.
    from tests.payloads import am_alert, am_body, encode

    group = json.loads(fixture_bytes(FIRING))["groupKey"]
    alert = am_alert("7777000000000001", {"alertname": "X", "service": "checkout", "severity": "info"})
    client.post("/webhooks/alertmanager", data=encode(am_body([alert], group)), headers=am_headers())
    assert client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()["level"] == 5


def test_business_notices_carry_the_urgent_contact_from_level_3(world):
    client, _ = world
    body = open_incident(client)  # level 4
    business = next(n for n in body["notices"] if n["audience"] == "business")
    assert "+353 1 555 0100" in business["body"]


def test_manual_resolve_and_postmortem(world, clock):
    client, _ = world
    open_incident(client)
    clock.advance(timedelta(minutes=30))
    response = post(
        client,
        "/api/v1/incidents/INC-2026-0001/resolve",
        {"technical": "Rolled back 4.2.1.", "business": "Checkout works again.", "root_cause": "Pool size"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "resolved"
    assert body["resolved_at"] == "2026-11-26T15:02:00Z"
    resolutions = [n for n in body["notices"] if n["phase"] == "resolution"]
    assert len(resolutions) == 3
    assert any("Checkout works again." in n["body"] for n in resolutions if n["audience"] == "business")
    assert post(client, "/api/v1/incidents/INC-2026-0001/resolve", {}).status_code == 409

    response = post(
        client,
        "/api/v1/incidents/INC-2026-0001/postmortem",
        {
            "technical": "The pool was sized for 200 connections; deploy 4.2.1 doubled the workers.",
            "business": "We have added safeguards so a change like this cannot slow checkout again.",
            "preventive_measures": "Pool size alerts at 80%; load test every deploy.",
        },
    )
    assert response.status_code == 201
    postmortems = [n for n in response.get_json()["notices"] if n["phase"] == "postmortem"]
    technical = next(n for n in postmortems if n["provider"] == "status" and n["audience"] == "technical")
    assert "doubled the workers" in technical["body"]
    assert "Incident opened" in technical["body"] or "opened" in technical["body"].lower()
    assert any(n["audience"] == "business" for n in postmortems)  # policy.business_summary is on


def test_human_actions_validate_and_404(world):
    client, _ = world
    open_incident(client)
    bad = post(client, "/api/v1/incidents/INC-2026-0001/updates", {"status": "fixed", "colour": 1})
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.get_json()["error"]["details"]}
    assert {"status", "colour"} <= fields
    assert post(client, "/api/v1/incidents/INC-2026-0001/updates", {"eta": "soon"}).status_code == 422
    assert post(client, "/api/v1/incidents/INC-2026-0404/updates", {}).status_code == 404
    assert post(client, "/api/v1/incidents/INC-2026-0001/postmortem", {"technical": "x"}).status_code == 409
    assert (
        client.patch(
            "/api/v1/incidents/INC-2026-0001",
            data=json.dumps({"level": 9}),
            headers={**api_headers(), "Content-Type": "application/json"},
        ).status_code
        == 422
    )
    unauth = client.post("/api/v1/incidents/INC-2026-0001/updates", json={})
    assert unauth.status_code == 401


def test_preview_renders_every_first_notice_and_stores_nothing(world):
    client, _svc = world
    response = client.post(
        "/api/v1/preview?source=alertmanager",
        data=fixture_bytes(FIRING),
        headers={**api_headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["incident"]["ref"] == "INC-2026-0001"
    assert body["incident"]["level"] == 4
    assert sorted((n["provider"], n["audience"], n["phase"]) for n in body["notices"]) == [
        ("status", "business", "acknowledgement"),
        ("status", "technical", "acknowledgement"),
        ("team", "technical", "acknowledgement"),
    ]
    assert all(n["subject"] and n["body"] for n in body["notices"])
    assert client.get("/api/v1/incidents", headers=api_headers()).get_json() == {"incidents": []}
    # The real webhook still gets the first reference: nothing was consumed.
    assert open_incident(client)["ref"] == "INC-2026-0001"
    assert (
        client.post(
            "/api/v1/preview?source=nagios",
            data=fixture_bytes(FIRING),
            headers={**api_headers(), "Content-Type": "application/json"},
        ).status_code
        == 400
    )


# -- input no database can hold ---------------------------------------------------------------


def timeline_length(client) -> int:
    return len(client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()["timeline"])


@pytest.mark.parametrize(
    "eta",
    [
        1764167762,  # a number where a time belongs
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:00:00-05:00",
        "2026-11-26T20:00:00",  # no offset
        "366d",
        "9" * 400 + "h",  # past timedelta's range
        "9" * 5000 + "s",  # past Python's digit limit
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_an_eta_out_of_range_is_422_naming_it(world, backend, eta):
    client, _ = world
    open_incident(client)
    before = timeline_length(client)
    response = post(client, "/api/v1/incidents/INC-2026-0001/updates", {"eta": eta})
    assert response.status_code == 422
    assert [d["field"] for d in response.get_json()["error"]["details"]] == ["eta"]
    assert timeline_length(client) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_human_text_with_nul_and_surrogates_is_stored_readable(world, backend):
    client, svc = world
    open_incident(client)
    update = {"technical": "Pool \x00 drained \ud800", "eta": "365d", "workaround": "retry\x00"}
    assert post(client, "/api/v1/incidents/INC-2026-0001/updates", update).status_code == 201
    patch = client.patch(
        "/api/v1/incidents/INC-2026-0001",
        data=json.dumps({"title": "Checkout \udfff slow"}),
        headers={**api_headers(), "Content-Type": "application/json"},
    )
    assert patch.status_code == 200
    body = patch.get_json()
    with svc.store.read() as conn:
        row = repo.get_incident_by_ref(conn, "INC-2026-0001")
    assert row is not None
    assert (row.title, row.workaround) == ("Checkout \ufffd slow", "retry\ufffd")
    assert any("Pool \ufffd drained" in n["body"] for n in body["notices"] if n["phase"] == "update")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_ids_and_refs_that_name_no_row_are_404(world, backend):
    client, _ = world
    open_incident(client)
    for notice_id in (2**31, 2**63, 10**30, "9" * 5000):
        response = client.post(f"/api/v1/notices/{notice_id}/retry", headers=api_headers())
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    for ref in ("%00", "INC-2026-0001%00", "x" * 100):
        assert client.get(f"/api/v1/incidents/{ref}", headers=api_headers()).status_code == 404
        assert post(client, f"/api/v1/incidents/{ref}/resolve", {}).status_code == 404


# -- human words assembled once, and kept (issue 17) ----------------------------------------------


def notices_of(body: dict, phase: str, audience: str, provider: str = "status") -> list[dict]:
    return [
        n
        for n in body["notices"]
        if (n["phase"], n["audience"], n["provider"]) == (phase, audience, provider)
    ]


def test_a_postmortem_says_the_authors_words_once_with_its_root_cause_and_measures_as_a_list(world, clock):
    client, _ = world
    open_incident(client)
    clock.advance(timedelta(minutes=30))
    assert post(client, "/api/v1/incidents/INC-2026-0001/resolve", {}).status_code == 200
    response = post(
        client,
        "/api/v1/incidents/INC-2026-0001/postmortem",
        {
            "technical": "Deploy 4.2.1 doubled the workers against a pool sized for 200.",
            "business": "We have added safeguards so a change like this cannot slow checkout again.",
            "root_cause": "Connection pool exhausted by deploy 4.2.1",
            "preventive_measures": ["Pool size alerts at 80%", "Load test every deploy"],
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    (technical,) = notices_of(body, "postmortem", "technical")
    text = technical["body"]
    assert text.count("doubled the workers") == 1
    assert "Root Cause: Connection pool exhausted by deploy 4.2.1" in text
    assert "Still under analysis" not in text
    assert "Preventive Measures:\n- Pool size alerts at 80%\n- Load test every deploy" in text
    (business,) = notices_of(body, "postmortem", "business")
    assert business["body"].count("cannot slow checkout again") == 1
    assert "What We're Changing: We have added safeguards" in business["body"]


def test_an_update_with_a_root_cause_and_an_eta_says_them_in_words_and_does_not_repeat_itself(world, clock):
    client, _ = world
    open_incident(client)
    clock.advance(timedelta(minutes=20))
    response = post(
        client,
        "/api/v1/incidents/INC-2026-0001/updates",
        {
            "technical": "Rolling back deploy 4.2.1.",
            "eta": "2026-11-26T16:30:00+00:00",
            "root_cause": "Connection pool exhausted by deploy 4.2.1",
        },
    )
    assert response.status_code == 201
    (update,) = notices_of(response.get_json(), "update", "technical")
    text = update["body"]
    assert text.count("Rolling back deploy 4.2.1.") == 1  # not again under "Since the last update"
    assert "Root Cause: Connection pool exhausted by deploy 4.2.1" in text
    assert "Still Under Investigation" not in text
    assert "Expected Resolution: By 16:30 UTC" in text
    assert "2026-11-26T16:30" not in text
    # Every later technical notice carries the root cause.
    clock.advance(timedelta(minutes=10))
    body = post(client, "/api/v1/incidents/INC-2026-0001/resolve", {}).get_json()
    (resolution,) = notices_of(body, "resolution", "technical")
    assert "Root Cause: Connection pool exhausted by deploy 4.2.1" in resolution["body"]


def test_a_manual_resolve_says_so_and_names_the_alerts_still_firing(world, clock):
    client, _ = world
    open_incident(client)  # two alerts firing
    clock.advance(timedelta(minutes=30))
    body = post(client, "/api/v1/incidents/INC-2026-0001/resolve", {}).get_json()
    (resolution,) = notices_of(body, "resolution", "technical")
    assert "All alerts for this incident have cleared" not in resolution["body"]
    assert "Our engineers have confirmed" in resolution["body"]
    assert "2 alerts had not cleared yet" in resolution["body"]


def test_an_update_aimed_at_some_tenants_reaches_only_their_own_providers(open_store, make_settings, clock):
    with ScriptedServer(Reply(200)) as hook:
        config = base_config()
        config["providers"] = [
            {"name": "status", "type": "builtin", "audience": "all"},
            {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True},
        ]
        catalog = with_shops(3, hook.url)
        settings = make_settings(config, catalog)
        store = open_store(settings.storage.url)
        try:
            app = create_app(settings, clock=clock, store=store, metrics=Metrics())
            client, svc = app.test_client(), app.extensions["dualtrack"]
            labels = {"alertname": "Down", "service": "checkout", "severity": "critical"}
            body = json.dumps(am_body([am_alert("a" * 16, labels)], group_key="g")).encode()
            assert client.post("/webhooks/alertmanager", data=body, headers=am_headers()).status_code == 202
            svc.expander.drain()
            clock.advance(timedelta(minutes=5))
            url = "/api/v1/incidents/INC-2026-0001/updates"
            response = post(client, url, {"technical": "Your node is back.", "tenants": ["shop-0001"]})
            assert response.status_code == 201
            updates = [n for n in response.get_json()["notices"] if n["phase"] == "update"]
            assert [(n["provider"], n["tenant"]) for n in updates] == [("direct", "shop-0001")]
            unknown = post(client, url, {"technical": "x", "tenants": ["shop-9999"]})
            assert unknown.status_code == 422
            assert "shop-9999" in unknown.get_json()["error"]["message"]
            assert unknown.get_json()["error"]["details"][0]["field"] == "tenants"
        finally:
            store.dispose()


# -- triage: incidents on no catalog service ---------------------------------------------------------


def unknown_service_alert(client, fingerprint: str = "e" * 16, service: str = "billing", group: str = "b"):
    labels = {
        "alertname": "HighErrorRate",
        "service": service,
        "severity": "critical",
        "instance": "10.0.0.1:8080",
    }
    alert = am_alert(
        fingerprint, labels, annotations={"summary": "[FIRING:1] HighErrorRate billing 10.0.0.1"}
    )
    body = json.dumps(am_body([alert], group_key=group)).encode()
    assert client.post("/webhooks/alertmanager", data=body, headers=am_headers()).status_code == 202


def test_an_incident_on_no_catalog_service_waits_in_triage_until_a_human_assigns_services(world, clock):
    client, _ = world
    unknown_service_alert(client)
    document = client.get("/api/v1/incidents/INC-2026-0001", headers=api_headers()).get_json()
    assert document["status"] == "triage" and document["notices"] == []
    assert document["unknown_services"] == ["billing"]  # operators see it all
    for page in ("/status", "/status/technical"):
        text = client.get(page).text
        assert "HighErrorRate" not in text and "billing" not in text and "INC-2026-0001" not in text
    metrics = client.get("/metrics").text
    assert "dualtrack_incidents_triage_total 1.0" in metrics

    url = "/api/v1/incidents/INC-2026-0001"
    patch = lambda body: client.patch(  # noqa: E731
        url, data=json.dumps(body), headers={**api_headers(), "Content-Type": "application/json"}
    )
    unknown = patch({"services": ["billing"]})
    assert unknown.status_code == 422 and "billing" in unknown.get_json()["error"]["message"]
    assert unknown.get_json()["error"]["details"] == [
        {"field": "services", "message": "no service billing in the catalog"}
    ]
    clock.advance(timedelta(minutes=3))
    response = patch({"services": ["checkout"]})
    assert response.status_code == 200
    document = response.get_json()
    assert document["status"] == "investigating"
    assert document["services"] == ["checkout"] and document["tenants"] == ["acme", "bloom"]
    firsts = [n for n in document["notices"] if n["phase"] == "acknowledgement"]
    assert {(n["provider"], n["audience"]) for n in firsts} >= {
        ("status", "technical"),
        ("status", "business"),
    }
    # Its later alerts keep the services a human gave it.
    unknown_service_alert(client, fingerprint="e" * 15 + "f")
    assert client.get(url, headers=api_headers()).get_json()["services"] == ["checkout"]


def test_an_incident_in_triage_can_be_published_as_it_is_or_by_an_alert_naming_a_catalog_service(world):
    client, _ = world
    unknown_service_alert(client, group="one")
    response = client.patch(
        "/api/v1/incidents/INC-2026-0001",
        data=json.dumps({"publish": True}),
        headers={**api_headers(), "Content-Type": "application/json"},
    )
    assert response.get_json()["status"] == "investigating"
    assert [n["audience"] for n in response.get_json()["notices"] if n["provider"] == "status"] == [
        "technical"
    ]

    unknown_service_alert(client, fingerprint="a" * 16, group="two")  # INC-2026-0002, in triage
    labels = {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}
    body = json.dumps(am_body([am_alert("a" * 15 + "b", labels)], group_key="two")).encode()
    assert client.post("/webhooks/alertmanager", data=body, headers=am_headers()).status_code == 202
    document = client.get("/api/v1/incidents/INC-2026-0002", headers=api_headers()).get_json()
    assert document["status"] == "investigating" and document["services"] == ["checkout"]
    assert any(n["phase"] == "acknowledgement" for n in document["notices"])
