"""Ingest: dedupe, correlate into incidents, classify, and plan notices, all in one transaction."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection

from adapter.clock import Clock
from adapter.config import Settings
from adapter.engine.notify import Notifier
from adapter.engine.pending import Pending
from adapter.engine.severity import classify
from adapter.metrics import DiscardMetrics, Metrics
from adapter.rendering import Renderer
from adapter.sources.signal import Batch, Signal
from adapter.store import Store, outbox
from adapter.store import incidents as repo
from adapter.store.db import after_commit
from adapter.store.groupcommit import GroupCommit

log = logging.getLogger(__name__)


def _alert_label(name: str, labels: dict[str, str]) -> str:
    instance = labels.get("instance")
    return f"{name} on {instance}" if instance else name


@dataclass
class Change:
    """What one batch did to one incident, and the incident row as the batch left it."""

    incident: dict[str, Any]
    opened: bool = False
    reopened: bool = False
    fired: int = 0
    resolved: int = 0


@dataclass
class IngestResult:
    refs: list[str] = field(default_factory=list)
    notices: int = 0
    duplicates: int = 0


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        renderer: Renderer,
        clock: Clock,
        metrics: Metrics,
        on_commit: Callable[[], None] | None = None,
        *,
        render_quiet: bool = False,
    ):
        self.settings = settings
        self.store = store
        self.renderer = renderer
        self.clock = clock
        self.metrics = metrics
        self.on_commit = on_commit
        # The dispatcher is woken for notices it must deliver, not for those published on commit.
        self.notifier = Notifier(settings, renderer, metrics, render_quiet=render_quiet, on_outbox=on_commit)
        # Webhooks that one process serves at the same time are ingested in one transaction.
        self.commits: GroupCommit[Batch, IngestResult] = GroupCommit(store, self._ingest_group)

    # -- services -----------------------------------------------------------------------------

    def services_of(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        """(known service ids, unknown service names) an alert's labels point at."""
        catalog = self.settings.catalog
        present = [labels[n] for n in self.settings.correlation.service_labels if labels.get(n)]
        for value in present:
            service = catalog.service(value)
            if service is not None:
                return [service.id], []
        return [], present[:1]

    # -- ingest -------------------------------------------------------------------------------

    def ingest(self, batch: Batch) -> IngestResult:
        if batch.test:
            return IngestResult()
        return self.commits.submit(batch)

    def _ingest_group(self, conn: Connection, batches: list[Batch]) -> list[IngestResult]:
        after_commit(conn, functools.partial(self.metrics.ingest_group.observe, len(batches)))
        return self.ingest_many(conn, batches, self.clock.now())

    def ingest_in(self, conn: Connection, batch: Batch, now: datetime) -> IngestResult:
        return self.ingest_many(conn, [batch], now)[0]

    def ingest_many(self, conn: Connection, batches: list[Batch], now: datetime) -> list[IngestResult]:
        """Batches in order, as if each came alone, except that an incident several of them
        change is settled once, with all their changes (as if they had come as one)."""
        results = [IngestResult() for _ in batches]
        touched: list[list[int]] = [[] for _ in batches]  # per batch, incident ids in first-touch order
        changes: dict[int, Change] = {}
        signals = [signal for batch in batches for signal in batch.signals]
        work = Pending(conn, signals, now - self.settings.correlation.reopen_window)
        outcomes: Counter[tuple[str, str]] = Counter()
        for batch, result, ids in zip(batches, results, touched, strict=True):
            for signal in batch.signals:
                if signal.identity == "open":
                    work.flush()  # its lookups read the database, which must hold what came before
                outcome, incident_id = self._apply(conn, signal, now, changes, work)
                outcomes[batch.source, outcome] += 1
                result.duplicates += outcome in ("duplicate", "stale")
                if incident_id is not None and incident_id not in ids:
                    ids.append(incident_id)
        work.flush()
        after_commit(conn, functools.partial(self._count_signals, outcomes))
        stored = repo.alerts_of_many(conn, [i for i, change in changes.items() if not change.opened])
        written: dict[int, int] = {}
        # One INSERT for the notices of every incident the batches changed.
        with self.notifier.batched(conn) as notices:
            for incident_id, change in changes.items():
                alerts = work.alerts_of_opened(incident_id) if change.opened else stored.get(incident_id, [])
                written[incident_id] = self.settle(conn, incident_id, change, now, alerts)
        for incident_id, skipped in notices.skipped.items():
            written[incident_id] -= skipped
        for result, ids in zip(results, touched, strict=True):
            result.refs = [changes[i].incident["ref"] for i in ids]
            result.notices = sum(written[i] for i in ids)
        return results

    def _count_signals(self, outcomes: Counter[tuple[str, str]]) -> None:
        for (source, outcome), count in outcomes.items():
            self.metrics.signals.labels(source, outcome).inc(count)

    def preview(self, batch: Batch) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The incidents and notices this batch would produce; nothing is stored, sent or counted."""
        if batch.test:
            return []
        # Every notice rendered, held ones too: a preview is for reading them.
        quiet = Engine(
            self.settings,
            self.store,
            self.renderer,
            self.clock,
            cast(Metrics, DiscardMetrics()),
            render_quiet=True,
        )
        with self.store.rolled_back() as conn:
            result = quiet.ingest_in(conn, batch, self.clock.now())
            out = []
            for ref in result.refs:
                incident = repo.get_incident_by_ref(conn, ref)
                assert incident is not None
                out.append((incident, outbox.notices_of(conn, [incident["id"]])))
        return out

    def _apply(
        self, conn: Connection, signal: Signal, now: datetime, changes: dict[int, Change], work: Pending
    ) -> tuple[str, int | None]:
        """What the signal did (for the metric), and the incident it changed if any."""
        if signal.identity == "open":
            # PagerDuty and Events API alerts are one alert while open, however often re-sent.
            existing = repo.find_firing(conn, signal.source, signal.fingerprint)
            if existing is not None and signal.status == "firing":
                outcome = self._refresh_level(conn, existing, signal, now, changes)
                return outcome, existing["incident_id"] if outcome == "updated" else None
            if existing is None and signal.status == "firing":
                signal = self._next_instance(conn, signal, now)
        else:
            existing = work.stored_alert(signal)
        if existing is not None:
            if existing["status"] == signal.status:
                return "duplicate", None
            if existing["status"] == "resolved":
                # A firing copy of an instance already resolved: a late or replayed notification.
                return "stale", None
            work.resolve_alert(existing, signal.ends_at or now, now)
            change = self._change_for(conn, existing["incident_id"], changes, work=work)
            change.resolved += 1
            work.timeline(
                existing["incident_id"],
                now,
                "alert_resolved",
                f"{_alert_label(existing['name'], existing['labels'])} resolved",
                alert=existing,
            )
            return "resolved", existing["incident_id"]
        if signal.status == "resolved":
            return "orphan", None

        service_ids, unknown = self.services_of(signal.labels)
        if unknown:
            after_commit(conn, self.metrics.unknown_services.inc)
        services = [s for s in map(self.settings.catalog.service, service_ids) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)

        related = work.related(signal, lambda s: self._group_keys(conn, s))
        if related is not None and related.incident["status"] not in repo.OPEN:
            self._reopen(conn, related.incident, now, changes, work)
        if related is None:
            incident = self._open(conn, signal, service_ids, unknown, level, now, work)
            changes[incident["id"]] = Change(incident, opened=True)
            related = work.opened(incident)
        incident = related.incident
        related.fingerprints.add(signal.fingerprint)
        related.group_keys.add(signal.group_key)
        change = self._change_for(conn, incident["id"], changes, incident)
        alert = work.add_alert(
            signal,
            {
                "incident_id": incident["id"],
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
            work.timeline(
                incident["id"],
                now,
                "alert_fired",
                f"{_alert_label(signal.name, signal.labels)} firing",
                alert=alert,
            )
        return "new", incident["id"]

    def _next_instance(self, conn: Connection, signal: Signal, now: datetime) -> Signal:
        """A trigger after the alert's last instance was resolved is a new instance, which opens
        or reopens an incident. Senders repeat their timestamp (an Events API payload.timestamp,
        a PagerDuty occurred_at), so one no later than the last instance's start starts now."""
        last = repo.latest_alert(conn, signal.source, signal.fingerprint)
        if last is None or signal.starts_at > last["starts_at"]:
            return signal
        return replace(signal, starts_at=max(now, last["starts_at"] + timedelta(microseconds=1)))

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
        alert: dict[str, Any],
        signal: Signal,
        now: datetime,
        changes: dict[int, Change],
    ) -> str:
        """A repeat of an open alert: a duplicate, unless it now asks for a higher level."""
        services = [s for s in map(self.settings.catalog.service, alert["services"]) if s is not None]
        level = classify(signal.labels, services, self.settings.severity)
        if level <= alert["level"]:
            return "duplicate"
        repo.update_alert(conn, alert["id"], {"level": level, "labels": signal.labels, "updated_at": now})
        self._change_for(conn, alert["incident_id"], changes)
        return "updated"

    def _change_for(
        self,
        conn: Connection,
        incident_id: int,
        changes: dict[int, Change],
        incident: dict[str, Any] | None = None,
        *,
        work: Pending | None = None,
    ) -> Change:
        if incident_id not in changes:
            if incident is None:
                incident = work.incident(incident_id) if work else repo.get_incident(conn, incident_id)
            assert incident is not None
            changes[incident_id] = Change(incident)
        return changes[incident_id]

    def _open(
        self,
        conn: Connection,
        signal: Signal,
        service_ids: list[str],
        unknown: list[str],
        level: int,
        now: datetime,
        work: Pending,
    ) -> dict[str, Any]:
        ref = repo.next_ref(conn, now.year)
        # What `settle` would compute from this one alert, so an incident of one alert (or of
        # alerts that agree) needs no update after its insert.
        values = {
            "ref": ref,
            "title": signal.summary[:500],
            "status": "investigating",
            "level": level,
            "level_locked": False,
            "reopen_count": 0,
            "incident_type": self._incident_type(signal.labels, service_ids),
            "services": list(service_ids),
            "unknown_services": list(unknown),
            "tenants": [t.id for t in self.settings.catalog.tenants_for(service_ids)],
            "source": signal.source,
            "opened_at": now,
            "resolved_at": None,
            "updated_at": now,
        }
        incident_id = repo.insert_incident(conn, values)
        work.timeline(incident_id, now, "opened", f"Incident opened: {signal.summary}")
        after_commit(conn, functools.partial(self._opened, ref, level, signal.source))
        return {**values, "id": incident_id}

    def _opened(self, ref: str, level: int, source: str) -> None:
        self.metrics.incidents_opened.labels(str(level)).inc()
        log.info("incident opened ref=%s level=%d source=%s", ref, level, source)

    def _resolved(self, ref: str) -> None:
        self.metrics.incidents_resolved.inc()
        log.info("incident resolved ref=%s", ref)

    def _reopen(
        self,
        conn: Connection,
        incident: dict[str, Any],
        now: datetime,
        changes: dict[int, Change],
        work: Pending,
    ) -> None:
        values = {
            "status": "investigating",
            "resolved_at": None,
            "reopen_count": incident["reopen_count"] + 1,
            "updated_at": now,
        }
        repo.update_incident(conn, incident["id"], values)
        incident.update(values)
        work.timeline(incident["id"], now, "reopened", "Incident reopened: the alert fired again")
        changes[incident["id"]] = Change(incident, reopened=True)
        after_commit(conn, functools.partial(log.info, "incident reopened ref=%s", incident["ref"]))

    def _incident_type(self, labels: dict[str, str], service_ids: list[str]) -> str:
        if labels.get("incident_type"):
            return labels["incident_type"]
        for service_id in service_ids:
            service = self.settings.catalog.service(service_id)
            if service is not None:
                return service.incident_type
        return "general"

    def settle(
        self,
        conn: Connection,
        incident_id: int,
        change: Change,
        now: datetime,
        alerts: list[dict[str, Any]] | None = None,
    ) -> int:
        """Recompute the incident from its alerts, record what changed, plan the notices.

        `alerts`, when the caller knows them all, saves reading them.
        """
        incident = change.incident
        if alerts is None:
            alerts = repo.alerts_of(conn, incident_id)
        firing = [a for a in alerts if a["status"] == "firing"]
        known = {s.id for s in self.settings.catalog.services}
        services: list[str] = []
        unknown: list[str] = []
        for alert in alerts:
            for name in alert["services"]:
                bucket = services if name in known else unknown
                if name not in bucket:
                    bucket.append(name)
        tenants = [t.id for t in self.settings.catalog.tenants_for(services)]
        level_before = incident["level"]
        level = level_before
        if not incident["level_locked"] and firing:
            computed = max(a["level"] for a in firing)
            # An open incident's level never drops by itself.
            level = computed if change.opened else max(level_before, computed)
        incident_type = incident["incident_type"]
        if incident_type == "general" and services:
            incident_type = self._incident_type({}, services)
        values: dict[str, Any] = {
            "services": services,
            "unknown_services": unknown,
            "tenants": tenants,
            "level": level,
            "incident_type": incident_type,
            "updated_at": now,
        }
        resolved_now = not firing and incident["status"] != "resolved"
        if resolved_now:
            # An action asked of customers during the incident no longer applies.
            values.update(status="resolved", resolved_at=now, action_required=None)
        changed = {k: v for k, v in values.items() if k not in incident or incident[k] != v}
        if changed:
            repo.update_incident(conn, incident_id, changed)
            incident.update(changed)

        generation = incident["reopen_count"]
        written = 0
        notifier = self.notifier
        if change.opened:
            written += notifier.notify(conn, incident, "acknowledgement", "open", now, alerts=alerts)
        elif change.reopened:
            written += notifier.notify(conn, incident, "update", f"reopen-{generation}", now, alerts=alerts)
        elif level > level_before:
            repo.add_timeline(
                conn, incident_id, now, "level_changed", f"Level raised from {level_before} to {level}"
            )
            # Updates skip readers whose first notice is held; released now, it carries the new level.
            written += notifier.notify(
                conn, incident, "update", f"level-{level}-g{generation}", now, alerts=alerts
            )
            written += notifier.rehold(conn, incident, now)
        if level == 5 and (change.opened or level_before < 5):
            written += notifier.notify(
                conn, incident, "executive", f"executive-g{generation}", now, alerts=alerts
            )
        if resolved_now:
            repo.add_timeline(conn, incident_id, now, "resolved", "All alerts resolved")
            after_commit(conn, functools.partial(self._resolved, incident["ref"]))
            written += notifier.notify(
                conn, incident, "resolution", f"resolve-g{generation}", now, alerts=alerts
            )
        return written
