"""What the store returns: frozen records of its rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# -- incidents, alerts, timeline (adapter/store/incidents.py) -------------------------------------


@dataclass(frozen=True)
class Incident:
    id: int
    ref: str
    title: str
    status: str
    level: int
    level_locked: bool
    reopen_count: int
    incident_type: str
    services: list[str]
    unknown_services: list[str]
    tenants: list[str]
    source: str
    opened_at: datetime
    resolved_at: datetime | None
    updated_at: datetime
    # Set by humans through the API.
    eta: datetime | None = None
    workaround: str | None = None
    root_cause: str | None = None
    action_required: str | None = None
    preventive_measures: str | None = None
    postmortem_at: datetime | None = None


@dataclass(frozen=True)
class Alert:
    id: int
    incident_id: int
    source: str
    fingerprint: str
    starts_at: datetime
    ends_at: datetime | None
    status: str
    name: str
    summary: str
    group_key: str
    level: int
    services: list[str]
    labels: dict[str, str]
    annotations: dict[str, str]
    links: dict[str, str]
    updated_at: datetime
    # From reconciliation with Alertmanager: silenced there, or missing there since.
    silenced: bool = False
    missing_since: datetime | None = None


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    incident_id: int
    at: datetime
    kind: str
    message: str
    data: dict[str, Any]


# -- end of incidents.py's records -----------------------------------------------------------------
