"""What the store returns: frozen records, one per kind of row, each built from its row in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# --------------------------------------------------------------------------------------------
# notices and status pages (adapter/store/outbox.py, adapter/store/pages.py)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice in the outbox: a message for one provider, audience and tenant, and its delivery."""

    id: int
    incident_id: int
    provider: str
    audience: str
    phase: str
    tenant: str | None
    state: str
    subject: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    due_at: datetime
    dedupe_key: str
    # As the table's defaults: a notice is inserted without the columns it has none of yet.
    attempts: int = 0
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    delivered_at: datetime | None = None
    provider_ref: str | None = None
    # Read with the notice where it is listed on its own (dead letters), not with its incident.
    incident_ref: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Notice:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class PageIncident:
    """An incident as a status page shows it: its title cut at pages.LINE_CHARS (plus one)."""

    id: int
    ref: str
    title: str
    status: str
    level: int
    services: list[str]
    opened_at: datetime
    resolved_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> PageIncident:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class PageNotice:
    """A published notice as a status page shows it: subject and body cut as the page reads them,
    and `total`, how many its incident has for its audience."""

    id: int
    incident_id: int
    audience: str
    phase: str
    subject: str
    body: str
    delivered_at: datetime
    total: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> PageNotice:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class IncidentSpan:
    """What the uptime bars need of an incident: its services, level, and when it was open."""

    services: list[str]
    status: str
    level: int
    opened_at: datetime
    resolved_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> IncidentSpan:
        return cls(**row)
