"""What the store returns: frozen records, one per kind of row, each built from its row in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self


class Record:
    """A record built from a row: one field per column, by name."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        return cls(**row)


# --------------------------------------------------------------------------------------------
# incidents, alerts, timeline (adapter/store/incidents.py)


@dataclass(frozen=True, slots=True)
class Incident(Record):
    """One incident, as its row holds it."""

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
    pruned_at: datetime | None = None  # texts removed past storage.retention


@dataclass(frozen=True, slots=True)
class Alert(Record):
    """One alert of an incident: its source's identity, its state and its labels."""

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


@dataclass(frozen=True, slots=True)
class TimelineEntry(Record):
    """One line of an incident's timeline."""

    id: int
    incident_id: int
    at: datetime
    kind: str
    message: str
    data: dict[str, Any]


# --------------------------------------------------------------------------------------------
# notices and status pages (adapter/store/outbox.py, adapter/store/pages.py)


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
class AwaitingNotice:
    """A notice awaiting approval, with what an approver weighs: its incident, its deadline (a
    first notice's or a progress update's, if it has one) and when it goes out unapproved (None:
    it waits for a person)."""

    notice: Notice
    ref: str
    deadline: datetime | None
    auto_publish_at: datetime | None

    def late(self, now: datetime) -> bool:
        """Whether its deadline has passed, or will have by the time it goes out unapproved."""
        if self.deadline is None:
            return False
        return self.deadline < max(now, self.auto_publish_at or now)


@dataclass(frozen=True, slots=True)
class Backlog:
    """The outbox's backlog: notices waiting for delivery, the age in seconds of the oldest, and
    notices awaiting approval."""

    pending: int
    oldest_seconds: float
    awaiting_approval: int


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


# --------------------------------------------------------------------------------------------
# expansions (adapter/store/expansions.py)


@dataclass(frozen=True, slots=True)
class Expansion(Record):
    """Per-tenant providers' notices of one event, still to be written: those of tenants whose id
    sorts after `after` (None: all)."""

    id: int
    incident_id: int
    phase: str
    event: str
    options: dict[str, Any]
    created_at: datetime
    after: str | None


# --------------------------------------------------------------------------------------------
# people (adapter/store/audit.py, adapter/store/sessions.py)


@dataclass(frozen=True, slots=True)
class AuditEntry(Record):
    """One human action: who, when, what, on which incident, and what it changed."""

    id: int
    at: datetime
    author: str
    role: str
    action: str
    incident_id: int | None
    ref: str | None
    changes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeskSession(Record):
    """A desk log-in, found by the SHA-256 of its cookie."""

    id_hash: str
    user: str
    csrf: str
    created_at: datetime
    expires_at: datetime


# --------------------------------------------------------------------------------------------
# readers' feedback and the communication report (adapter/store/feedback.py)


@dataclass(frozen=True, slots=True)
class NoticeFacts(Record):
    """What the report needs of a notice: where it went, when, its deadline, and its incident."""

    id: int
    incident_id: int
    ref: str
    incident_type: str
    provider: str
    audience: str
    phase: str
    tenant: str | None
    state: str
    data: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Answer(Record):
    """One reader's answer to "Was this update helpful?", with the notice it is about."""

    notice: NoticeFacts
    segment: str
    helpful: bool
    comment: str | None


@dataclass(frozen=True, slots=True)
class DetailRequest(Record):
    """A reader of a business notice opening its technical version."""

    ref: str
    tenant: str | None
    segment: str
    at: datetime
