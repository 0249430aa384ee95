"""Settle: an incident's state recomputed from its alerts, and the notice events that follow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from adapter.config import Settings
from adapter.engine.correlate import Change, incident_type
from adapter.engine.effects import Effects
from adapter.metrics import Metrics
from adapter.store import incidents as repo
from adapter.store.records import Alert, Incident

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """A notice event: its phase and key (see `Notifier.notify`), the timeline entry (kind,
    message) recorded just before its notices, and whether holds are shortened after them."""

    phase: str
    key: str
    note: tuple[str, str] | None = None
    rehold: bool = False


@dataclass
class Settled:
    """The incident as settled, the alerts it was settled from, and the events to notify."""

    incident: Incident
    alerts: list[Alert]
    events: list[Event] = field(default_factory=list)


def settle(
    conn: Connection, effects: Effects, settings: Settings, metrics: Metrics, change: Change, now: datetime
) -> Settled:
    """Recompute the incident from its alerts and record what changed."""
    incident = change.incident
    incident_id = incident.id
    alerts = repo.alerts_of(conn, incident_id) if change.alerts is None else change.alerts
    firing = [a for a in alerts if a.status == "firing"]
    known = {s.id for s in settings.catalog.services}
    services: list[str] = []
    unknown: list[str] = []
    for alert in alerts:
        for name in alert.services:
            bucket = services if name in known else unknown
            if name not in bucket:
                bucket.append(name)
    level_before = incident.level
    level = level_before
    if not incident.level_locked and firing:
        computed = max(a.level for a in firing)
        # An open incident's level never drops by itself.
        level = computed if change.opened else max(level_before, computed)
    kind = incident.incident_type
    if kind == "general" and services:
        kind = incident_type(settings, {}, services)
    values: dict[str, Any] = {
        "services": services,
        "unknown_services": unknown,
        "tenants": [t.id for t in settings.catalog.tenants_for(services)],
        "level": level,
        "incident_type": kind,
        "updated_at": now,
    }
    published_now = incident.status == "triage" and bool(services) and bool(firing)
    if published_now:  # an alert named a catalog service: its customers can be told
        values["status"] = "investigating"
    resolved_now = not firing and incident.status != "resolved"
    if resolved_now:
        # An action asked of customers during the incident no longer applies.
        values.update(status="resolved", resolved_at=now, action_required=None)
    changed = {k: v for k, v in values.items() if getattr(incident, k) != v}
    if changed:
        incident = repo.update_incident(conn, incident, changed)
    settled = Settled(incident, alerts)

    generation = incident.reopen_count
    if change.opened or published_now:
        settled.events.append(Event("acknowledgement", "open"))
    elif change.reopened:
        settled.events.append(Event("update", f"reopen-{generation}"))
    elif level > level_before:
        # Updates skip readers whose first notice is held; released now, it carries the new level.
        note = ("level_changed", f"Level raised from {level_before} to {level}")
        settled.events.append(Event("update", f"level-{level}-g{generation}", note, rehold=True))
    settled.events += escalations(settings, level, level_before, generation, opened=change.opened)
    if resolved_now:
        effects.add(_resolved, metrics, incident.ref)
        settled.events.append(
            Event("resolution", f"resolve-g{generation}", ("resolved", "All alerts resolved"))
        )
    return settled


def escalations(settings: Settings, level: int, before: int, generation: int, *, opened: bool) -> list[Event]:
    """The team's own notices of an incident opened at `level`, or raised to it from `before`: the
    level-5 executive briefing, and from policy.senior_authoring.min_level a request that senior
    staff write its updates. Once each per reopen generation (their keys)."""
    events = []
    if level == 5 and (opened or before < 5):
        events.append(Event("executive", f"executive-g{generation}"))
    senior = settings.policy.senior_authoring
    if senior.providers and level >= senior.min_level and (opened or before < senior.min_level):
        events.append(Event("authoring_request", f"authoring-request-g{generation}"))
    return events


def _resolved(metrics: Metrics, ref: str) -> None:
    metrics.incidents_resolved.inc()
    log.info("incident resolved ref=%s", ref)
