"""Every registered source is reached the same three ways: its webhook, the API's preview, the CLI's."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from adapter.cli import main
from adapter.sources import SOURCES
from adapter.sources.signatures import sign_pagerduty
from tests.conftest import am_headers, api_headers, base_config, fixture_bytes, fixture_json

SECRET = "whsec-new-0123456789"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
JSON = {"Content-Type": "application/json"}


def _enqueued() -> bytes:
    body = fixture_json("pagerduty/pagerduty-events-v2-trigger.json")
    body["routing_key"] = ROUTING_KEY
    return json.dumps(body).encode()


# One row per source, and the contract: its URL, a real payload, and the headers its sender adds.
SENT: dict[str, tuple[str, bytes, Callable[[bytes], dict[str, str]]]] = {
    "alertmanager": (
        "/webhooks/alertmanager",
        fixture_bytes("alertmanager/alertmanager-firing.json"),
        lambda _raw: am_headers(),
    ),
    "pagerduty": (
        "/webhooks/pagerduty",
        fixture_bytes("pagerduty/pagerduty-v3-incident-triggered.json"),
        lambda raw: {**JSON, "X-PagerDuty-Signature": sign_pagerduty(SECRET, raw)},
    ),
    "events": ("/v2/enqueue", _enqueued(), lambda _raw: JSON),
}


@pytest.fixture
def settings(make_settings, storage_url):
    config = base_config()
    config["storage"]["url"] = storage_url
    config["auth"]["pagerduty"] = {"signing_secrets": [SECRET]}
    config["auth"]["events"] = {"routing_keys": [ROUTING_KEY]}
    return make_settings(config)


def test_every_source_has_a_row_here_and_a_webhook_at_its_url(app):
    assert list(SENT) == list(SOURCES)
    routed = {
        rule.rule: rule.defaults["source"]
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("webhooks.") and rule.defaults
    }
    assert routed == {url: name for name, (url, _raw, _headers) in SENT.items()}


@pytest.mark.parametrize("source", list(SOURCES))
def test_both_previews_show_what_the_webhook_then_opens(source, settings, client, tmp_path, capsys):
    url, raw, headers = SENT[source]
    previewed = client.post(f"/api/v1/preview?source={source}", data=raw, headers={**api_headers(), **JSON})
    assert previewed.status_code == 200
    incident = previewed.get_json()["incident"]
    assert incident is not None

    payload = tmp_path / "payload.json"
    payload.write_bytes(raw)
    assert main(["preview", "--config", settings.config_path, "--source", source, str(payload)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    named = ", ".join(incident["services"] + incident["unknown_services"]) or "-"
    assert f"  level {incident['level']}  {incident['incident_type']}  services: {named}  " in first_line

    assert client.post(url, data=raw, headers=headers(raw)).status_code == 202
    opened = client.get("/api/v1/incidents", headers=api_headers()).get_json()["incidents"]
    assert [(i["ref"], i["title"], i["level"]) for i in opened] == [
        (incident["ref"], incident["title"], incident["level"])
    ]


def test_both_previews_refuse_a_source_that_is_not_registered(settings, client, tmp_path, capsys):
    _url, raw, _headers = SENT["alertmanager"]
    refused = client.post("/api/v1/preview?source=nagios", data=raw, headers={**api_headers(), **JSON})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"] == "source must be alertmanager, pagerduty or events"

    payload = tmp_path / "payload.json"
    payload.write_bytes(raw)
    with pytest.raises(SystemExit) as exit_:
        main(["preview", "--config", settings.config_path, "--source", "nagios", str(payload)])
    assert exit_.value.code == 2
    assert "--source {alertmanager,pagerduty,events}" in capsys.readouterr().err
