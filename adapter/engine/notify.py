"""Writing an event's notices: holds for flap damping, suppression, release, and deadlines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from adapter.config import Settings
from adapter.engine.effects import Effects
from adapter.engine.planning import (
    INTERNAL_PHASES,
    EventFacts,
    LazyRows,
    PlannedNotice,
    Recipient,
    first_notice_deadline,
    hold_for,
    next_notices,
    plan_notices,
    reaches_tenants,
    recipients,
)
from adapter.metrics import Metrics
from adapter.providers import REGISTRY
from adapter.rendering import Renderer
from adapter.store import expansions, outbox
from adapter.store import incidents as repo
from adapter.store.records import Alert, Incident, Notice, TimelineEntry

log = logging.getLogger(__name__)
# The event that opens an incident: the first notices its streams ever get.
FIRST_EVENT = ("acknowledgement", "open")
# Grace after a cadence update falls due before it counts as late: the scheduler's own delay.
UPDATE_GRACE = timedelta(minutes=5)


# Timeline entries an update does not list as changes: its text and its ETA line say them.
SAID_ELSEWHERE = ("human_update", "eta_changed")
# A new notice in these states is rendered at once: it goes out as written, or an approver reads it.
RENDERED = ("pending", outbox.AWAITING)
AUDIENCES = ("technical", "business")


class Notifier:
    """Plans, renders and writes notices.

    A notice that starts held or suppressed is written unrendered (empty subject and body): a held
    one is rendered when it is released, with what is known then, and a suppressed one never goes
    out. `render_quiet` renders them anyway, for previews. A customer notice of an audience
    policy.approval gates at the incident's level is written awaiting approval, and goes out when
    an approver (or the scheduler, after auto_publish_after) publishes it. `on_outbox` is called
    once a transaction that left notices for the outbox to deliver has committed.
    """

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        metrics: Metrics,
        *,
        render_quiet: bool = False,
        on_outbox: Callable[[], None] | None = None,
        on_expansion: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.renderer = renderer
        self.metrics = metrics
        self.render_quiet = render_quiet
        self.on_outbox = on_outbox
        # None: per-tenant notices are written at once, in the caller's transaction (previews).
        self.on_expansion = on_expansion
        self._on_commit = {
            p.name for p in settings.providers if getattr(REGISTRY.get(p.type), "publishes_on_commit", False)
        }

    def _recipient(self, notice: Notice) -> Recipient | None:
        provider = next((p for p in self.settings.providers if p.name == notice.provider), None)
        if provider is None:
            return None
        tenant = self.settings.catalog.tenant(notice.tenant) if notice.tenant else None
        return Recipient(provider, notice.audience, tenant)

    def facts(
        self,
        conn: Connection,
        incident: Incident,
        phase: str,
        event: str,
        now: datetime,
        *,
        messages: dict[str, str | None] | None = None,
        extra: dict[str, Any] | None = None,
        alerts: list[Alert] | None = None,
    ) -> EventFacts:
        def published_timeline() -> list[TimelineEntry]:
            # Internal notes (PagerDuty annotations, say) are never published.
            return [t for t in repo.timeline_of(conn, incident.id) if t.kind != "note"]

        timeline = LazyRows(published_timeline)
        changes: dict[str, list[TimelineEntry]] = {}
        if phase == "authoring_request":
            extra = {**(extra or {}), "next_updates": self._next_updates(conn, incident)}
        if phase == "update":
            for audience in AUDIENCES:
                since = outbox.last_heard(conn, incident.id, audience)
                changes[audience] = [
                    t for t in timeline if (since is None or t.at > since) and t.kind not in SAID_ELSEWHERE
                ]
        return EventFacts(
            incident=incident,
            alerts=repo.alerts_of(conn, incident.id) if alerts is None else alerts,
            timeline=timeline,
            phase=phase,
            event=event,
            now=now,
            messages=messages or {},
            changes=changes,
            extra=extra or {},
        )

    def notify(
        self,
        conn: Connection,
        effects: Effects,
        incident: Incident,
        phase: str,
        event: str,
        now: datetime,
        *,
        audiences: tuple[str, ...] | None = None,
        messages: dict[str, str | None] | None = None,
        extra: dict[str, Any] | None = None,
        deadline: datetime | None = None,
        streams: list[Recipient] | None = None,
        alerts: list[Alert] | None = None,
    ) -> int:
        """Plan, render and write one event's notices; returns how many were new.

        Per-tenant providers' notices are left to `engine/expand.py`, which writes them after this
        transaction commits, unless `streams` names them: a webhook's answer does not wait for ten
        thousand tenants. `alerts`, when the caller has just read them, saves reading them again.
        """
        if incident.status == "triage" and phase not in INTERNAL_PHASES:
            return 0  # nobody outside hears of it until a human assigns services or publishes it
        if streams is None and self.on_expansion is not None:
            streams = recipients(self.settings, incident, phase, audiences, only=())  # shared ones
            if reaches_tenants(self.settings, incident, phase):
                options = {
                    "audiences": audiences,
                    "messages": messages,
                    "extra": extra,
                    "deadline": deadline.isoformat() if deadline else None,
                }
                expansions.add(conn, incident.id, phase, event, options, now)
                effects.add(self.on_expansion)
        elif streams is None:
            streams = recipients(self.settings, incident, phase, audiences)
        # Only these streams' notices are read: not ten thousand other tenants'.
        tenants = {s.key[2] for s in streams}
        suppressed: set[tuple[str, str, str | None]] = set()
        unheard: list[Recipient] = []
        unfinished: set[outbox.Channel] | None = None  # read below when its streams are
        if phase in ("resolution", "postmortem"):
            # Readers who never heard of it (held, then suppressed) need no ending either.
            states = outbox.streams(conn, incident.id, tenants)
            if phase == "resolution":
                suppressed = outbox.suppress_held(conn, incident.id, states.held)
            unfinished = states.unfinished(held_suppressed=phase == "resolution")
            suppressed |= {s.key for s in streams if s.key not in states.heard}
        elif phase == "update":
            # A held first notice is rendered afresh when released; a reader who never heard of
            # the incident (its first notice was suppressed) gets a first notice, not an update.
            states = outbox.streams(conn, incident.id, tenants)
            unfinished = states.unfinished(held_suppressed=False)
            unheard = [s for s in streams if s.key not in states.heard and s.key not in states.held]
            streams = [s for s in streams if s.key in states.heard]
        written = self._write(
            conn,
            effects,
            incident,
            phase,
            event,
            now,
            streams,
            suppressed,
            deadline,
            messages,
            extra,
            alerts,
            unfinished=unfinished,
        )
        if phase == "update" and unheard:
            written += self.notify(
                conn,
                effects,
                incident,
                "acknowledgement",
                f"{event}-first",
                now,
                streams=unheard,
                alerts=alerts,
            )
        return written

    def _write(
        self,
        conn: Connection,
        effects: Effects,
        incident: Incident,
        phase: str,
        event: str,
        now: datetime,
        streams: list[Recipient],
        suppressed: set[tuple[str, str, str | None]],
        deadline: datetime | None,
        messages: dict[str, str | None] | None,
        extra: dict[str, Any] | None,
        alerts: list[Alert] | None,
        *,
        unfinished: set[outbox.Channel] | None = None,
    ) -> int:
        if not streams:
            return 0
        facts = self.facts(conn, incident, phase, event, now, messages=messages, extra=extra, alerts=alerts)
        # Each stream's first state is decided before rendering: only some need text now.
        states = {s.key: self._first_state(s, phase, incident, suppressed) for s in streams}
        unrendered = {key for key, (state, _) in states.items() if state not in RENDERED}
        quiet = set() if self.render_quiet else unrendered
        planned = plan_notices(facts, streams, self.settings, self.renderer, unrendered=quiet)
        rows = []
        for notice in planned:
            self._schedule(notice, incident, now, states[notice.recipient.key], deadline)
            rows.append(self.row(incident.id, notice, now))
        first = (phase, event) == FIRST_EVENT
        self._publish_on_commit(conn, incident.id, rows, now, first=first, unfinished=unfinished)
        inserted = outbox.insert_notices(conn, rows)  # ids by dedupe key, less those planned before
        effects.add(self._written, [(row, incident.level, now) for row in rows], inserted)
        return len(inserted)

    def _written(self, planned: list[tuple[dict[str, Any], int, datetime]], inserted: dict[str, int]) -> None:
        """Count and log the notices planned, (row, incident level, when), that were stored:
        `inserted` has their ids by dedupe key."""
        written = [(row, level, now) for row, level, now in planned if row["dedupe_key"] in inserted]
        if self.on_outbox is not None and any(row["state"] == "pending" for row, _, _ in written):
            self.on_outbox()
        for row, level, now in written:
            self.metrics.notices_planned.labels(row["provider"], row["audience"], row["phase"]).inc()
            if row["state"] == "delivered":
                self._published_on_commit(
                    Notice.from_row({**row, "id": inserted[row["dedupe_key"]]}), level, now
                )

    def _published_on_commit(self, notice: Notice, level: int, now: datetime) -> None:
        """Count and log a notice its own transaction delivered (see `_publish_on_commit`)."""
        self.metrics.delivered(notice, level, now)
        log.info(
            "delivery notice=%s provider=%s phase=%s audience=%s outcome=delivered attempt=1",
            notice.id,
            notice.provider,
            notice.phase,
            notice.audience,
        )

    def _publish_on_commit(
        self,
        conn: Connection,
        incident_id: int,
        rows: list[dict[str, Any]],
        now: datetime,
        *,
        first: bool,
        unfinished: set[outbox.Channel] | None,
    ) -> None:
        """Notices to providers that publish by committing are delivered by this transaction,
        unless an earlier notice of their stream is unfinished (held, awaiting approval, pending, or
        failed).

        `unfinished`, when the caller has just read it, saves reading it again.
        """
        if not any(r["state"] == "pending" and r["provider"] in self._on_commit for r in rows):
            return
        # An incident's first event has no earlier notices to wait behind.
        if first:
            waiting: set[outbox.Channel] = set()
        elif unfinished is not None:
            waiting = set(unfinished)
        else:
            tenants = {row["tenant"] for row in rows}
            waiting = outbox.streams(conn, incident_id, tenants).unfinished(held_suppressed=False)
        for row in rows:  # in the order they are inserted, which is the order they go out
            stream = (row["provider"], row["tenant"])
            if row["state"] == "pending" and row["provider"] in self._on_commit and stream not in waiting:
                row.update(state="delivered", attempts=1, delivered_at=now, provider_ref=row["provider"])
            elif row["state"] in outbox.UNFINISHED:
                waiting.add(stream)

    def _schedule(
        self,
        notice: PlannedNotice,
        incident: Incident,
        now: datetime,
        first_state: tuple[str, timedelta],
        deadline: datetime | None,
    ) -> None:
        policy = self.settings.policy
        notice.state, hold = first_state
        notice.due_at = now + hold
        if notice.phase == "acknowledgement" and notice.state != "suppressed":
            deadline = first_notice_deadline(policy, incident, notice.audience)
        if deadline is not None:
            notice.data["deadline"] = deadline.isoformat()
        notice.data["opened_at"] = incident.opened_at.isoformat()

    def _first_state(
        self,
        recipient: Recipient,
        phase: str,
        incident: Incident,
        suppressed: set[tuple[str, str, str | None]],
    ) -> tuple[str, timedelta]:
        """A new notice's state, and how long it is held."""
        if recipient.key in suppressed:
            return "suppressed", timedelta(0)
        if phase == "acknowledgement":
            hold = hold_for(self.settings.policy, incident.level, recipient.audience, recipient.provider.name)
            if hold > timedelta(0):
                return "held", hold
        return self._unheld_state(phase, incident.level, recipient.audience), timedelta(0)

    def _unheld_state(self, phase: str, level: int, audience: str) -> str:
        """A notice free to go: pending, or awaiting approval where policy.approval gates its
        audience at the incident's level (the team's own notices never wait)."""
        gated = phase not in INTERNAL_PHASES and self.settings.policy.approval.gates(audience, level)
        return outbox.AWAITING if gated else "pending"

    @staticmethod
    def row(incident_id: int, notice: PlannedNotice, now: datetime) -> dict[str, Any]:
        return {
            "incident_id": incident_id,
            "provider": notice.provider,
            "audience": notice.audience,
            "phase": notice.phase,
            "tenant": notice.tenant,
            "state": notice.state,
            "attempts": 0,
            "subject": notice.subject,
            "body": notice.body,
            "data": notice.data,
            "created_at": now,
            "due_at": notice.due_at or now,
            "dedupe_key": notice.dedupe_key,
            # Set by _publish_on_commit; every row of one insert has the same columns.
            "delivered_at": None,
            "provider_ref": None,
        }

    def _released(self, ref: str, count: int) -> None:
        if self.on_outbox is not None and count:
            self.on_outbox()
        log.info("released held notices ref=%s count=%d", ref, count)

    def rehold(self, conn: Connection, effects: Effects, incident: Incident, now: datetime) -> int:
        """After a level change: shorten holds to the new level's, and release what is due."""
        for notice in outbox.held(conn, incident.id):
            hold = hold_for(self.settings.policy, incident.level, notice.audience, notice.provider)
            due = min(notice.due_at, notice.created_at + hold)
            if due != notice.due_at:
                outbox.update_notice(conn, notice.id, {"due_at": due})
        return self.release(conn, effects, incident, now)

    def release(
        self,
        conn: Connection,
        effects: Effects,
        incident: Incident,
        now: datetime,
        *,
        all_held: bool = False,
    ) -> int:
        """Held notices whose hold is over go out, rendered with what is known now."""
        due = [n for n in outbox.held(conn, incident.id) if all_held or n.due_at <= now]
        if not due:
            return 0
        released = 0
        for notice in due:
            recipient = self._recipient(notice)
            if recipient is None:
                outbox.update_notice(
                    conn, notice.id, {"state": "dead", "last_error": "provider is no longer configured"}
                )
                continue
            facts = self.facts(conn, incident, notice.phase, "open", now)
            (fresh,) = plan_notices(facts, [recipient], self.settings, self.renderer)
            data = {**notice.data, **fresh.data, "held_until": now.isoformat()}
            data["deadline"] = notice.data.get("deadline")
            outbox.update_notice(
                conn,
                notice.id,
                {
                    "state": self._unheld_state(notice.phase, incident.level, notice.audience),
                    "subject": fresh.subject,
                    "body": fresh.body,
                    "data": data,
                    # From here the notice counts as written: cadence and max_age start now.
                    "created_at": now,
                    "due_at": now,
                },
            )
            released += 1
        effects.add(self._released, incident.ref, released)
        return released

    def publish(
        self,
        conn: Connection,
        effects: Effects,
        notice: Notice,
        incident: Incident,
        now: datetime,
        text: dict[str, str],
    ) -> bool:
        """A notice awaiting approval goes out as a pending one does, with the approver's `text`
        (a subject, a body, or both) where given; False if it no longer awaits approval.

        A provider that publishes by committing (the built-in page) has it delivered by this
        transaction, unless an earlier notice of its stream is unfinished.
        """
        # From here the notice counts as written: cadence and max_age start now.
        values: dict[str, Any] = {"state": "pending", "created_at": now, "due_at": now}
        if text:
            # One text for every reader now: no tenant's zone reads its own (see planning._zoned).
            values.update(text, data={k: v for k, v in notice.data.items() if k != "zoned"})
        if notice.provider in self._on_commit and not outbox.behind_unfinished(conn, notice):
            values.update(state="delivered", attempts=1, delivered_at=now, provider_ref=notice.provider)
        if not outbox.update_awaiting(conn, notice.id, values):
            return False
        if values["state"] == "delivered":
            effects.add(self._published_on_commit, replace(notice, **values), incident.level, now)
        if self.on_outbox is not None:
            # Its own delivery, or the later notices of its stream that waited behind it.
            effects.add(self.on_outbox)
        return True

    def _next_updates(self, conn: Connection, incident: Incident) -> list[dict[str, Any]]:
        """When each audience the incident reaches is next due a notice (see `next_notices`)."""
        due = next_notices(self.settings, incident, lambda a: outbox.last_heard(conn, incident.id, a))
        return [{"audience": audience, "notice": notice, "at": at} for at, audience, notice in due]
