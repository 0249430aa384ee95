"""Ingest in stages, in one transaction: correlate, settle, then plan and write the notices."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast, overload

from sqlalchemy import Connection

from adapter.clock import Clock
from adapter.config import Settings
from adapter.engine.correlate import Change, Correlation
from adapter.engine.effects import Effects, writing
from adapter.engine.notify import Notifier
from adapter.engine.pagerduty import Intake, PagerDutyIntake
from adapter.engine.settle import settle
from adapter.metrics import DiscardMetrics, Metrics
from adapter.rendering import Renderer
from adapter.sources.events import EnqueueEvent
from adapter.sources.pagerduty import PagerDutyEvent
from adapter.sources.signal import Batch
from adapter.store import Store, outbox
from adapter.store import incidents as repo
from adapter.store.records import Incident, Notice

log = logging.getLogger(__name__)
Outcome = TypeVar("Outcome")
Inbound = Batch | PagerDutyEvent | EnqueueEvent


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
        on_expansion: Callable[[], None] | None = None,
        render_quiet: bool = False,
    ):
        self.settings = settings
        self.store = store
        self.renderer = renderer
        self.clock = clock
        self.metrics = metrics
        self.on_commit = on_commit
        # The dispatcher is woken for notices it must deliver, not for those published on commit.
        # Per-tenant notices are written after the transaction by the expander, which
        # `on_expansion` wakes; without it (previews) they are written at once.
        self.notifier = Notifier(
            settings,
            renderer,
            metrics,
            render_quiet=render_quiet,
            on_outbox=on_commit,
            on_expansion=on_expansion,
        )
        self.pagerduty = PagerDutyIntake(self)

    def write(self, work: Callable[[Connection, Effects], Outcome]) -> Outcome:
        """`work` in one write transaction; its effects run once it has committed."""
        with writing(self.store) as (conn, effects):
            outcome = work(conn, effects)
        return outcome

    @overload
    def ingest(self, inbound: Batch, *, webhook_id: str | None = None) -> IngestResult: ...

    @overload
    def ingest(self, inbound: PagerDutyEvent | EnqueueEvent, *, webhook_id: str | None = None) -> Intake: ...

    def ingest(self, inbound: Inbound, *, webhook_id: str | None = None) -> IngestResult | Intake:
        """Every inbound request, whichever source sent it, in one write transaction: an
        Alertmanager or Grafana batch of signals, a PagerDuty V3 webhook event (`webhook_id`: its
        X-Webhook-Id), or an Events API v2 event."""
        if isinstance(inbound, Batch) and inbound.test:
            return IngestResult()
        now = self.clock.now()

        def stages(conn: Connection, effects: Effects) -> IngestResult | Intake:
            if isinstance(inbound, Batch):
                return self.apply(conn, effects, inbound, now)
            if isinstance(inbound, PagerDutyEvent):
                return self.pagerduty.apply_webhook(conn, effects, inbound, webhook_id, now)
            return self.pagerduty.apply_event(conn, effects, inbound, now)

        return self.write(stages)

    def apply(self, conn: Connection, effects: Effects, batch: Batch, now: datetime) -> IngestResult:
        """A batch's signals in order, then each incident they changed settled once and notified."""
        result = IngestResult()
        touched: list[int] = []  # in first-touch order
        outcomes: Counter[str] = Counter()
        correlation = Correlation(self.settings, self.metrics, conn, effects, batch.signals, now)
        for signal in batch.signals:
            outcome, incident_id = correlation.apply(signal)
            outcomes[outcome] += 1
            result.duplicates += outcome in ("duplicate", "stale")
            if incident_id is not None and incident_id not in touched:
                touched.append(incident_id)
        effects.add(self._count_signals, batch.source, outcomes)
        changes = correlation.changes
        for change in changes.values():
            if change.opened:  # every alert of an incident the batch opened went through `stored`
                change.alerts = correlation.stored.alerts_of(change.incident.id)
        for incident_id in touched:
            result.notices += self.settle(conn, effects, changes[incident_id], now)
        result.refs = [changes[i].incident.ref for i in touched]
        return result

    def settle(
        self,
        conn: Connection,
        effects: Effects,
        change: Change,
        now: datetime,
        *,
        messages: dict[str, str | None] | None = None,
    ) -> int:
        """Settle a changed incident, then plan and write the notices of what happened to it;
        `messages`, a person's texts per audience, go in its first notice."""
        settled = settle(conn, effects, self.settings, self.metrics, change, now)
        change.incident = settled.incident
        written = 0
        for event in settled.events:
            if event.note is not None:
                repo.add_timeline(conn, settled.incident.id, now, *event.note)
            written += self.notifier.notify(
                conn,
                effects,
                settled.incident,
                event.phase,
                event.key,
                now,
                alerts=settled.alerts,
                messages=messages if event.phase == "acknowledgement" else None,
            )
            if event.rehold:
                written += self.notifier.rehold(conn, effects, settled.incident, now)
        return written

    def _count_signals(self, source: str, outcomes: Counter[str]) -> None:
        for outcome, count in outcomes.items():
            self.metrics.signals.labels(source, outcome).inc(count)

    def preview(self, batch: Batch) -> list[tuple[Incident, list[Notice]]]:
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
            result = quiet.apply(conn, Effects(), batch, self.clock.now())  # its effects never run
            out = []
            for ref in result.refs:
                incident = repo.get_incident_by_ref(conn, ref)
                assert incident is not None
                out.append((incident, outbox.notices_of(conn, [incident.id])))
        return out
