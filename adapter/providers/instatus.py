"""Instatus: one incident per stream, opened, updated and resolved with its components' statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, HttpUrl, field_validator

from adapter.providers.base import DeliveryError, Message, Provider, ProviderOptions

ComponentStatus = Literal[
    "OPERATIONAL", "UNDERMAINTENANCE", "DEGRADEDPERFORMANCE", "PARTIALOUTAGE", "MINOROUTAGE", "MAJOROUTAGE"
]
DEFAULT_COMPONENT_STATUS: dict[int, ComponentStatus] = {
    1: "DEGRADEDPERFORMANCE",
    2: "PARTIALOUTAGE",
    3: "PARTIALOUTAGE",
    4: "MAJOROUTAGE",
    5: "MAJOROUTAGE",
}
INCIDENT_STATUS = {
    "investigating": "INVESTIGATING",
    "identified": "IDENTIFIED",
    "monitoring": "MONITORING",
    "resolved": "RESOLVED",
}


class InstatusOptions(ProviderOptions):
    page_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    api_key: str = Field(min_length=1)
    api_url: HttpUrl = HttpUrl("https://api.instatus.com")
    # Email/SMS/webhook subscribers hear about each create and update.
    notify: bool = True
    # Incident level → the status set on the affected components (levels left out keep the default).
    component_status: dict[int, ComponentStatus] = dict(DEFAULT_COMPONENT_STATUS)

    @field_validator("component_status")
    @classmethod
    def _levels(cls, value: dict[int, ComponentStatus]) -> dict[int, ComponentStatus]:
        unknown = sorted(level for level in value if level not in DEFAULT_COMPONENT_STATUS)
        if unknown:
            raise ValueError(f"levels are 1 to 5, not {unknown}")
        return {**DEFAULT_COMPONENT_STATUS, **value}


def component_ids(message: Message) -> list[str]:
    """This provider's component ids for the affected services, once each, in order."""
    return list(dict.fromkeys(str(c) for c in message.data.get("components") or [] if c))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Instatus(Provider):
    type = "instatus"
    links_in_body = "listed"
    Options = InstatusOptions
    options: InstatusOptions
    # Rate limits are not documented; stay well clear of whatever they are.
    rate_limit = (2.0, 5)
    # Each update emails subscribers: a burst of due updates goes out as the newest one.
    coalesce = True

    @property
    def base(self) -> str:
        return f"{str(self.options.api_url).rstrip('/')}/v1/{self.options.page_id}"

    def send(self, message: Message) -> str:
        components = component_ids(message)
        resolved = message.status == "resolved"
        status = INCIDENT_STATUS.get(message.status)
        if status is None:
            raise DeliveryError(f"{self.name}: no Instatus status for {message.status!r}", permanent=True)
        component_status = (
            "OPERATIONAL" if resolved else self.options.component_status[min(max(message.level, 1), 5)]
        )
        body: dict[str, Any] = {
            "message": message.body,
            "components": components,
            "status": status,
            "notify": self.options.notify,
            "statuses": [{"id": c, "status": component_status} for c in components],
        }
        if message.provider_ref is None:
            opened = message.data.get("opened_at")
            started = datetime.fromisoformat(opened) if opened else datetime.now(UTC)
            body.update(name=message.subject, started=iso(started), shouldPublish=True)
            data = self._post(f"{self.base}/incidents", body, "open incident")
            incident = data.get("id") if isinstance(data, dict) else None
            if not incident:
                # The incident may exist now; a retry would open a second one.
                raise DeliveryError(f"{self.name}: Instatus answered without an incident id", permanent=True)
            return str(incident)
        body["started"] = iso(datetime.now(UTC))
        self._post(f"{self.base}/incidents/{message.provider_ref}/incident-updates", body, "add update")
        return message.provider_ref

    def _post(self, url: str, body: dict[str, Any], action: str) -> Any:
        response = self.request(
            "POST",
            url,
            what=f"instatus {self.name} {action}",
            json=body,
            headers={
                "Authorization": f"Bearer {self.options.api_key}",
                "Accept": "application/json",
                "User-Agent": "dualtrack",
            },
        )
        try:
            return response.json()
        except ValueError:
            return None
