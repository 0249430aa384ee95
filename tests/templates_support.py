"""Realistic incidents, alerts and settings for rendering notice templates through the real code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapter.config import Settings, load_settings
from adapter.engine.planning import INTERNAL_PHASES, EventFacts, PlannedNotice, Recipient, plan_notices
from adapter.rendering import Renderer, settings_renderer
from adapter.store.records import Alert, Incident, TimelineEntry
from tests.conftest import base_config, write_config
from tests.support.catalog import catalog_data

URGENT_CONTACT = "our incident desk on +44 20 7946 0321"

# Both tenants take every service, so every scene reaches both; bloom is in Dublin, with an address.
CATALOG = catalog_data()
for _tenant in CATALOG["tenants"]:
    _tenant["services"] = [service["id"] for service in CATALOG["services"]]
CATALOG["tenants"][1].update(timezone="Europe/Dublin", contacts={"email": "owner@bloom.example"})


def config() -> dict[str, Any]:
    cfg = base_config()
    cfg["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all", "timezone": "Europe/London"},
        {
            "name": "tenant-mail",
            "type": "webhook",
            "url": "http://mail.example.test/hook",
            "audience": "all",
            "per_tenant": True,
        },
        {"name": "team", "type": "webhook", "url": "http://team.example.test/hook", "audience": "technical"},
    ]
    cfg["policy"] = {
        "urgent_contact": URGENT_CONTACT,
        "internal_providers": ["team"],
        "senior_authoring": {"providers": ["team"]},
    }
    return cfg


def make_settings(folder: Path, catalog: dict[str, Any] | None = None) -> Settings:
    return load_settings(write_config(folder, config(), catalog or CATALOG))


def at(hour: int, minute: int = 0, day: int = 26, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def alert(
    name: str,
    summary: str,
    *,
    instance: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    level: int = 3,
) -> dict[str, Any]:
    all_labels = {"alertname": name, **({"instance": instance} if instance else {}), **(labels or {})}
    return {
        "name": name,
        "summary": summary,
        "status": "resolved" if ends_at else "firing",
        "level": level,
        "labels": all_labels,
        "annotations": {"summary": summary, **(annotations or {})},
        "links": links or {},
        "starts_at": starts_at or at(14, 32),
        "ends_at": ends_at,
    }


def incident(
    title: str,
    services: list[str],
    *,
    ref: str = "INC-2026-0215",
    incident_type: str = "general",
    level: int = 3,
    status: str = "investigating",
    opened_at: datetime | None = None,
    resolved_at: datetime | None = None,
    tenants: list[str] | None = None,
    unknown_services: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": 215,
        "ref": ref,
        "title": title,
        "status": "resolved" if resolved_at else status,
        "level": level,
        "incident_type": incident_type,
        "services": services,
        "unknown_services": unknown_services or [],
        "tenants": tenants if tenants is not None else ["acme", "bloom"],
        "opened_at": opened_at or at(14, 32),
        "resolved_at": resolved_at,
        **extra,
    }


def entry(when: datetime, kind: str, message: str) -> dict[str, Any]:
    return {"at": when, "kind": kind, "message": message}


@dataclass
class Scene:
    """One moment of one incident, ready to render for any recipient."""

    incident: dict[str, Any]
    alerts: list[dict[str, Any]]
    phase: str
    now: datetime
    event: str = "open"
    timeline: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, str | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> EventFacts:
        changes = [timeline_record(t) for t in self.changes]
        return EventFacts(
            incident=incident_record(self.incident),
            alerts=[alert_record(a) for a in self.alerts],
            timeline=[timeline_record(t) for t in self.timeline],
            phase=self.phase,
            event=self.event,
            now=self.now,
            messages=self.messages,
            changes={"technical": changes, "business": changes},
            extra=self.extra,
        )


def incident_record(row: dict[str, Any]) -> Incident:
    """A scene's incident as the store returns it, the columns the scene leaves out filled in."""
    stored = {
        "level_locked": False,
        "reopen_count": 0,
        "source": "alertmanager",
        "updated_at": row["opened_at"],
    }
    return Incident(**{**stored, **row})


