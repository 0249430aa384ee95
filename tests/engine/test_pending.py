"""A batch's ingest state against what the store holds: the memory it decides from must match it."""

from __future__ import annotations

from datetime import timedelta

from adapter.engine.core import Change
from adapter.engine.pending import Pending
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from tests.conftest import fixture_json
from tests.payloads import am_alert, am_body


def _apply_all(app, conn, batch, now) -> tuple[Pending, dict[int, Change]]:
    engine = app.extensions["dualtrack"].engine
    work = Pending(conn, batch.signals, now - timedelta(minutes=30))
    changes: dict[int, Change] = {}
    for signal in batch.signals:
        engine._apply(conn, signal, now, changes, work)
    work.flush()
    return work, changes


def test_alerts_of_an_incident_the_batch_opened_are_what_the_store_reads(app, store, clock):
    batch = alertmanager.parse(fixture_json("alertmanager/alertmanager-firing.json"))
    assert len(batch.signals) == 2
    with store.transaction() as conn:
        work, changes = _apply_all(app, conn, batch, clock.now())
        (incident_id,) = changes
        assert changes[incident_id].opened
        assert work.alerts_of_opened(incident_id) == repo.alerts_of(conn, incident_id)


def test_later_alerts_of_a_batch_see_the_incident_an_earlier_one_opened(app, store, clock):
    labels = {"alertname": "Down", "service": "checkout", "severity": "critical"}
    alerts = [am_alert(f"e00000000000000{i}", {**labels, "instance": f"web-{i}"}) for i in range(3)]
    # The same instance twice in one body: the second copy is a duplicate, not a second alert.
    batch = alertmanager.parse(am_body([*alerts, alerts[0]], group_key="g-e"))
    with store.transaction() as conn:
        _, changes = _apply_all(app, conn, batch, clock.now())
        (incident_id,) = changes
        assert changes[incident_id].fired == 3
        assert len(repo.alerts_of(conn, incident_id)) == 3
        kinds = [t["kind"] for t in repo.timeline_of(conn, incident_id)]
        assert kinds == ["opened", "alert_fired", "alert_fired"]
        fired = [t for t in repo.timeline_of(conn, incident_id) if t["kind"] == "alert_fired"]
        stored = {a["id"] for a in repo.alerts_of(conn, incident_id)}
        assert {t["data"]["alert"] for t in fired} <= stored
