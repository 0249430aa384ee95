"""Correlate: signals, with the stored alerts and incidents they meet, become changes to incidents."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from adapter.config import Settings
from adapter.engine.effects import Effects
from adapter.engine.severity import classify
from adapter.metrics import Metrics
from adapter.sources.signal import Signal
from adapter.store import incidents as repo
from adapter.store.records import Alert, Incident

log = logging.getLogger(__name__)


@dataclass
class Change:
    """What the signals did to one incident, and the incident row as they left it."""

    incident: Incident
    opened: bool = False
    reopened: bool = False
    fired: int = 0
    resolved: int = 0


def alert_label(name: str, labels: dict[str, str]) -> str:
    instance = labels.get("instance")
    return f"{name} on {instance}" if instance else name


def services_of(settings: Settings, labels: dict[str, str]) -> tuple[list[str], list[str]]:
    """(known service ids, unknown service names) an alert's labels point at."""
    present = [labels[n] for n in settings.correlation.service_labels if labels.get(n)]
    for value in present:
        service = settings.catalog.service(value)
        if service is not None:
            return [service.id], []
    return [], present[:1]


def incident_type(settings: Settings, labels: dict[str, str], service_ids: list[str]) -> str:
    if labels.get("incident_type"):
        return labels["incident_type"]
    for service_id in service_ids:
        service = settings.catalog.service(service_id)
        if service is not None:
            return service.incident_type
    return "general"


