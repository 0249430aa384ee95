"""What on-call engineers do through the API: updates, severity, resolution, post-mortems."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from adapter.clock import Clock
from adapter.config import Settings
from adapter.engine.effects import writing
from adapter.engine.notify import Notifier
from adapter.engine.planning import recipients
from adapter.rendering import local_time
from adapter.store import Store
from adapter.store import incidents as repo
from adapter.store.records import Incident

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


class HumanActions:
    def __init__(self, settings: Settings, store: Store, notifier: Notifier, clock: Clock, on_commit: Any):
        self.settings = settings
        self.store = store
        self.notifier = notifier
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

    def update(self, ref: str, change: HumanUpdate) -> str:
        """A human update, sent at once to both audiences; it resets the cadence timer."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
            if incident.status == "resolved":
                raise Conflict(f"{ref} is resolved; reopen it or publish a post-mortem instead")
            before_status = incident.status
            values: dict[str, Any] = {
                key: getattr(change, key)
                for key in ("status", "eta", "workaround", "root_cause", "action_required")
                if getattr(change, key) is not None
            }
            values["updated_at"] = now
            incident = repo.update_incident(conn, incident, values)
            number = self._count(conn, incident.id, "human_update") + 1
            if change.status and change.status != before_status:
                repo.add_timeline(conn, incident.id, now, "status_changed", f"Status: {change.status}")
            if change.eta is not None:
                eta = local_time(change.eta, "UTC", "%H:%M UTC on %d %B")
                repo.add_timeline(conn, incident.id, now, "eta_changed", f"Expected resolution by {eta}")
            summary = change.technical or "Update from the on-call engineer"
            repo.add_timeline(conn, incident.id, now, "human_update", summary[:500])
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
                messages={"technical": change.technical, "business": change.business},
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
        services: list[str] | None = None,
        publish: bool = False,
    ) -> str:
        """The on-call engineer sets severity (later alert rules do not override it), title, type
        and services; an incident in triage is published once it has services, or when asked."""
        now = self.clock.now()
        with writing(self.store) as (conn, effects):
            incident = self._incident(conn, ref)
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
                    conn, incident.id, now, "services_changed", f"Services set to {names} by hand"
                )
            if incident_type is not None:
                values["incident_type"] = incident_type
            published = incident.status == "triage" and (services is not None or publish)
            if published:
                values["status"] = "investigating"
                repo.add_timeline(conn, incident.id, now, "published", "Published by hand")
            before = incident.level
            if level is not None:
                values.update(level=level, level_locked=True)
            incident = repo.update_incident(conn, incident, values)
            written = 0
            if published:  # its readers hear of it for the first time
                written += self.notifier.notify(conn, effects, incident, "acknowledgement", "open", now)
            if level is not None and level != before:
                repo.add_timeline(
                    conn, incident.id, now, "level_changed", f"Level set from {before} to {level} by hand"
                )
                open_ = incident.status != "resolved"
                if open_ and level > before:
                    generation = incident.reopen_count
                    written += self.notifier.notify(
                        conn, effects, incident, "update", f"level-{level}-g{generation}", now
                    )
                    if level == 5:
                        written += self.notifier.notify(
                            conn, effects, incident, "executive", f"executive-g{generation}", now
                        )
                if open_:
                    written += self.notifier.rehold(conn, effects, incident, now)
        self._done(written)
        return ref

    def resolve(self, ref: str, technical: str | None, business: str | None, root_cause: str | None) -> str:
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
            repo.add_timeline(conn, incident.id, now, "resolved", "Resolved by hand")
            written = self.notifier.notify(
                conn,
                effects,
                incident,
                "resolution",
                f"resolve-g{incident.reopen_count}",
                now,
                messages={"technical": technical, "business": business},
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
        root_cause: str | None = None,
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
            repo.add_timeline(conn, incident.id, now, "postmortem", "Post-mortem published")
            audiences = ("technical", "business") if self.settings.policy.business_summary else ("technical",)
            written = self.notifier.notify(
                conn,
                effects,
                incident,
                "postmortem",
                f"postmortem-{number}",
                now,
                audiences=audiences,
                messages={"technical": technical, "business": business},
            )
        self._done(written)
        return ref
