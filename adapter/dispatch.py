"""The outbox worker: claim due notices under a lease, deliver, mark; backoff and dead letters."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from adapter.background import BackgroundLoop
from adapter.clock import Clock
from adapter.config import DeliverySettings, ProviderSettings
from adapter.feedback import LinkMaker
from adapter.metrics import Metrics
from adapter.providers import DeliveryError, Message, Provider, RequestHooks, build_providers
from adapter.rendering import render_html
from adapter.store import Store, breakers, buckets, outbox
from adapter.store import incidents as repo
from adapter.store.outcomes import Recorder
from adapter.store.records import Notice

log = logging.getLogger(__name__)
THROTTLE_MAX_WAIT = 5.0


def backoff(attempts: int, settings: DeliverySettings, rng: random.Random) -> timedelta:
    """Exponential from backoff_initial, capped at backoff_max, with ±50% jitter."""
    base = settings.backoff_initial.total_seconds() * (2 ** max(0, attempts - 1))
    capped = min(base, settings.backoff_max.total_seconds())
    return timedelta(seconds=capped * rng.uniform(0.5, 1.5))


class BreakerPass:
    """One dispatcher pass's view of the providers' circuit breakers, shared by its sending threads.

    A healthy provider costs one read per pass; state is written only when something failed.
    """

    def __init__(self, dispatcher: Dispatcher):
        self.dispatcher = dispatcher
        self.settings = dispatcher.settings.breaker
        self.known: dict[str, tuple[int, datetime | None]] = {}
        self.probing: set[str] = set()
        # provider → (a success seen in this pass, retryable failures since the last success)
        self.seen: dict[str, tuple[bool, int]] = {}
        self._changed = threading.Condition()

    def closed_until(self, provider: str) -> datetime | None:
        """None when a delivery to the provider may start now, else when to try again.

        While another thread's probe is under way, wait for its outcome.
        """
        with self._changed:
            while provider in self.probing and provider not in self.seen:
                self._changed.wait()
            return self._closed_until(provider)

    def _closed_until(self, provider: str) -> datetime | None:
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
        with self._changed:
            success, failures = self.seen.get(provider, (False, 0))
            if outcome.state == "failed":
                self.seen[provider] = (success, failures + 1)
            else:  # delivered, or a permanent refusal: the provider answered
                self.seen[provider] = (True, 0)
            self._changed.notify_all()

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


class DeliveryPass:
    """One claimed batch of a provider's notices, delivered stream by stream from several threads."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        claimed: list[Notice],
        messages: dict[int, Message],
        carried: dict[int, list[int]],
    ):
        self.dispatcher = dispatcher
        self.messages = messages
        self.carried = carried
        skipped = {older for olders in carried.values() for older in olders}
        streams: dict[tuple[int, str, str | None], list[Notice]] = {}
        for notice in claimed:
            if notice.id not in skipped:  # carried by a newer one
                streams.setdefault(outbox.stream_of(notice), []).append(notice)
        self.streams = list(streams.values())
        self.breaker = BreakerPass(dispatcher)
        # Stop starting sends well before the lease runs out, so nobody else takes them meanwhile.
        self.budget = time.monotonic() + dispatcher.settings.lease.total_seconds() / 2
        self.unstarted = {notice.id for notice in claimed}
        self.deferred: list[outbox.Outcome] = []
        self.halted = False  # an outcome could not be recorded
        self._lock = threading.Lock()

    def deliver_stream(self, notices: list[Notice]) -> int:
        """Send one stream's notices in order until one fails; how many got an outcome."""
        dispatcher, done = self.dispatcher, 0
        refs: dict[str, str] = {}  # audience → the provider's id from this stream's first delivery
        for notice in notices:
            if dispatcher.stopping or self.halted or time.monotonic() > self.budget:
                break
            group = [notice.id, *self.carried.get(notice.id, [])]
            with self._lock:
                self.unstarted.difference_update(group)
            wait_until = self.breaker.closed_until(notice.provider)
            if wait_until is not None:
                with self._lock:
                    self.deferred.extend(outbox.Outcome(i, "deferred", at=wait_until) for i in group)
                break
            message = self.messages[notice.id]
            if message.provider_ref is None and notice.audience in refs:
                message = replace(message, provider_ref=refs[notice.audience])
            outcome = dispatcher._deliver(notice, message)
            self.breaker.saw(notice.provider, outcome)
            try:
                done += dispatcher._record(notice, outcome, group[1:])
            except Exception:
                self.halted = True
                raise
            if outcome.state == "failed":
                break  # the rest of the stream waits for its retry
            if outcome.state == "delivered" and message.provider_ref is None and outcome.ref:
                refs.setdefault(notice.audience, outcome.ref)
        return done


