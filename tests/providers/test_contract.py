"""send()'s contract, one table over every provider that leaves the process, against real local servers.

Each provider is built through the registry and sends the same first notice; the server answers
as each case says. What send() returns, or the DeliveryError's permanent and retry_after, is what
adapter.providers.base.Provider documents; and no provider retries by itself (the outbox does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message, build_providers
from tests.support.scripted import Reply, ScriptedServer
from tests.support.smtp_server import SmtpServer, free_port

MESSAGE = Message(
    notice_id=7,
    incident_ref="INC-2026-0001",
    phase="acknowledgement",
    audience="business",
    subject="Online checkout: errors for some customers",
    body="We are investigating errors during checkout.",
    level=4,
    status="investigating",
    services=["checkout"],
    tenants=["acme"],
    data={"opened_at": "2026-05-01T10:02:00+00:00"},
)
# Long enough for a local server's answer, short enough that the timeout cases are quick.
TIMEOUT = "300ms"
HANG = 30.0  # seconds a server holds its answer (released when the test's server stops)
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Sent:
    ref: str


@dataclass(frozen=True)
class Failed:
    permanent: bool
    retry_after: float | None = None


Outcome = Sent | Failed

# What each case means, unless a provider's row says otherwise.
EXPECTED: dict[str, Outcome] = {
    "4xx": Failed(permanent=True),
    "5xx": Failed(permanent=False, retry_after=7),
    "timeout": Failed(permanent=False),
    "420": Failed(permanent=False, retry_after=30),
    "429": Failed(permanent=False, retry_after=30),
    "unreachable": Failed(permanent=False),
}
CASES = ["2xx", "4xx", "5xx", "timeout", "420", "429", "malformed", "unreachable"]


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    # The provider's own settings, given where its server listens (a base URL, or a port for SMTP).
    options: Callable[[Any], dict[str, Any]]
    # What send() returns when the server accepts the notice.
    ref: str
    # What a 2xx answer the provider cannot read means to it.
    malformed: Outcome
    # HTTP: the answers before the one that delivers the notice, and that one.
    before: tuple[Reply, ...] = ()
    accepted: Reply = field(default_factory=Reply)
    # Cases that do not apply, and outcomes that differ from EXPECTED.
    not_applicable: frozenset[str] = frozenset()
    expected: dict[str, Outcome] = field(default_factory=dict)

    def outcome(self, case: str) -> Outcome:
        if case == "2xx":
            return Sent(self.ref)
        if case == "malformed":
            return self.malformed
        return self.expected.get(case, EXPECTED[case])


ROWS = [
    Row(
        "webhook",
        "webhook",
        lambda url: {"url": f"{url}/hook", "secret": "s3cret"},
        ref="req-42",
        accepted=Reply(200, {"X-Request-Id": "req-42"}, b""),
        # The answer's body is never read: any 2xx is a delivery, named by the notice.
        malformed=Sent("webhook/7"),
    ),
    Row(
        "statuspage",
        "statuspage",
        lambda url: {"page_id": "pg1", "api_key": "sp-key", "api_url": url},
        ref="sp-incident-1",
        # Looks for an incident an earlier attempt created, then creates it.
        before=(Reply(200, JSON, b"[]"),),
        accepted=Reply(201, JSON, b'{"id": "sp-incident-1"}'),
        # Retryable: the retry finds the incident by its metadata before creating another.
        malformed=Failed(permanent=False),
    ),
    Row(
        "instatus",
        "instatus",
        lambda url: {"page_id": "page-1", "api_key": "ins-key", "api_url": url},
        ref="ins-incident-1",
        accepted=Reply(200, JSON, b'{"id": "ins-incident-1"}'),
        # The incident may exist now, and nothing finds it again: a retry could open a second one.
        malformed=Failed(permanent=True),
    ),
    Row(
        "cachet2",
        "cachet",
        lambda url: {"api_url": f"{url}/api/v1", "token": "c2-token", "version": 2},
        ref="12",
        accepted=Reply(200, JSON, b'{"data": {"id": 12}}'),
        malformed=Failed(permanent=True),
    ),
    Row(
        "cachet3",
        "cachet",
        lambda url: {"api_url": f"{url}/api", "token": "c3-token", "version": 3},
        ref="12",
        accepted=Reply(201, JSON, b'{"data": {"id": "12"}}'),
        malformed=Failed(permanent=True),
    ),
    Row(
        "smtp",
        "smtp",
        lambda port: {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "sender": "Status <status@example.com>",
            "to": ["ops@example.net"],
        },
        ref="<dualtrack-notice-7@example.com>",
        # A reply without a code is a server in trouble, not a refusal.
        malformed=Failed(permanent=False),
        # SMTP has no Retry-After, and no 420/429: its replies say "later" (4xx) or "never" (5xx).
        not_applicable=frozenset({"420", "429"}),
        expected={"5xx": Failed(permanent=False)},
    ),
    *(
        Row(
            f"apprise-{scheme}",
            "apprise",
            lambda url, scheme=scheme, path=path: {"urls": url.replace("http", scheme, 1) + path},
            ref="apprise/7",
            # Apprise reads no answer's body: any 2xx is a delivery.
            malformed=Sent("apprise/7"),
            # Nor its headers: Retry-After never reaches dualtrack, and the outbox's backoff applies.
            expected={code: Failed(permanent=False) for code in ("5xx", "420", "429")},
        )
        for scheme, path in (
            ("json", "/hook"),
            ("form", "/hook"),
            ("mmost", "/hooks-token-3f9a"),
            ("ntfy", "/alerts"),
        )
    ),
]


def http_answers(row: Row, case: str) -> tuple[Reply, ...]:
    last = {
        "2xx": row.accepted,
        "4xx": Reply(422, JSON, b'{"error": {"name": ["is invalid"]}}'),
        "5xx": Reply(503, {**JSON, "Retry-After": "7"}, b'{"error": "Service Unavailable"}'),
        "timeout": Reply(row.accepted.status, row.accepted.headers, row.accepted.body, delay=HANG),
        "420": Reply(420, {**JSON, "Retry-After": "30"}, b'{"error": "Rate limited"}'),
        "429": Reply(429, {**JSON, "Retry-After": "30"}, b'{"message": "Too Many Attempts."}'),
        "malformed": Reply(200, JSON, b"<html><body>502 Bad Gateway</body></html>"),
    }[case]
    return (*row.before, last)


# SMTP's own form of each case: 250, a permanent 5xx, a transient 4xx, no answer, a garbled one.
SMTP_SERVERS: dict[str, dict[str, Any]] = {
    "2xx": {},
    "4xx": {"data_reply": "554 5.6.0 Message rejected"},
    "5xx": {"data_reply": "451 4.3.0 Try again later"},
    "timeout": {"delay": HANG},
    "malformed": {"data_reply": "it worked, probably"},
}


@contextmanager
def server(row: Row, case: str) -> Iterator[tuple[Any, Callable[[], int] | None]]:
    """Where the provider sends, and (HTTP) how many requests the server has seen."""
    if case == "unreachable":
        port = free_port()  # nothing listens there
        yield (port if row.type == "smtp" else f"http://127.0.0.1:{port}"), None
    elif row.type == "smtp":
        with SmtpServer(**SMTP_SERVERS[case]) as smtp:
            yield smtp.port, None
    else:
        with ScriptedServer(*http_answers(row, case)) as http:
            yield http.url, lambda: len(http.requests)


TABLE = [pytest.param(row, case, id=f"{row.name}-{case}") for row in ROWS for case in CASES]


@pytest.mark.parametrize(("row", "case"), [p for p in TABLE if p.values[1] not in p.values[0].not_applicable])
def test_send_returns_the_providers_id_or_raises_as_the_contract_says(row: Row, case: str) -> None:
    with server(row, case) as (target, requests_seen):
        settings = ProviderSettings(
            name=row.type, type=row.type, audience="business", timeout=TIMEOUT, **row.options(target)
        )
        provider = build_providers([settings])[row.type]
        outcome: Outcome
        try:
            outcome = Sent(provider.send(MESSAGE))
        except DeliveryError as exc:
            outcome = Failed(exc.permanent, exc.retry_after)
        finally:
            provider.close()
        assert outcome == row.outcome(case)
        if requests_seen is not None:
            # The conversation as scripted, once: a failure is never retried inside send().
            assert requests_seen() == len(http_answers(row, case))
