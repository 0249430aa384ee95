"""Reconciliation with Alertmanager: missing alerts resolve after the grace, silenced ones show."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

import pytest

from adapter.app import create_app
from adapter.cli import main
from adapter.engine.reconcile import Reconciler, Unreachable
from adapter.metrics import Metrics
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import base_config, fixture_json
from tests.support.scripted import Reply, ScriptedServer

FIRST, SECOND = "a64770b64ad10dbc", "f1e3b1d0db0dd851"  # the firing fixture's two alerts


def am_alerts(*fingerprints: str, silenced: tuple[str, ...] = ()) -> Reply:
    body = [
        {
            "fingerprint": fp,
            "labels": {"alertname": "HighErrorRate"},
            "status": {
                "state": "suppressed" if fp in silenced else "active",
                "silencedBy": ["silence-1"] if fp in silenced else [],
                "inhibitedBy": [],
            },
        }
        for fp in fingerprints
    ]
    return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())


@pytest.fixture
def world(open_store, make_settings, clock):
    with ScriptedServer(am_alerts(FIRST, SECOND)) as one, ScriptedServer(am_alerts()) as two:
        config = base_config()
        config["reconcile"] = {
            "alertmanager": [
                {"url": one.url, "interval": "1m", "grace": "10m", "bearer_token": "am-api"},
                {"url": two.url, "interval": "1m", "grace": "10m"},
            ]
        }
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        app = create_app(settings, clock=clock, store=store, metrics=Metrics())
        svc = app.extensions["dualtrack"]
        svc.engine.ingest(alertmanager.parse(fixture_json("alertmanager/alertmanager-firing.json")))
        yield svc, one, two, settings
        store.dispose()


def incident(svc) -> dict:
    with svc.store.read() as conn:
        found = repo.get_incident_by_ref(conn, "INC-2026-0001")
        assert found is not None
        row = asdict(found)
        row["alerts"] = {a.fingerprint: asdict(a) for a in repo.alerts_of(conn, found.id)}
        row["notices"] = outbox.notices_of(conn, [found.id])
        row["timeline"] = [asdict(t) for t in repo.timeline_of(conn, found.id)]
    return row


def test_silenced_alert_keeps_its_incident_open_and_is_shown_silenced(world, clock):
    svc, one, _two, _ = world
    one.replies = [am_alerts(FIRST, SECOND, silenced=(FIRST,))]
    lines = Reconciler(svc.engine).run(clock.now())
    assert lines == ["INC-2026-0001: HighErrorRate is silenced"]
    body = incident(svc)
    assert body["alerts"][FIRST]["silenced"] and not body["alerts"][SECOND]["silenced"]
    assert body["status"] == "investigating"
    assert one.requests[0].headers["Authorization"] == "Bearer am-api"
    assert "silenced=true" in one.requests[0].path


def test_missing_alerts_resolve_after_the_grace_with_the_reason(world, clock):
    svc, one, _, _ = world
    reconciler = Reconciler(svc.engine)
    one.replies = [am_alerts(SECOND)]  # the first one's resolve never arrived
    reconciler.run(clock.now())
    assert incident(svc)["alerts"][FIRST]["missing_since"] == clock.now()
    clock.advance(timedelta(minutes=9))
    reconciler.run(clock.now())
    assert incident(svc)["alerts"][FIRST]["status"] == "firing"
    clock.advance(timedelta(minutes=2))
    reconciler.run(clock.now())
    body = incident(svc)
    assert body["alerts"][FIRST]["status"] == "resolved"
    assert body["status"] == "investigating"  # the second one still fires
    one.replies = [am_alerts()]
    reconciler.run(clock.now())
    clock.advance(timedelta(minutes=11))
    reconciler.run(clock.now())
    body = incident(svc)
    assert body["status"] == "resolved"
    assert "Alertmanager no longer holds it" in body["timeline"][-2]["message"]
    assert [n.phase for n in body["notices"]].count("resolution") == 2


def test_an_alert_back_in_alertmanager_is_no_longer_missing(world, clock):
    svc, one, _, _ = world
    reconciler = Reconciler(svc.engine)
    one.replies = [am_alerts(SECOND)]
    reconciler.run(clock.now())
    one.replies = [am_alerts(FIRST, SECOND)]
    clock.advance(timedelta(minutes=5))
    reconciler.run(clock.now())
    clock.advance(timedelta(minutes=30))
    reconciler.run(clock.now())
    body = incident(svc)
    assert body["alerts"][FIRST]["missing_since"] is None and body["alerts"][FIRST]["status"] == "firing"


def test_an_alert_held_by_either_alertmanager_of_a_pair_stays(world, clock):
    svc, one, two, _ = world
    one.replies = [am_alerts(SECOND)]
    two.replies = [am_alerts(FIRST)]
    reconciler = Reconciler(svc.engine)
    reconciler.run(clock.now())
    clock.advance(timedelta(minutes=20))
    assert reconciler.run(clock.now()) == []


def test_an_unreachable_alertmanager_decides_nothing(world, clock):
    svc, _one, two, _ = world
    two.replies = [Reply(503)]
    with pytest.raises(Unreachable):
        Reconciler(svc.engine).run(clock.now())
    assert incident(svc)["alerts"][FIRST]["missing_since"] is None


def test_the_scheduler_reconciles_on_its_interval(world, clock):
    svc, one, _, _ = world
    one.replies = [am_alerts(SECOND)]
    svc.scheduler.run_once()
    assert len(one.requests) == 1
    clock.advance(timedelta(seconds=30))
    svc.scheduler.run_once()
    assert len(one.requests) == 1  # interval 1m
    clock.advance(timedelta(minutes=11))
    svc.scheduler.run_once()
    assert incident(svc)["alerts"][FIRST]["status"] == "resolved"


def test_cli_dry_run_prints_and_changes_nothing(world, capsys, clock):
    svc, one, _, settings = world
    one.replies = [am_alerts(SECOND, silenced=(SECOND,))]
    assert main(["reconcile", "--dry-run", "--config", settings.config_path]) == 0
    out = capsys.readouterr().out
    assert "HighErrorRate (a64770b64ad10dbc) is missing from Alertmanager" in out
    assert "HighErrorRate is silenced" in out
    assert "(dry run: nothing changed)" in out
    body = incident(svc)
    assert body["alerts"][FIRST]["missing_since"] is None and not body["alerts"][SECOND]["silenced"]
