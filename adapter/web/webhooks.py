"""Inbound webhooks: authenticate, parse, hand to the engine, answer 202 once committed."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from adapter.sources import alertmanager, events, pagerduty
from adapter.sources.events import EventsError
from adapter.sources.signal import PayloadError
from adapter.sources.signatures import pagerduty_signature_valid
from adapter.web import auth
from adapter.web.errors import ApiError, events_api_error, read_json
from adapter.web.services import services

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


@bp.route("/webhooks/alertmanager", methods=["POST", "PUT"])
def alertmanager_webhook() -> ResponseReturnValue:
    svc = services()
    source = "alertmanager"
    try:
        auth.require(
            request,
            svc.settings.auth.alertmanager.bearer_tokens,
            svc.settings.auth.alertmanager.basic_auth,
        )
        body = read_json(request, svc.settings.server.max_body_bytes)
        try:
            batch = alertmanager.parse(body)
        except PayloadError as exc:
            if exc.rejected_alerts:
                svc.metrics.signals.labels(exc.source, "rejected").inc(exc.rejected_alerts)
            raise ApiError(422, "invalid_payload", str(exc), exc.details) from None
    except ApiError as exc:
        svc.metrics.webhooks.labels(source, f"rejected_{exc.status}").inc()
        log.info("webhook source=%s outcome=rejected status=%d code=%s", source, exc.status, exc.code)
        raise
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


@bp.post("/webhooks/pagerduty")
def pagerduty_webhook() -> ResponseReturnValue:
    """PagerDuty Webhooks V3: signed, retried for 48 hours, and disabled after repeated 4xx."""
    svc = services()
    raw = request.get_data(cache=True)
    settings = svc.settings.auth.pagerduty
    try:
        if settings.signing_secrets or not settings.allow_unsigned:
            header = request.headers.get("X-PagerDuty-Signature")
            if not pagerduty_signature_valid(raw, header, settings.signing_secrets):
                raise ApiError(401, "unauthorized", "missing or invalid X-PagerDuty-Signature")
        body = read_json(request, svc.settings.server.max_body_bytes)
        try:
            event = pagerduty.parse(body, request.headers.get("X-Webhook-Id"))
        except PayloadError as exc:
            raise ApiError(422, "invalid_payload", str(exc), exc.details) from None
    except ApiError as exc:
        svc.metrics.webhooks.labels("pagerduty", f"rejected_{exc.status}").inc()
        log.info("webhook source=pagerduty outcome=rejected status=%d code=%s", exc.status, exc.code)
        raise
    intake = svc.pagerduty.handle_webhook(event, event.webhook_id)
    svc.metrics.webhooks.labels("pagerduty", intake.outcome).inc()
    log.info(
        "webhook source=pagerduty event=%s type=%s outcome=%s incidents=%s",
        event.event_id,
        event.event_type,
        intake.outcome,
        ",".join(intake.refs) or "-",
    )
    return jsonify({"incidents": intake.refs, "outcome": intake.outcome}), 202


@bp.post("/v2/enqueue")
def events_enqueue() -> ResponseReturnValue:
    """PagerDuty's Events API v2, so anything that can send to PagerDuty can send here."""
    svc = services()
    try:
        body = read_json(request, svc.settings.server.max_body_bytes)
    except ApiError as exc:
        svc.metrics.webhooks.labels("events", f"rejected_{exc.status}").inc()
        if exc.status == 400:
            return events_api_error(400, "Event object is invalid", ["Invalid JSON"])
        raise
    try:
        event = events.parse(body)
    except EventsError as exc:
        svc.metrics.webhooks.labels("events", "rejected_400").inc()
        return events_api_error(400, str(exc), exc.errors)
    keys = svc.settings.auth.events.routing_keys
    if not auth.matches_any(event.routing_key, keys):
        svc.metrics.webhooks.labels("events", "rejected_400").inc()
        log.info("webhook source=events outcome=rejected reason=routing_key")
        return events_api_error(400, "Event object is invalid", ["Invalid routing key"])
    intake = svc.pagerduty.handle_event(event)
    svc.metrics.webhooks.labels("events", intake.outcome).inc()
    log.info(
        "webhook source=events action=%s outcome=%s incidents=%s",
        event.event_action,
        intake.outcome,
        ",".join(intake.refs) or "-",
    )
    return jsonify({"status": "success", "message": "Event processed", "dedup_key": intake.dedup_key}), 202
