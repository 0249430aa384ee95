"""Which notices an incident event produces, rendered for each audience and provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.catalog import Catalog
from adapter.config import ProviderSettings
from adapter.rendering import Renderer

PHASE_TITLES = {
    "acknowledgement": "Initial Response",
    "update": "Update",
    "resolution": "Resolved",
    "postmortem": "Post-Mortem",
    "sla_followup": "Service Level Follow-up",
}
STATUS_TEXT = {
    "investigating": "We are investigating the cause.",
    "identified": "We have found the cause and are working on a fix.",
    "monitoring": "A fix is in place and we are monitoring the results.",
    "resolved": "The issue is resolved.",
}
# The seed's cadence, until the policy is configurable: (technical, business) update intervals.
UPDATE_EVERY = {
    1: (timedelta(hours=2), timedelta(hours=3)),
    2: (timedelta(hours=2), timedelta(hours=3)),
    3: (timedelta(hours=1), timedelta(hours=1)),
    4: (timedelta(hours=1), timedelta(hours=1)),
    5: (timedelta(minutes=30), timedelta(hours=1)),
}


@dataclass(frozen=True)
class PlannedNotice:
    provider: str
    audience: str
    phase: str
    tenant: str | None
    subject: str
    body: str
    dedupe_key: str
    data: dict[str, Any]


def service_views(catalog: Catalog, service_ids: list[str]) -> list[dict[str, Any]]:
    views = []
    for service_id in service_ids:
        service = catalog.service(service_id)
        if service is not None:
            views.append(service.model_dump())
    return views


def next_update_at(level: int, audience: str, now: datetime) -> datetime:
    technical, business = UPDATE_EVERY[level]
    return now + (technical if audience == "technical" else business)


def render_context(
    incident: dict[str, Any],
    alerts: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    catalog: Catalog,
    phase: str,
    event: str,
    now: datetime,
    public_url: str,
) -> dict[str, Any]:
    """Everything a template may use. Alert labels are data here, never template source."""
    services = service_views(catalog, incident["services"])
    view = {
        **incident,
        "services": services,
        "service_ids": incident["services"],
        "status_text": STATUS_TEXT.get(incident["status"], ""),
        "duration": (incident["resolved_at"] or now) - incident["opened_at"],
    }
    return {
        "incident": view,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved_alerts": [a for a in alerts if a["status"] == "resolved"],
        "timeline": timeline,
        "phase": phase,
        "phase_title": PHASE_TITLES.get(phase, phase.title()),
        "event": event,
        "now": now,
        "public_url": public_url.rstrip("/"),
        "status_url": public_url.rstrip("/") + "/status",
        "incident_types": sorted({s["incident_type"] for s in services}),
    }


def plan_notices(
    *,
    incident: dict[str, Any],
    context: dict[str, Any],
    phase: str,
    event: str,
    providers: list[ProviderSettings],
    renderer: Renderer,
    now: datetime,
) -> list[PlannedNotice]:
    """One notice per provider and audience it serves, each audience rendered once."""
    rendered: dict[str, tuple[str, str, str]] = {}
    planned = []
    for provider in providers:
        for audience in provider.audiences:
            if audience not in rendered:
                ctx = {
                    **context,
                    "audience": audience,
                    "next_update_at": next_update_at(incident["level"], audience, now),
                }
                result = renderer.render(incident["incident_type"], audience, phase, ctx)
                rendered[audience] = (result.subject, result.body, result.template)
            subject, body, template = rendered[audience]
            planned.append(
                PlannedNotice(
                    provider=provider.name,
                    audience=audience,
                    phase=phase,
                    tenant=None,
                    subject=subject,
                    body=body,
                    dedupe_key=f"{incident['id']}/{event}/{provider.name}/{audience}/-",
                    data={
                        "level": incident["level"],
                        "status": incident["status"],
                        "services": incident["services"],
                        "tenants": incident["tenants"],
                        "template": template,
                        "event": event,
                    },
                )
            )
    return planned
