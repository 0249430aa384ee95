"""Atlassian Statuspage: one incident per stream; components set, then restored to what they were."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from adapter.config import ProviderSettings
from adapter.providers.base import DeliveryError, Message, Provider, ProviderOptions

STATUSES = ("investigating", "identified", "monitoring", "resolved")
NAME_MAX = 255
BODY_MAX = 25_000
PER_PAGE = 100
# Statuspage allows 1 100 components per page; incident lists are read at most this many pages deep.
MAX_PAGES = 11
# Returned for notices that need no request and have no Statuspage incident to name: never an id.
SKIPPED = "skipped:"

ComponentStatus = Literal[
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
]


class ImpactRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    impact: Literal["none", "minor", "major", "critical"]
    component_status: ComponentStatus


DEFAULT_IMPACT: dict[int, dict[str, str]] = {
    1: {"impact": "minor", "component_status": "degraded_performance"},
    2: {"impact": "minor", "component_status": "partial_outage"},
    3: {"impact": "major", "component_status": "partial_outage"},
    4: {"impact": "major", "component_status": "major_outage"},
    5: {"impact": "critical", "component_status": "major_outage"},
}


def _merge_impact(value: Any) -> Any:
    """Levels left out keep their default row; a given row replaces the default one."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value
    merged: dict[Any, Any] = dict(DEFAULT_IMPACT)
    for key, row in value.items():
        merged[int(key) if isinstance(key, str) and key.isdigit() else key] = row
    return merged


class StatuspageOptions(ProviderOptions):
    page_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    api_key: SecretStr = Field(min_length=1)
    api_url: str = "https://api.statuspage.io/v1"
    # False: incidents and updates appear on the page without e-mailing its subscribers.
    deliver_notifications: bool = True
    # Level → incident impact and the status dualtrack gives the affected components.
    impact: Annotated[dict[int, ImpactRow], BeforeValidator(_merge_impact)] = Field(
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


def dualtrack_meta(incident: dict[str, Any]) -> dict[str, Any] | None:
    """dualtrack's part of an incident's metadata; None for an incident dualtrack did not create."""
    metadata = incident.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("dualtrack"), dict):
        return dict(metadata["dualtrack"])
    return None


