"""What the store returns: frozen records, one per kind of row, each built from its row in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

# --------------------------------------------------------------------------------------------
# notices and status pages (adapter/store/outbox.py, adapter/store/pages.py)


class Record:
    """A record built from a row: one field per column, by name."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        return cls(**row)


@dataclass(frozen=True, slots=True)
class Notice(Record):
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


@dataclass(frozen=True, slots=True)
class IncidentSpan(Record):
    """What the uptime bars need of an incident: its services, level, and when it was open."""

    services: list[str]
    status: str
    level: int
    opened_at: datetime
    resolved_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PageIncident(IncidentSpan):
    """An incident as a status page lists it: its span, and its id, ref and title (cut at
    pages.LINE_CHARS, plus one character that tells a cut one)."""

    id: int
    ref: str
    title: str


@dataclass(frozen=True, slots=True)
class PageNotice(Record):
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
