"""PagerDuty Webhooks V3 bodies (one event per request) → one PagerDutyEvent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from adapter.sources.signal import PayloadError

MERGE_RESOLVE_REASON = "merge_resolve_reason"
V2_UNSUPPORTED = "V2 webhooks are not supported; use a V3 subscription"


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

    model_config = ConfigDict(extra="allow")

    id: _Lenient[str] = None
    type: _Lenient[str] = None
    summary: _Lenient[str] = None
    html_url: _Lenient[str] = None


class _ConferenceBridge(BaseModel):
    model_config = ConfigDict(extra="allow")

    conference_number: _Lenient[str | int] = None  # a string in the docs, a number in go-pagerduty
    conference_url: _Lenient[str] = None


class _ResolveReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: _Lenient[str] = None
    incident: _Lenient[_Ref] = None


class _Data(BaseModel):
    """Every data shape at once (incident, incident_note, incident_status_update, service, ping…)."""

    model_config = ConfigDict(extra="allow")

    type: _Lenient[str] = None
    id: _Lenient[str] = None
    html_url: _Lenient[str] = None
    summary: _Lenient[str] = None
    name: _Lenient[str] = None
    number: _Lenient[StrictInt] = None
    status: _Lenient[str] = None
    incident_key: _Lenient[str] = None
    title: _Lenient[str] = None
    urgency: _Lenient[str] = None
    priority: _Lenient[_Ref] = None
    service: _Lenient[_Ref] = None
    conference_bridge: _Lenient[_ConferenceBridge] = None
    resolve_reason: _Lenient[_ResolveReason] = None
    incident: _Lenient[_Ref] = None
    message: _Lenient[str] = None
    content: _Lenient[str] = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=256)
    event_type: str = Field(min_length=1, max_length=256)
    resource_type: str
    occurred_at: AwareDatetime
    agent: _Lenient[_Ref] = None
    client: _Lenient[dict[str, Any]] = None
    data: dict[str, Any]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: _Event


def _details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in item["loc"]), "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def parse(body: Any) -> PagerDutyEvent:
    """Validate one decoded V3 webhook body; only a body that is no V3 envelope raises PayloadError."""
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
        raise PayloadError("body is not a valid PagerDuty V3 webhook", _details(exc)) from None
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
    )
