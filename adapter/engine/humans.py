"""What people do through the API or the desk, each recorded in the audit trail as it is done."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection

from adapter.clock import Clock
from adapter.config import ROLES, Role, Settings
from adapter.engine.correlate import Change, Correlation
from adapter.engine.effects import Effects, writing
from adapter.engine.planning import recipients
from adapter.engine.settle import escalations
from adapter.rendering import local_time
from adapter.sources.signal import Signal
from adapter.store import Store, audit, outbox
from adapter.store import incidents as repo
from adapter.store.records import Incident, Notice

if TYPE_CHECKING:
    from adapter.engine.core import Engine

log = logging.getLogger(__name__)
Found = TypeVar("Found")


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


class Invalid(ValueError):
    """The request names something that does not exist (a tenant, say), in `field`."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Author:
    """Who acts: a desk user, a proxied user or a named API token, with their role."""

    name: str
    role: Role
    team: str | None = None

    def may(self, role: Role) -> bool:
        """Whether this author's role includes `role` (each role includes those before it)."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Declaration:
    """An incident a person declares: a customer reported it, or no alert covers it."""

    services: tuple[str, ...]
    level: int
    title: str
    status: str = "investigating"
    technical: str | None = None
    business: str | None = None


@dataclass(frozen=True)
class HumanUpdate:
    status: str | None = None
    technical: str | None = None
    business: str | None = None
    eta: datetime | None = None
    workaround: str | None = None
    root_cause: str | None = None
    action_required: str | None = None
    # Only these tenants hear of the update, through their per-tenant providers.
    tenants: tuple[str, ...] | None = None

    def values(self) -> dict[str, Any]:
        """What the update changes in the incident's row."""
        keys = ("status", "eta", "workaround", "root_cause", "action_required")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


def signed(settings: Settings, author: Author, messages: dict[str, str | None]) -> dict[str, str | None]:
    """The author's texts, signed as policy.sign_notices says (a text nobody wrote is unsigned)."""
    how = settings.policy.sign_notices
    signature = author.name if how == "name" else author.team if how == "team" else None
    if not signature:
        return messages
    return {k: f"{v}\n\n— {signature}" if v else v for k, v in messages.items()}


