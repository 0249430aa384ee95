"""Correlate: signals, with the stored alerts and incidents they meet, become changes to incidents."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from adapter.config import Settings
from adapter.engine.effects import Effects
from adapter.engine.severity import classify
from adapter.metrics import Metrics
from adapter.sources.signal import Signal
from adapter.store import incidents as repo
from adapter.store.incidents import Related
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
    alerts: list[Alert] | None = None  # all the incident's alerts, when the batch wrote them all


Instance = tuple[str, str, datetime]  # an alert instance's identity: source, fingerprint, start


@dataclass
class Stored:
    """The stored alerts and incidents a batch's signals meet, read once for the whole batch.

    The batch's own writes are added as they happen, so each signal sees what the signals before
    it wrote, as if it had read the database itself.
    """

    alerts: dict[Instance, Alert] = field(default_factory=dict)
    related: dict[int, Related] = field(default_factory=dict)  # incidents new alerts may join, by id

    def alerts_of(self, incident_id: int) -> list[Alert]:
        """The incident's alerts this batch read or wrote, in the order of `repo.alerts_of`."""
        alerts = [a for a in self.alerts.values() if a.incident_id == incident_id]
        return sorted(alerts, key=lambda a: (a.starts_at, a.id))

    def update(self, conn: Connection, alert: Alert, values: dict[str, Any]) -> None:
        """Store these values of the alert, here and in the database."""
        repo.update_alert(conn, alert.id, values)
        self.alerts[instance(alert)] = replace(alert, **values)

    def joined(self, incident: Incident, alert: Alert) -> None:
        """The batch stored `alert` in `incident`."""
        self.alerts[instance(alert)] = alert
        related = self.related.setdefault(incident.id, Related(incident))
        related.incident = incident
        related.fingerprints.add(alert.fingerprint)
        related.group_keys.add(alert.group_key)


def instance(alert: Alert | Signal) -> Instance:
    return (alert.source, alert.fingerprint, alert.starts_at)


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


