"""The outbox worker: claim due notices under a lease, deliver, mark; backoff and dead letters."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from adapter.background import BackgroundLoop
from adapter.clock import Clock
from adapter.config import DeliverySettings
from adapter.metrics import Metrics
from adapter.providers import DeliveryError, Message, Provider
from adapter.store import Store, outbox
from adapter.store import incidents as repo

log = logging.getLogger(__name__)


def backoff(attempts: int, settings: DeliverySettings, rng: random.Random) -> timedelta:
    """Exponential from backoff_initial, capped at backoff_max, with ±50% jitter."""
    base = settings.backoff_initial.total_seconds() * (2 ** max(0, attempts - 1))
    capped = min(base, settings.backoff_max.total_seconds())
    return timedelta(seconds=capped * rng.uniform(0.5, 1.5))


class Dispatcher(BackgroundLoop):
    name = "dualtrack-dispatcher"

    def __init__(
        self,
        store: Store,
        providers: dict[str, Provider],
        settings: DeliverySettings,
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
    ):
        self.store = store
        self.providers = providers
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.rng = random.Random()
        super().__init__()

    # -- one pass, used by the loop and directly by tests ----------------------------------

    def run_once(self) -> int:
        """Claim and deliver one batch, then record every outcome in one transaction.

        Returns how many notices were attempted.
        """
        now = self.clock.now()
        claimed = outbox.claim_due(self.store, self.owner, now, self.settings.lease, self.settings.batch)
        if not claimed:
            return 0
        messages = self._messages(claimed)
        # Stop starting sends well before the lease runs out, so nobody else takes them meanwhile.
        budget = time.monotonic() + self.settings.lease.total_seconds() / 2
        blocked: set[tuple[int, str, str | None]] = set()
        outcomes: list[outbox.Outcome] = []
        unstarted: list[int] = []
        for notice in claimed:
            stream = outbox.stream_of(notice)
            # Draining, out of time, or an earlier notice of the stream waits for a retry.
            if self.stopping or stream in blocked or time.monotonic() > budget:
                unstarted.append(notice["id"])
                continue
            outcome = self._deliver(notice, messages[notice["id"]])
            outcomes.append(outcome)
            if outcome.state == "failed":
                blocked.add(stream)
        outbox.finish(self.store, self.owner, outcomes, unstarted)
        return len(outcomes)

    def _messages(self, notices: list[dict[str, Any]]) -> dict[int, Message]:
        with self.store.read() as conn:
            incidents = {i["id"]: i for i in repo.incidents_by_id(conn, {n["incident_id"] for n in notices})}
            refs = {
                n["id"]: outbox.first_ref(conn, n["incident_id"], n["provider"], n["tenant"]) for n in notices
            }
        messages = {}
        for notice in notices:
            incident = incidents[notice["incident_id"]]
            # The notice carries the facts as they were when it was written; fall back to now.
            facts: dict[str, Any] = {
                "level": incident["level"],
                "status": incident["status"],
                "services": incident["services"],
                "tenants": incident["tenants"],
                **(notice["data"] or {}),
            }
            messages[notice["id"]] = Message(
                notice_id=notice["id"],
                incident_ref=incident["ref"],
                phase=notice["phase"],
                audience=notice["audience"],
                subject=notice["subject"],
                body=notice["body"],
                level=int(facts["level"]),
                status=str(facts["status"]),
                services=list(facts["services"]),
                tenants=list(facts["tenants"]),
                tenant=notice["tenant"],
                provider_ref=refs[notice["id"]],
                data=facts,
            )
        return messages

    def _deliver(self, notice: dict[str, Any], message: Message) -> outbox.Outcome:
        """Send one notice; the outcome says how to record it."""
        name = notice["provider"]
        provider = self.providers.get(name)
        if provider is None:
            return self._failed(notice, f"provider {name!r} is not configured", True, None)
        started = time.monotonic()
        try:
            ref = provider.send(message)
        except DeliveryError as exc:
            return self._failed(notice, str(exc), exc.permanent, exc.retry_after)
        except Exception as exc:  # a provider bug must not kill the dispatcher; retry later
            return self._failed(notice, f"{type(exc).__name__}: {exc}", False, None)
        finally:
            self.metrics.delivery_seconds.labels(name).observe(time.monotonic() - started)
        self.metrics.deliveries.labels(name, "delivered").inc()
        self._measure_deadline(notice, message)
        log.info(
            "delivery notice=%s provider=%s phase=%s audience=%s outcome=delivered attempt=%d",
            notice["id"],
            name,
            notice["phase"],
            notice["audience"],
            notice["attempts"] + 1,
        )
        return outbox.Outcome(notice["id"], "delivered", at=self.clock.now(), ref=ref)

    def _measure_deadline(self, notice: dict[str, Any], message: Message) -> None:
        now = self.clock.now()
        data = message.data
        if notice["phase"] == "acknowledgement" and data.get("opened_at"):
            opened = datetime.fromisoformat(data["opened_at"])
            self.metrics.first_notice_seconds.labels(notice["audience"], str(message.level)).observe(
                max(0.0, (now - opened).total_seconds())
            )
        if data.get("deadline") and now > datetime.fromisoformat(data["deadline"]):
            self.metrics.deadline_missed.labels(notice["audience"], notice["phase"]).inc()

    def _failed(
        self, notice: dict[str, Any], error: str, permanent: bool, retry_after: float | None
    ) -> outbox.Outcome:
        """A retry at a backed-off time, or a dead letter when permanent or past max_age."""
        now = self.clock.now()
        attempts = notice["attempts"] + 1
        delay = backoff(attempts, self.settings, self.rng)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        expired = now + delay > notice["created_at"] + self.settings.max_age
        if permanent or expired:
            reason = error if permanent else f"{error} (gave up after {attempts} attempts: max_age)"
            outcome = outbox.Outcome(notice["id"], "dead", at=now, error=reason)
        else:
            outcome = outbox.Outcome(notice["id"], "failed", at=now + delay, error=error)
        label = "retry" if outcome.state == "failed" else "dead"
        self.metrics.deliveries.labels(notice["provider"], label).inc()
        log.warning(
            "delivery notice=%s provider=%s outcome=%s attempt=%d retry_in=%.1fs error=%s",
            notice["id"],
            notice["provider"],
            label,
            attempts,
            delay.total_seconds() if label == "retry" else 0,
            error,
        )
        return outcome

    # -- background loop ---------------------------------------------------------------------

    def idle(self) -> None:
        self._wake.wait(self.settings.poll_interval.total_seconds())
        self._wake.clear()
        # Let a burst of webhooks commit, then claim their notices in one batch.
        self._stop.wait(self.settings.coalesce.total_seconds())

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the delivery in flight, give back unstarted leases, and return."""
        super().stop(timeout)
        for provider in self.providers.values():
            provider.close()