def _statuses(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class Statuspage(Provider):
    """One Statuspage incident per stream, created by the stream's first notice, updated by the rest.

    Ownership lives in the incident's metadata (`metadata.dualtrack`: ref, audience, stream, the
    notice that created it, component statuses `before` dualtrack changed them and the ones it `set`).
    Incidents without it are never changed. Phases: acknowledgement/update/resolution create, update
    and resolve; postmortem saves and publishes the incident's post-mortem; others (sla_followup,
    executive, ...) send nothing, except that a resolution coalesced into them is still applied.
    """

    type = "statuspage"
    Options = StatuspageOptions
    options: StatuspageOptions
    rate_limit = (1.0, 1)
    coalesce = True

    @classmethod
    def check(cls, settings: ProviderSettings, options: ProviderOptions) -> list[tuple[str, str]]:
        problems = super().check(settings, options)
        if settings.audience == "all":
            # One stream carries both audiences' notices: they would share, and fight over, one incident.
            problems.append(("audience", "a Statuspage page serves one audience: technical or business"))
        return problems

    def stream(self, message: Message) -> str:
        return f"{self.name}/{message.audience}/{message.tenant or '-'}"

    # -- HTTP ------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        *path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API request under /pages/{page_id}; the decoded JSON answer (None when empty)."""
        url = "/".join((self.options.api_url, "pages", self.options.page_id, *path))
        what = f"statuspage {self.name}: {method} /{'/'.join(path)}"
        key = self.options.api_key.get_secret_value()
        headers = {"Authorization": f"OAuth {key}", "Accept": "application/json", "User-Agent": "dualtrack"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        response = self.request(method, url, what=what, headers=headers, params=params, data=data)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise DeliveryError(f"{what}: the answer is not JSON") from None

    def _pages(self, *path: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a 1-based `page`/`per_page` list."""
        rows: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self.call("GET", *path, params={**params, "page": page, "per_page": PER_PAGE})
            if not isinstance(batch, list):
                raise DeliveryError(f"statuspage {self.name}: GET /{'/'.join(path)}: expected a list")
            rows.extend(r for r in batch if isinstance(r, dict))
            if len(batch) < PER_PAGE:
                break
        return rows

    def unresolved(self) -> list[dict[str, Any]]:
        return self._pages("incidents", "unresolved")

    def component_statuses(self, wanted: list[str]) -> dict[str, str]:
        """Current status of these components (paginated list: the unpaginated one is 1/min)."""
        if not wanted:
            return {}
        found: dict[str, str] = {}
        for page in range(1, MAX_PAGES + 1):
            batch = self.call("GET", "components", params={"page": page, "per_page": PER_PAGE}) or []
            for component in batch:
                if isinstance(component, dict) and component.get("id") in wanted:
                    found[str(component["id"])] = str(component.get("status") or "")
            if len(batch) < PER_PAGE or all(c in found for c in wanted):
                break
        return found

    # -- what to send ------------------------------------------------------------------------------

    def impact(self, level: int) -> ImpactRow:
        return self.options.impact[min(5, max(1, level))]

    def status(self, message: Message) -> str:
        if message.phase == "resolution":
            return "resolved"
        return message.status if message.status in STATUSES else "investigating"

    @staticmethod
    def components(message: Message) -> list[str]:
        return list(dict.fromkeys(str(c) for c in message.data.get("components") or []))

    def _owned(self, incident: dict[str, Any], ref: str) -> dict[str, Any]:
        meta = dualtrack_meta(incident)
        if meta is None:
            raise DeliveryError(
                f"statuspage {self.name}: incident {ref} was not created by dualtrack; left alone",
                permanent=True,
            )
        return meta

    def before(
        self, wanted: list[str], unresolved: list[dict[str, Any]], exclude: str | None
    ) -> dict[str, str]:
        """The statuses these components had before dualtrack changed them.

        A component another open dualtrack incident already changed had, before dualtrack, what
        that incident recorded; the others have their current status.
        """
        known: dict[str, str] = {}
        for incident in unresolved:
            meta = dualtrack_meta(incident)
            if meta is not None and incident.get("id") != exclude:
                for component, status in _statuses(meta.get("before")).items():
                    known.setdefault(component, status)
        found = {c: known[c] for c in wanted if c in known}
        found.update(self.component_statuses([c for c in wanted if c not in known]))
        return found

    @staticmethod
    def held(unresolved: list[dict[str, Any]], exclude: str) -> set[str]:
        """Components another open incident (dualtrack's or anyone's) still holds."""
        held: set[str] = set()
        for incident in unresolved:
            if incident.get("id") == exclude:
                continue
            meta = dualtrack_meta(incident)
            if meta is not None:
                held.update(_statuses(meta.get("before")))
            for component in incident.get("components") or []:
                if isinstance(component, dict) and component.get("id"):
                    held.add(str(component["id"]))
        return held

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
        components = self.components(message)
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
        if components:
            incident["component_ids"] = components
            if status != "resolved":
                meta["before"] = self.before(components, unresolved, exclude=None)
                meta["set"] = {c: row.component_status for c in components}
                incident["components"] = dict(meta["set"])
        incident["metadata"] = {"dualtrack": meta}
        created = self.call("POST", "incidents", body={"incident": incident})
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
            incident = self.call("GET", "incidents", ref)
            assert isinstance(incident, dict)
        meta = self._owned(incident, ref)
        row = self.impact(message.level)
        components = self.components(message)
        # Resolved at Statuspage and open again here (a reopen): what is there now is the "before".
        reopened = incident.get("status") == "resolved"
        before = {} if reopened else _statuses(meta.get("before"))
        missing = [c for c in components if c not in before]
        if missing:
            listing = self.unresolved() if unresolved is None else unresolved
            before.update(self.before(missing, listing, exclude=ref))
        setting = {c: row.component_status for c in components}
        meta.update(before=before, set={**({} if reopened else _statuses(meta.get("set"))), **setting})
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
        if components:
            patch["components"] = setting
            patch["component_ids"] = components
        self.call("PATCH", "incidents", ref, body={"incident": patch})
        return ref

    def resolve(self, ref: str, message: Message, *, unresolved: list[dict[str, Any]] | None = None) -> str:
        """Resolve, and give components back the status they had unless something else holds them."""
        unresolved = self.unresolved() if unresolved is None else unresolved
        incident = next((i for i in unresolved if str(i.get("id")) == ref), None)
        if incident is None:
            incident = self.call("GET", "incidents", ref)
            assert isinstance(incident, dict)
            self._owned(incident, ref)
            if incident.get("status") == "resolved":
                return ref  # resolved already: an earlier attempt whose answer was lost, or a person
        meta = self._owned(incident, ref)
        before, setting = _statuses(meta.get("before")), _statuses(meta.get("set"))
        held = self.held(unresolved, exclude=ref)
        current = {
            str(c["id"]): str(c.get("status") or "")
            for c in incident.get("components") or []
            if isinstance(c, dict) and c.get("id")
        }
        restore: dict[str, str] = {}
        for component, status in before.items():
            if not status or component in held:
                continue
            if component in current and component in setting and current[component] != setting[component]:
                continue  # changed since by someone else: theirs now
            restore[component] = status
        patch: dict[str, Any] = {
            "status": "resolved",
            "deliver_notifications": self.options.deliver_notifications,
        }
        if message.body:
            patch["body"] = clip(message.body, BODY_MAX)
        if restore:
            patch["components"] = restore
        affected = list(dict.fromkeys([*self.components(message), *before]))
        if affected:
            patch["component_ids"] = affected
        self.call("PATCH", "incidents", ref, body={"incident": patch})
        return ref

    def ensure_resolved(self, ref: str, message: Message) -> None:
        """A resolution coalesced into a later notice is applied before it."""
        incident = self.call("GET", "incidents", ref)
        assert isinstance(incident, dict)
        if dualtrack_meta(incident) is not None and incident.get("status") != "resolved":
            self.resolve(ref, dataclasses.replace(message, body=""))

    def postmortem(self, ref: str, message: Message) -> str:
        """Save the post-mortem as the incident's draft and publish it."""
        incident = self.call("GET", "incidents", ref)
        assert isinstance(incident, dict)
        self._owned(incident, ref)
        if incident.get("status") != "resolved":
            self.resolve(ref, dataclasses.replace(message, body=""))
        body = clip(message.body, BODY_MAX)
        if incident.get("postmortem_published_at") and incident.get("postmortem_body") == body:
            return ref  # published by an earlier attempt
        self.call("PUT", "incidents", ref, "postmortem", body={"postmortem": {"body_draft": body}})
        publish = {"notify_subscribers": self.options.deliver_notifications, "notify_twitter": False}
        self.call("PUT", "incidents", ref, "postmortem", "publish", body={"postmortem": publish})
        return ref
