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
from adapter.store import Store, breakers, buckets, outbox
from adapter.store import incidents as repo

log = logging.getLogger(__name__)
THROTTLE_MAX_WAIT = 5.0


def backoff(attempts: int, settings: DeliverySettings, rng: random.Random) -> timedelta:
    """Exponential from backoff_initial, capped at backoff_max, with ±50% jitter."""
    base = settings.backoff_initial.total_seconds() * (2 ** max(0, attempts - 1))
    capped = min(base, settings.backoff_max.total_seconds())
    return timedelta(seconds=capped * rng.uniform(0.5, 1.5))


class BreakerPass:
    """One dispatcher pass's view of the providers' circuit breakers.

    A healthy provider costs one read per pass; state is written only when something failed.
    """

    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher
        self.settings = dispatcher.settings.breaker
        self.known: dict[str, tuple[int, datetime | None]] = {}
        self.probing: set[str] = set()
        # provider → (a success seen in this pass, retryable failures since the last success)
        self.seen: dict[str, tuple[bool, int]] = {}

    def closed_until(self, provider: str) -> datetime | None:
        """None when a delivery to the provider may start now, else when to try again."""
        store, now = self.dispatcher.store, self.dispatcher.clock.now()
        if provider not in self.known:
            with store.read() as conn:
                self.known[provider] = breakers.state(conn, provider)
        _, open_until = self.known[provider]
        if open_until is None or (provider in self.seen and self.seen[provider][0]):
            return None
        if provider in self.probing:
            return open_until if open_until > now else now + self.settings.probe_every
        with store.transaction() as conn:
            probe = breakers.take_probe(conn, provider, now, self.settings.probe_every)
        if probe:
            self.probing.add(provider)
            log.info("breaker provider=%s probing", provider)
            return None
        return max(open_until, now)

    def saw(self, provider: str, outcome: outbox.Outcome) -> None:
        success, failures = self.seen.get(provider, (False, 0))
        if outcome.state == "failed":
            self.seen[provider] = (success, failures + 1)
        else:  # delivered, or a permanent refusal: the provider answered
            self.seen[provider] = (True, 0)

    def finish(self) -> None:
        for provider, (success, failures) in self.seen.items():
            before, open_until = self.known.get(provider, (0, None))
            if not failures and (not before or not success) and open_until is None:
                continue
            with self.dispatcher.store.transaction() as conn:
                opened = breakers.record(
                    conn,
                    provider,
                    reset=success,
                    failures=failures,
                    now=self.dispatcher.clock.now(),
                    threshold=self.settings.failures,
                    probe_every=self.settings.probe_every,
                )
            if opened:
                log.warning(
                    "breaker provider=%s opened after %d failures; probing every %ss",
                    provider,
                    self.settings.failures,
                    self.settings.probe_every.total_seconds(),
                )
            elif success and open_until is not None:
                log.info("breaker provider=%s closed", provider)


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
        # notices.lease_owner holds 64 characters; a long host name must not overflow it.
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 0xFFFFFF:x}"
        self.rng = random.Random()
        super().__init__()
        for provider in providers.values():
            provider.before_request = self._throttle
            provider.after_request = self._observe_request

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
        coalesced = self._coalesced(claimed, messages)
        # Stop starting sends well before the lease runs out, so nobody else takes them meanwhile.
        budget = time.monotonic() + self.settings.lease.total_seconds() / 2
        blocked: set[tuple[int, str, str | None]] = set()
        outcomes: list[outbox.Outcome] = []
        unstarted: list[int] = []
        delivered: set[int] = set()
        breaker = BreakerPass(self)
        for notice in claimed:
            stream = outbox.stream_of(notice)
            # Draining, out of time, or an earlier notice of the stream waits for a retry.
            if self.stopping or stream in blocked or time.monotonic() > budget:
                unstarted.append(notice["id"])
                continue
            if notice["id"] in coalesced:
                continue  # the stream's newest notice carries its state
            wait_until = breaker.closed_until(notice["provider"])
            if wait_until is not None:
                outcomes.append(outbox.Outcome(notice["id"], "deferred", at=wait_until))
                blocked.add(stream)
                continue
            outcome = self._deliver(notice, messages[notice["id"]])
            outcomes.append(outcome)
            breaker.saw(notice["provider"], outcome)
            if outcome.state == "delivered":
                delivered.add(notice["id"])
            if outcome.state == "failed":
                blocked.add(stream)
        breaker.finish()
        now = self.clock.now()
        for notice_id, newest in coalesced.items():
            if newest in delivered:
                ref = f"coalesced into notice {newest}"
                outcomes.append(outbox.Outcome(notice_id, "delivered", at=now, ref=ref))
            elif notice_id not in unstarted:
                unstarted.append(notice_id)
        outbox.finish(self.store, self.owner, outcomes, unstarted)
        return len(outcomes)

    def _coalesced(self, claimed: list[dict[str, Any]], messages: dict[int, Message]) -> dict[int, int]:
        """Notices a coalescing provider need not send, each mapped to the newer one sent instead.

        The stream's first notice (it creates the incident at the provider) is always sent.
        """
        streams: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for notice in claimed:
            provider = self.providers.get(notice["provider"])
            if provider is not None and provider.coalesce:
                # Each version is its own thread at the provider (its own status-page incident).
                streams.setdefault((*outbox.stream_of(notice), notice["audience"]), []).append(notice)
        skipped: dict[int, int] = {}
        for notices in streams.values():
            if len(notices) < 2:
                continue
            newest = notices[-1]["id"]
            created = messages[notices[0]["id"]].provider_ref is not None
            for notice in notices[(0 if created else 1) : -1]:
                skipped[notice["id"]] = newest
        return skipped

    def _throttle(self, provider: Provider) -> None:
        """Wait for the provider's rate-limit token, shared through the database (up to 5s)."""
        if provider.rate_limit is None:
            return
        rate, burst = provider.rate_limit
        max_wait = 0.0 if self.stopping else THROTTLE_MAX_WAIT
        wait = buckets.acquire(
            self.store, provider.rate_key(), rate, burst, max_wait=max_wait, sleep=self._stop.wait
        )
        if wait:
            raise DeliveryError(f"{provider.name}: own rate limit reached", retry_after=wait)

    def _observe_request(self, provider: str, outcome: str, seconds: float) -> None:
        self.metrics.provider_requests.labels(provider, outcome).inc()
        self.metrics.provider_request_seconds.labels(provider).observe(seconds)

    def _messages(self, notices: list[dict[str, Any]]) -> dict[int, Message]:
        with self.store.read() as conn:
            incidents = {i["id"]: i for i in repo.incidents_by_id(conn, {n["incident_id"] for n in notices})}
            refs = {
                n["id"]: outbox.first_ref(conn, n["incident_id"], n["provider"], n["audience"], n["tenant"])
                for n in notices
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
        self.metrics.delivered({**notice, "data": message.data}, message.level, self.clock.now())
        log.info(
            "delivery notice=%s provider=%s phase=%s audience=%s outcome=delivered attempt=%d",
            notice["id"],
            name,
            notice["phase"],
            notice["audience"],
            notice["attempts"] + 1,
        )
        return outbox.Outcome(notice["id"], "delivered", at=self.clock.now(), ref=ref)

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