def alert_record(row: dict[str, Any]) -> Alert:
    stored = {
        "id": 1,
        "incident_id": 215,
        "source": "alertmanager",
        "fingerprint": row["name"],
        "group_key": "{}:{}",
        "services": [],
        "updated_at": row["starts_at"],
    }
    return Alert(**{**stored, **row})


def timeline_record(row: dict[str, Any]) -> TimelineEntry:
    return TimelineEntry(**{"id": 1, "incident_id": 215, "data": {}, **row})


def recipient(settings: Settings, audience: str, tenant: str | None = None) -> Recipient:
    """The shared status page for `audience`, a tenant's own stream, or the team's internal hook."""
    providers = {p.name: p for p in settings.providers}
    if tenant is not None:
        found = settings.catalog.tenant(tenant)
        assert found is not None
        return Recipient(providers["tenant-mail"], audience, found)
    return Recipient(providers["status"], audience)


def render(
    settings: Settings, renderer: Renderer, scene: Scene, audience: str, tenant: str | None = None
) -> PlannedNotice:
    target = recipient(settings, audience, tenant)
    if scene.phase in INTERNAL_PHASES:
        target = Recipient(next(p for p in settings.providers if p.name == "team"), "technical")
    [notice] = plan_notices(scene.facts(), [target], settings, renderer)
    return notice


def renderer_for(settings: Settings) -> Renderer:
    return settings_renderer(settings)


def text(notice: PlannedNotice) -> str:
    return f"{notice.subject}\n\n{notice.body}\n"


def after(start: datetime, **delta: float) -> datetime:
    return start + timedelta(**delta)


# ---------------------------------------------------------------- the seed's incident and its siblings

SEED_DESCRIPTION = (
    "Connection timeouts affecting applications using our shared MySQL infrastructure. "
    "Initial symptoms suggest connection pool exhaustion at the database tier."
)
SEED_WORKAROUND = (
    "Applications with connection retry logic should recover automatically once connections are "
    "restored. Direct database queries may timeout until resolved."
)


def seed_alerts(resolved_at: datetime | None = None) -> list[dict[str, Any]]:
    return [
        alert(
            "MySQLConnectionPoolExhausted",
            "Database Connection Pool Exhaustion",
            instance="mysql-cluster-03-a.region-eu-west:3306",
            labels={"job": "mysql", "service": "mysql-shared", "severity": "critical", "cluster": "mc03"},
            annotations={"description": SEED_DESCRIPTION, "workaround": SEED_WORKAROUND},
            links={
                "runbook": "https://runbooks.example.com/mysql/connection-pool",
                "dashboard": "https://grafana.example.com/d/mysql-overview?var-cluster=mc03",
                "source": "https://prometheus.example.com/graph?g0.expr=mysql_global_status_threads_connected",
                "silence": "https://alertmanager.example.com/#/silences/new",
            },
            ends_at=resolved_at,
        )
    ]


def seed_replica_alert(resolved_at: datetime | None = None) -> dict[str, Any]:
    return alert(
        "MySQLReplicationLagHigh",
        "Replica lag above 30s",
        instance="mysql-cluster-03-b.region-eu-west:3306",
        labels={"job": "mysql", "service": "mysql-shared", "severity": "warning"},
        annotations={"description": "Seconds_Behind_Master is 48s on the read replica."},
        links={"dashboard": "https://grafana.example.com/d/mysql-replication"},
        starts_at=at(14, 51),
        ends_at=resolved_at,
    )


def seed_incident(**extra: Any) -> dict[str, Any]:
    return incident(
        "Database Connection Pool Exhaustion", ["mysql-shared"], incident_type="database", **extra
    )


