"""PagerDuty in: Webhooks V3 incident events and Events API v2 alerts, mapped onto the ingest stages."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from adapter.config import Settings
from adapter.engine.correlate import Change
from adapter.engine.effects import Effects
from adapter.engine.notify import Notifier
from adapter.sources.events import EnqueueEvent
from adapter.sources.pagerduty import PagerDutyEvent
from adapter.sources.signal import Batch, Signal
from adapter.store import incidents as repo
from adapter.store import outbox

log = logging.getLogger(__name__)

EVENTS_SEVERITY = ("critical", "error", "warning", "info")
# Who did what in PagerDuty goes on the timeline; status updates are for stakeholders.
TIMELINE_EVENTS = {
    "incident.acknowledged": "Acknowledged in PagerDuty",
    "incident.unacknowledged": "Acknowledgement timed out in PagerDuty",
    "incident.escalated": "Escalated in PagerDuty",
    "incident.reassigned": "Reassigned in PagerDuty",
    "incident.delegated": "Delegated to another escalation policy in PagerDuty",
}


@dataclass
class Intake:
    """What one inbound PagerDuty request came to."""

    outcome: str
    refs: list[str] = field(default_factory=list)
    dedup_key: str | None = None


class Ingested(Protocol):
    refs: list[str]


class Stages(Protocol):
    """What of the engine PagerDuty events are mapped onto (the Engine, which imports this module)."""

    settings: Settings
    notifier: Notifier

    def apply(self, conn: Connection, effects: Effects, batch: Batch, now: datetime) -> Ingested: ...

    def settle(self, conn: Connection, effects: Effects, change: Change, now: datetime) -> int: ...


class PagerDutyIntake:
    """Maps PagerDuty events onto the engine's stages; `Engine.ingest` runs them in its transaction."""

    def __init__(self, engine: Stages):
        self.engine = engine
        self.settings = engine.settings

    # -- shared ------------------------------------------------------------------------------

    def _service_label(self, *names: str | None) -> str | None:
        """A catalog service id for PagerDuty's service id or name, else the first name given."""
        catalog = self.settings.catalog
        for name in names:
            if not name:
                continue
            mapped = catalog.pagerduty.get(name)
            if mapped:
                return mapped
            service = catalog.service(name)
            if service is not None:
                return service.id
        return next((n for n in names if n), None)

    def _labels(
        self, name: str, service: str | None, level: int | None, severity: str | None
    ) -> dict[str, str]:
        labels = {"alertname": name}
        if service:
            labels[self.settings.correlation.service_labels[0]] = service
        if level is not None:
            labels[self.settings.severity.level_label] = str(level)
        if severity:
            labels["severity"] = severity
        return labels

    # -- Webhooks V3 ---------------------------------------------------------------------------

    def level_of(self, event: PagerDutyEvent) -> int | None:
        mapping = self.settings.pagerduty
        if event.priority and event.priority in mapping.priorities:
            return mapping.priorities[event.priority]
        if event.urgency and event.urgency in mapping.urgencies:
            return mapping.urgencies[event.urgency]
        return None

    def signal(self, event: PagerDutyEvent, status: str) -> Signal:
        assert event.incident_id is not None
        title = event.title or f"PagerDuty incident {event.incident_number or event.incident_id}"
        service = self._service_label(event.service_id, event.service_name)
        return Signal(
            source="pagerduty",
            fingerprint=f"pd-{event.incident_id}",
            status="firing" if status == "firing" else "resolved",
            starts_at=event.occurred_at,
            ends_at=event.occurred_at if status == "resolved" else None,
            labels=self._labels(title, service, self.level_of(event), None),
            annotations={"summary": title},
            group_key=event.incident_key or event.incident_id,
            links={"source": event.html_url} if event.html_url else {},
            identity="open",
        )

    def apply_webhook(
        self, conn: Connection, effects: Effects, event: PagerDutyEvent, webhook_id: str | None, now: datetime
    ) -> Intake:
        """One V3 event, deduplicated on X-Webhook-Id and event.id."""
        kind = event.event_type
        if not kind.startswith("incident.") or event.incident_id is None:
            return Intake("ignored")
        if repo.seen_before(conn, "pagerduty", [k for k in (webhook_id, event.event_id) if k], now):
            return Intake("duplicate")
        engine = self.engine
        if kind in ("incident.triggered", "incident.reopened", "incident.priority_updated"):
            batch = Batch("pagerduty", event.incident_key or "", [self.signal(event, "firing")])
            result = engine.apply(conn, effects, batch, now)
            return Intake("accepted", result.refs)
        if kind == "incident.resolved" and event.merged_into:
            return self._merge(conn, effects, event, now)
        if kind == "incident.resolved":
            batch = Batch("pagerduty", event.incident_key or "", [self.signal(event, "resolved")])
            result = engine.apply(conn, effects, batch, now)
            return Intake("accepted", result.refs)
        alert = repo.latest_alert(conn, "pagerduty", f"pd-{event.incident_id}")
        incident = repo.get_incident(conn, alert.incident_id) if alert else None
        if incident is None:
            return Intake("ignored")
        who = f" by {event.agent}" if event.agent else ""
        if kind in TIMELINE_EVENTS:
            repo.add_timeline(conn, incident.id, now, "pagerduty", TIMELINE_EVENTS[kind] + who)
            wanted = self.settings.pagerduty.acknowledged_status
            if kind == "incident.acknowledged" and incident.status == "investigating" != wanted:
                repo.update_incident(conn, incident, {"status": wanted, "updated_at": now})
            return Intake("accepted", [incident.ref])
        if kind == "incident.annotated" and event.message:
            # An internal note: kept on the timeline, never published.
            repo.add_timeline(conn, incident.id, now, "note", event.message[:2000])
            return Intake("accepted", [incident.ref])
        if kind == "incident.status_update_published" and event.message and incident.status != "resolved":
            # PagerDuty status updates are written for stakeholders: the business track.
            repo.add_timeline(conn, incident.id, now, "human_update", f"PagerDuty status update{who}")
            engine.notifier.notify(
                conn,
                effects,
                incident,
                "update",
                f"pd-status-{event.event_id}",
                now,
                audiences=("business",),
                messages={"business": event.message},
            )
            return Intake("accepted", [incident.ref])
        return Intake("ignored")

    def _merge(self, conn: Connection, effects: Effects, event: PagerDutyEvent, now: datetime) -> Intake:
        """A merged PagerDuty incident folds into the surviving one; nobody hears "resolved"."""
        alert = repo.find_firing(conn, "pagerduty", f"pd-{event.incident_id}")
        if alert is None:
            return Intake("ignored")
        source = repo.get_incident(conn, alert.incident_id)
        survivor_alert = repo.latest_alert(conn, "pagerduty", f"pd-{event.merged_into}")
        target = repo.get_incident(conn, survivor_alert.incident_id) if survivor_alert else None
        assert source is not None
        refs = [source.ref]
        if target is not None and target.id != source.id:
            repo.update_alert(conn, alert.id, {"incident_id": target.id, "updated_at": now})
            repo.add_timeline(conn, target.id, now, "merged", f"{source.ref} merged into this incident")
            refs.append(target.ref)
        else:
            repo.update_alert(conn, alert.id, {"status": "resolved", "ends_at": now, "updated_at": now})
        if not [a for a in repo.alerts_of(conn, source.id) if a.status == "firing"]:
            into = target.ref if target else f"PagerDuty incident {event.merged_into}"
            repo.update_incident(conn, source, {"status": "resolved", "resolved_at": now, "updated_at": now})
            repo.add_timeline(conn, source.id, now, "merged", f"Merged into {into}")
            outbox.suppress_held(conn, source.id)
        if target is not None:
            self.engine.settle(conn, effects, Change(target), now)
        log.info("pagerduty merge incident=%s into=%s", event.incident_id, event.merged_into)
        return Intake("accepted", refs)

    # -- Events API v2 -------------------------------------------------------------------------

    def events_signal(self, event: EnqueueEvent, dedup_key: str, now: datetime) -> Signal:
        name = event.class_ or event.summary or "event"
        service = self._service_label(event.component, event.group)
        annotations = {"summary": event.summary or name}
        if event.source:
            annotations["source"] = event.source
        links = {}
        if event.client_url:
            links["source"] = event.client_url
        for link in event.links:
            href = link.get("href", "")
            if href.startswith(("http://", "https://")):
                links.setdefault("dashboard" if "dashboard" not in links else "link", href)
        return Signal(
            source="events",
            fingerprint="ev-" + hashlib.sha256(f"{event.routing_key}:{dedup_key}".encode()).hexdigest()[:40],
            status="resolved" if event.event_action == "resolve" else "firing",
            starts_at=event.timestamp or now,
            ends_at=now if event.event_action == "resolve" else None,
            labels=self._labels(name, service, None, event.severity),
            annotations=annotations,
            group_key=dedup_key,
            links=links,
            identity="open",
        )

    def apply_event(self, conn: Connection, effects: Effects, event: EnqueueEvent, now: datetime) -> Intake:
        """One Events API v2 event: an acknowledgement goes on the timeline, the rest are signals."""
        dedup_key = event.dedup_key or uuid.uuid4().hex
        signal = self.events_signal(event, dedup_key, now)
        if event.event_action == "acknowledge":
            alert = repo.find_firing(conn, "events", signal.fingerprint)
            if alert is None:
                return Intake("ignored", dedup_key=dedup_key)
            repo.add_timeline(conn, alert.incident_id, now, "pagerduty", "Acknowledged")
            incident = repo.get_incident(conn, alert.incident_id)
            return Intake("accepted", [incident.ref] if incident else [], dedup_key)
        result = self.engine.apply(conn, effects, Batch("events", dedup_key, [signal]), now)
        return Intake("accepted", result.refs, dedup_key)