class HumanActions:
    """Timeline messages reach technical readers, so they name no person; the entry's data and
    the audit trail do."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, clock: Clock, on_commit: Any):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.notifier = engine.notifier
        self.clock = clock
        self.on_commit = on_commit

    def _incident(self, conn: Connection, ref: str) -> Incident:
        incident = repo.get_incident_by_ref(conn, ref)
        if incident is None:
            raise NotFound(f"no incident {ref}")
        return incident

    def _count(self, conn: Connection, incident_id: int, kind: str) -> int:
        return sum(1 for t in repo.timeline_of(conn, incident_id) if t.kind == kind)

    def _known(self, field: str, ids: Sequence[str], lookup: Callable[[str], Found | None]) -> list[Found]:
        """What the catalog holds under these ids, in order and once each; Invalid if one is unknown."""
        unknown = [i for i in ids if lookup(i) is None]
        if unknown:
            raise Invalid(field, f"no {field.rstrip('s')} {', '.join(unknown)} in the catalog")
        return [found for found in map(lookup, dict.fromkeys(ids)) if found is not None]

    def _done(self, written: int) -> None:
        if written and self.on_commit:
            self.on_commit()

    def _audit(
        self,
        conn: Connection,
        author: Author,
        action: str,
        incident: Incident | None,
        now: datetime,
        changes: dict[str, Any],
    ) -> None:
        audit.append(
            conn,
            now,
            author.name,
            author.role,
            action,
            incident_id=incident.id if incident else None,
            ref=incident.ref if incident else None,
            changes={k: v for k, v in changes.items() if v is not None},
        )

    def _signed(self, author: Author, messages: dict[str, str | None]) -> dict[str, str | None]:
        return signed(self.settings, author, messages)

    def declare(self, declaration: Declaration, author: Author) -> str:
        """Open an incident by hand, through the path an alert takes: one firing `desk` signal per
        service, so it gets the same level, tenants, providers and cadence as an alerted one."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            written, incident = self._open(conn, effects, declaration, author, now)
        log.info("incident declared ref=%s author=%s notices=%d", incident.ref, author.name, written)
        self._done(written)
        return incident.ref

    def opened(self, conn: Connection, effects: Effects, declaration: Declaration, now: datetime) -> Change:
        """The declared incident opened in this transaction, as an alert opens one (no notices yet)."""
        catalog = self.settings.catalog
        services = self._known("services", declaration.services, catalog.service)
        key = secrets.token_hex(8)
        signals = [
            Signal(
                source="desk",
                fingerprint=f"desk-{key}-{service.id}",
                status="firing",
                starts_at=now,
                ends_at=None,
                labels={
                    "alertname": "Declared",
                    "service": service.id,
                    self.settings.severity.level_label: str(declaration.level),
                },
                annotations={"summary": declaration.title},
                group_key=f"desk:{key}",
                identity="open",
            )
            for service in services
        ]
        correlation = Correlation(self.settings, self.engine.metrics, conn, effects, signals, now)
        for signal in signals:
            correlation.apply(signal)
        (change,) = correlation.changes.values()
        if not change.opened:  # the service's open incident (correlation.service_window)
            raise Conflict(f"{change.incident.ref} is open on these services: post an update to it instead")
        values = {"level_locked": True, "status": declaration.status, "updated_at": now}
        change.incident = repo.update_incident(conn, change.incident, values)
        return change

    def _open(
        self, conn: Connection, effects: Effects, declaration: Declaration, author: Author, now: datetime
    ) -> tuple[int, Incident]:
        change = self.opened(conn, effects, declaration, now)
        repo.add_timeline(conn, change.incident.id, now, "declared", "Declared by hand", author=author.name)
        self._audit(
            conn,
            author,
            "declare",
            change.incident,
            now,
            {
                "services": change.incident.services,
                "level": declaration.level,
                "title": declaration.title,
                "status": declaration.status,
                "technical": declaration.technical,
                "business": declaration.business,
            },
        )
        messages = self._signed(
            author, {"technical": declaration.technical, "business": declaration.business}
        )
        written = self.engine.settle(conn, effects, change, now, messages=messages)
        return written, change.incident

    def update(self, ref: str, change: HumanUpdate, author: Author) -> str:
        """A human update, sent at once to both audiences; it resets the cadence timer."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
            if incident.status == "resolved":
                raise Conflict(f"{ref} is resolved; reopen it or publish a post-mortem instead")
            before_status = incident.status
            values = {**change.values(), "updated_at": now}
            incident = repo.update_incident(conn, incident, values)
            number = self._count(conn, incident.id, "human_update") + 1
            if change.status and change.status != before_status:
                repo.add_timeline(
                    conn, incident.id, now, "status_changed", f"Status: {change.status}", author=author.name
                )
            if change.eta is not None:
                eta = local_time(change.eta, "UTC", "%H:%M UTC on %d %B")
                repo.add_timeline(
                    conn, incident.id, now, "eta_changed", f"Expected resolution by {eta}", author=author.name
                )
            summary = change.technical or "Update from the on-call engineer"
            repo.add_timeline(conn, incident.id, now, "human_update", summary[:500], author=author.name)
            self._audit(
                conn,
                author,
                "update",
                incident,
                now,
                {
                    **{k: v for k, v in values.items() if k != "updated_at"},
                    "eta": change.eta.isoformat() if change.eta else None,
                    "technical": change.technical,
                    "business": change.business,
                    "tenants": list(change.tenants) if change.tenants is not None else None,
                },
            )
            streams = None
            written = 0
            if change.tenants is not None:
                only = self._known("tenants", change.tenants, self.settings.catalog.tenant)
                streams = recipients(self.settings, incident, "update", only=only, shared=False)
            else:  # a human chose to speak: readers still inside a hold hear the first notice now
                written += self.notifier.release(conn, effects, incident, now, all_held=True)
            written += self.notifier.notify(
                conn,
                effects,
                incident,
                "update",
                f"human-{number}",
                now,
                messages=self._signed(author, {"technical": change.technical, "business": change.business}),
                streams=streams,
            )
        log.info("human update ref=%s notices=%d", ref, written)
        self._done(written)
        return ref

    def patch(
        self,
        ref: str,
        level: int | None,
        title: str | None,
        incident_type: str | None,
        services: list[str] | None,
        publish: bool,
        author: Author,
    ) -> str:
        """The on-call engineer sets severity (later alert rules do not override it), title, type
        and services; an incident in triage is published once it has services, or when asked."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
            original = incident
            values: dict[str, Any] = {"updated_at": now}
            if title is not None:
                values["title"] = title
            if services is not None:
                catalog = self.settings.catalog
                found = self._known("services", services, catalog.service)
                known = list(dict.fromkeys(s.id for s in found))  # an alias and its id are one
                repo.assign_services(conn, incident.id, known)
                values.update(services=known, unknown_services=[], incident_type=found[0].incident_type)
                values["tenants"] = [t.id for t in catalog.tenants_for(known)]
                names = ", ".join(known)
                repo.add_timeline(
                    conn,
                    incident.id,
                    now,
                    "services_changed",
                    f"Services set to {names} by hand",
                    author=author.name,
                )
            if incident_type is not None:
                values["incident_type"] = incident_type
            published = incident.status == "triage" and (services is not None or publish)
            if published:
                values["status"] = "investigating"
                repo.add_timeline(
                    conn, incident.id, now, "published", "Published by hand", author=author.name
                )
            before = incident.level
            if level is not None:
                values.update(level=level, level_locked=True)
            incident = repo.update_incident(conn, incident, values)
            changed = {
                key: {"from": getattr(original, key), "to": getattr(incident, key)}
                for key in ("level", "title", "incident_type", "services", "status")
                if getattr(original, key) != getattr(incident, key)
            }
            action = "level_change" if "level" in changed else "change"
            self._audit(conn, author, action, incident, now, changed)
            written = 0
            if published:  # its readers hear of it for the first time
                written += self.notifier.notify(conn, effects, incident, "acknowledgement", "open", now)
            if level is not None and level != before:
                repo.add_timeline(
                    conn,
                    incident.id,
                    now,
                    "level_changed",
                    f"Level set from {before} to {level} by hand",
                    author=author.name,
                )
                open_ = incident.status != "resolved"
                if open_ and level > before:
                    generation = incident.reopen_count
                    written += self.notifier.notify(
                        conn, effects, incident, "update", f"level-{level}-g{generation}", now
                    )
                    for event in escalations(self.settings, level, before, generation, opened=False):
                        written += self.notifier.notify(conn, effects, incident, event.phase, event.key, now)
                if open_:
                    written += self.notifier.rehold(conn, effects, incident, now)
        self._done(written)
        return ref

    def resolve(
        self,
        ref: str,
        technical: str | None,
        business: str | None,
        root_cause: str | None,
        author: Author,
    ) -> str:
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
            if incident.status == "resolved":
                raise Conflict(f"{ref} is already resolved")
            # An action asked of customers during the incident no longer applies.
            values: dict[str, Any] = {
                "status": "resolved",
                "resolved_at": now,
                "updated_at": now,
                "action_required": None,
            }
            if root_cause is not None:
                values["root_cause"] = root_cause
            incident = repo.update_incident(conn, incident, values)
            repo.resolve_alerts(conn, incident.id, "desk", now)  # a declared incident's are ended here
            repo.add_timeline(conn, incident.id, now, "resolved", "Resolved by hand", author=author.name)
            changes = {"technical": technical, "business": business, "root_cause": root_cause}
            self._audit(conn, author, "resolve", incident, now, changes)
            written = self.notifier.notify(
                conn,
                effects,
                incident,
                "resolution",
                f"resolve-g{incident.reopen_count}",
                now,
                messages=self._signed(author, {"technical": technical, "business": business}),
                extra={"resolved_by_hand": True},
            )
        self._done(written)
        return ref

    def postmortem(
        self,
        ref: str,
        technical: str,
        business: str | None,
        preventive_measures: str | None,
        root_cause: str | None,
        author: Author,
    ) -> str:
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
            if incident.status != "resolved":
                raise Conflict(f"{ref} is still open; resolve it before its post-mortem")
            values: dict[str, Any] = {"postmortem_at": now, "updated_at": now}
            if preventive_measures is not None:
                values["preventive_measures"] = preventive_measures
            if root_cause is not None:
                values["root_cause"] = root_cause
            incident = repo.update_incident(conn, incident, values)
            number = self._count(conn, incident.id, "postmortem") + 1
            repo.add_timeline(
                conn, incident.id, now, "postmortem", "Post-mortem published", author=author.name
            )
            changes = {
                "technical": technical,
                "business": business,
                "root_cause": root_cause,
                "preventive_measures": preventive_measures,
            }
            self._audit(conn, author, "postmortem", incident, now, changes)
            audiences = ("technical", "business") if self.settings.policy.business_summary else ("technical",)
            written = self.notifier.notify(
                conn,
                effects,
                incident,
                "postmortem",
                f"postmortem-{number}",
                now,
                audiences=audiences,
                messages=self._signed(author, {"technical": technical, "business": business}),
            )
        self._done(written)
        return ref

    def retry(self, notice_id: int, author: Author) -> int:
        """A dead or failed notice goes out again."""
        now = self.clock.now()
        with writing(self.store) as (conn, _effects):
            row = outbox.one(conn, notice_id)
            if row is None:
                raise NotFound(f"no notice {notice_id}")
            if not outbox.retry(conn, [notice_id], now):
                raise Conflict(f"notice {notice_id} is {row.state}; only dead or failed ones retry")
            incident = repo.get_incident(conn, row.incident_id)
            changes = {"notice": notice_id, "provider": row.provider, "tenant": row.tenant}
            self._audit(conn, author, "retry", incident, now, changes)
        return notice_id

    def _awaiting(self, conn: Connection, notice_id: int) -> tuple[Notice, Incident]:
        """The notice, awaiting approval, and its incident; NotFound or Conflict otherwise."""
        notice = outbox.one(conn, notice_id)
        if notice is None:
            raise NotFound(f"no notice {notice_id}")
        if notice.state != outbox.AWAITING:
            raise Conflict(
                f"notice {notice_id} is {notice.state}; only one awaiting approval is approved or discarded"
            )
        incident = repo.get_incident(conn, notice.incident_id)
        assert incident is not None  # incidents are never deleted
        return notice, incident

    def approve(
        self, notice_id: int, author: Author, subject: str | None = None, body: str | None = None
    ) -> int:
        """A notice awaiting approval goes out, as written or with the approver's subject and body."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            notice, incident = self._awaiting(conn, notice_id)
            text = {
                field: given for field, given in (("subject", subject), ("body", body)) if given is not None
            }
            if not self.notifier.publish(conn, effects, notice, incident, now, text):
                raise Conflict(f"notice {notice_id} was approved or discarded meanwhile")
            edited = {
                field: {"from": getattr(notice, field), "to": given}
                for field, given in text.items()
                if given != getattr(notice, field)
            }
            self._audit(conn, author, "approve", incident, now, {**audit.notice_changes(notice), **edited})
        return notice_id

    def discard(self, notice_id: int, author: Author) -> int:
        """A notice awaiting approval never goes out; later notices of its stream no longer wait for it."""
        now = self.clock.now()
        with writing(self.store) as (conn, _effects):
            notice, incident = self._awaiting(conn, notice_id)
            values = {"state": "discarded", "last_error": f"discarded by {author.name}"}
            if not outbox.update_awaiting(conn, notice_id, values):
                raise Conflict(f"notice {notice_id} was approved or discarded meanwhile")
            self._audit(conn, author, "discard", incident, now, audit.notice_changes(notice))
        self._done(1)
        return notice_id

    def templates_reviewed(self, ref: str, author: Author) -> str:
        """A person has reviewed the templates a resolved incident used, against its feedback."""
        now = self.clock.now()
        with writing(self.store) as (conn, _effects):
            incident = self._incident(conn, ref)
            if incident.status != "resolved":
                raise Conflict(f"{ref} is still open; review its templates once it is resolved")
            if repo.has_timeline(conn, incident.id, "templates_reviewed"):
                raise Conflict(f"{ref}'s templates are already reviewed")
            repo.add_timeline(
                conn, incident.id, now, "templates_reviewed", "Templates reviewed", author=author.name
            )
            self._audit(conn, author, "templates_reviewed", incident, now, {})
        return ref