SEED_TIMELINE = [
    entry(at(14, 32), "opened", "Incident opened: Database Connection Pool Exhaustion"),
    entry(
        at(14, 51), "alert_fired", "MySQLReplicationLagHigh on mysql-cluster-03-b.region-eu-west:3306 firing"
    ),
    entry(at(15, 20), "status", "Identified: a batch job held 420 idle connections open; job paused"),
    entry(
        at(15, 48),
        "alert_resolved",
        "MySQLReplicationLagHigh on mysql-cluster-03-b.region-eu-west:3306 resolved",
    ),
    entry(at(16, 5), "resolved", "All alerts resolved"),
]
SEED_ROOT_CAUSE = (
    "A nightly export job was scheduled during business hours by a configuration change and opened "
    "420 connections without releasing them, exhausting the 500-connection pool on mysql-cluster-03."
)
SEED_PREVENTION = (
    "Per-user connection limits (max_user_connections=50) for batch accounts; an alert at 80% pool "
    "usage; batch schedules validated in CI."
)


def network_alerts(resolved_at: datetime | None = None, level: int = 4) -> list[dict[str, Any]]:
    links = {"dashboard": "https://grafana.example.com/d/edge-overview"}
    return [
        alert(
            "TransitPacketLoss",
            "Packet loss on transit AS64500 above 5%",
            instance="edge-rtr-1.ams.example.net",
            labels={"job": "blackbox", "service": "edge", "link": "as64500-ams"},
            links=links,
            starts_at=at(9, 14),
            ends_at=resolved_at,
            level=level,
        ),
        alert(
            "TransitPacketLoss",
            "Packet loss on transit AS64500 above 5%",
            instance="edge-rtr-2.ams.example.net",
            labels={"job": "blackbox", "service": "edge", "link": "as64500-ams"},
            links=links,
            starts_at=at(9, 15),
            ends_at=resolved_at,
            level=level,
        ),
    ]


def storage_alerts(resolved_at: datetime | None = None) -> list[dict[str, Any]]:
    return [
        alert(
            "CephOSDDown",
            "2 OSDs down in ceph-eu-west-2",
            instance="10.20.4.17:9283",
            labels={"job": "ceph", "service": "objects", "ceph_daemon": "osd.41"},
            annotations={
                "description": "osd.41 and osd.42 on storage-node-09 are down; 3.1% of PGs degraded."
            },
            links={"runbook": "https://runbooks.example.com/ceph/osd-down"},
            starts_at=at(22, 40, day=25),
            ends_at=resolved_at,
            level=2,
        )
    ]


def web_alerts(resolved_at: datetime | None = None, recovered: bool = False) -> list[dict[str, Any]]:
    return [
        alert(
            "HighErrorRate",
            "Checkout API 5xx rate at 12%",
            instance="checkout-api-7f9c6:8080",
            labels={"job": "checkout-api", "service": "checkout"},
            annotations={
                "description": "Elevated HTTP 502 responses from the checkout API after deploy 2026.11.26-3.",
                "workaround": "Retry idempotent requests; orders return 409 if already placed.",
            },
            links={"source": "https://prometheus.example.com/graph?g0.expr=checkout_5xx_ratio"},
            starts_at=at(10, 2),
            ends_at=resolved_at,
            level=2,
        ),
        alert(
            "HighLatency",
            "Checkout API p99 latency above 2s",
            instance="checkout-api-7f9c6:8080",
            labels={"job": "checkout-api", "service": "checkout"},
            starts_at=at(10, 4),
            ends_at=resolved_at or (at(10, 40) if recovered else None),
            level=2,
        ),
    ]


def mail_alerts(resolved_at: datetime | None = None) -> list[dict[str, Any]]:
    return [
        alert(
            "PostfixQueueGrowing",
            "Mail queue above 5000 messages",
            instance="postfix-relay-2.mail.internal:9154",
            labels={"job": "postfix", "service": "mail"},
            annotations={"description": "Deferred queue growing; remote servers answer 421 (rate limited)."},
            starts_at=at(8, 0),
            ends_at=resolved_at,
            level=2,
        )
    ]