class ProviderLoop(BackgroundLoop):
    """One provider's delivery thread: a slow or unreachable provider delays only its own notices.

    `provider=None` is the loop for notices of providers that are no longer configured.
    """

    def __init__(self, dispatcher: Dispatcher, provider: str | None):
        super().__init__(stop=dispatcher._stop)
        self.dispatcher = dispatcher
        self.provider = provider
        self.name = f"dualtrack-dispatch-{provider or '(unconfigured)'}"

    def run_once(self) -> int:
        return self.dispatcher.deliver_due(self.provider)

    def idle(self) -> None:
        settings = self.dispatcher.settings
        self._wake.wait(settings.poll_interval.total_seconds())
        self._wake.clear()
        # Let a burst of webhooks commit, then claim their notices in one batch.
        self._stop.wait(settings.coalesce.total_seconds())


class Dispatcher:
    """The outbox worker of one process: a delivery loop per provider, started by `start()`."""

    def __init__(
        self,
        store: Store,
        providers: list[ProviderSettings],
        settings: DeliverySettings,
        clock: Clock,
        metrics: Metrics,
        owner: str | None = None,
        *,
        links: LinkMaker | None = None,
        links_listed: frozenset[str] = frozenset(),
    ):
        self.store = store
        self.settings = settings
        # Feedback links for customer notices, and the providers that put them in their bodies.
        self.links = links
        self.links_listed = links_listed
        self.clock = clock
        self.metrics = metrics
        # notices.lease_owner holds 64 characters; a long host name must not overflow it.
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 0xFFFFFF:x}"
        self.rng = random.Random()
        self._stop = threading.Event()
        hooks = RequestHooks(before=self._throttle, after=self._observe_request)
        self.providers = build_providers(providers, hooks)
        self.recorder = Recorder(store, self.owner)
        self.loops = [ProviderLoop(self, name) for name in self.providers] + [ProviderLoop(self, None)]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    def wake(self) -> None:
        for loop in self.loops:
            loop.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the deliveries in flight, give back unstarted leases, and return."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for loop in self.loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        for provider in self.providers.values():
            provider.close()

    def run_once(self) -> int:
        """One pass over each provider's due notices in turn, in the calling thread (for tests).

        Returns how many notices got an outcome.
        """
        return sum(self.deliver_due(loop.provider) for loop in self.loops)

    # -- one provider's pass -----------------------------------------------------------------

    def deliver_due(self, provider: str | None) -> int:
        """Claim a batch of the provider's due notices and deliver them, `concurrency` streams at a
        time and each stream's in order, recording each outcome before the stream's next send, so
        a crash repeats at most the deliveries in flight.

        `provider=None` takes the notices of providers that are not configured (they go dead).
        Returns how many notices got an outcome.
        """
        now = self.clock.now()
        lease, batch = self.settings.lease, self.settings.batch
        if provider is None:
            claimed = outbox.claim_due(self.store, self.owner, now, lease, batch, excluding=self.providers)
        else:
            claimed = outbox.claim_due(self.store, self.owner, now, lease, batch, provider=provider)
        if not claimed:
            return 0
        messages = self._messages(claimed)
        run = DeliveryPass(self, claimed, messages, self._carried(claimed, messages))
        target = self.providers.get(provider) if provider is not None else None
        workers = min(target.concurrency if target is not None else 1, len(run.streams))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix=f"dualtrack-send-{provider}") as pool:
                done = sum(pool.map(run.deliver_stream, run.streams))
            run.breaker.finish()
        finally:
            # Notices not sent go back: due again now, or when the breaker lets them.
            self.recorder.record(run.deferred, run.unstarted)
            if target is not None:
                target.release()
        return done + len(run.deferred)

    def _record(self, notice: Notice, outcome: outbox.Outcome, carried: list[int]) -> int:
        """Write one delivery's outcome, and what it means for the older notices it was sent for.

        If that write fails (a full disk, the database gone), the pass stops: each later send
        would go out again too. This notice keeps its lease until it expires, and is the one repeat.
        """
        outcomes = [outcome]
        if outcome.state == "delivered":
            ref = f"coalesced into notice {outcome.notice_id}"
            outcomes += [outbox.Outcome(i, "delivered", at=outcome.at, ref=ref) for i in carried]
        elif outcome.state == "failed":  # retried together
            outcomes += [outbox.Outcome(i, "deferred", at=outcome.at) for i in carried]
        try:
            # After a permanent refusal the older notices go on their own.
            return self.recorder.record(outcomes, carried if outcome.state == "dead" else ())
        except Exception:
            log.error(
                "delivery notice=%s provider=%s outcome=%s could not be recorded; the pass stops "
                "(the notice goes out again once its lease expires)",
                notice.id,
                notice.provider,
                outcome.state,
            )
            raise

    def _carried(self, claimed: list[Notice], messages: dict[int, Message]) -> dict[int, list[int]]:
        """For a coalescing provider: the newest due notice of each stream → the older ones it is
        sent for instead.

        The stream's first notice (it creates the incident at the provider) is always sent.
        """
        streams: dict[tuple[Any, ...], list[Notice]] = {}
        for notice in claimed:
            provider = self.providers.get(notice.provider)
            if provider is not None and provider.coalesce:
                # Each version is its own thread at the provider (its own status-page incident).
                streams.setdefault((*outbox.stream_of(notice), notice.audience), []).append(notice)
        carried: dict[int, list[int]] = {}
        for notices in streams.values():
            created = messages[notices[0].id].provider_ref is not None
            older = [notice.id for notice in notices[(0 if created else 1) : -1]]
            if older:
                carried[notices[-1].id] = older
        return carried

    def _throttle(self, provider: Provider) -> None:
        """Wait for the provider's rate-limit token, shared through the database (up to 5s)."""
        if provider.rate_limit is None:
            return
        rate, burst = provider.rate_limit
        max_wait = 0.0 if self.stopping else THROTTLE_MAX_WAIT
        wait = buckets.acquire(
            self.store, provider.rate_key(), rate, burst, max_wait=max_wait, clock=self.clock, stop=self._stop
        )
        if wait:
            raise DeliveryError(f"{provider.name}: own rate limit reached", retry_after=wait)

    def _observe_request(self, provider: str, outcome: str, seconds: float) -> None:
        self.metrics.provider_requests.labels(provider, outcome).inc()
        self.metrics.provider_request_seconds.labels(provider).observe(seconds)

    def _messages(self, notices: list[Notice]) -> dict[int, Message]:
        now = self.clock.now()
        with self.store.read() as conn:
            incidents = {i.id: i for i in repo.incidents_by_id(conn, {n.incident_id for n in notices})}
            refs = outbox.first_refs(conn, notices)
        messages = {}
        for notice in notices:
            incident = incidents[notice.incident_id]
            provider = self.providers.get(notice.provider)
            # The notice carries the facts as they were when it was written; fall back to now.
            facts: dict[str, Any] = {
                "level": incident.level,
                "status": incident.status,
                "services": incident.services,
                "tenants": incident.tenants,
                **(notice.data or {}),
            }
            links = None
            if self.links is not None:
                links = self.links.for_notice(notice.id, notice.phase, notice.audience, notice.tenant, now)
            body = notice.body
            if links is not None and provider is not None and self._links_in_body(provider):
                body = f"{body}\n\n{links.text()}"
            messages[notice.id] = Message(
                notice_id=notice.id,
                incident_ref=incident.ref,
                phase=notice.phase,
                audience=notice.audience,
                subject=notice.subject,
                body=body,
                level=int(facts["level"]),
                status=str(facts["status"]),
                services=list(facts["services"]),
                tenants=list(facts["tenants"]),
                tenant=notice.tenant,
                provider_ref=refs[outbox.ref_key(notice)],
                data=facts,
                html=render_html(body, notice.subject) if provider and provider.sends_html else None,
                feedback=links,
            )
        return messages

    def _links_in_body(self, provider: Provider) -> bool:
        how = provider.links_in_body
        return how == "always" or (how == "listed" and provider.name in self.links_listed)

    def _deliver(self, notice: Notice, message: Message) -> outbox.Outcome:
        """Send one notice; the outcome says how to record it."""
        name = notice.provider
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
        self.metrics.delivered(replace(notice, data=message.data), message.level, self.clock.now())
        log.info(
            "delivery notice=%s provider=%s phase=%s audience=%s outcome=delivered attempt=%d",
            notice.id,
            name,
            notice.phase,
            notice.audience,
            notice.attempts + 1,
        )
        return outbox.Outcome(notice.id, "delivered", at=self.clock.now(), ref=ref)

    def _failed(
        self, notice: Notice, error: str, permanent: bool, retry_after: float | None
    ) -> outbox.Outcome:
        """A retry at a backed-off time, or a dead letter when permanent or past max_age."""
        now = self.clock.now()
        attempts = notice.attempts + 1
        delay = backoff(attempts, self.settings, self.rng)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        expired = now + delay > notice.created_at + self.settings.max_age
        if permanent or expired:
            reason = error if permanent else f"{error} (gave up after {attempts} attempts: max_age)"
            outcome = outbox.Outcome(notice.id, "dead", at=now, error=reason)
        else:
            outcome = outbox.Outcome(notice.id, "failed", at=now + delay, error=error)
        label = "retry" if outcome.state == "failed" else "dead"
        self.metrics.deliveries.labels(notice.provider, label).inc()
        log.warning(
            "delivery notice=%s provider=%s outcome=%s attempt=%d retry_in=%.1fs error=%s",
            notice.id,
            notice.provider,
            label,
            attempts,
            delay.total_seconds() if label == "retry" else 0,
            error,
        )
        return outcome
