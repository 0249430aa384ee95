"""Delivery under faults, with real servers: kill -9 repeats only what was in flight; a hang waits alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import (
    Dualtrack,
    SlowSink,
    provider_webhook,
    wait_until,
)
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

WORKERS = 2
CONCURRENCY = 2  # deliveries under way at once per provider and worker
DELIVERY = {"lease": "5s", "backoff_initial": "1s", "backoff_max": "2s"}


def provider_smtp(port: int, *, name: str = "mail") -> dict[str, Any]:
    return {
        "name": name,
        "type": "smtp",
        "audience": "business",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "Example Status <status@example.com>",
        "to": ["customers@example.net"],
        "timeout": "30s",
    }


def notices_of(server: Dualtrack, provider: str) -> list[dict[str, Any]]:
    return [
        notice
        for incident in server.incidents("all")
        for notice in server.incident(incident["ref"])["notices"]
        if notice["provider"] == provider
    ]


def states(server: Dualtrack) -> Counter[tuple[str, str]]:
    """(provider, state) → how many notices, for failure messages."""
    return Counter(
        (notice["provider"], notice["state"])
        for incident in server.incidents("all")
        for notice in server.incident(incident["ref"])["notices"]
    )


def all_delivered(server: Dualtrack, providers: list[str], count: int) -> bool:
    for provider in providers:
        found = notices_of(server, provider)
        if len(found) != count or any(n["state"] != "delivered" for n in found):
            return False
    return True


def test_kill_9_during_deliveries_repeats_only_the_requests_in_flight(
    tmp_path: Path, dualtrack_factory: Callable[..., Dualtrack]
):
    """Each delivery is recorded as it completes: after kill -9 the only notices sent again are the
    ones whose request was in flight, at most `concurrency` per provider and worker."""
    count = 50
    with SlowSink(delay=0.25) as sink, SmtpServer(delay=0.25) as smtp:
        providers = [
            {**provider_webhook(f"{sink.url}/hook"), "concurrency": CONCURRENCY},
            {**provider_smtp(smtp.port), "concurrency": CONCURRENCY},
        ]
        folder = tmp_path / "dualtrack"
        first = dualtrack_factory(folder=folder, workers=WORKERS, providers=providers, delivery=DELIVERY)
        first.start()
        first.open_incidents(count, "KillDuring")

        # Both providers are mid-stream: several notices delivered, and a request still unanswered.
        def mid_stream() -> bool:
            mails = list(smtp.received)
            return (
                len(sink.received("/hook")) >= 20
                and len(mails) >= 20
                and bool(sink.in_flight("/hook"))
                and any(m.answered_at is None for m in mails)
            )

        wait_until(mid_stream, timeout=60, interval=0.02, message="deliveries to both providers under way")
        first.kill()
        hooks_before = len(sink.received("/hook"))
        mails_before = len(smtp.received)

        second = dualtrack_factory(
            folder=folder, port=first.port, workers=WORKERS, providers=providers, delivery=DELIVERY
        )
        second.start()
        wait_until(
            lambda: (
                all_delivered(second, ["ops-hook", "mail"], count)
                and not sink.in_flight()
                and all(m.answered_at is not None for m in list(smtp.received))
            ),
            timeout=90,
            interval=0.5,
            message=lambda: (
                f"every notice delivered after the restart: {states(second)}, "
                f"{len(sink.in_flight())} webhooks in flight"
            ),
        )

        hook_ids = {n["id"] for n in notices_of(second, "ops-hook")}
        mail_ids = {n["id"] for n in notices_of(second, "mail")}
        posts = sink.received("/hook")
        mails = list(smtp.received)
        hook_copies = Counter(p.header("Idempotency-Key") for p in posts)
        mail_copies = Counter(m.message["Message-ID"] for m in mails)
        # Every notice arrived, under the key its notice id gives it.
        assert set(hook_copies) == {f"dualtrack-notice-{i}" for i in hook_ids}
        assert set(mail_copies) == {f"<dualtrack-notice-{i}@example.com>" for i in mail_ids}
        hook_repeats = sum(n - 1 for n in hook_copies.values())
        mail_repeats = sum(n - 1 for n in mail_copies.values())
        print(  # noqa: T201
            f"kill -9 after {hooks_before} webhooks and {mails_before} e-mails of {count} each; "
            f"repeats: {hook_repeats} webhooks, {mail_repeats} e-mails"
        )
        # One delivery loop per provider in each worker, with `concurrency` requests in flight.
        in_flight = WORKERS * CONCURRENCY
        assert hook_repeats <= in_flight, sorted(k for k, n in hook_copies.items() if n > 1)
        assert mail_repeats <= in_flight, sorted(k for k, n in mail_copies.items() if n > 1)
        # A repeat is a notice the killed server had started to send.
        first_seen = {p.header("Idempotency-Key"): i for i, p in reversed(list(enumerate(posts)))}
        assert all(first_seen[k] < hooks_before for k, n in hook_copies.items() if n > 1)
        first_mail = {m.message["Message-ID"]: i for i, m in reversed(list(enumerate(mails)))}
        assert all(first_mail[k] < mails_before for k, n in mail_copies.items() if n > 1)


def test_a_hung_provider_holds_up_only_its_own_notices(
    tmp_path: Path, dualtrack_factory: Callable[..., Dualtrack]
):
    """A webhook whose server never answers does not keep e-mails waiting behind it."""
    count = 6
    with SlowSink(delay=None) as hung, SmtpServer() as smtp:
        # The request hangs for less than the lease, so no other worker takes its notice meanwhile.
        hook = {**provider_webhook(f"{hung.url}/hook"), "timeout": "30s", "concurrency": CONCURRENCY}
        providers = [hook, provider_smtp(smtp.port)]
        server = dualtrack_factory(
            workers=WORKERS, providers=providers, delivery={**DELIVERY, "lease": "90s"}
        )
        server.start()
        server.open_incidents(count, "Hung")

        wait_until(
            lambda: len(smtp.received) == count,
            timeout=60,
            message=lambda: f"all {count} e-mails; {len(smtp.received)} so far",
        )
        # Every e-mail went out while the webhook server was still holding its first request open:
        # no webhook attempt has ended, not even by timing out.
        assert hung.in_flight("/hook") and not hung.answered("/hook")
        assert len(hung.received("/hook")) <= WORKERS * CONCURRENCY, "`concurrency` requests per worker"
        assert all(n["attempts"] == 0 for n in notices_of(server, "ops-hook"))
        assert all(n["state"] == "delivered" for n in notices_of(server, "mail"))

        hung.release()
        wait_until(
            lambda: all_delivered(server, ["ops-hook", "mail"], count),
            timeout=60,
            message="the webhook notices once the server answers",
        )
        keys = [p.header("Idempotency-Key") for p in hung.received("/hook")]
        assert len(keys) == len(set(keys)) == count