POSTMORTEM = {
    "technical": (
        "Summary: for 1 hour and 33 minutes, applications on the shared MySQL cluster mysql-cluster-03 "
        "saw connection timeouts. A configuration change moved the nightly export job into business "
        "hours; the job leaked connections until the pool was exhausted. Pausing the job at 15:20 UTC and "
        "killing its idle sessions restored capacity; replication lag on the read replica recovered by "
        "15:48 UTC."
    ),
    "business": (
        "We've put limits in place so that no single background task can use up our database capacity, "
        "added earlier warnings so our team can act before websites slow down, and added checks to stop "
        "maintenance tasks being scheduled during business hours."
    ),
    "preventive_measures": SEED_PREVENTION,
}


@dataclass(frozen=True)
class Case:
    """One golden file: a scene rendered for one audience (and tenant), by an expected template."""

    name: str
    scene: Scene
    audience: str
    template: str
    tenant: str | None = None


def _resolved(inc: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {**inc, "status": "resolved", "resolved_at": when}


def cases() -> list[Case]:
    seed_open = Scene(seed_incident(), seed_alerts(), "acknowledgement", at(14, 32))
    seed_update = Scene(
        seed_incident(status="identified", eta=at(16, 30)),
        [*seed_alerts(), seed_replica_alert()],
        "update",
        at(15, 32),
        event="cadence-1",
        timeline=SEED_TIMELINE[:3],
        changes=SEED_TIMELINE[1:3],
    )
    seed_done_incident = _resolved(
        seed_incident(root_cause=SEED_ROOT_CAUSE, preventive_measures=SEED_PREVENTION), at(16, 5)
    )
    seed_done = Scene(
        seed_done_incident,
        [*seed_alerts(at(16, 5)), seed_replica_alert(at(15, 48))],
        "resolution",
        at(16, 5),
        event="resolve-g0",
        timeline=SEED_TIMELINE,
    )
    seed_pm = Scene(
        seed_done_incident,
        seed_done.alerts,
        "postmortem",
        at(10, 0, day=27),
        event="postmortem",
        timeline=SEED_TIMELINE,
        messages={"technical": POSTMORTEM["technical"], "business": POSTMORTEM["business"]},
    )
    sla = {"target": 99.9, "month": "November 2026", "impact": timedelta(hours=1, minutes=33)}
    seed_sla_below = Scene(
        seed_done_incident,
        seed_done.alerts,
        "sla_followup",
        at(18, 5),
        event="sla",
        extra={"sla": {**sla, "availability": 99.78, "below_target": True}},
    )
    seed_sla_within = Scene(
        seed_done_incident,
        seed_done.alerts,
        "sla_followup",
        at(18, 5),
        event="sla",
        extra={"sla": {**sla, "availability": 99.95, "impact": timedelta(minutes=21), "below_target": False}},
    )
    seed_authoring = Scene(
        seed_incident(),
        seed_alerts(),
        "authoring_request",
        at(14, 32),
        event="authoring-request-g0",
        extra={
            "next_updates": [
                {"audience": "business", "notice": "first notice", "at": at(14, 47)},
                {"audience": "technical", "notice": "update", "at": at(15, 32)},
            ]
        },
    )
    seed_overdue = Scene(
        _resolved(seed_incident(), at(16, 5)),
        seed_done.alerts,
        "postmortem_reminder",
        at(18, 5, day=28),
        event="postmortem-overdue",
    )

    net = incident(
        "Packet loss on transit AS64500 above 5%",
        ["edge"],
        ref="INC-2026-0231",
        incident_type="network",
        level=4,
        opened_at=at(9, 15),
    )
    net_timeline = [
        entry(at(9, 15), "opened", "Incident opened: Packet loss on transit AS64500 above 5%"),
        entry(at(9, 15), "alert_fired", "TransitPacketLoss on edge-rtr-2.ams.example.net firing"),
        entry(at(9, 41), "level_changed", "Level raised from 3 to 4"),
    ]
    net_open = Scene(net, network_alerts(), "acknowledgement", at(9, 16))
    net_level = Scene(
        net,
        network_alerts(),
        "update",
        at(9, 41),
        event="level-4-g0",
        timeline=net_timeline,
        changes=net_timeline[2:],
    )
    net_done = Scene(
        _resolved(net, at(11, 2)),
        network_alerts(at(11, 2)),
        "resolution",
        at(11, 2),
        event="manual-resolve",
        timeline=[*net_timeline, entry(at(11, 2), "resolved", "Marked resolved by j.murphy")],
    )
    net_exec = Scene(
        {**net, "level": 5, "ref": "INC-2026-0232", "opened_at": at(9, 15)},
        network_alerts(level=5),
        "executive",
        at(9, 47),
        event="executive-g0",
    )

    store = incident(
        "2 OSDs down in ceph-eu-west-2",
        ["objects"],
        ref="INC-2026-0229",
        incident_type="storage",
        level=2,
        opened_at=at(22, 41, day=25),
    )
    store_timeline = [
        entry(at(22, 41, day=25), "opened", "Incident opened: 2 OSDs down in ceph-eu-west-2"),
        entry(at(23, 30, day=25), "resolved", "All alerts resolved"),
        entry(at(0, 12), "reopened", "Incident reopened: the alert fired again"),
    ]
    store_open = Scene(store, storage_alerts(), "acknowledgement", at(22, 51, day=25))
    store_reopen = Scene(
        store,
        storage_alerts(),
        "update",
        at(0, 12),
        event="reopen-1",
        timeline=store_timeline,
        changes=store_timeline[1:],
        messages={
            "business": "Uploads slowed down again shortly after midnight. We're rebalancing the affected "
            "storage and expect it to settle over the next few hours."
        },
    )
    store_done = Scene(
        _resolved(store, at(2, 50)),
        storage_alerts(at(2, 50)),
        "resolution",
        at(2, 50),
        event="resolve-g1",
        timeline=[*store_timeline, entry(at(2, 50), "resolved", "All alerts resolved")],
    )

    web = incident(
        "Checkout API 5xx rate at 12%",
        ["checkout"],
        ref="INC-2026-0233",
        incident_type="web",
        level=2,
        opened_at=at(10, 2),
    )
    web_timeline = [
        entry(at(10, 2), "opened", "Incident opened: Checkout API 5xx rate at 12%"),
        entry(at(10, 4), "alert_fired", "HighLatency on checkout-api-7f9c6:8080 firing"),
        entry(at(10, 40), "alert_resolved", "HighLatency on checkout-api-7f9c6:8080 resolved"),
    ]
    web_open = Scene(
        web,
        web_alerts(),
        "acknowledgement",
        at(10, 5),
        messages={"technical": "Deploy 2026.11.26-3 is being rolled back on all checkout-api pods."},
    )
    web_progress = Scene(
        web,
        web_alerts(recovered=True),
        "update",
        at(12, 5),
        event="cadence-1",
        timeline=web_timeline,
        changes=web_timeline[1:],
    )
    web_done = Scene(
        _resolved(web, at(13, 10)),
        web_alerts(at(13, 10)),
        "resolution",
        at(13, 10),
        event="resolve-g0",
        timeline=[*web_timeline, entry(at(13, 10), "resolved", "All alerts resolved")],
    )

    mail = incident(
        "Mail queue above 5000 messages",
        ["mail"],
        ref="INC-2026-0226",
        level=2,
        opened_at=at(8, 0),
    )
    mail_open = Scene(mail, mail_alerts(), "acknowledgement", at(8, 10))
    mail_quiet = Scene(mail, mail_alerts(), "update", at(10, 10), event="cadence-1")
    mail_done = Scene(
        _resolved(mail, at(11, 45)),
        mail_alerts(at(11, 45)),
        "resolution",
        at(11, 45),
        event="resolve-g0",
        timeline=[
            entry(at(8, 0), "opened", "Incident opened: Mail queue above 5000 messages"),
            entry(at(11, 45), "resolved", "All alerts resolved"),
        ],
    )

    return [
        Case("seed_technical_acknowledgement", seed_open, "technical", "database/technical/acknowledgement"),
        Case("seed_business_acknowledgement", seed_open, "business", "database/business/acknowledgement"),
        Case("database_technical_update", seed_update, "technical", "database/technical/update"),
        Case("database_business_update", seed_update, "business", "database/business/update", "bloom"),
        Case("database_technical_resolution", seed_done, "technical", "database/technical/resolution"),
        Case("database_business_resolution", seed_done, "business", "database/business/resolution", "bloom"),
        Case("technical_postmortem", seed_pm, "technical", "technical/postmortem"),
        Case("business_postmortem", seed_pm, "business", "business/postmortem", "bloom"),
        Case("technical_sla_followup", seed_sla_below, "technical", "technical/sla_followup", "acme"),
        Case("business_sla_followup_below", seed_sla_below, "business", "business/sla_followup", "bloom"),
        Case("business_sla_followup_within", seed_sla_within, "business", "business/sla_followup", "bloom"),
        Case("technical_postmortem_reminder", seed_overdue, "technical", "technical/postmortem_reminder"),
        Case("technical_executive", net_exec, "technical", "technical/executive"),
        Case("technical_authoring_request", seed_authoring, "technical", "technical/authoring_request"),
        Case("network_technical_acknowledgement", net_open, "technical", "network/technical/acknowledgement"),
        Case(
            "network_business_acknowledgement",
            net_open,
            "business",
            "network/business/acknowledgement",
            "bloom",
        ),
        Case("network_technical_update", net_level, "technical", "network/technical/update"),
        Case("network_business_update", net_level, "business", "network/business/update"),
        Case("network_technical_resolution", net_done, "technical", "network/technical/resolution"),
        Case("network_business_resolution", net_done, "business", "network/business/resolution"),
        Case(
            "storage_technical_acknowledgement", store_open, "technical", "storage/technical/acknowledgement"
        ),
        Case("storage_business_acknowledgement", store_open, "business", "storage/business/acknowledgement"),
        Case("storage_technical_update", store_reopen, "technical", "storage/technical/update"),
        Case("storage_business_update", store_reopen, "business", "storage/business/update", "bloom"),
        Case("storage_technical_resolution", store_done, "technical", "storage/technical/resolution"),
        Case("storage_business_resolution", store_done, "business", "storage/business/resolution"),
        Case("web_technical_acknowledgement", web_open, "technical", "web/technical/acknowledgement", "acme"),
        Case("web_business_acknowledgement", web_open, "business", "web/business/acknowledgement"),
        Case("web_technical_update", web_progress, "technical", "web/technical/update"),
        Case("web_business_update", web_progress, "business", "web/business/update"),
        Case("web_technical_resolution", web_done, "technical", "web/technical/resolution"),
        Case("web_business_resolution", web_done, "business", "web/business/resolution", "bloom"),
        Case("technical_acknowledgement", mail_open, "technical", "technical/acknowledgement"),
        Case("business_acknowledgement", mail_open, "business", "business/acknowledgement"),
        Case("technical_update", mail_quiet, "technical", "technical/update"),
        Case("business_update", mail_quiet, "business", "business/update"),
        Case("technical_resolution", mail_done, "technical", "technical/resolution"),
        Case("business_resolution", mail_done, "business", "business/resolution"),
    ]
