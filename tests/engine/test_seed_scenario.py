"""The seed's MySQL scenario end to end, as three tenants in three time zones read it (golden file)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from adapter.app import create_app
from adapter.engine.humans import HumanUpdate
from adapter.metrics import Metrics
from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import base_config
from tests.payloads import am_alert, am_body
from tests.support.catalog import catalog_data
from tests.support.people import ONCALL

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "seed_scenario.txt"
TENANTS = {  # id: (name, segment, zone, the zone's abbreviation in November)
    "acme": ("Acme Ltd", "technical", "Europe/Dublin", "GMT"),
    "nordlys": ("Nordlys Media AS", "business", "Europe/Oslo", "CET"),
    "harbor": ("Harbor Bakery", "business", "America/New_York", "EST"),
}


def test_the_seed_scenario_reads_right_for_each_tenant_in_its_own_zone(open_store, make_settings, clock):
    catalog = catalog_data()
    catalog["tenants"] = [
        {
            "id": tenant,
            "name": name,
            "segment": segment,
            "timezone": zone,
            "services": ["mysql-shared"],
            "contacts": {"webhook": f"http://127.0.0.1:9/{tenant}"},
            "sla": {"availability": 99.9},
        }
        for tenant, (name, segment, zone, _) in TENANTS.items()
    ]
    config = base_config()
    config["providers"] = [{"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}]
    config["policy"] = {"business_summary": True, "sla_followup": {"enabled": True, "delay": "2h"}}
    settings = make_settings(config, catalog)
    store = open_store(settings.storage.url)
    try:
        svc = create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]
        started = clock.now()

        def alerts(status: str = "firing"):
            labels = {
                "alertname": "MySQLConnectionPoolExhausted",
                "service": "mysql-shared",
                "severity": "error",
            }
            return [
                am_alert(
                    f"5eed00000000000{n}",
                    {**labels, "instance": f"mysql-cluster-03-{host}.region-eu-west:3306"},
                    annotations={
                        "summary": "Connection pool exhausted",
                        "description": "Connection timeouts at the database tier",
                    },
                    status=status,
                    starts_at=started - timedelta(minutes=3),
                    ends_at=clock.now() if status == "resolved" else None,
                )
                for n, host in ((1, "a"), (2, "b"))
            ]

        def ingest(status: str = "firing") -> None:
            svc.engine.ingest(alertmanager.parse(am_body(alerts(status), group_key="mysql")))
            svc.expander.drain()

        def run_until(minutes: int) -> None:
            while clock.now() < started + timedelta(minutes=minutes):
                clock.advance(timedelta(minutes=1))
                svc.scheduler.run_once()
                svc.expander.drain()

        ingest()  # 14:32 UTC: acknowledgement
        run_until(30)
        ref = "INC-2026-0001"
        svc.humans.update(
            ref,
            HumanUpdate(
                status="identified",
                technical="A nightly export job moved into business hours and leaked connections.",
                business="We've found the cause and are applying a fix.",
                eta=started + timedelta(hours=2),
                root_cause="Connection leak in the nightly export job",
            ),
            ONCALL,
        )
        svc.expander.drain()
        run_until(95)  # the technical and business cadence updates fall due
        ingest("resolved")
        svc.expander.drain()
        run_until(100)
        svc.humans.postmortem(
            ref,
            "Pool sized for 200 connections; the export job held 180 of them for an hour.",
            "We've added limits so no single background task can use up database capacity.",
            "- Per-account connection limits\n- An alert at 80% pool usage",
            None,
            ONCALL,
        )
        svc.expander.drain()
        run_until(100 + 125)  # the SLA follow-ups, 2 h after the resolution
        with store.read() as conn:
            incident = repo.get_incident_by_ref(conn, ref)
            assert incident is not None
            notices = [n for n in outbox.notices_of(conn, [incident.id]) if n.tenant]
    finally:
        store.dispose()

    phases = {tenant: [n.phase for n in notices if n.tenant == tenant] for tenant in TENANTS}
    for tenant, seen in phases.items():
        assert seen[0] == "acknowledgement" and "resolution" in seen and seen[-1] == "sla_followup", (
            tenant,
            seen,
        )
        assert seen.count("update") >= 2, (tenant, seen)  # the human's and the cadence's
    assert "postmortem" in phases["acme"] and "postmortem" in phases["nordlys"]
    for notice in notices:
        _, segment, _, zone = TENANTS[notice.tenant]
        text = f"{notice.subject}\n{notice.body}"
        assert notice.audience == segment
        others = [other for tenant, (other, *_) in TENANTS.items() if tenant != notice.tenant]
        assert not any(other in text for other in others), notice
        if segment == "business":
            assert "UTC" not in text, notice  # every time in the reader's own zone
            assert "mysql-cluster" not in text and "3306" not in text, notice
        if notice.phase == "update" and "identified" in (notice.data or {}).get("status", ""):
            assert zone in text or segment == "technical", notice
    rendered = "".join(
        f"== {n.tenant} ({n.audience}) {n.phase}\n{n.subject}\n\n{n.body}\n\n"
        for n in sorted(notices, key=lambda n: (list(TENANTS).index(n.tenant), n.id))
    )
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert GOLDEN.exists(), f"missing golden {GOLDEN.name}; run with UPDATE_GOLDEN=1"
    assert rendered == GOLDEN.read_text()
