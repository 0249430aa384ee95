"""Sample notices: every template rendered for a made-up incident, as check-config checks them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.catalog import Tenant
from adapter.config import ProviderSettings, Settings
from adapter.engine.planning import INTERNAL_PHASES, PHASES, EventFacts, Recipient, render_context
from adapter.rendering import Renderer, split_subject
from adapter.store.records import Alert, Incident, TimelineEntry

AUDIENCES = ("technical", "business")
# Where a sample incident needs a type no catalog service has.
GENERAL = "general"


@dataclass(frozen=True)
class Sample:
    """One template rendered for the sample incident: its text, or why it could not be."""

    incident_type: str
    audience: str
    phase: str
    tenant: str | None
    template: str | None
    text: str | None
    error: str | None


def _incident(
    settings: Settings, incident_type: str, phase: str, now: datetime, tenants: list[str]
) -> Incident:
    services = [s.id for s in settings.catalog.services if s.incident_type == incident_type][:2]
    opened = now - timedelta(hours=2)
    resolved = phase in ("resolution", "postmortem", "postmortem_reminder", "sla_followup")
    return Incident(
        id=0,
        ref="INC-0000-0000",
        title=f"Sample {incident_type} incident",
        status="resolved" if resolved else "identified",
        level=4,
        level_locked=False,
        reopen_count=0,
        incident_type=incident_type,
        services=services,
        unknown_services=[] if services else ["sample-service"],
        tenants=tenants,
        source="alertmanager",
        opened_at=opened,
        resolved_at=now - timedelta(minutes=10) if resolved else None,
        updated_at=now,
        eta=None if resolved else now + timedelta(hours=1),
        workaround="Retry failed requests after a minute.",
        root_cause="A configuration change exhausted the connection pool." if resolved else None,
        preventive_measures="- Pool size alerts at 80%\n- Load test every deploy" if resolved else None,
    )


def _facts(
    settings: Settings, incident_type: str, phase: str, now: datetime, tenants: list[str]
) -> EventFacts:
    incident = _incident(settings, incident_type, phase, now, tenants)
    resolved = incident.status == "resolved"
    alert = Alert(
        id=0,
        incident_id=0,
        source="alertmanager",
        fingerprint="0" * 16,
        starts_at=incident.opened_at,
        ends_at=incident.resolved_at,
        status="resolved" if resolved else "firing",
        name="SampleErrorRateHigh",
        summary="Error rate above 5%",
        group_key="sample",
        level=4,
        services=incident.services,
        labels={"alertname": "SampleErrorRateHigh", "instance": "sample-host:9100", "severity": "critical"},
        annotations={"description": "Error rate above 5% for 5 minutes."},
        links={},
        updated_at=now,
    )
    timeline = [
        TimelineEntry(0, 0, incident.opened_at, "opened", f"Incident opened: {incident.title}", {}),
        TimelineEntry(
            1, 0, incident.opened_at + timedelta(minutes=20), "status_changed", "Status: identified", {}
        ),
    ]
    return EventFacts(
        incident=incident,
        alerts=[alert],
        timeline=timeline,
        phase=phase,
        event="sample",
        now=now,
        changes={audience: timeline[1:] for audience in AUDIENCES} if phase == "update" else {},
        extra=_extra(phase, now),
    )


def _extra(phase: str, now: datetime) -> dict[str, Any]:
    """What the notifier adds to the facts of these phases (see `Notifier.facts`)."""
    if phase == "sla_followup":
        sla = {
            "target": 99.9,
            "availability": 99.7,
            "impact": timedelta(hours=1, minutes=50),
            "month_downtime": timedelta(hours=2),
            "below_target": True,
            "month": now.strftime("%B %Y"),
        }
        return {"sla": sla}
    if phase == "authoring_request":
        next_updates = [
            {"audience": "technical", "notice": "update", "at": now + timedelta(minutes=40)},
            {"audience": "business", "notice": "update", "at": now + timedelta(minutes=55)},
        ]
        return {"next_updates": next_updates}
    return {}


def _types(settings: Settings, renderer: Renderer) -> list[str]:
    """The incident types worth a sample: the catalog's, and each folder of templates for one."""
    found = {s.incident_type for s in settings.catalog.services} | set(renderer.incident_types())
    return sorted(found | {GENERAL})


def _sample_tenants(settings: Settings) -> dict[str, Tenant]:
    """The first tenant of each segment, whichever services it uses: a sample needs no more."""
    found: dict[str, Tenant] = {}
    for tenant in settings.catalog.tenants:
        found.setdefault(tenant.segment, tenant)
    return found


def compile_errors(renderer: Renderer) -> list[tuple[str, str]]:
    """(template name, error) for each template file that does not compile, used or not."""
    errors = []
    for name in renderer.names():
        try:
            renderer.env.get_template(name)
        except Exception as exc:  # a syntax error, or one in what it imports
            errors.append((name, f"{type(exc).__name__}: {exc}"))
    return errors


def render_samples(settings: Settings, renderer: Renderer, now: datetime) -> list[Sample]:
    """Every type, phase and audience, shared and for a tenant of that segment; a template error
    is reported, not replaced by the built-in fallback as it would be for a real notice."""
    provider = ProviderSettings(name="sample", type="builtin", audience="all")
    tenants = _sample_tenants(settings)
    ids = [tenant.id for tenant in tenants.values()]
    out = []
    for incident_type in _types(settings, renderer):
        for phase in (*PHASES, *INTERNAL_PHASES):
            facts = _facts(settings, incident_type, phase, now, ids)
            audiences = ("technical",) if phase in INTERNAL_PHASES else AUDIENCES
            for audience in audiences:
                tenant = tenants.get(audience) if phase not in INTERNAL_PHASES else None
                targets = [Recipient(provider, audience, tenant)] if tenant else []
                if phase != "sla_followup":  # SLA follow-ups only ever go to a tenant
                    targets.insert(0, Recipient(provider, audience))
                for recipient in targets:
                    out.append(_render(settings, renderer, facts, recipient))
    return out


def _render(settings: Settings, renderer: Renderer, facts: EventFacts, recipient: Recipient) -> Sample:
    incident, audience, phase = facts.incident, recipient.audience, facts.phase
    tenant = recipient.tenant.id if recipient.tenant else None
    name = text = error = None
    try:
        template = renderer.template(incident.incident_type, audience, phase)
        name = str(template.name)
        subject, body = split_subject(template.render(render_context(facts, recipient, settings)))
        if not subject:
            raise ValueError("the template rendered no subject line")
        text = f"{subject}\n\n{body}"
    except Exception as exc:  # any template error is what this is for
        error = f"{type(exc).__name__}: {exc}"
    return Sample(incident.incident_type, audience, phase, tenant, name, text, error)
