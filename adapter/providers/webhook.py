"""Generic webhook: the notice as JSON, HMAC-SHA256 signed when a secret is set."""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import Field, HttpUrl

from adapter.config import ProviderSettings
from adapter.providers.base import DeliveryError, Message, Provider, ProviderOptions


class WebhookOptions(ProviderOptions):
    # Not needed with per_tenant: each tenant's `contacts.webhook` is used instead.
    url: HttpUrl | None = None
    secret: str | None = Field(default=None, min_length=1)
    headers: dict[str, str] = {}


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook(Provider):
    type = "webhook"
    Options = WebhookOptions
    options: WebhookOptions
    contact = "webhook"

    @classmethod
    def check(cls, settings: ProviderSettings, options: ProviderOptions) -> list[tuple[str, str]]:
        assert isinstance(options, WebhookOptions)
        if options.url is None and not settings.per_tenant:
            return [("url", "required unless per_tenant is true")]
        return super().check(settings, options)

    def destination(self, message: Message) -> str:
        if self.per_tenant:
            url = (message.data.get("contact") or {}).get("webhook")
            if not url:
                raise DeliveryError(f"tenant {message.tenant} has no webhook contact", permanent=True)
            return str(url)
        return str(self.options.url)

    def payload(self, message: Message) -> dict[str, object]:
        links = message.feedback
        extra: dict[str, object] = {}
        if links is not None:  # customer notices, when feedback.secret is set
            extra["feedback_urls"] = {"yes": links.yes, "no": links.no}
            if links.details:
                extra["details_url"] = links.details
        return {
            "notice_id": message.notice_id,
            "incident": message.incident_ref,
            "phase": message.phase,
            "audience": message.audience,
            "level": message.level,
            "status": message.status,
            "subject": message.subject,
            "body": message.body,
            "services": message.services,
            "tenants": message.tenants,
            "tenant": message.tenant,
            **extra,
        }

    def send(self, message: Message) -> str:
        body = json.dumps(self.payload(message), separators=(",", ":")).encode()
        headers = {
            **self.options.headers,
            "Content-Type": "application/json",
            "User-Agent": "dualtrack",
            # Lets a receiver drop the rare repeat after a crash between send and mark.
            "Idempotency-Key": f"dualtrack-notice-{message.notice_id}",
        }
        if self.options.secret:
            headers["X-Dualtrack-Signature"] = signature(self.options.secret, body)
        response = self.request("POST", self.destination(message), data=body, headers=headers)
        return response.headers.get("X-Request-Id") or f"{self.name}/{message.notice_id}"
