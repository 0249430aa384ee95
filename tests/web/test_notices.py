"""Dead letters: list notices by state and retry them, through the API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapter.app import create_app
from adapter.cli import main
from adapter.metrics import Metrics
from tests.conftest import am_headers, api_headers, base_config, fixture_bytes
from tests.support.scripted import Reply, ScriptedServer


@pytest.fixture
def world(open_store, make_settings, clock):
    with ScriptedServer(Reply(410)) as hook:
        config = base_config()
        config["providers"] = [{"name": "hook", "type": "webhook", "audience": "technical", "url": hook.url}]
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        app = create_app(settings, clock=clock, store=store, metrics=Metrics())
        client = app.test_client()
        client.post(
            "/webhooks/alertmanager",
            data=fixture_bytes("alertmanager/alertmanager-firing.json"),
            headers=am_headers(),
        )
        app.extensions["dualtrack"].dispatcher.run_once()
        yield client, app.extensions["dualtrack"], hook, settings
        store.dispose()


def test_dead_letters_are_listed_and_retried(world):
    client, svc, hook, _ = world
    dead = client.get("/api/v1/notices?state=dead", headers=api_headers()).get_json()["notices"]
    assert [(n["incident"], n["provider"], n["state"]) for n in dead] == [("INC-2026-0001", "hook", "dead")]
    assert "HTTP 410" in dead[0]["last_error"]
    assert client.get("/api/v1/notices?state=pending", headers=api_headers()).get_json() == {"notices": []}

    hook.replies = [Reply(200)]
    response = client.post(f"/api/v1/notices/{dead[0]['id']}/retry", headers=api_headers())
    assert response.status_code == 200
    assert response.get_json()["state"] == "pending"
    svc.dispatcher.run_once()
    listed = client.get("/api/v1/notices?state=delivered", headers=api_headers()).get_json()["notices"]
    assert [n["id"] for n in listed] == [dead[0]["id"]]
    assert client.post(f"/api/v1/notices/{dead[0]['id']}/retry", headers=api_headers()).status_code == 409
    assert client.post("/api/v1/notices/999/retry", headers=api_headers()).status_code == 404
    assert client.get("/api/v1/notices?state=lost", headers=api_headers()).status_code == 400
    assert client.get("/api/v1/notices").status_code == 401


def test_cli_lists_and_retries_dead_letters(world, capsys, clock):
    _, svc, hook, settings = world
    assert main(["outbox", "list", "--config", settings.config_path]) == 0
    out = capsys.readouterr().out
    assert "dead" in out and "INC-2026-0001" in out and "HTTP 410" in out
    assert main(["outbox", "retry", "--dead", "--config", settings.config_path]) == 0
    assert "1 notice(s) queued again" in capsys.readouterr().out
    hook.replies = [Reply(200)]
    # The CLI queues at the real time, which is days after the test clock's start.
    clock.advance(datetime.now(UTC) - clock.now() + timedelta(minutes=1))
    svc.dispatcher.run_once()
    assert main(["outbox", "list", "--state", "delivered", "--config", settings.config_path]) == 0
    assert "delivered" in capsys.readouterr().out
