"""What every provider is: a `send(message)` that returns the provider's id or raises DeliveryError."""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from adapter.config import Duration, ProviderSettings
from adapter.feedback import Links


class DeliveryError(Exception):
    """A failed delivery; the outbox retries it unless it is permanent."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class ProviderOptions(BaseModel):
    """Base of each provider's own settings (the keys beside name, type and audience)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Every request a provider makes has a deadline.
    timeout: Duration = timedelta(seconds=10)


@dataclass(frozen=True)
class Message:
    """One notice as a provider sees it."""

    notice_id: int
    incident_ref: str
    phase: str
    audience: str
    subject: str
    body: str
    level: int
    status: str
    services: list[str]
    tenants: list[str]
    tenant: str | None = None
    # The provider's own id for this incident, from the first delivery of the stream.
    provider_ref: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # The body as a small HTML page, for providers that send HTML (`sends_html`).
    html: str | None = None
    # "Was this update helpful?" and technical-details links (customer notices, `feedback.secret`).
    feedback: Links | None = None


@dataclass(frozen=True)
class RequestHooks:
    """What runs around each request a provider makes (the dispatcher's: rate limit and metrics)."""

    # Before: may wait for a rate-limit token, or raise DeliveryError to give up.
    before: Callable[[Provider], None] | None = None
    # After: (provider name, outcome "success" | "permanent" | "retryable", seconds taken).
    after: Callable[[str, str, float], None] | None = None


