"""Cachet 2.x (/api/v1) and 3.x (/api): one incident per stream, with its components' statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, HttpUrl, field_validator

from adapter.providers.base import DeliveryError, Message, Provider, ProviderOptions

# Incident statuses, the same in both versions (0 is "scheduled" / "unknown").
INCIDENT_STATUS = {"investigating": 1, "identified": 2, "monitoring": 3, "resolved": 4}
FIXED = 4
OPERATIONAL = 1
# Component statuses: 1 operational, 2 performance issues, 3 partial outage, 4 major outage.
ComponentStatus = Literal[1, 2, 3, 4]
DEFAULT_COMPONENT_STATUS: dict[int, ComponentStatus] = {1: 2, 2: 3, 3: 3, 4: 4, 5: 4}
# Cachet 2.x rejects any other occurred_at format.
OCCURRED_AT_FORMAT = "%Y-%m-%d %H:%M"


class CachetOptions(ProviderOptions):
    # https://status.example.com/api/v1 for 2.x, https://status.example.com/api for 3.x.
    api_url: HttpUrl
    token: str = Field(min_length=1)
    version: Literal[2, 3] = 2
    visible: bool = True
    # Subscribers hear about new incidents (2.x `notify`, 3.x `notifications`).
    notify: bool = True
    # Incident level → the status set on the affected component(s) (levels left out keep the default).
    component_status: dict[int, ComponentStatus] = dict(DEFAULT_COMPONENT_STATUS)
    # 2.x reads occurred_at in the time zone of its own settings.
    site_timezone: str = "UTC"

    @field_validator("component_status")
    @classmethod
    def _levels(cls, value: dict[int, ComponentStatus]) -> dict[int, ComponentStatus]:
        unknown = sorted(level for level in value if level not in DEFAULT_COMPONENT_STATUS)
        if unknown:
            raise ValueError(f"levels are 1 to 5, not {unknown}")
        return {**DEFAULT_COMPONENT_STATUS, **value}

    @field_validator("site_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import available_timezones

        if value != "UTC" and value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r}")
        return value


def component_ids(message: Message) -> list[int]:
    """This provider's component ids for the affected services, once each, in order (Cachet's are numbers)."""
    ids: list[int] = []
    for value in message.data.get("components") or []:
        text = str(value).strip()
        if not text.isdigit():
            raise DeliveryError(f"Cachet component ids are numbers, not {value!r}", permanent=True)
        if int(text) not in ids:
            ids.append(int(text))
    return ids


class Cachet(Provider):
    type = "cachet"
    links_in_body = "listed"
    Options = CachetOptions
    options: CachetOptions
    # 3.x allows 300 requests a minute per user by default; 2.x has no limit on API routes.
    rate_limit = (4.0, 10)
    # Each update emails subscribers: a burst of due updates goes out as the newest one.
    coalesce = True

    @property
    def base(self) -> str:
        return str(self.options.api_url).rstrip("/")

    def send(self, message: Message) -> str:
        status = INCIDENT_STATUS.get(message.status)
        if status is None:
            raise DeliveryError(f"{self.name}: no Cachet status for {message.status!r}", permanent=True)
        components = component_ids(message)
        resolved = status == FIXED
        component_status = (
            OPERATIONAL if resolved else self.options.component_status[min(max(message.level, 1), 5)]
        )
        if message.provider_ref is None:
            return self._open(message, status, components, component_status)
        incident = message.provider_ref
        if self.options.version == 2:
            # 2.x: an update's component fields are ignored; only the incident PUT changes the
            # component. PUT first: it can be repeated safely if the update then fails.
            put: dict[str, Any] = {"status": FIXED} if resolved else {}
            if components:
                put.update(component_id=components[0], component_status=component_status)
            if put:
                self._call(
                    "PUT", f"/incidents/{incident}", put, "resolve incident" if resolved else "set component"
                )
        # 3.x: the incident follows its latest update, and fixing it ends its components' impact.
        self._call(
            "POST",
            f"/incidents/{incident}/updates",
            {"status": status, "message": message.body},
            "add update",
        )
        return incident

    def _open(self, message: Message, status: int, components: list[int], component_status: int) -> str:
        body: dict[str, Any] = {
            "name": message.subject[:255],
            "message": message.body,
            "status": status,
            "visible": self.options.visible,
        }
        if self.options.version == 2:
            opened = message.data.get("opened_at")
            moment = datetime.fromisoformat(opened) if opened else datetime.now(UTC)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            body["notify"] = self.options.notify
            body["occurred_at"] = moment.astimezone(ZoneInfo(self.options.site_timezone)).strftime(
                OCCURRED_AT_FORMAT
            )
            # One component per incident in 2.x; id and status go together or not at all.
            if components:
                body.update(component_id=components[0], component_status=component_status)
        else:
            # 3.x defaults both to false: a hidden incident nobody hears about.
            body["notifications"] = self.options.notify
            body["components"] = [{"id": c, "status": component_status} for c in components]
        data = self._call("POST", "/incidents", body, "open incident")
        incident = (data.get("data") or {}).get("id") if isinstance(data, dict) else None
        if incident in (None, ""):
            # The incident may exist now; a retry would open a second one.
            raise DeliveryError(f"{self.name}: Cachet answered without data.id", permanent=True)
        return str(incident)

    def _call(self, method: str, path: str, body: dict[str, Any], action: str) -> Any:
        headers = {"Accept": "application/json", "User-Agent": "dualtrack"}
        if self.options.version == 2:
            headers["X-Cachet-Token"] = self.options.token
        else:
            headers["Authorization"] = f"Bearer {self.options.token}"
        response = self.request(
            method, self.base + path, what=f"cachet {self.name} {action}", json=body, headers=headers
        )
        try:
            return response.json()
        except ValueError:
            return None
