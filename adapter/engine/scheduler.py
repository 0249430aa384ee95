"""Timed work under one lease: held notices, progress updates, auto-publishing, reminders, SLA follow-ups."""

from __future__ import annotations

import logging
import os
import socket
from calendar import monthrange
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from adapter.background import BackgroundLoop
from adapter.catalog import Tenant
from adapter.clock import Clock
from adapter.config import Settings
from adapter.durations import format_duration
from adapter.engine.effects import Effects, writing
from adapter.engine.notify import UPDATE_GRACE, Notifier
from adapter.engine.planning import next_update_at, recipients
from adapter.engine.reconcile import Reconciler, Unreachable
from adapter.metrics import Metrics
from adapter.store import Store, audit, leases, outbox, retention
from adapter.store import incidents as repo
from adapter.store.records import Incident

log = logging.getLogger(__name__)
LEASE = "scheduler"
PRUNE_BATCH = 100  # incidents a pass
AUDIENCES = ("technical", "business")


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def downtime(incidents: list[Incident], start: datetime, end: datetime, now: datetime) -> timedelta:
    """The union of the incidents' open intervals, clipped to [start, end)."""
    spans = sorted(
        (max(i.opened_at, start), min(i.resolved_at or now, end))
        for i in incidents
        if (i.resolved_at or now) > start and i.opened_at < end
    )
    total = timedelta(0)
    current_start, current_end = None, None
    for span_start, span_end in spans:
        if current_end is None or span_start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = span_start, span_end
        else:
            current_end = max(current_end, span_end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total


class SlaMonth:
    """A resolved incident's month, for each tenant's service level figures in its follow-up."""

    def __init__(self, settings: Settings, conn: Connection, incident: Incident):
        assert incident.resolved_at is not None  # read as resolved
        self.settings, self.incident = settings, incident
        self.start, self.end = month_bounds(incident.resolved_at)
        self.incidents = repo.overlapping(conn, self.start, self.end)

    def figures(self, tenant: Tenant, now: datetime) -> dict[str, Any] | None:
        """The tenant's availability this month against its target; None without a target."""
        target = tenant.sla.get("availability")
        if target is None:
            return None
        min_level = self.settings.policy.sla_followup.min_level
        counted = [i for i in self.incidents if tenant.id in i.tenants and i.level >= min_level]
        down = downtime(counted, self.start, self.end, now)
        availability = 100.0 * (1 - down / (self.end - self.start))
        resolved_at = self.incident.resolved_at
        assert resolved_at is not None
        return {
            "target": target,
            "availability": round(availability, 3),
            "impact": resolved_at - self.incident.opened_at,
            "month_downtime": down,
            "below_target": availability < target,
            "month": self.start.strftime("%B %Y"),
        }


class Scheduler(BackgroundLoop):
    name = "dualtrack-scheduler"
    paced = True

    def __init__(
        self,
        settings: Settings,
        store: Store,
        notifier: Notifier,
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
        on_commit: Any = None,
        reconciler: Reconciler | None = None,
    ):
        super().__init__()
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.on_commit = on_commit
        self.reconciler = reconciler

    def idle(self) -> None:
        self._stop.wait(self.settings.policy.scheduler_interval.total_seconds())

    def run_once(self) -> int:
        """One pass if this process holds the lease; returns notices written (0 otherwise)."""
        now = self.clock.now()
        ttl = max(timedelta(seconds=30), 3 * self.settings.policy.scheduler_interval)
        with writing(self.store) as (conn, effects):
            if not leases.acquire(conn, LEASE, self.owner, now, ttl):
                return 0
            self._forget_inbound_events(conn, effects, now)  # while holding the write lock anyway
            self._prune(conn, effects, now)
        written = 0
        # Read without the write lock which open incidents have something due; only those take
        # it, and check again under it. A storm's thousand open incidents cost two queries.
        with self.store.read() as conn:
            open_levels = repo.open_levels(conn)
            heard = outbox.last_heard_open(conn)
            releasing = outbox.held_due(conn, now)
        for incident_id, level in open_levels:
            if incident_id in releasing or self._update_due(incident_id, level, heard, now):
                with writing(self.store) as (conn, effects):
                    written += self._open_incident(conn, effects, incident_id, now)
        written += self._auto_publish(now)
        written += self._after_resolution(now)
        if self.reconciler is not None and self.reconciler.due(now):
            try:
                self.reconciler.run(now)
            except Unreachable as exc:
                log.warning("reconcile skipped: %s", exc)
        if written and self.on_commit:
            self.on_commit()
        return written

    def _forget_inbound_events(self, conn: Connection, effects: Effects, now: datetime) -> None:
        """Event ids past PagerDuty's retry horizon are never sent again: keep the table small."""
        forgotten = repo.forget_inbound_events(conn, now - self.settings.pagerduty.dedupe_window)
        if forgotten:
            effects.add(log.info, "forgot %d inbound event ids", forgotten)

    def _prune(self, conn: Connection, effects: Effects, now: datetime) -> None:
        """Incidents resolved before storage.retention pruned (see `retention.prune`), a few each
        pass so that the write lock is held briefly: years of history are worked through in hours."""
        keep = self.settings.storage.retention
        if keep:
            pruned = retention.prune(conn, now - keep, now, PRUNE_BATCH)
            if pruned:
                effects.add(log.info, "pruned %d incidents resolved before storage.retention", pruned)

    def _update_due(
        self, incident_id: int, level: int, heard: dict[tuple[int, str], datetime], now: datetime
    ) -> bool:
        policy = self.settings.policy
        return any(
            next_update_at(policy, level, audience, heard.get((incident_id, audience))) <= now
            for audience in AUDIENCES
        )

    def _open_incident(self, conn: Connection, effects: Effects, incident_id: int, now: datetime) -> int:
        incident = repo.get_incident(conn, incident_id)
        if incident is None or incident.status == "resolved":
            return 0
        written = self.notifier.release(conn, effects, incident, now)
        for audience in AUDIENCES:
            last = outbox.last_heard(conn, incident_id, audience)
            due = next_update_at(self.settings.policy, incident.level, audience, last)
            if last is None or now < due:
                continue
            written += self.notifier.notify(
                conn,
                effects,
                incident,
                "update",
                f"cadence-{audience}-{int(last.timestamp())}",
                now,
                audiences=(audience,),
                deadline=due + UPDATE_GRACE,
            )
        return written

    def _auto_publish(self, now: datetime) -> int:
        """Notices awaiting approval for policy.approval.auto_publish_after go out unapproved rather
        than miss their deadline, each recorded in the audit trail."""
        after = self.settings.policy.approval.auto_publish_after
        if not after:
            return 0
        with self.store.read() as conn:
            due = outbox.awaiting_approval(conn, after, written_by=now - after)
        published = 0
        for waiting in due:
            notice = waiting.notice
            with writing(self.store) as (conn, effects):
                incident = repo.get_incident(conn, notice.incident_id)
                assert incident is not None  # incidents are never deleted
                if not self.notifier.publish(conn, effects, notice, incident, now, {}):
                    continue  # an approver was first
                changes = {**audit.notice_changes(notice), "waited": format_duration(now - notice.created_at)}
                # No person decided: dualtrack itself, with the role that may do anything.
                audit.append(
                    conn,
                    now,
                    "dualtrack",
                    "admin",
                    "auto_publish",
                    incident_id=incident.id,
                    ref=incident.ref,
                    changes=changes,
                )
                effects.add(log.info, "auto-published notice=%s ref=%s", notice.id, incident.ref)
            published += 1
        return published

    def _after_resolution(self, now: datetime) -> int:
        policy = self.settings.policy
        written = 0
        horizon = now - timedelta(days=31)
        followup = policy.sla_followup
        with self.store.read() as conn:
            # Only what still owes a reminder or follow-ups: a month of history costs one query.
            recent = repo.owing_after_resolution(
                conn,
                horizon,
                postmortem_before=now - policy.postmortem_due,
                postmortem_min_level=policy.postmortem_min_level,
                followup_before=now - followup.delay if followup.enabled else None,
                followup_min_level=followup.min_level,
            )
        for incident in recent:
            resolved_at = incident.resolved_at
            assert resolved_at is not None  # they were read as resolved
            owes_postmortem = incident.postmortem_at is None and incident.level >= policy.postmortem_min_level
            if owes_postmortem and resolved_at <= now - policy.postmortem_due:
                with writing(self.store) as (conn, effects):
                    written += self._postmortem_overdue(conn, effects, incident, now)
            if policy.sla_followup.enabled and resolved_at <= now - policy.sla_followup.delay:
                with writing(self.store) as (conn, effects):
                    written += self._sla_followup(conn, effects, incident, now)
        return written

    def _postmortem_overdue(
        self, conn: Connection, effects: Effects, incident: Incident, now: datetime
    ) -> int:
        if repo.has_timeline(conn, incident.id, "postmortem_overdue"):
            return 0
        repo.add_timeline(conn, incident.id, now, "postmortem_overdue", "Post-mortem is overdue")
        effects.add(self._reminded, incident.ref)
        return self.notifier.notify(
            conn,
            effects,
            incident,
            "postmortem_reminder",
            f"postmortem-reminder-g{incident.reopen_count}",
            now,
        )

    def _reminded(self, ref: str) -> None:
        self.metrics.postmortem_overdue.inc()
        log.info("post-mortem overdue ref=%s", ref)

    def _sla_followup(self, conn: Connection, effects: Effects, incident: Incident, now: datetime) -> int:
        settings = self.settings
        if incident.level < settings.policy.sla_followup.min_level:
            return 0
        if repo.has_timeline(conn, incident.id, "sla_followup"):
            return 0
        repo.add_timeline(conn, incident.id, now, "sla_followup", "SLA follow-ups planned")
        streams = recipients(settings, incident, "sla_followup")
        month = SlaMonth(settings, conn, incident)
        written = 0
        for tenant_id in incident.tenants:
            tenant = settings.catalog.tenant(tenant_id)
            mine = [s for s in streams if s.tenant is not None and s.tenant.id == tenant_id]
            sla = month.figures(tenant, now) if tenant is not None else None
            if sla is None or not mine:
                continue
            written += self.notifier.notify(
                conn, effects, incident, "sla_followup", "sla", now, streams=mine, extra={"sla": sla}
            )
        return written

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        with self.store.transaction() as conn:
            leases.release(conn, LEASE, self.owner)
