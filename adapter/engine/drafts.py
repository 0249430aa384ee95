"""What a person's next notice would say to each kind of reader: rendered, never stored or sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from adapter.catalog import Tenant
from adapter.config import ProviderSettings, Settings
from adapter.engine.effects import Effects
from adapter.engine.humans import Author, Conflict, Declaration, HumanActions, HumanUpdate, NotFound, signed
from adapter.engine.planning import Recipient, affected_tenants, plan_notices, recipients
from adapter.engine.scheduler import SlaMonth
from adapter.store import incidents as repo
from adapter.store.records import Incident

# Streams and the extra context they are rendered with, for one state of the incident.
Audience = Callable[[Connection, Incident, datetime], list[tuple[list[Recipient], dict[str, Any]]]]


@dataclass(frozen=True)
class Draft:
    """One text of the next notice, and who would read it: each shared provider, and for
    per-tenant providers each segment, tier and time zone among the affected tenants."""

    audience: str
    subject: str
    body: str
    readers: tuple[str, ...]


def sample_tenants(settings: Settings, incident: Incident) -> list[Tenant]:
    """One affected tenant per segment, tier and time zone: the ways their texts can differ."""
    seen: set[tuple[str, str, str]] = set()
    samples = []
    for tenant in affected_tenants(settings, incident):
        kind = (tenant.segment, tenant.tier, tenant.timezone)
        if kind not in seen:
            seen.add(kind)
            samples.append(tenant)
    return samples


def _reader(recipient: Recipient) -> str:
    tenant = recipient.tenant
    if tenant is None:
        return f"{recipient.provider.name} ({recipient.audience})"
    return f"{recipient.provider.name}: {tenant.segment}, {tenant.tier}, {tenant.timezone}"


class Drafts:
    """Previews of the desk's forms, through the planning and templates the real notice takes."""

    def __init__(self, humans: HumanActions):
        self.humans = humans
        self.settings = humans.settings

    def _everyone(self, phase: str, extra: dict[str, Any] | None = None) -> Audience:
        def streams(conn: Connection, incident: Incident, now: datetime) -> list[tuple[list[Recipient], Any]]:
            samples = sample_tenants(self.settings, incident)
            shared = recipients(self.settings, incident, phase, only=())
            own = recipients(self.settings, incident, phase, only=samples, shared=False)
            return [([*shared, *own], extra or {})]

        return streams

    def _render(
        self,
        change: Callable[[Connection, datetime], Incident],
        phase: str,
        messages: dict[str, str | None],
        audience: Audience,
        *,
        writes: bool = True,
    ) -> list[Draft]:
        """`change` applied in a transaction that is rolled back (or, when it `writes` nothing, on
        a read-only connection, which waits for no writer), then the notice of `phase` rendered
        for every kind of reader; texts that read the same are shown once."""
        now = self.humans.clock.now()
        planned = []
        store = self.humans.store
        with store.rolled_back() if writes else store.read() as conn:
            incident = change(conn, now)
            for streams, extra in audience(conn, incident, now):
                facts = self.humans.notifier.facts(
                    conn, incident, phase, "draft", now, messages=messages, extra=extra
                )
                planned += plan_notices(facts, streams, self.settings, self.humans.engine.renderer)
        drafts: dict[tuple[str, str, str], list[str]] = {}
        for notice in planned:
            key = (notice.audience, notice.subject, notice.body)
            drafts.setdefault(key, []).append(_reader(notice.recipient))
        return [Draft(a, s, b, tuple(readers)) for (a, s, b), readers in drafts.items()]

    def _incident(self, conn: Connection, ref: str) -> Incident:
        incident = repo.get_incident_by_ref(conn, ref)
        if incident is None:
            raise NotFound(f"no incident {ref}")
        return incident

    def declare(self, declaration: Declaration, author: Author) -> list[Draft]:
        def opened(conn: Connection, now: datetime) -> Incident:
            return self.humans.opened(conn, Effects(), declaration, now).incident

        messages = {"technical": declaration.technical, "business": declaration.business}
        phase = "acknowledgement"
        return self._render(opened, phase, signed(self.settings, author, messages), self._everyone(phase))

    def update(self, ref: str, change: HumanUpdate, author: Author) -> list[Draft]:
        def updated(conn: Connection, now: datetime) -> Incident:
            incident, values = self._incident(conn, ref), change.values()
            return repo.update_incident(conn, incident, values) if values else incident

        messages = {"technical": change.technical, "business": change.business}
        return self._render(
            updated, "update", signed(self.settings, author, messages), self._everyone("update")
        )

    def resolve(self, ref: str, technical: str | None, business: str | None, author: Author) -> list[Draft]:
        def resolved(conn: Connection, now: datetime) -> Incident:
            values = {"status": "resolved", "resolved_at": now, "action_required": None}
            return repo.update_incident(conn, self._incident(conn, ref), values)

        messages = signed(self.settings, author, {"technical": technical, "business": business})
        audience = self._everyone("resolution", {"resolved_by_hand": True})
        return self._render(resolved, "resolution", messages, audience)

    def postmortem(
        self, ref: str, technical: str | None, business: str | None, measures: str | None, author: Author
    ) -> list[Draft]:
        def reviewed(conn: Connection, now: datetime) -> Incident:
            incident = self._incident(conn, ref)
            if measures is None:
                return incident
            return repo.update_incident(conn, incident, {"preventive_measures": measures})

        messages = signed(self.settings, author, {"technical": technical, "business": business})
        return self._render(reviewed, "postmortem", messages, self._everyone("postmortem"))

    def sla_followup(self, ref: str) -> list[Draft]:
        """The SLA follow-up each kind of tenant would get, with its own figures."""

        def resolved(conn: Connection, now: datetime) -> Incident:
            incident = self._incident(conn, ref)
            if incident.resolved_at is None:
                raise Conflict(f"{ref} is still open; its SLA follow-up comes after it is resolved")
            return incident

        def per_tenant(
            conn: Connection, incident: Incident, now: datetime
        ) -> list[tuple[list[Recipient], Any]]:
            month = SlaMonth(self.settings, conn, incident)
            out = []
            for tenant in sample_tenants(self.settings, incident):
                sla = month.figures(tenant, now)
                streams = recipients(self.settings, incident, "sla_followup", only=[tenant], shared=False)
                if sla is not None and streams:
                    out.append((streams, {"sla": sla}))
            return out

        return self._render(resolved, "sla_followup", {}, per_tenant, writes=False)

    def technical(self, ref: str, phase: str, tenant: Tenant | None) -> Draft:
        """The technical version of an incident's notice of `phase`, as it reads now, for a reader
        of its business version (the tenant's own view, with a tenant)."""
        page = ProviderSettings(name="details", type="builtin", audience="technical")
        reader = Recipient(page, "technical", tenant)

        def current(conn: Connection, now: datetime) -> Incident:
            return self._incident(conn, ref)

        # A public link's page: it must not take the write lock that webhooks wait for.
        (draft,) = self._render(
            current, phase, {}, lambda conn, incident, now: [([reader], {})], writes=False
        )
        return draft
