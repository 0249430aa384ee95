"""Chat and push channels through Apprise: Mattermost, Slack, Teams, Matrix, Telegram, ntfy and more."""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from typing import Annotated, Any

import apprise
from apprise.plugins.base import NotifyBase
from pydantic import AfterValidator, BeforeValidator, SecretStr

from adapter.config import ProviderSettings
from adapter.providers.base import (
    DeliveryError,
    Message,
    Provider,
    ProviderOptions,
    RequestHooks,
    permanent_status,
)

# Apprise logs the addresses it posts to, tokens and all, and some plugins name a bad token in
# their warnings: its records never reach dualtrack's logs. A send reads its own thread's warnings,
# the only place a plugin says why it failed.
_records: contextvars.ContextVar[list[logging.LogRecord] | None] = contextvars.ContextVar(
    "apprise_records", default=None
)


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        records = _records.get()
        if records is not None:
            records.append(record)


_apprise_log = logging.getLogger("apprise")
_apprise_log.setLevel(logging.WARNING)
_apprise_log.addHandler(_Capture())
_apprise_log.propagate = False

# Mattermost and others show this as the poster's name.
_ASSET = apprise.AppriseAsset(app_id="dualtrack", app_desc="dualtrack incident notices")

# Apprise's plugins only say whether a send worked. Why it did not is in their warnings:
# "…, error=404." for an HTTP answer (ntfy's own codes too: 40401 is a 404), "A Connection error
# occurred …" for a refused connection or a timeout (which they do not tell apart). They never pass
# on Retry-After, so a 429 waits for the outbox's backoff; a failure they explain neither way is
# retried, as nothing says it is permanent.
_HTTP_STATUS = re.compile(r"error=(\d{3})")


def _plugin(url: str) -> NotifyBase | None:
    """Apprise's object for a URL (parsed, nothing sent); None for a URL no plugin takes."""
    return apprise.Apprise.instantiate(url, asset=_ASSET)


def _known(url: SecretStr) -> SecretStr:
    if _plugin(url.get_secret_value()) is None:
        raise ValueError("not an Apprise URL apprise knows")
    return url


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class AppriseOptions(ProviderOptions):
    # One Apprise URL or several (each gets every notice). They hold tokens, so they stay secret.
    # Not needed with per_tenant: each tenant's `contacts.chat` is used instead.
    urls: Annotated[list[Annotated[SecretStr, AfterValidator(_known)]], BeforeValidator(_listed)] = []


def _failure(what: str, records: list[logging.LogRecord]) -> DeliveryError:
    said = " ".join(record.getMessage() for record in records)
    codes = _HTTP_STATUS.findall(said)
    if codes:
        code = int(codes[-1])
        return DeliveryError(f"{what}: HTTP {code}", permanent=permanent_status(code))
    if "connection error" in said.lower():
        return DeliveryError(f"{what}: connection failed or timed out")
    return DeliveryError(f"{what}: not delivered (apprise gave no reason)")


class Apprise(Provider):
    type = "apprise"
    Options = AppriseOptions
    options: AppriseOptions
    contact = "chat"
    links_in_body = "always"

    def __init__(self, settings: ProviderSettings, hooks: RequestHooks | None = None):
        super().__init__(settings, hooks)
        # (notice id, where) for the destinations that have a notice some others failed to take:
        # its retry goes to those others only, as a chat post carries no key to drop a repeat by.
        self._sent: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    @classmethod
    def check(cls, settings: ProviderSettings, options: ProviderOptions) -> list[tuple[str, str]]:
        assert isinstance(options, AppriseOptions)
        if not options.urls and not settings.per_tenant:
            return [("urls", "required unless per_tenant is true")]
        return super().check(settings, options)

    def destinations(self, message: Message) -> list[tuple[str, str]]:
        """(where, Apprise URL) pairs; `where` names a destination in errors without its secrets."""
        if self.per_tenant:
            url = (message.data.get("contact") or {}).get("chat")
            if not url:
                raise DeliveryError(f"tenant {message.tenant} has no chat contact", permanent=True)
            return [(f"tenant {message.tenant}'s contacts.chat", str(url))]
        return [(f"urls[{i}]", url.get_secret_value()) for i, url in enumerate(self.options.urls)]

    @staticmethod
    def text(message: Message) -> str:
        """The post: the notice's body (the dispatcher ends it with the feedback links), then the
        status page of its version."""
        status_url = message.data.get("status_url")
        return f"{message.body}\n\nStatus page: {status_url}" if status_url else message.body

    def send(self, message: Message) -> str:
        destinations = self.destinations(message)
        failures = []
        for where, url in destinations:
            with self._lock:
                if (message.notice_id, where) in self._sent:
                    continue
            try:
                with self.attempt():
                    self.post(url, where, message)
            except DeliveryError as exc:
                failures.append(exc)
                continue
            with self._lock:
                self._sent.add((message.notice_id, where))
        if failures:
            permanent = any(f.permanent for f in failures)
            raise DeliveryError("; ".join(str(f) for f in failures), permanent=permanent)
        with self._lock:
            self._sent.difference_update((message.notice_id, where) for where, _ in destinations)
        return f"{self.name}/{message.notice_id}"

    def post(self, url: str, where: str, message: Message) -> None:
        """One notice to one Apprise URL, or DeliveryError."""
        what = f"apprise {self.name} ({where})"
        plugin = _plugin(url)
        if plugin is None:
            raise DeliveryError(f"{what}: not an Apprise URL apprise knows", permanent=True)
        what = f"apprise {self.name} ({where}, {plugin.service_name})"
        plugin.socket_connect_timeout = plugin.socket_read_timeout = self.options.timeout.total_seconds()
        # Apprise paces a plugin's requests by sleeping in the sender's thread; the outbox paces them.
        plugin.request_rate_per_sec = 0
        if message.status == "resolved":
            kind = apprise.NotifyType.SUCCESS
        else:
            kind = apprise.NotifyType.FAILURE if message.level >= 4 else apprise.NotifyType.WARNING
        records: list[logging.LogRecord] = []
        capturing = _records.set(records)
        try:
            delivered = plugin.notify(
                body=self.text(message),
                title=message.subject,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # a plugin's own bug; its text may hold the URL
            raise DeliveryError(f"{what}: apprise raised {type(exc).__name__}") from None
        finally:
            _records.reset(capturing)
        if not delivered:
            raise _failure(what, records)