class Correlator:
    """Applies one signal at a time: each sees what the signals before it in the transaction wrote."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics

    def apply(
        self, conn: Connection, effects: Effects, signal: Signal, now: datetime, changes: dict[int, Change]
    ) -> tuple[str, int | None]:
        """What the signal did (for the metric), and the incident it changed if any."""
        if signal.identity == "open":
            # PagerDuty and Events API alerts are one alert while open, however often re-sent.
            existing = repo.find_firing(conn, signal.source, signal.fingerprint)
            if existing is not None and signal.status == "firing":
                outcome = self._refresh_level(conn, existing, signal, now, changes)
                return outcome, existing.incident_id if outcome == "updated" else None
            if existing is None and signal.status == "firing":
                signal = self._next_instance(conn, signal, now)
        else:
            existing = repo.find_alert(conn, signal.source, signal.fingerprint, signal.starts_at)
        if existing is not None:
            return self._repeat(conn, existing, signal, now, changes)
        if signal.status == "resolved":
            return "orphan", None
        return "new", self._fire(conn, effects, signal, now, changes)

    def _repeat(
        self,
        conn: Connection,
        existing: Alert,
        signal: Signal,
        now: datetime,
        changes: dict[int, Change],
    ) -> tuple[str, int | None]:
        """A signal for a stored alert instance: a duplicate, a stale copy, or its resolve."""
        if existing.status == signal.status:
            return "duplicate", None
        if existing.status == "resolved":
            # A firing copy of an instance already resolved: a late or replayed notification.
            return "stale", None
        incident_id = existing.incident_id
        repo.update_alert(
            conn, existing.id, {"status": "resolved", "ends_at": signal.ends_at or now, "updated_at": now}
        )
        self._change_for(conn, incident_id, changes).resolved += 1
        message = f"{alert_label(existing.name, existing.labels)} resolved"
        repo.add_timeline(conn, incident_id, now, "alert_resolved", message, alert=existing.id)
        return "resolved", incident_id

    def _fire(
        self, conn: Connection, effects: Effects, signal: Signal, now: datetime, changes: dict[int, Change]
    ) -> int:
        """A new firing alert joins the incident it relates to, reopened if resolved, or opens one."""
        service_ids, unknown = services_of(self.settings, signal.labels)
        if unknown:
            effects.add(self.metrics.unknown_services.inc)
        services = [s for s in map(self.settings.catalog.service, service_ids) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)
        since = now - self.settings.correlation.reopen_window
        related = repo.related_incidents(conn, [signal.fingerprint], self._group_keys(conn, signal), since)
        best = max(related.values(), key=lambda r: r.rank(signal.fingerprint), default=None)
        if best is None:
            incident = self._open(conn, effects, signal, service_ids, unknown, level, now)
            changes[incident.id] = Change(incident, opened=True)
        elif best.incident.status not in repo.OPEN:
            incident = self._reopen(conn, effects, best.incident, now)
            changes[incident.id] = Change(incident, reopened=True)
        else:
            incident = best.incident
        incident_id = incident.id
        change = self._change_for(conn, incident_id, changes, incident)
        alert_id = repo.insert_alert(
            conn,
            {
                "incident_id": incident_id,
                "source": signal.source,
                "fingerprint": signal.fingerprint,
                "starts_at": signal.starts_at,
                "ends_at": None,
                "status": "firing",
                "name": signal.name,
                "summary": signal.summary,
                "group_key": signal.group_key,
                "level": level,
                "services": service_ids or unknown,
                "labels": signal.labels,
                "annotations": signal.annotations,
                "links": signal.links,
                "updated_at": now,
                "silenced": False,
                "missing_since": None,
            },
        )
        change.fired += 1
        if not change.opened or change.fired > 1:
            message = f"{alert_label(signal.name, signal.labels)} firing"
            repo.add_timeline(conn, incident_id, now, "alert_fired", message, alert=alert_id)
        return incident_id

    def _next_instance(self, conn: Connection, signal: Signal, now: datetime) -> Signal:
        """A trigger after the alert's last instance was resolved is a new instance, which opens
        or reopens an incident. Senders repeat their timestamp (an Events API payload.timestamp,
        a PagerDuty occurred_at), so one no later than the last instance's start starts now."""
        last = repo.latest_alert(conn, signal.source, signal.fingerprint)
        if last is None or signal.starts_at > last.starts_at:
            return signal
        return replace(signal, starts_at=max(now, last.starts_at + timedelta(microseconds=1)))

    def _group_keys(self, conn: Connection, signal: Signal) -> list[str]:
        """The group keys that mean the same outage as this signal's.

        Alertmanager's PagerDuty notifier sends sha256(groupKey) as the dedup key, so with
        cross-source correlation an Alertmanager group and its PagerDuty incident are one.
        """
        keys = [signal.group_key]
        if not self.settings.correlation.cross_source:
            return keys
        if signal.source in ("alertmanager", "grafana"):
            keys.append(hashlib.sha256(signal.group_key.encode()).hexdigest())
        else:
            keys += [
                group_key
                for group_key, _ in repo.open_group_keys(conn)
                if hashlib.sha256(group_key.encode()).hexdigest() == signal.group_key
            ]
        return keys

    def _refresh_level(
        self,
        conn: Connection,
        alert: Alert,
        signal: Signal,
        now: datetime,
        changes: dict[int, Change],
    ) -> str:
        """A repeat of an open alert: a duplicate, unless it now asks for a higher level."""
        services = [s for s in map(self.settings.catalog.service, alert.services) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)
        if level <= alert.level:
            return "duplicate"
        repo.update_alert(conn, alert.id, {"level": level, "labels": signal.labels, "updated_at": now})
        self._change_for(conn, alert.incident_id, changes)
        return "updated"

    @staticmethod
    def _change_for(
        conn: Connection, incident_id: int, changes: dict[int, Change], incident: Incident | None = None
    ) -> Change:
        if incident_id not in changes:
            if incident is None:
                incident = repo.get_incident(conn, incident_id)
            assert incident is not None
            changes[incident_id] = Change(incident)
        return changes[incident_id]

    def _open(
        self,
        conn: Connection,
        effects: Effects,
        signal: Signal,
        service_ids: list[str],
        unknown: list[str],
        level: int,
        now: datetime,
    ) -> Incident:
        ref = repo.next_ref(conn, now.year)
        # What settling would compute from this one alert, so an incident of one alert (or of
        # alerts that agree) needs no update after its insert.
        values: dict[str, Any] = {
            "ref": ref,
            "title": signal.summary[:500],
            "status": "investigating",
            "level": level,
            "level_locked": False,
            "reopen_count": 0,
            "incident_type": incident_type(self.settings, signal.labels, service_ids),
            "services": list(service_ids),
            "unknown_services": list(unknown),
            "tenants": [t.id for t in self.settings.catalog.tenants_for(service_ids)],
            "source": signal.source,
            "opened_at": now,
            "resolved_at": None,
            "updated_at": now,
        }
        incident_id = repo.insert_incident(conn, values)
        repo.add_timeline(conn, incident_id, now, "opened", f"Incident opened: {signal.summary}")
        effects.add(self._opened, ref, level, signal.source)
        return Incident(id=incident_id, **values)

    def _opened(self, ref: str, level: int, source: str) -> None:
        self.metrics.incidents_opened.labels(str(level)).inc()
        log.info("incident opened ref=%s level=%d source=%s", ref, level, source)

    @staticmethod
    def _reopen(conn: Connection, effects: Effects, incident: Incident, now: datetime) -> Incident:
        values = {"status": "investigating", "resolved_at": None, "updated_at": now}
        reopened = repo.update_incident(conn, incident, {**values, "reopen_count": incident.reopen_count + 1})
        repo.add_timeline(conn, incident.id, now, "reopened", "Incident reopened: the alert fired again")
        effects.add(log.info, "incident reopened ref=%s", incident.ref)
        return reopened
