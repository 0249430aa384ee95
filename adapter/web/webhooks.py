"""Inbound webhooks: authenticate, parse, hand to the engine, answer 202 once committed."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from adapter.sources import alertmanager
from adapter.sources.signal import PayloadError
from adapter.web import auth
from adapter.web.errors import ApiError, read_json
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
    log.info(
        "webhook source=%s outcome=accepted alerts=%d duplicates=%d incidents=%s notices=%d",
        source,
        len(batch.signals),
        result.duplicates,
        ",".join(result.refs) or "-",
        result.notices,
    )
    return jsonify({"incidents": result.refs}), 202
