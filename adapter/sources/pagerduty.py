"""PagerDuty Webhooks V3 bodies (one event per request) → one PagerDutyEvent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from adapter.sources.fields import FINGERPRINT_MAX, INBOUND_KEY_MAX, Text, Time, error_details
from adapter.sources.signal import PayloadError

MERGE_RESOLVE_REASON = "merge_resolve_reason"
V2_UNSUPPORTED = "V2 webhooks are not supported; use a V3 subscription"
# PagerDuty's event ids are 26-character ULIDs; this bound keeps the notice keys made of one
# (notices.dedupe_key, 255 characters with provider and tenant) within their column.
EVENT_ID_MAX = 64
# The alert's fingerprint is "pd-" + the incident id.
INCIDENT_ID_MAX = FINGERPRINT_MAX - len("pd-")


@dataclass(frozen=True)
class PagerDutyEvent:
    event_id: str
    event_type: str  # e.g. "incident.triggered", "pagey.ping"
    occurred_at: datetime  # aware
    incident_id: str | None  # data.id for data.type "incident"; data.incident.id for notes, updates…
    incident_number: int | None
    incident_key: str | None  # data.incident_key (the dedup key)
    title: str | None
    status: str | None  # triggered / acknowledged / resolved
    urgency: str | None  # high / low
    priority: str | None  # data.priority.summary ("P1".."P5"); None when no priority is set
    service_id: str | None
    service_name: str | None
    html_url: str | None
    merged_into: str | None  # the surviving incident when resolved by a merge
    message: str | None  # status update `message` or note `content`
    agent: str | None  # event.agent.summary
    webhook_id: str | None = None  # the X-Webhook-Id header: the same for every retry of a delivery

    @property
    def is_ping(self) -> bool:
        return self.event_type == "pagey.ping"


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


_T = TypeVar("_T")
# A data field PagerDuty may omit, null, or reshape: an unexpected value reads as None, never a 4xx.
_Lenient = Annotated[_T | None, WrapValidator(_or_none)]


class _Ref(BaseModel):
    """A PagerDuty reference: service_reference, priority_reference, incident_reference, …"""

    model_config = ConfigDict(extra="ignore")

    id: _Lenient[Text] = None
    type: _Lenient[Text] = None
    summary: _Lenient[Text] = None
    html_url: _Lenient[Text] = None


class _ConferenceBridge(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conference_number: _Lenient[Text | int] = None  # a string in the docs, a number in go-pagerduty
    conference_url: _Lenient[Text] = None


class _ResolveReason(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: _Lenient[Text] = None
    incident: _Lenient[_Ref] = None


class _Data(BaseModel):
    """Every data shape at once (incident, incident_note, incident_status_update, service, ping…)."""

    model_config = ConfigDict(extra="ignore")

    type: _Lenient[Text] = None
    id: _Lenient[Text] = None
    html_url: _Lenient[Text] = None
    summary: _Lenient[Text] = None
    name: _Lenient[Text] = None
    number: _Lenient[StrictInt] = None
    status: _Lenient[Text] = None
    incident_key: _Lenient[Text] = None
    title: _Lenient[Text] = None
    urgency: _Lenient[Text] = None
    priority: _Lenient[_Ref] = None
    service: _Lenient[_Ref] = None
    conference_bridge: _Lenient[_ConferenceBridge] = None
    resolve_reason: _Lenient[_ResolveReason] = None
    incident: _Lenient[_Ref] = None
    message: _Lenient[Text] = None
    content: _Lenient[Text] = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[Text, Field(min_length=1, max_length=EVENT_ID_MAX)]
    event_type: Annotated[Text, Field(min_length=1, max_length=256)]
    resource_type: Text
    occurred_at: Time
    agent: _Lenient[_Ref] = None
    client: _Lenient[dict[str, Any]] = None
    data: dict[str, Any]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: _Event


_WEBHOOK_ID = TypeAdapter(Annotated[Text, Field(max_length=INBOUND_KEY_MAX)])


def _too_long(field: str, limit: int) -> PayloadError:
    message = f"String should have at most {limit} characters"
    return PayloadError("body is not a valid PagerDuty V3 webhook", [{"field": field, "message": message}])


def parse(body: Any, webhook_id: str | None = None) -> PagerDutyEvent:
    """Validate one decoded V3 webhook body and its X-Webhook-Id header; only a body that is no
    V3 envelope (or ids too long to store) raises PayloadError."""
    if not isinstance(body, dict):
        raise PayloadError(
            "body is not a PagerDuty V3 webhook",
            [{"field": "(body)", "message": "expected a JSON object"}],
        )
    if "messages" in body and "event" not in body:
        raise PayloadError(V2_UNSUPPORTED, [{"field": "messages", "message": V2_UNSUPPORTED}])
    try:
        event = _Envelope.model_validate(body).event
    except ValidationError as exc:
        raise PayloadError("body is not a valid PagerDuty V3 webhook", error_details(exc)) from None
    try:
        webhook_id = _WEBHOOK_ID.validate_python(webhook_id) if webhook_id is not None else None
    except ValidationError as exc:
        details = error_details(exc, "X-Webhook-Id")
        raise PayloadError("the X-Webhook-Id header is not valid", details) from None
    data = _Data.model_validate(event.data)
    incident = _Data() if data.type != "incident" else data
    service = data.service if data.type == "incident" else None
    merged_into = None
    reason = incident.resolve_reason
    if reason is not None and reason.type == MERGE_RESOLVE_REASON and reason.incident is not None:
        merged_into = reason.incident.id
    if data.type == "incident":
        incident_id, html_url = data.id, data.html_url
    elif data.incident is not None:
        incident_id, html_url = data.incident.id, data.incident.html_url
    else:
        incident_id, html_url = None, None
    if incident_id is not None and len(incident_id) > INCIDENT_ID_MAX:
        field = "event.data.id" if data.type == "incident" else "event.data.incident.id"
        raise _too_long(field, INCIDENT_ID_MAX)
    service_id = service.id if service is not None else None
    service_name = service.summary if service is not None else None
    if data.type == "service":
        service_id, service_name, html_url = data.id, data.summary or data.name, data.html_url
    return PagerDutyEvent(
        event_id=event.id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        incident_id=incident_id,
        incident_number=incident.number,
        incident_key=incident.incident_key,
        title=incident.title,
        status=incident.status,
        urgency=incident.urgency,
        priority=incident.priority.summary if incident.priority is not None else None,
        service_id=service_id,
        service_name=service_name,
        html_url=html_url,
        merged_into=merged_into,
        message=data.message if data.message is not None else data.content,
        agent=event.agent.summary if event.agent is not None else None,
        webhook_id=webhook_id,
    )