class Provider:
    """One destination of notices, built from its settings (and the hooks to run around requests).

    `send(message)` delivers one notice:

    - It receives a Message: the notice's text for one audience, the incident's facts as they were
      when the notice was written, and `provider_ref`, what `send` returned for the first notice of
      the same stream (incident, provider, audience, tenant) — None until that one was delivered.
    - It returns the provider's own id for what it made or changed (an incident id, a Message-ID),
      which later notices of the stream receive as `provider_ref`.
    - It raises DeliveryError when the notice did not get through: `permanent=True` when sending the
      same thing again cannot succeed (an invalid key, a validation error, an incident dualtrack
      does not own, an answer whose loss a retry could turn into a duplicate), else retryable
      (timeouts, connection errors, 5xx, 408/409/425, 420/429), with `retry_after` seconds when the
      provider said how long to wait. Any other exception is a bug, which the outbox retries.
    - It may be called again with a notice it already delivered (a crash between the send and its
      record, a retry after a lost answer): the provider then makes nothing twice, by looking up what
      it made or by giving the receiver a key to drop the repeat (Idempotency-Key, Message-ID).
    - It may be called from several threads at once (`concurrency`), never for two notices of
      one stream at a time.
    - It never retries or sleeps itself: the outbox owns retries, their backoff, and the order of a
      stream's notices; requests go through `request()` (or `attempt()`) so the hooks see each one.
    """

    type: ClassVar[str]
    Options: ClassVar[builtins.type[ProviderOptions]] = ProviderOptions
    # Per-tenant delivery goes to this key of the tenant's catalog contacts (None: not supported).
    contact: ClassVar[str | None] = None
    # (requests per second, burst) allowed per rate_key(), shared by every worker and replica.
    rate_limit: ClassVar[tuple[float, int] | None] = None
    # When several notices of one stream are due together, send the newest only (never the
    # stream's first one, which creates the incident at the provider).
    coalesce: ClassVar[bool] = False
    # The provider is the database itself (the built-in page): a notice is published by the
    # transaction that writes it, unless an earlier notice of its stream is still unfinished.
    publishes_on_commit: ClassVar[bool] = False
    # Messages carry `html`, the body as a small HTML page (rendered only for these providers).
    sends_html: ClassVar[bool] = False
    # Whether the body ends with the feedback links: always, when named in feedback.providers
    # (public status pages), or never (the provider carries them its own way, or has no reader).
    links_in_body: ClassVar[Literal["always", "listed", "never"]] = "never"

    def __init__(self, settings: ProviderSettings, hooks: RequestHooks | None = None):
        self.name = settings.name
        self.audiences = settings.audiences
        self.per_tenant = settings.per_tenant
        # More senders than the rate limit's burst would only wait for tokens.
        self.concurrency = (
            min(settings.concurrency, self.rate_limit[1]) if self.rate_limit else settings.concurrency
        )
        self.options = self.Options.model_validate(settings.options())
        self.session = requests.Session()
        self.hooks = hooks or RequestHooks()

    def secrets(self) -> list[str]:
        """The credential values among the options, to keep out of error texts."""
        found = []
        for name, value in self.options:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, str) and name in ("api_key", "token", "password", "secret"):
                found.append(value)
        return [s for s in found if s]

    def rate_key(self) -> str:
        """Requests sharing a rate limit share this key: one API key (at one API) is one budget."""
        secrets = self.secrets()
        if not secrets:
            return f"{self.type}:{self.name}"
        account = "|".join([str(getattr(self.options, "api_url", "")), *secrets])
        return f"{self.type}:{hashlib.sha256(account.encode()).hexdigest()[:16]}"

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """One request to the provider, between the hooks: a rate-limit token before, metrics after."""
        if self.hooks.before is not None:
            self.hooks.before(self)
        started = time.monotonic()
        outcome = "success"
        try:
            yield
        except DeliveryError as exc:
            outcome = "permanent" if exc.permanent else "retryable"
            raise
        finally:
            if self.hooks.after is not None:
                self.hooks.after(self.name, outcome, time.monotonic() - started)

    def request(self, method: str, url: str, *, what: str | None = None, **kwargs: Any) -> requests.Response:
        """One HTTP request: rate-limited, timed, with failures as DeliveryErrors."""
        what = what or f"{self.type} {self.name}"
        kwargs.setdefault("timeout", self.options.timeout.total_seconds())
        with self.attempt():
            try:
                return http_request(self.session, method, url, what, **kwargs)
            except DeliveryError as exc:
                text = str(exc)
                for secret in self.secrets():
                    if len(secret) >= 4:  # masking a one-letter test key would garble the text
                        text = text.replace(secret, "***")
                # An API echoing a key back must not put it in the outbox or the logs.
                raise DeliveryError(text, permanent=exc.permanent, retry_after=exc.retry_after) from None

    @classmethod
    def check(cls, settings: ProviderSettings, options: ProviderOptions) -> list[tuple[str, str]]:
        """(key, message) problems that span the common settings and the provider's own."""
        if settings.per_tenant and cls.contact is None:
            return [("per_tenant", f"{cls.type} providers cannot deliver per tenant")]
        return []

    def send(self, message: Message) -> str:
        """Deliver one notice; the provider's id for it, or DeliveryError (see the class docstring)."""
        raise NotImplementedError

    def release(self) -> None:
        """Close connections kept open between messages; the dispatcher calls it after each pass."""

    def close(self) -> None:
        """Close every connection; called when the dispatcher stops."""
        self.release()
        self.session.close()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds, from either of its two forms."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _messages(value: Any) -> list[str]:
    """Readable texts from the error shapes status-page APIs answer with."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [m for item in value for m in _messages(item)]
    if not isinstance(value, dict):
        return []
    if "code" in value or "message" in value:  # Instatus {"code", "message"}
        return [": ".join(str(value[k]) for k in ("code", "message") if value.get(k))]
    if "detail" in value or "title" in value or "meta" in value:  # Cachet 2.x JSON:API errors
        details = (value.get("meta") or {}).get("details") or []
        return [str(d) for d in details] or [str(value.get("detail") or value.get("title"))]
    # Validation errors keyed by field, e.g. Statuspage's {"name": ["is too long"]}.
    return [f"{field}: {', '.join(_messages(texts))}" for field, texts in value.items()]


def error_detail(response: requests.Response) -> str:
    """What the provider said about a failure: `error`, `errors` or `message` in a JSON body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = _messages(body.get("error")) + _messages(body.get("errors"))
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    return "; ".join(p for p in parts if p)[:500]


def permanent_status(code: int) -> bool:
    """Whether an HTTP error answer means the same request can never succeed: 4xx but a timeout,
    a conflict, "too early" and the rate limits (420, 429); 5xx is the server's trouble."""
    return code < 500 and code not in (408, 409, 420, 425, 429)


def check_response(response: requests.Response, what: str) -> requests.Response:
    """Raise DeliveryError for anything but 2xx: 429 and 5xx retry, other 4xx are permanent."""
    code = response.status_code
    if 200 <= code < 300:
        return response
    detail = error_detail(response)
    reason = f"{what}: HTTP {code} {response.reason or ''}".strip() + (f" ({detail})" if detail else "")
    if permanent_status(code):
        raise DeliveryError(reason, permanent=True)
    raise DeliveryError(reason, retry_after=retry_after_seconds(response.headers.get("Retry-After")))


def http_request(
    session: requests.Session, method: str, url: str, what: str, **kwargs: Any
) -> requests.Response:
    """One request with transport errors turned into retryable DeliveryErrors."""
    try:
        response = session.request(method, url, **kwargs)
    except requests.Timeout:
        raise DeliveryError(f"{what}: timed out") from None
    except requests.ConnectionError as exc:
        raise DeliveryError(f"{what}: connection failed ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}") from None
    return check_response(response, what)