class Correlation:
    """One batch's signals applied in its write transaction, one at a time: each sees what the
    signals before it wrote. `changes` holds what they did to each incident, by incident id."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        conn: Connection,
        effects: Effects,
        signals: list[Signal],
        now: datetime,
    ):
        self.settings = settings
        self.metrics = metrics
        self.conn = conn
        self.effects = effects
        self.now = now
        self.changes: dict[int, Change] = {}
        # The stored alerts of the signals' instances, and the incidents their new firing alerts
        # may join: two reads, however many signals a notification carries. PagerDuty and Events
        # API signals (one a request) are looked up as they are applied.
        instances = [s for s in signals if s.identity != "open"]
        alerts = {instance(a): a for a in repo.find_alerts(conn, [instance(s) for s in instances])}
        new = [s for s in instances if s.status == "firing" and instance(s) not in alerts]
        self.stored = Stored(alerts, self._related(new) if new else {})

    def _related(self, signals: list[Signal]) -> dict[int, Related]:
        """The incidents these new firing signals may join: open, or resolved within the reopen window."""
        fingerprints = [s.fingerprint for s in signals]
        group_keys = [key for s in signals for key in self._group_keys(s)]
        since = self.now - self.settings.correlation.reopen_window
        return repo.related_incidents(self.conn, fingerprints, group_keys, since)

    def apply(self, signal: Signal) -> tuple[str, int | None]:
        """What the signal did (for the metric), and the incident it changed if any."""
        if signal.identity == "open":
            # PagerDuty and Events API alerts are one alert while open, however often re-sent.
            existing = repo.find_firing(self.conn, signal.source, signal.fingerprint)
            if existing is not None and signal.status == "firing":
                outcome = self._refresh_level(existing, signal)
                return outcome, existing.incident_id if outcome == "updated" else None
            if existing is None and signal.status == "firing":
                signal = self._next_instance(signal)
                self.stored.related = self._related([signal])
        else:
            existing = self.stored.alerts.get(instance(signal))
        if existing is not None:
            return self._repeat(existing, signal)
        if signal.status == "resolved":
            return "orphan", None
        return "new", self._fire(signal)

    def _repeat(self, existing: Alert, signal: Signal) -> tuple[str, int | None]:
        """A signal for a stored alert instance: a duplicate, a stale copy, or its resolve."""
        if existing.status == signal.status:
            return "duplicate", None
        if existing.status == "resolved":
            # A firing copy of an instance already resolved: a late or replayed notification.
            return "stale", None
        now, incident_id = self.now, existing.incident_id
        self.stored.update(
            self.conn, existing, {"status": "resolved", "ends_at": signal.ends_at or now, "updated_at": now}
        )
        self._change_for(incident_id).resolved += 1
        message = f"{alert_label(existing.name, existing.labels)} resolved"
        repo.add_timeline(self.conn, incident_id, now, "alert_resolved", message, alert=existing.id)
        return "resolved", incident_id

    def _fire(self, signal: Signal) -> int:
        """A new firing alert joins the incident it relates to, reopened if resolved, or opens one."""
        service_ids, unknown = services_of(self.settings, signal.labels)
        if unknown:
            self.effects.add(self.metrics.unknown_services.inc)
        services = [s for s in map(self.settings.catalog.service, service_ids) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)
        keys = set(self._group_keys(signal))
        related = [
            r
            for r in self.stored.related.values()
            if signal.fingerprint in r.fingerprints or r.group_keys & keys
        ]
        best = max(related, key=lambda r: r.rank(signal.fingerprint), default=None)
        if best is None and (same_service := self._open_on(service_ids)) is not None:
            best = Related(same_service)
        if best is None:
            incident = self._open(signal, service_ids, unknown, level)
            self.changes[incident.id] = Change(incident, opened=True)
        elif best.incident.status not in repo.OPEN:
            incident = self._reopen(best.incident)
            self.changes[incident.id] = Change(incident, reopened=True)
        else:
            incident = best.incident
        change = self._change_for(incident.id, incident)
        values: dict[str, Any] = {
            "incident_id": incident.id,
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
            "updated_at": self.now,
            "silenced": False,
            "missing_since": None,
        }
        alert = Alert(id=repo.insert_alert(self.conn, values), **values)
        self.stored.joined(incident, alert)
        change.fired += 1
        if not change.opened or change.fired > 1:
            message = f"{alert_label(signal.name, signal.labels)} firing"
            repo.add_timeline(self.conn, incident.id, self.now, "alert_fired", message, alert=alert.id)
        return incident.id

    def _open_on(self, service_ids: list[str]) -> Incident | None:
        """The open incident of these services opened within correlation.service_window, if any:
        another alert group on the same service is the same outage to its customers."""
        window = self.settings.correlation.service_window
        if not service_ids or not window:
            return None
        for incident in repo.open_since(self.conn, self.now - window):
            if set(incident.services) & set(service_ids):
                return incident
        return None

    def _next_instance(self, signal: Signal) -> Signal:
        """A trigger after the alert's last instance was resolved is a new instance, which opens
        or reopens an incident. Senders repeat their timestamp (an Events API payload.timestamp,
        a PagerDuty occurred_at), so one no later than the last instance's start starts now."""
        last = repo.latest_alert(self.conn, signal.source, signal.fingerprint)
        if last is None or signal.starts_at > last.starts_at:
            return signal
        return replace(signal, starts_at=max(self.now, last.starts_at + timedelta(microseconds=1)))

    def _group_keys(self, signal: Signal) -> list[str]:
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
                for group_key, _ in repo.open_group_keys(self.conn)
                if hashlib.sha256(group_key.encode()).hexdigest() == signal.group_key
            ]
        return keys

    def _refresh_level(self, alert: Alert, signal: Signal) -> str:
        """A repeat of an open alert: a duplicate, unless it now asks for a higher level."""
        services = [s for s in map(self.settings.catalog.service, alert.services) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)
        if level <= alert.level:
            return "duplicate"
        self.stored.update(
            self.conn, alert, {"level": level, "labels": signal.labels, "updated_at": self.now}
        )
        self._change_for(alert.incident_id)
        return "updated"

    def _change_for(self, incident_id: int, incident: Incident | None = None) -> Change:
        if incident_id not in self.changes:
            if incident is None:
                incident = repo.get_incident(self.conn, incident_id)
            assert incident is not None
            self.changes[incident_id] = Change(incident)
        return self.changes[incident_id]

    def _open(self, signal: Signal, service_ids: list[str], unknown: list[str], level: int) -> Incident:
        now = self.now
        ref = repo.next_ref(self.conn, now.year)
        # What settling would compute from this one alert, so an incident of one alert (or of
        # alerts that agree) needs no update after its insert.
        values: dict[str, Any] = {
            "ref": ref,
            "title": signal.summary[:500],
            "status": self._first_status(service_ids),
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
        incident_id = repo.insert_incident(self.conn, values)
        repo.add_timeline(self.conn, incident_id, now, "opened", f"Incident opened: {signal.summary}")
        self.effects.add(self._opened, ref, level, signal.source)
        if values["status"] == "triage":
            self.effects.add(self.metrics.incidents_triage.inc)
        return Incident(id=incident_id, **values)

    def _opened(self, ref: str, level: int, source: str) -> None:
        self.metrics.incidents_opened.labels(str(level)).inc()
        log.info("incident opened ref=%s level=%d source=%s", ref, level, source)

    def _first_status(self, service_ids: list[str]) -> str:
        """Investigating; or triage, for an incident on no catalog service (see publish.unknown_services)."""
        triage = not service_ids and self.settings.publish.unknown_services == "triage"
        return "triage" if triage else "investigating"

    def _reopen(self, incident: Incident) -> Incident:
        status = self._first_status(incident.services)
        if status == "triage" and repo.has_timeline(self.conn, incident.id, "published"):
            status = "investigating"  # published as it is: its readers hear that it is back
        values = {
            "status": status,
            "resolved_at": None,
            "updated_at": self.now,
        }
        reopened = repo.update_incident(
            self.conn, incident, {**values, "reopen_count": incident.reopen_count + 1}
        )
        repo.add_timeline(
            self.conn, incident.id, self.now, "reopened", "Incident reopened: the alert fired again"
        )
        self.effects.add(log.info, "incident reopened ref=%s", incident.ref)
        return reopened
