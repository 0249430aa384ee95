"""Inbound formats, one module each (pure parse, no I/O), behind an explicit registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.config import AuthSettings
from adapter.sources import alertmanager, events, pagerduty
from adapter.sources.credentials import authorization_refused, matches_any
from adapter.sources.signatures import pagerduty_signature_valid


class Headers(Protocol):
    """A request's headers, looked up by name (Flask's, or a dict)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class Source:
    """One inbound format: who may send it, how its body parses, and how its refusals are worded."""

    name: str
    # The decoded JSON body and the request's headers → what the engine takes; raises PayloadError.
    parse: Callable[[Any, Headers], Any]
    # Why the sender is not let in, from the headers and the raw body (read only when called), or
    # None. Checked before the body is read.
    authenticate: Callable[[AuthSettings, Headers, Callable[[], bytes]], str | None] | None = None
    # The same for formats whose key travels in the body: checked on the parsed payload.
    authenticate_payload: Callable[[AuthSettings, Any], str | None] | None = None
    # Refused as PagerDuty's Events API v2 refuses (400, its own JSON), not with the house errors.
    events_api_errors: bool = False


def _alertmanager_sender(auth: AuthSettings, headers: Headers, _raw: Callable[[], bytes]) -> str | None:
    credentials = auth.alertmanager
    return authorization_refused(
        headers.get("Authorization") or "", credentials.bearer_tokens, credentials.basic_auth
    )


def _pagerduty_sender(auth: AuthSettings, headers: Headers, raw: Callable[[], bytes]) -> str | None:
    secrets = auth.pagerduty.signing_secrets
    if not secrets and auth.pagerduty.allow_unsigned:
        return None
    if pagerduty_signature_valid(raw(), headers.get("X-PagerDuty-Signature"), secrets):
        return None
    return "missing or invalid X-PagerDuty-Signature"


def _events_sender(auth: AuthSettings, event: events.EnqueueEvent) -> str | None:
    return None if matches_any(event.routing_key, auth.events.routing_keys) else "Invalid routing key"


SOURCES: dict[str, Source] = {
    # Alertmanager and Grafana: the same webhook body; the batch names which one sent it.
    "alertmanager": Source(
        "alertmanager",
        parse=lambda body, _headers: alertmanager.parse(body),
        authenticate=_alertmanager_sender,
    ),
    # PagerDuty Webhooks V3: HMAC-signed, retried for 48 hours, disabled after repeated 4xx.
    "pagerduty": Source(
        "pagerduty",
        parse=lambda body, headers: pagerduty.parse(body, headers.get("X-Webhook-Id")),
        authenticate=_pagerduty_sender,
    ),
    # PagerDuty's Events API v2, so anything that can send to PagerDuty can send here.
    "events": Source(
        "events",
        parse=lambda body, _headers: events.parse(body),
        authenticate_payload=_events_sender,
        events_api_errors=True,
    ),
}
