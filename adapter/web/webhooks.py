"""Inbound webhooks: one view for every source, each handing its payload to the engine; 202 once committed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from adapter.sources import SOURCES, Source
from adapter.sources.events import INVALID_EVENT, EnqueueEvent
from adapter.sources.pagerduty import PagerDutyEvent
from adapter.sources.signal import Batch, PayloadError
from adapter.web.errors import EVENTS_API_PATH, ApiError, invalid_payload, read_json
from adapter.web.services import Services, services

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


@dataclass(frozen=True)
class Receiver:
    """Where one source's webhook listens, and the one place its payload meets the engine."""

    path: str
    methods: tuple[str, ...]
    # Hands the payload to the engine, counts and logs what came of it, and answers.
    deliver: Callable[[Services, Any], ResponseReturnValue]
    # The batch the engine would open incidents from, for `preview` (API and CLI): nothing stored.
    preview: Callable[[Services, Any], Batch]


def _deliver_alertmanager(svc: Services, batch: Batch) -> ResponseReturnValue:
    source = batch.source
    started = time.monotonic()
    result = svc.engine.ingest(batch)
    svc.metrics.ingest_seconds.labels(source).observe(time.monotonic() - started)
    svc.metrics.webhooks.labels(source, "test" if batch.test else "accepted").inc()
    if batch.rejected:
        svc.metrics.signals.labels(source, "rejected").inc(batch.rejected_alerts)
    log.info(
        "webhook source=%s outcome=accepted alerts=%d rejected=%d duplicates=%d incidents=%s notices=%d",
        source,
        len(batch.signals),
        batch.rejected_alerts,
        result.duplicates,
        ",".join(result.refs) or "-",
        result.notices,
    )
    answer: dict[str, Any] = {"incidents": result.refs}
    if batch.rejected:
        # Stored what was valid: a 2xx, or Alertmanager would retry the good alerts with the bad.
        answer["rejected"] = batch.rejected
    return jsonify(answer), 202


def _deliver_pagerduty(svc: Services, event: PagerDutyEvent) -> ResponseReturnValue:
    intake = svc.engine.ingest(event, webhook_id=event.webhook_id)
    svc.metrics.webhooks.labels("pagerduty", intake.outcome).inc()
    log.info(
        "webhook source=pagerduty event=%s type=%s outcome=%s incidents=%s",
        event.event_id,
        event.event_type,
        intake.outcome,
        ",".join(intake.refs) or "-",
    )
    return jsonify({"incidents": intake.refs, "outcome": intake.outcome}), 202


def _preview_pagerduty(svc: Services, event: PagerDutyEvent) -> Batch:
    signals = [svc.pagerduty.signal(event, "firing")] if event.incident_id else []
    return Batch("pagerduty", event.incident_key or "", signals)


def _deliver_events(svc: Services, event: EnqueueEvent) -> ResponseReturnValue:
    intake = svc.engine.ingest(event)
    svc.metrics.webhooks.labels("events", intake.outcome).inc()
    log.info(
        "webhook source=events action=%s outcome=%s incidents=%s",
        event.event_action,
        intake.outcome,
        ",".join(intake.refs) or "-",
    )
    return jsonify({"status": "success", "message": "Event processed", "dedup_key": intake.dedup_key}), 202


def _preview_events(svc: Services, event: EnqueueEvent) -> Batch:
    signal = svc.pagerduty.events_signal(event, event.dedup_key or "preview", svc.clock.now())
    return Batch("events", signal.group_key, [signal])


RECEIVERS: dict[str, Receiver] = {
    "alertmanager": Receiver(
        "/webhooks/alertmanager", ("POST", "PUT"), _deliver_alertmanager, lambda _svc, batch: batch
    ),
    "pagerduty": Receiver("/webhooks/pagerduty", ("POST",), _deliver_pagerduty, _preview_pagerduty),
    "events": Receiver(EVENTS_API_PATH, ("POST",), _deliver_events, _preview_events),
}


def receive(source: str) -> ResponseReturnValue:
    """Authenticate, read, parse; count and log a refusal alike for every source; else deliver."""
    svc = services()
    try:
        payload = _admit(SOURCES[source], svc)
    except ApiError as exc:
        svc.metrics.webhooks.labels(source, f"rejected_{exc.status}").inc()
        log.info("webhook source=%s outcome=rejected status=%d code=%s", source, exc.status, exc.code)
        raise
    return RECEIVERS[source].deliver(svc, payload)


for _name, _receiver in RECEIVERS.items():
    bp.add_url_rule(
        _receiver.path, _name, receive, methods=list(_receiver.methods), defaults={"source": _name}
    )


def _admit(source: Source, svc: Services) -> Any:
    """The request's payload once its sender is let in and its body is valid, else the ApiError."""
    auth = svc.settings.auth
    try:
        if source.authenticate:
            refused = source.authenticate(auth, request.headers, lambda: request.get_data(cache=True))
            if refused:
                raise ApiError(401, "unauthorized", refused)
        body = read_json(request, svc.settings.server.max_body_bytes)
        try:
            payload = source.parse(body, request.headers)
        except PayloadError as exc:
            if exc.rejected_alerts:
                svc.metrics.signals.labels(exc.source, "rejected").inc(exc.rejected_alerts)
            raise invalid_payload(exc) from None
        if source.authenticate_payload:
            refused = source.authenticate_payload(auth, payload)
            if refused:
                raise ApiError(401, "unauthorized", refused)
    except ApiError as exc:
        if source.events_api_errors:
            raise _as_events_api(exc) from None
        raise
    return payload


def _as_events_api(exc: ApiError) -> ApiError:
    """PagerDuty refuses every unreadable, invalid or unknown event with 400 "Event object is invalid"
    and its reasons; errors.py answers these, and any other status, in PagerDuty's format."""
    if exc.code == "malformed_json":
        reasons = ["Invalid JSON"]
    elif exc.status in (401, 422):
        reasons = [d["message"] for d in exc.details or []] or [exc.message]
    else:
        return exc
    return ApiError(400, exc.code, INVALID_EVENT, [{"field": "(body)", "message": r} for r in reasons])
