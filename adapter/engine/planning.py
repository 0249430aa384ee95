"""Who hears about an incident event, and the notice each of them gets, rendered for them."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal, cast, overload
from urllib.parse import urlsplit

from adapter.catalog import Tenant
from adapter.config import PolicySettings, ProviderSettings, Settings
from adapter.rendering import Renderer, human_duration, link_allowed, scrub_links
from adapter.store.records import Alert, Incident, TimelineEntry

PHASES = ("acknowledgement", "update", "resolution", "postmortem", "sla_followup")
# Notices for the team itself, sent to policy.internal_providers only; an authoring request to
# policy.senior_authoring.providers only.
INTERNAL_PHASES = ("executive", "postmortem_reminder", "authoring_request")
PHASE_TITLES = {
    "acknowledgement": "Initial Response",
    "update": "Update",
    "resolution": "Resolved",
    "postmortem": "Post-Mortem",
    "sla_followup": "Service Level Follow-up",
    "executive": "Executive Briefing",
    "postmortem_reminder": "Post-Mortem Overdue",
    "authoring_request": "Authoring Request",
}
STATUS_TEXT = {
    "investigating": "We are investigating the cause.",
    "identified": "We have found the cause and are working on a fix.",
    "monitoring": "A fix is in place and we are monitoring the results.",
    "resolved": "The issue is resolved.",
}
LEVEL_NAMES = {
    1: "Level 1 (service degradation)",
    2: "Level 2 (service degradation)",
    3: "Level 3 (significant outage)",
    4: "Level 4 (significant outage)",
    5: "Level 5 (critical infrastructure failure)",
}


@dataclass(frozen=True)
class Recipient:
    """One stream of notices: a provider, the version it gets, and for whom."""

    provider: ProviderSettings
    audience: str
    tenant: Tenant | None = None
    zone: str | None = None  # a shared page's text for the tenants in this zone (see `_zoned`)

    @property
    def timezone(self) -> str:
        if self.zone is not None:
            return self.zone
        if self.tenant is not None:
            return self.tenant.timezone
        return self.provider.timezone

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.provider.name, self.audience, self.tenant.id if self.tenant else None)


@dataclass
class PlannedNotice:
    recipient: Recipient
    phase: str
    subject: str
    body: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"
    due_at: datetime | None = None

    @property
    def provider(self) -> str:
        return self.recipient.provider.name

    @property
    def audience(self) -> str:
        return self.recipient.audience

    @property
    def tenant(self) -> str | None:
        return self.recipient.tenant.id if self.recipient.tenant else None


def recipients(
    settings: Settings,
    incident: Incident,
    phase: str,
    audiences: tuple[str, ...] | None = None,
    *,
    only: Sequence[Tenant] | None = None,
    shared: bool = True,
) -> list[Recipient]:
    """Every stream this incident's `phase` notice goes to, after targeting by audience and tier.

    A provider serving one audience hears about an incident only when an affected tenant is in
    that audience (unless `only_when_affected: false`); an incident that touches no known tenant
    goes to the technical audience only. Per-tenant providers get one stream per affected tenant
    of their tiers, in the tenant's own segment: of the tenants in `only`, when it is given.
    The providers in the level's `social` list get the business version whatever their own
    targeting says. `shared=False` leaves out the providers that are not per tenant.
    """
    catalog = settings.catalog
    if phase in INTERNAL_PHASES:
        policy = settings.policy
        names = (
            policy.senior_authoring.providers if phase == "authoring_request" else policy.internal_providers
        )
        return [Recipient(p, "technical") for p in settings.providers if p.name in names]

    @cache
    def affected() -> list[Tenant]:  # read only when needed: ten thousand lookups at 10k tenants
        return [t for t in map(catalog.tenant, incident.tenants) if t is not None]

    @cache
    def segments() -> frozenset[str]:
        return frozenset(t.segment for t in affected()) or frozenset({"technical"})

    out: list[Recipient] = []
    for provider in settings.providers:
        if incident.level < provider.min_level:
            continue
        if provider.per_tenant:
            contact = contact_key(provider)
            for tenant in affected() if only is None else only:
                if provider.tiers and tenant.tier not in provider.tiers:
                    continue
                if contact and not getattr(tenant.contacts, contact, None):
                    continue  # nowhere to send it; check-config cannot know every tenant's needs
                if tenant.segment in provider.audiences and (not audiences or tenant.segment in audiences):
                    out.append(Recipient(provider, tenant.segment, tenant))
            continue
        if phase == "sla_followup" or not shared:
            continue  # SLA figures are per tenant, never on a shared page
        for audience in provider.audiences:
            if audiences and audience not in audiences:
                continue
            if provider.only_when_affected and audience not in segments():
                continue
            out.append(Recipient(provider, audience))
    if shared and phase != "sla_followup" and (not audiences or "business" in audiences):
        social = settings.policy.social(incident.level)
        streams = {r.key for r in out}
        for provider in settings.providers:
            if provider.name in social and (provider.name, "business", None) not in streams:
                out.append(Recipient(provider, "business"))
    return out


def reaches_tenants(settings: Settings, incident: Incident, phase: str) -> bool:
    """Whether a per-tenant provider may have streams for this notice (`recipients` says which)."""
    return (
        phase not in INTERNAL_PHASES
        and bool(incident.tenants)
        and any(p.per_tenant and incident.level >= p.min_level for p in settings.providers)
    )


def affected_tenants(
    settings: Settings, incident: Incident, after: str | None = None, limit: int | None = None
) -> list[Tenant]:
    """The catalog's tenants the incident affects, by id (the order per-tenant notices are written
    in): those after `after`, at most `limit` of them."""
    ids = sorted(incident.tenants)
    found: list[Tenant] = []
    for tenant_id in ids[bisect_right(ids, after) if after is not None else 0 :]:
        tenant = settings.catalog.tenant(tenant_id)
        if tenant is not None:
            found.append(tenant)
            if len(found) == limit:
                break
    return found


def contact_key(provider: ProviderSettings) -> str | None:
    from adapter.providers import REGISTRY

    kind = REGISTRY.get(provider.type)
    return kind.contact if kind else None


# The business estimate counts down in quarter hours: "within about 1 hour 15 minutes".
COUNTDOWN_STEP = timedelta(minutes=15)


def expected_resolution(incident: Incident, policy: PolicySettings, timezone: str, now: datetime) -> str:
    """A human's ETA in the reader's time ("by 15:30 CET"), else the level's estimate counted
    down from the incident's start: "within 2 hours", later "within about 1 hour"."""
    eta = incident.eta
    if eta is not None:
        from adapter.rendering import local_time

        day = "" if eta.date() == now.date() else local_time(eta, timezone, " on %d %B")
        return f"by {local_time(eta, timezone, '%H:%M %Z')}{day}"
    level = cast(Literal[1, 2, 3, 4, 5], incident.level)  # stored levels are 1 to 5
    estimate = policy.expected_resolution[level]
    left = incident.opened_at + estimate - now
    if left > estimate - COUNTDOWN_STEP:
        return "within " + human_duration(estimate)
    if left < COUNTDOWN_STEP:
        return "shortly; we'll confirm it in our next update"
    steps = round(left / COUNTDOWN_STEP)
    return "within about " + human_duration(steps * COUNTDOWN_STEP)


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "summary": alert.summary,
        "status": alert.status,
        "level": alert.level,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "links": alert.links,
        "instance": alert.labels.get("instance"),
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
    }


