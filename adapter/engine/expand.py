"""Expansion: per-tenant providers' notices written after the transaction that planned their event."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from adapter.background import BackgroundLoop
from adapter.clock import Clock
from adapter.config import Settings
from adapter.engine.effects import writing
from adapter.engine.notify import Notifier
from adapter.engine.planning import affected_tenants, recipients
from adapter.store import Store, expansions, leases
from adapter.store import incidents as repo

log = logging.getLogger(__name__)
LEASE = "expander"
# Tenants a transaction: the write lock is given back between chunks, so webhooks that arrive
# meanwhile wait for one chunk, not for every tenant.
CHUNK = 50
GAP = 0.02  # seconds between chunks
# Renewed at every chunk: another process takes over this long after the holder died.
LEASE_TTL = timedelta(seconds=10)


class Expander(BackgroundLoop):
    """Writes the per-tenant notices of planned events, oldest event first, a chunk a pass.

    One process at a time does it (a named lease), so each tenant's notices are written in the
    order of their events. The expansion row is written with the event, and each chunk's notices
    with its progress: a crash between the two leaves the rest for the next pass, and notices
    written before it are not written again (their dedupe keys).
    """

    name = "dualtrack-expander"
    paced = True  # see idle()

    def __init__(self, settings: Settings, store: Store, notifier: Notifier, clock: Clock):
        super().__init__()
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 0xFFFFFF:x}"
        self._writing = False  # the last pass wrote a chunk

    def run_once(self) -> int:
        """Write one chunk of the oldest expansion; how many tenants it covered (0: none waiting)."""
        self._writing = False
        # Most passes find nothing waiting: find that out without the write lock.
        with self.store.read() as conn:
            if expansions.oldest(conn) is None:
                return 0
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            if not leases.acquire(conn, LEASE, self.owner, now, LEASE_TTL):
                return 0
            job = expansions.oldest(conn)
            self._writing = job is not None
            if job is None:
                return 0
            incident = repo.get_incident(conn, job.incident_id)
            assert incident is not None  # incidents are never deleted
            # The incident as it is now: whom it affects, at what level. Tenants in the order of
            # their ids, so that one the incident comes to affect meanwhile shifts no other.
            tenants = affected_tenants(self.settings, incident, after=job.after, limit=CHUNK + 1)
            chunk = tenants[:CHUNK]
            options = job.options
            audiences = tuple(options["audiences"]) if options.get("audiences") else None
            streams = recipients(self.settings, incident, job.phase, audiences, only=chunk, shared=False)
            if streams:
                deadline = options.get("deadline")
                self.notifier.notify(
                    conn,
                    effects,
                    incident,
                    job.phase,
                    job.event,
                    now,
                    audiences=audiences,
                    messages=options.get("messages"),
                    extra=options.get("extra"),
                    deadline=datetime.fromisoformat(deadline) if deadline else None,
                    streams=streams,
                )
            if len(tenants) <= CHUNK:
                expansions.finish(conn, job.id)
                effects.add(log.info, "expanded ref=%s phase=%s event=%s", incident.ref, job.phase, job.event)
            else:
                expansions.advance(conn, job.id, chunk[-1].id)
        return max(1, len(chunk))

    def idle(self) -> None:
        """After a chunk, a short gap that lets other writers in: the writers' file lock is not
        fair, and this process would take it back before another one waiting for it (10,000
        tenants: other webhooks' p99 4.8 s without the gap, 80 ms with it). After an idle pass,
        wait to be woken."""
        if self._writing:
            self._stop.wait(GAP)
        else:
            super().idle()

    def drain(self) -> int:
        """Every waiting expansion written in the calling thread, then the lease given back: for
        tests, which run no background threads."""
        total = 0
        while worked := self.run_once():
            total += worked
        with writing(self.store) as (conn, _):
            leases.release(conn, LEASE, self.owner)
        return total
