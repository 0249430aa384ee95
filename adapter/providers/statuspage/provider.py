"""The Statuspage provider: one incident per stream, created, updated, resolved, given its post-mortem."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from adapter.config import ProviderSettings
from adapter.providers.base import DeliveryError, Message, Provider, ProviderOptions, RequestHooks
from adapter.providers.statuspage import components
from adapter.providers.statuspage.components import ImpactRow, component_ids, dualtrack_meta, statuses
from adapter.providers.statuspage.transport import RATE_LIMIT, Api

STATUSES = ("investigating", "identified", "monitoring", "resolved")
NAME_MAX = 255
BODY_MAX = 25_000
# Returned for notices that need no request and have no Statuspage incident to name: never an id.
SKIPPED = "skipped:"


class StatuspageOptions(ProviderOptions):
    page_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    api_key: SecretStr = Field(min_length=1)
    api_url: str = "https://api.statuspage.io/v1"
    # False: incidents and updates appear on the page without e-mailing its subscribers.
    deliver_notifications: bool = True
    # Level → incident impact and the status dualtrack gives the affected components.
    impact: Annotated[dict[int, ImpactRow], BeforeValidator(components.merge_impact)] = Field(
        default_factory=dict, validate_default=True
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL such as https://api.statuspage.io/v1")
        return value.rstrip("/")

    @field_validator("impact")
    @classmethod
    def _levels(cls, value: dict[int, ImpactRow]) -> dict[int, ImpactRow]:
        for level in value:
            if not 1 <= level <= 5:
                raise ValueError(f"level must be 1 to 5, got {level}")
        return value


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Statuspage(Provider):
    """One Statuspage incident per stream, created by the stream's first notice, updated by the rest.

    Ownership lives in the incident's metadata (see components.dualtrack_meta): incidents without
    it are never changed. Phases: acknowledgement/update/resolution create, update and resolve;
    postmortem saves and publishes the incident's post-mortem; others (sla_followup, executive, ...)
    send nothing, except that a resolution coalesced into them is still applied.
    """

    type = "statuspage"
    links_in_body = "listed"
    Options = StatuspageOptions
    options: StatuspageOptions
    rate_limit = RATE_LIMIT
    coalesce = True

    def __init__(self, settings: ProviderSettings, hooks: RequestHooks | None = None):
        super().__init__(settings, hooks)
        options = self.options
        self.api = Api(
            self.name, options.api_url, options.page_id, options.api_key.get_secret_value(), self.request
        )

    @classmethod
    def check(cls, settings: ProviderSettings, options: ProviderOptions) -> list[tuple[str, str]]:
        problems = super().check(settings, options)
        if settings.audience == "all":
            # One stream carries both audiences' notices: they would share, and fight over, one incident.
            problems.append(("audience", "a Statuspage page serves one audience: technical or business"))
        return problems

    def stream(self, message: Message) -> str:
        return f"{self.name}/{message.audience}/{message.tenant or '-'}"

    def impact(self, level: int) -> ImpactRow:
        return self.options.impact[min(5, max(1, level))]

    def status(self, message: Message) -> str:
        if message.phase == "resolution":
            return "resolved"
        return message.status if message.status in STATUSES else "investigating"

    def unresolved(self) -> list[dict[str, Any]]:
        return self.api.listing("incidents", "unresolved")

    def incident(self, ref: str) -> dict[str, Any]:
        found = self.api.call("GET", "incidents", ref)
        if not isinstance(found, dict):
            raise DeliveryError(f"statuspage {self.name}: GET /incidents/{ref}: expected an incident")
        return found

    def _owned(self, incident: dict[str, Any], ref: str) -> dict[str, Any]:
        meta = dualtrack_meta(incident)
        if meta is None:
            raise DeliveryError(
                f"statuspage {self.name}: incident {ref} was not created by dualtrack; left alone",
                permanent=True,
            )
        return meta

    # -- send ----------------------------------------------------------------------------------------

    def send(self, message: Message) -> str:
        ref = message.provider_ref
        if ref is not None and ref.startswith(SKIPPED):
            ref = None
        resolved = self.status(message) == "resolved"
        if message.phase in ("acknowledgement", "update", "resolution"):
            if ref is None:
                return self.open(message)
            return self.resolve(ref, message) if resolved else self.update(ref, message)
        if ref is None:
            # Nothing to attach it to at Statuspage (the stream never created an incident).
            return f"{SKIPPED}{message.phase}/{message.notice_id}"
        if message.phase == "postmortem":
            return self.postmortem(ref, message)
        if resolved:
            self.ensure_resolved(ref, message)
        return ref

    def open(self, message: Message) -> str:
        """Create the stream's incident, or find the one an earlier attempt or notice created."""
        unresolved = self.unresolved()
        stream = self.stream(message)
        for incident in unresolved:
            meta = dualtrack_meta(incident)
            if meta is None or meta.get("ref") != message.incident_ref:
                continue
            if meta.get("audience") != message.audience or meta.get("stream") != stream:
                continue
            ref = str(incident["id"])
            if meta.get("notice") == str(message.notice_id):
                return ref  # this notice created it; the answer was lost
            # An earlier notice of the stream created it; its delivery is not recorded yet.
            if self.status(message) == "resolved":
                return self.resolve(ref, message, unresolved=unresolved)
            return self.update(ref, message, incident=incident, unresolved=unresolved)
        return self.create(message, unresolved)

    def create(self, message: Message, unresolved: list[dict[str, Any]]) -> str:
        status = self.status(message)
        row = self.impact(message.level)
        affected = component_ids(message)
        meta: dict[str, Any] = {
            "ref": message.incident_ref,
            "audience": message.audience,
            "stream": self.stream(message),
            "notice": str(message.notice_id),
        }
        incident: dict[str, Any] = {
            "name": clip(message.subject, NAME_MAX),
            "status": status,
            "impact_override": row.impact,
            "deliver_notifications": self.options.deliver_notifications,
        }
        if message.body:
            incident["body"] = clip(message.body, BODY_MAX)
        if affected:
            incident["component_ids"] = affected
            if status != "resolved":
                meta["before"] = components.before(self.api, affected, unresolved, exclude=None)
                meta["set"] = {c: row.component_status for c in affected}
                incident["components"] = dict(meta["set"])
        incident["metadata"] = {"dualtrack": meta}
        created = self.api.call("POST", "incidents", body={"incident": incident})
        if not isinstance(created, dict) or not created.get("id"):
            raise DeliveryError(f"statuspage {self.name}: the created incident has no id")
        return str(created["id"])

    def update(
        self,
        ref: str,
        message: Message,
        *,
        incident: dict[str, Any] | None = None,
        unresolved: list[dict[str, Any]] | None = None,
    ) -> str:
        if incident is None:
            incident = self.incident(ref)
        meta = self._owned(incident, ref)
        row = self.impact(message.level)
        affected = component_ids(message)
        # Resolved at Statuspage and open again here (a reopen): what is there now is the "before".
        reopened = incident.get("status") == "resolved"
        before = {} if reopened else statuses(meta.get("before"))
        missing = [c for c in affected if c not in before]
        if missing:
            listing = self.unresolved() if unresolved is None else unresolved
            before.update(components.before(self.api, missing, listing, exclude=ref))
        setting = {c: row.component_status for c in affected}
        meta.update(before=before, set={**({} if reopened else statuses(meta.get("set"))), **setting})
        found = incident.get("metadata")
        metadata: dict[str, Any] = found if isinstance(found, dict) else {}
        patch: dict[str, Any] = {
            "status": self.status(message),
            "impact_override": row.impact,
            "deliver_notifications": self.options.deliver_notifications,
            "metadata": {**metadata, "dualtrack": meta},
        }
        if message.body:
            patch["body"] = clip(message.body, BODY_MAX)
        if affected:
            patch["components"] = setting
            patch["component_ids"] = affected
        self.api.call("PATCH", "incidents", ref, body={"incident": patch})
        return ref

    def resolve(self, ref: str, message: Message, *, unresolved: list[dict[str, Any]] | None = None) -> str:
        """Resolve, and give components back the status they had unless something else holds them."""
        unresolved = self.unresolved() if unresolved is None else unresolved
        incident = next((i for i in unresolved if str(i.get("id")) == ref), None)
        if incident is None:
            incident = self.incident(ref)
            self._owned(incident, ref)
            if incident.get("status") == "resolved":
                return ref  # resolved already: an earlier attempt whose answer was lost, or a person
        meta = self._owned(incident, ref)
        restore = components.to_restore(ref, incident, meta, unresolved)
        patch: dict[str, Any] = {
            "status": "resolved",
            "deliver_notifications": self.options.deliver_notifications,
        }
        if message.body:
            patch["body"] = clip(message.body, BODY_MAX)
        if restore:
            patch["components"] = restore
        affected = list(dict.fromkeys([*component_ids(message), *statuses(meta.get("before"))]))
        if affected:
            patch["component_ids"] = affected
        self.api.call("PATCH", "incidents", ref, body={"incident": patch})
        return ref

    def ensure_resolved(self, ref: str, message: Message) -> None:
        """A resolution coalesced into a later notice is applied before it."""
        incident = self.incident(ref)
        if dualtrack_meta(incident) is not None and incident.get("status") != "resolved":
            self.resolve(ref, dataclasses.replace(message, body=""))

    def postmortem(self, ref: str, message: Message) -> str:
        """Save the post-mortem as the incident's draft and publish it."""
        incident = self.incident(ref)
        self._owned(incident, ref)
        if incident.get("status") != "resolved":
            self.resolve(ref, dataclasses.replace(message, body=""))
        body = clip(message.body, BODY_MAX)
        if incident.get("postmortem_published_at") and incident.get("postmortem_body") == body:
            return ref  # published by an earlier attempt
        self.api.call("PUT", "incidents", ref, "postmortem", body={"postmortem": {"body_draft": body}})
        publish = {"notify_subscribers": self.options.deliver_notifications, "notify_twitter": False}
        self.api.call("PUT", "incidents", ref, "postmortem", "publish", body={"postmortem": publish})
        return ref
