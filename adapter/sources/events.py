"""PagerDuty Events API v2 alert events (the `POST /v2/enqueue` body) → one EnqueueEvent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapter.sources.fields import EARLIEST, LATEST, in_range
from adapter.sources.signal import PayloadError
from adapter.text import storable

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
DEDUP_KEY_MAX = 255
SUMMARY_MAX = 1024
INVALID_EVENT = "Event object is invalid"


class EventsError(PayloadError):
    """An invalid event; answer 400 with `response_body()`, as PagerDuty does."""

    def __init__(self, message: str, errors: list[str]):
        super().__init__(message, [{"field": "(body)", "message": error} for error in errors])
        self.errors = errors

    def response_body(self) -> dict[str, Any]:
        return {"status": "invalid event", "message": str(self), "errors": list(self.errors)}


@dataclass(frozen=True)
class EnqueueEvent:
    routing_key: str
    event_action: str  # trigger / acknowledge / resolve
    dedup_key: str | None  # None only on a trigger: the receiver generates one
    summary: str | None
    source: str | None
    severity: str | None  # critical / error / warning / info
    timestamp: datetime | None  # aware
    component: str | None
    group: str | None
    class_: str | None
    custom_details: Any
    links: list[dict[str, str]]  # [{href, text?}]
    client: str | None
    client_url: str | None


def _one_of(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Checker:
    """Collects PagerDuty-style error strings while reading fields."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def string(self, obj: dict[str, Any], key: str, name: str, *, required: bool = False) -> str | None:
        value = obj.get(key)
        if _blank(value):
            if required:
                self.errors.append(f"'{name}' is missing or blank")
            return None
        if not isinstance(value, str):
            self.errors.append(f"'{name}' must be a string")
            return None
        # The one place this parser reads text: every string it returns is storable.
        return storable(value)

    def max_length(self, value: str | None, name: str, limit: int) -> None:
        if value is not None and len(value) > limit:
            self.errors.append(f"Length of '{name}' is too long (maximum is {limit} characters)")

    def routing_key(self, body: dict[str, Any]) -> str:
        key = self.string(body, "routing_key", "routing_key", required=True)
        if key is None:
            return ""
        if len(key) != ROUTING_KEY_LENGTH:
            self.errors.append(
                f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"
            )
        if not (key.isascii() and key.isalnum()):
            self.errors.append("'routing_key' cannot contain non-alphanumeric characters.")
        return key

    def action(self, body: dict[str, Any]) -> str:
        action = self.string(body, "event_action", "event_action", required=True)
        if action is None:
            return ""
        if action not in ACTIONS:
            self.errors.append(
                f"'event_action' is invalid (must be one of the following: {_one_of(ACTIONS)})"
            )
        return action

    def severity(self, payload: dict[str, Any], *, required: bool) -> str | None:
        severity = self.string(payload, "severity", "payload.severity", required=required)
        if severity is not None and severity not in SEVERITIES:
            if required:
                self.errors.append(
                    f"'payload.severity' is invalid (must be one of the following: {_one_of(SEVERITIES)})"
                )
            return None
        return severity

    def timestamp(self, payload: dict[str, Any]) -> datetime | None:
        text = self.string(payload, "timestamp", "payload.timestamp")
        if text is None:
            return None
        try:
            # Python 3.11 reads PagerDuty's "2015-07-17T08:42:58.315+0000" (no colon in the offset).
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            self.errors.append("'payload.timestamp' is invalid (must be an ISO 8601 date and time)")
            return None
        try:
            return in_range(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
        except ValueError:
            self.errors.append(
                f"'payload.timestamp' is invalid (must lie between the years {EARLIEST.year}"
                f" and {LATEST.year - 1})"
            )
            return None

    def links(self, body: dict[str, Any]) -> list[dict[str, str]]:
        raw = body.get("links")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.errors.append("'links' must be an array")
            return []
        links: list[dict[str, str]] = []
        for index, item in enumerate(raw):
            name = f"links[{index}]"
            if not isinstance(item, dict):
                self.errors.append(f"'{name}' must be an object")
                continue
            href = self.string(item, "href", f"{name}.href", required=True)
            text = self.string(item, "text", f"{name}.text")
            if href is not None:
                links.append({"href": href} if text is None else {"href": href, "text": text})
        return links


def parse(body: Any) -> EnqueueEvent:
    """Validate one decoded Events API v2 body; raise EventsError listing every problem."""
    if not isinstance(body, dict):
        raise EventsError(INVALID_EVENT, ["Event must be a JSON object"])
    check = _Checker()
    routing_key = check.routing_key(body)
    action = check.action(body)
    trigger = action == "trigger"
    dedup_key = check.string(body, "dedup_key", "dedup_key", required=action in ("acknowledge", "resolve"))
    check.max_length(dedup_key, "dedup_key", DEDUP_KEY_MAX)

    raw_payload = body.get("payload")
    payload: dict[str, Any] = {}
    if isinstance(raw_payload, dict):
        payload = raw_payload
    elif trigger and raw_payload is None:
        check.errors.append("'payload' is missing or blank")
    elif trigger:
        check.errors.append("'payload' must be an object")
    # Acknowledge and resolve may carry a payload (Alertmanager sends it in full): read, never require.
    strict = check if trigger else _Checker()
    need = trigger and isinstance(raw_payload, dict)
    summary = strict.string(payload, "summary", "payload.summary", required=need)
    strict.max_length(summary, "payload.summary", SUMMARY_MAX)
    source = strict.string(payload, "source", "payload.source", required=need)
    severity = strict.severity(payload, required=need)
    timestamp = strict.timestamp(payload)
    component = strict.string(payload, "component", "payload.component")
    group = strict.string(payload, "group", "payload.group")
    class_ = strict.string(payload, "class", "payload.class")

    links = check.links(body)
    client = check.string(body, "client", "client")
    client_url = check.string(body, "client_url", "client_url")
    if check.errors:
        raise EventsError(INVALID_EVENT, check.errors)
    return EnqueueEvent(
        routing_key=routing_key,
        event_action=action,
        dedup_key=dedup_key,
        summary=summary,
        source=source,
        severity=severity,
        timestamp=timestamp,
        component=component,
        group=group,
        class_=class_,
        custom_details=payload.get("custom_details"),
        links=links,
        client=client,
        client_url=client_url,
    )
