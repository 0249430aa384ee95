"""Prometheus-style ops endpoints: /-/healthy, /-/ready, /metrics."""

from __future__ import annotations

import logging
import os

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from adapter.config import ConfigError, load_settings
from adapter.metrics import BacklogCollector
from adapter.providers import check_settings
from adapter.store import audit, outbox
from adapter.store.db import Unavailable
from adapter.store.records import Backlog
from adapter.web import identity
from adapter.web.errors import error_response
from adapter.web.services import services

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)


@bp.get("/-/healthy")
def healthy() -> Response:
    return Response("OK\n", mimetype="text/plain")


@bp.get("/-/ready")
def ready() -> Response:
    """A read of the database within about a second; never waits for the write lock."""
    try:
        services().store.ping()
    except Unavailable as exc:
        log.warning("not ready: %s", exc)
        return error_response(503, "not_ready", "database unavailable")
    return Response("OK\n", mimetype="text/plain")


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = svc.metrics.registry
    scrape = CollectorRegistry()

    def read_backlog() -> Backlog:
        with svc.store.read() as conn:
            return outbox.backlog(conn, svc.clock.now())

    scrape.register(BacklogCollector(read_backlog))
    body = generate_latest(registry) + generate_latest(scrape)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


@bp.post("/-/reload")
def reload() -> ResponseReturnValue:
    """Validate the configuration on disk; if valid, every worker switches to it gracefully."""
    svc = services()
    author = identity.api_author(request, svc.settings)
    identity.require(author, "admin")
    try:
        load_settings(svc.settings.config_path, check_settings)
    except ConfigError as exc:
        svc.metrics.config_reload.set(0)
        log.warning("reload refused: %d problem(s) in %s", len(exc.problems), svc.settings.config_path)
        details = [{"message": line} for line in exc.problems]
        return error_response(
            400, "invalid_config", "the configuration is invalid; kept the old one", details
        )
    if svc.reload is None:
        return jsonify({"status": "valid", "applied": False, "message": "not running under dualtrack serve"})
    with svc.store.transaction() as conn:
        audit.append(conn, svc.clock.now(), author.name, author.role, "reload")
    svc.reload()
    return jsonify({"status": "reloading", "applied": True})