class LazyRows(Sequence[TimelineEntry]):
    """Rows read the first time a template looks at them: most notices never show the timeline."""

    def __init__(self, load: Callable[[], list[TimelineEntry]]):
        self._load = load
        self._rows: list[TimelineEntry] | None = None

    def _all(self) -> list[TimelineEntry]:
        if self._rows is None:
            self._rows = self._load()
        return self._rows

    @overload
    def __getitem__(self, index: int) -> TimelineEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[TimelineEntry]: ...

    def __getitem__(self, index: int | slice) -> TimelineEntry | list[TimelineEntry]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())


@dataclass
class EventFacts:
    """What templates may know about an incident at one moment; built once per event."""

    incident: Incident
    alerts: list[Alert]
    timeline: Sequence[TimelineEntry]
    phase: str
    event: str
    now: datetime
    # Per audience: the human's text, and what changed since that audience last heard.
    messages: dict[str, str | None] = field(default_factory=dict)
    changes: dict[str, list[TimelineEntry]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def render_context(facts: EventFacts, recipient: Recipient, settings: Settings) -> dict[str, Any]:
    """Everything a template may use. Alert labels are data here, never template source.

    Shared notices carry no tenant at all; a per-tenant notice carries only its own tenant.
    """
    return _recipient_context(facts, _event_view(facts, settings), recipient, settings)


def link_hosts(settings: Settings, phase: str) -> list[str] | None:
    """The hosts a notice of this phase may link to: the allowlist and the status pages' own for
    customers; None (any) for the team's own notices."""
    if phase in INTERNAL_PHASES:
        return None
    return [*settings.publish.link_hosts, urlsplit(settings.server.public_url).hostname or ""]


def status_url(settings: Settings, audience: str) -> str:
    """The public status page of an audience's version."""
    public = settings.server.public_url.rstrip("/")
    return public + ("/status/technical" if audience == "technical" else "/status")


def _event_view(facts: EventFacts, settings: Settings) -> dict[str, Any]:
    """The start of every recipient's context: the same for all of them, so built once per event."""
    incident = facts.incident
    services = [s.model_dump() for s in map(settings.catalog.service, incident.services) if s]
    alerts = [alert_view(a) for a in facts.alerts]
    hosts = link_hosts(settings, facts.phase)
    if hosts is not None:  # an internal runbook is no use to a customer, and tells too much
        for view in alerts:
            view["links"] = {k: url for k, url in view["links"].items() if link_allowed(url, hosts)}
    level = incident.level
    view = {
        "ref": incident.ref,
        "title": incident.title,
        "status": incident.status,
        "status_text": STATUS_TEXT.get(incident.status, ""),
        "level": level,
        "level_name": LEVEL_NAMES[level],
        "incident_type": incident.incident_type,
        "services": services,
        "unknown_services": incident.unknown_services,
        "opened_at": incident.opened_at,
        # When the first alert began, which may be well before dualtrack heard of it.
        "first_detected": min([incident.opened_at, *(a.starts_at for a in facts.alerts if a.starts_at)]),
        "resolved_at": incident.resolved_at,
        "duration": (incident.resolved_at or facts.now) - incident.opened_at,
        "eta": incident.eta,
        "workaround": incident.workaround,
        "root_cause": incident.root_cause,
        "action_required": incident.action_required,
        "preventive_measures": incident.preventive_measures,
    }
    return {
        "incident": view,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved_alerts": [a for a in alerts if a["status"] == "resolved"],
        "instances": sorted({a["instance"] for a in alerts if a["instance"]}),
        "timeline": facts.timeline,
    }


def _recipient_context(
    facts: EventFacts, event_view: dict[str, Any], recipient: Recipient, settings: Settings
) -> dict[str, Any]:
    # Recipients share event_view's lists and dicts: safe, as the sandbox lets no template change them.
    incident = facts.incident
    policy = settings.policy
    audience = recipient.audience
    level = incident.level
    resolved = incident.status == "resolved"
    every = policy.audience(level, audience).update_every
    public = settings.server.public_url.rstrip("/")
    tenant = recipient.tenant
    return {
        **event_view,
        "changes": facts.changes.get(audience, []),
        "phase": facts.phase,
        "phase_title": PHASE_TITLES.get(facts.phase, facts.phase.title()),
        "event": facts.event,
        "message": facts.messages.get(audience),
        "audience": audience,
        "timezone": recipient.timezone,
        "tenant": (
            {"id": tenant.id, "name": tenant.name, "tier": tenant.tier, "timezone": tenant.timezone}
            if tenant
            else None
        ),
        "now": facts.now,
        "next_update_at": None if resolved else facts.now + every,
        "update_every": every,
        # Technical notices keep to UTC, as their other times do.
        "expected_resolution": expected_resolution(
            incident, policy, "UTC" if audience == "technical" else recipient.timezone, facts.now
        ),
        "urgent_contact": policy.urgent_contact if level >= 3 else None,
        "postmortem_due": policy.postmortem_due,
        "public_url": public,
        "status_url": status_url(settings, audience),
        **facts.extra,
    }


def plan_notices(
    facts: EventFacts,
    streams: list[Recipient],
    settings: Settings,
    renderer: Renderer,
    *,
    unrendered: Collection[tuple[str, str, str | None]] = (),
) -> list[PlannedNotice]:
    """One rendered notice per stream; streams that read the same text share one render.

    Streams whose key is in `unrendered` get a notice with empty text (and no template).
    """
    incident = facts.incident
    rendered: dict[tuple[str, str, str | None], tuple[str, str, str]] = {}
    planned = []
    event_view = _event_view(facts, settings)
    context_services = event_view["incident"]["services"]
    hosts = link_hosts(settings, facts.phase)

    def render(recipient: Recipient) -> tuple[str, str, str]:
        cache_key = (
            recipient.audience,
            recipient.timezone,
            recipient.tenant.id if recipient.tenant else None,
        )
        if cache_key not in rendered:
            context = _recipient_context(facts, event_view, recipient, settings)
            result = renderer.render(incident.incident_type, recipient.audience, facts.phase, context)
            subject, body = result.subject, result.body
            if hosts is not None:  # links in free text too: descriptions, summaries, titles
                subject, body = scrub_links(subject, hosts), scrub_links(body, hosts)
            rendered[cache_key] = (subject, body, result.template)
        return rendered[cache_key]

    zones = cache(lambda: tenant_zones(settings, incident))  # read only if a shared page is a stream
    customers = facts.phase not in INTERNAL_PHASES
    for recipient in streams:
        zoned: dict[str, dict[str, str]] = {}
        if recipient.key in unrendered:
            subject, body, template = "", "", None
        else:
            subject, body, template = render(recipient)
            # A fallback text is one for every zone, and its failure is counted once.
            if recipient.provider.type == "builtin" and recipient.tenant is None and template != "builtin":
                zoned = _zoned(recipient, (subject, body), zones().get(recipient.audience, set()), render)
        provider, audience, tenant = recipient.key
        planned.append(
            PlannedNotice(
                recipient=recipient,
                phase=facts.phase,
                subject=subject,
                body=body,
                dedupe_key=f"{incident.id}/{facts.event}/{provider}/{audience}/{tenant or '-'}",
                data={
                    "level": incident.level,
                    "status": incident.status,
                    "services": incident.services,
                    # A tenant's own notice names only that tenant.
                    "tenants": [tenant] if tenant else incident.tenants,
                    "template": template,
                    "event": facts.event,
                    "timezone": recipient.timezone,
                    **({"zoned": zoned} if zoned else {}),
                    "contact": recipient.tenant.contacts.model_dump() if recipient.tenant else None,
                    # For providers that link to it; the team's own notices link where they need.
                    "status_url": status_url(settings, recipient.audience) if customers else None,
                    # This provider's ids for the affected services (status-page components).
                    "components": [
                        service["components"][provider]
                        for service in context_services
                        if provider in service["components"]
                    ],
                },
            )
        )
    return planned


def tenant_zones(settings: Settings, incident: Incident) -> dict[str, set[str]]:
    """The time zones of the incident's affected tenants, per segment."""
    zones: dict[str, set[str]] = {}
    for tenant in map(settings.catalog.tenant, incident.tenants):
        if tenant is not None:
            zones.setdefault(tenant.segment, set()).add(tenant.timezone)
    return zones


def _zoned(
    recipient: Recipient,
    text: tuple[str, str],
    zones: set[str],
    render: Callable[[Recipient], tuple[str, str, str]],
) -> dict[str, dict[str, str]]:
    """A shared page's notice as each affected tenant's zone reads it, where that differs: a
    tenant's page shows it (see adapter.store.pages), the public page the notice's own text."""
    zoned = {}
    for zone in sorted(zones - {recipient.timezone}):
        subject, body, _ = render(replace(recipient, zone=zone))
        if (subject, body) != text:
            zoned[zone] = {"subject": subject, "body": body}
    return zoned


def first_notice_deadline(policy: PolicySettings, incident: Incident, audience: str) -> datetime:
    opened: datetime = incident.opened_at
    within = policy.audience(incident.level, audience).first_notice_within
    return opened + (within or policy.immediate_grace)  # "immediate" still takes a request or two


def hold_for(policy: PolicySettings, level: int, audience: str, provider: str) -> timedelta:
    """How long a first notice to this provider waits before it goes out (flap damping)."""
    if audience == "business" and provider in policy.social(level):
        return timedelta(0)  # the level's social channels hear at once
    return policy.audience(level, audience).hold_for


def next_notices(
    settings: Settings, incident: Incident, last_heard: Callable[[str], datetime | None]
) -> list[tuple[datetime, str, str]]:
    """When each audience the incident reaches is next due a notice, soonest first, as (when,
    audience, "update" | "first notice"): a progress update on its cadence once it heard of the
    incident (`last_heard(audience)`), else its first notice's deadline."""
    policy = settings.policy
    affected = {t.segment for t in map(settings.catalog.tenant, incident.tenants) if t is not None}
    due = []
    for audience in ("technical", "business"):
        last = last_heard(audience)
        if last is not None:
            due.append((next_update_at(policy, incident.level, audience, last), audience, "update"))
        elif audience in (affected or {"technical"}):
            due.append((first_notice_deadline(policy, incident, audience), audience, "first notice"))
    return sorted(due)


def next_update_at(policy: PolicySettings, level: int, audience: str, last: datetime | None) -> datetime:
    """When the audience's next progress update is due, `last` being when it last heard of the
    incident (`outbox.last_heard`): never, before it heard anything."""
    if last is None:
        return datetime.max.replace(tzinfo=UTC)
    return last + policy.audience(level, audience).update_every
