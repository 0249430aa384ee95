"""Webhook provider against a real local HTTP server: payload, signature, and failure classes."""

from __future__ import annotations

import hashlib
import hmac
import json

from adapter.config import ProviderSettings
from adapter.providers import Message
from adapter.providers.base import retry_after_seconds
from adapter.providers.webhook import Webhook
from tests.support.scripted import Reply, ScriptedServer


def message(**overrides) -> Message:
    values = dict(
        notice_id=7,
        incident_ref="INC-2026-0001",
        phase="acknowledgement",
        audience="technical",
        subject="INC-2026-0001: Checkout API 5xx ratio above 5% - Initial Response",
        body="We're investigating.",
        level=4,
        status="investigating",
        services=["checkout"],
        tenants=["acme", "bloom"],
    )
    values.update(overrides)
    return Message(**values)


def webhook(url: str, **options) -> Webhook:
    return Webhook(
        ProviderSettings(name="ops-hook", type="webhook", audience="technical", url=url, **options)
    )


def test_posts_the_notice_as_signed_json():
    with ScriptedServer(Reply(200)) as server:
        ref = webhook(server.url + "/hook", secret="s3cret").send(message())
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/hook"
    payload = json.loads(request.body)
    assert payload["incident"] == "INC-2026-0001"
    assert payload["phase"] == "acknowledgement"
    assert payload["audience"] == "technical"
    assert payload["level"] == 4
    assert payload["services"] == ["checkout"]
    assert payload["tenants"] == ["acme", "bloom"]
    assert payload["subject"].startswith("INC-2026-0001")
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Dualtrack-Signature"] == expected
    assert request.headers["Idempotency-Key"] == "dualtrack-notice-7"
    assert request.headers["Content-Type"] == "application/json"
    assert ref == "ops-hook/7"


def test_no_signature_without_secret():
    with ScriptedServer(Reply(204)) as server:
        webhook(server.url).send(message())
    assert "X-Dualtrack-Signature" not in server.requests[0].headers


def test_retry_after_http_date():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Thu, 26 Nov 2026 12:01:30 GMT", now) == 90
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None) is None
