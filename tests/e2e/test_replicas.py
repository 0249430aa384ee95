"""Several `dualtrack serve` replicas on one PostgreSQL database: no duplicates, no lost notices."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.catalog import catalog_data
from tests.support.postgres import database_for_tests
from tests.support.server import (
    HOOK_SECRET,
    PROVIDER_BUILTIN,
    SIGNATURE_HEADER,
    Alertmanager,
    Dualtrack,
    Received,
    Sink,
    SlowReceived,
    SlowSink,
    am_alert,
    provider_webhook,
    rfc3339,
    signature_ok,
    wait_until,
)

pytestmark = pytest.mark.e2e

IDEMPOTENCY = "Idempotency-Key"
WAITING_STATES = "held,pending,failed"

# Every tenant has every service, so each alert reaches both tenants' notices.
CATALOG = catalog_data()
CATALOG["tenants"][0]["services"].append("search")
CATALOG["tenants"][1]["services"].append("mysql-shared")


# --------------------------------------------------------------------------------------------
# a fresh PostgreSQL database per test


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty database for this test only (a SQLAlchemy URL); dropped at teardown."""
    with database_for_tests("dualtrack_replicas") as url:
        yield url


def start_replicas(
    dualtrack_factory: Callable[..., Dualtrack],
    tmp_path: Path,
    pg_url: str,
    count: int = 2,
    **config: Any,
) -> list[Dualtrack]:
    """`count` replicas on one database, started together (they migrate one at a time)."""
    replicas = [
        dualtrack_factory(
            folder=tmp_path / f"replica{n}", workers=2, extra={"storage": {"url": pg_url}}, **config
        )
        for n in range(1, count + 1)
    ]
    for replica in replicas:
        replica.process.start()
    for replica in replicas:
        replica.wait_ready(45)
    return replicas


def notice_key(notice_id: int) -> str:
    return f"dualtrack-notice-{notice_id}"


def all_notices(dt: Dualtrack) -> list[dict[str, Any]]:
    """Every notice of every incident, with its incident's ref, read through `dt`'s API."""
    found = []
    for incident in dt.incidents("all"):
        for notice in dt.incident(incident["ref"])["notices"]:
            found.append({**notice, "incident": incident["ref"]})
    return found


def waiting(dt: Dualtrack) -> list[dict[str, Any]]:
    return list(dt.api("notices", state=WAITING_STATES)["notices"])


# --------------------------------------------------------------------------------------------
# 1. two Alertmanagers that do not gossip, each notifying its own replica

GROUPS: dict[str, dict[str, str]] = {
    # critical on critical infrastructure -> level 5
    "mysql-shared": {
        "alertname": "MySQLDown",
        "service": "mysql-shared",
        "severity": "critical",
        "instance": "mysql-cluster-03:3306",
    },
    # error -> level 3 (no business hold)
    "checkout": {
        "alertname": "CheckoutLatencyHigh",
        "service": "checkout",
        "severity": "error",
        "instance": "10.0.0.1:8080",
    },
    # critical on a service that is not critical infrastructure -> level 4
    "search": {
        "alertname": "SearchErrorsHigh",
        "service": "search",
        "severity": "critical",
        "instance": "10.0.0.2:8080",
    },
}
LEVELS = {"mysql-shared": 5, "checkout": 3, "search": 4}
STREAMS = {("status", "technical"), ("status", "business"), ("ops-hook", "technical")}
EXPECTED = Counter(
    (phase, audience, provider)
    for phase in ("acknowledgement", "resolution")
    for provider, audience in STREAMS
)


def test_two_alertmanagers_each_delivering_every_group_to_its_own_replica(
    pg_url, tmp_path, dualtrack_factory, alertmanager_factory, sink, sink_factory
):
    started = time.monotonic()
    providers = [PROVIDER_BUILTIN, provider_webhook(f"{sink.url}/hook")]
    first, second = start_replicas(dualtrack_factory, tmp_path, pg_url, providers=providers, catalog=CATALOG)

    # Each Alertmanager notifies its own replica through a recording proxy (as in a partition:
    # both see every alert, neither knows of the other).
    proxies = [sink_factory(forward=replica.url).start() for replica in (first, second)]
    managers = [
        alertmanager_factory([Alertmanager.dualtrack_receiver(proxy.url)]).start() for proxy in proxies
    ]

    def seen(proxy: Sink, status: str) -> Counter[str]:
        """Notifications per groupKey this proxy passed on and its replica accepted."""
        return Counter(
            r.json()["groupKey"]
            for r in proxy.received("/webhooks/alertmanager")
            if 200 <= r.answered < 300 and r.json()["status"] == status
        )

    begun = rfc3339(datetime.now(UTC) - timedelta(seconds=30))
    alerts = [
        am_alert(labels, annotations={"summary": f"{labels['alertname']} firing"}, starts_at=begun)
        for labels in GROUPS.values()
    ]
    for manager in managers:
        manager.post_alerts(alerts)

    opened = wait_until(
        lambda: (lambda items: items if len(items) >= 3 else None)(first.incidents("open")),
        timeout=30,
        message=lambda: f"three open incidents; have {first.incidents('all')}",
    )
    # Both Alertmanagers got their first notifications of all three groups through.
    wait_until(
        lambda: all(len(seen(proxy, "firing")) == 3 for proxy in proxies),
        timeout=20,
        message=lambda: f"first notifications via both: {[seen(p, 'firing') for p in proxies]}",
    )
    baselines = [seen(proxy, "firing") for proxy in proxies]
    # At least one repeat cycle (repeat_interval 2s) of every group from both Alertmanagers.
    wait_until(
        lambda: all(
            seen(proxy, "firing")[key] > base[key]
            for proxy, base in zip(proxies, baselines, strict=True)
            for key in base
        ),
        timeout=25,
        message=lambda: f"a repeat of every group via both: {[seen(p, 'firing') for p in proxies]}",
    )
    assert len(opened) == 3, opened
    assert len(first.incidents("all")) == 3, first.incidents("all")

    # Resolve through both Alertmanagers.
    now = rfc3339()
    for manager in managers:
        manager.post_alerts([{**alert, "endsAt": now} for alert in alerts])
    wait_until(
        lambda: all(len(seen(proxy, "resolved")) == 3 for proxy in proxies),
        timeout=25,
        message=lambda: f"resolved notifications via both: {[seen(p, 'resolved') for p in proxies]}",
    )

    def settled() -> list[dict[str, Any]] | None:
        items = first.incidents("all")
        if len(items) < 3 or any(i["status"] != "resolved" for i in items) or waiting(first):
            return None
        found = all_notices(first)
        return found if len(found) >= 3 * sum(EXPECTED.values()) else None

    wait_until(
        settled,
        timeout=25,
        message=lambda: f"three resolved incidents, all notices out: {all_notices(first)}",
    )
    time.sleep(1.5)  # a late duplicate delivery, if any, would land now

    # --- exactly one incident per group ------------------------------------------------------
    incidents = first.incidents("all")
    assert incidents == second.incidents("all"), "the replicas disagree about the incidents"
    by_service = Counter(tuple(i["services"]) for i in incidents)
    assert by_service == Counter((service,) for service in GROUPS), incidents
    for incident in incidents:
        service = incident["services"][0]
        assert incident["level"] == LEVELS[service], incident
        assert incident["status"] == "resolved", incident
        assert incident["resolved_at"], incident
        detail = first.incident(incident["ref"])
        assert len(detail["alerts"]) == 1, f"{incident['ref']}: {detail['alerts']}"

    # --- exactly one notice per (incident, phase, audience, provider), all delivered ---------
    notices = all_notices(second)
    per_key = Counter((n["incident"], n["phase"], n["audience"], n["provider"]) for n in notices)
    repeated = {key: count for key, count in per_key.items() if count > 1}
    assert not repeated, f"duplicate notices: {repeated}"
    for incident in incidents:
        mine = Counter(
            (n["phase"], n["audience"], n["provider"]) for n in notices if n["incident"] == incident["ref"]
        )
        assert mine == EXPECTED, f"{incident['ref']}: {sorted(mine)}"
    undelivered = [n for n in notices if n["state"] != "delivered" or not n["delivered_at"]]
    assert not undelivered, undelivered
    assert waiting(second) == []
    assert second.api("notices", state="dead")["notices"] == []

    # --- the sink got exactly one POST per webhook notice -----------------------------------
    hooks = {n["id"]: n for n in notices if n["provider"] == "ops-hook"}
    assert len(hooks) == 6, hooks
    posts = sink.received("/hook")
    keys = Counter(post.header(IDEMPOTENCY) for post in posts)
    assert all(count == 1 for count in keys.values()), f"repeated webhook deliveries: {keys}"
    assert set(keys) == {notice_key(notice_id) for notice_id in hooks}, keys
    for post in posts:
        assert post.method == "POST"
        assert signature_ok(HOOK_SECRET, post.body, post.header(SIGNATURE_HEADER))
        body = post.json()
        notice = hooks[body["notice_id"]]
        assert post.header(IDEMPOTENCY) == notice_key(body["notice_id"])
        assert (body["incident"], body["phase"], body["audience"]) == (
            notice["incident"],
            notice["phase"],
            notice["audience"],
        )

    # Every notification both Alertmanagers sent was accepted.
    answers = Counter(r.answered for proxy in proxies for r in proxy.received())
    assert set(answers) == {202}, f"the replicas answered Alertmanager with {answers}"
    print(  # noqa: T201
        f"alertmanager notifications: {[dict(seen(p, 'firing')) for p in proxies]} firing, "
        f"{[dict(seen(p, 'resolved')) for p in proxies]} resolved; {time.monotonic() - started:.1f}s"
    )


# --------------------------------------------------------------------------------------------
# 2. kill -9 one replica while its deliveries are in flight

NOTIFICATIONS = 30


def test_kill_9_one_replica_mid_delivery_the_other_delivers_the_rest(pg_url, tmp_path, dualtrack_factory):
    started = time.monotonic()
    with SlowSink(delay=0.25) as sink:
        delivery = {"lease": "5s", "backoff_initial": "1s", "backoff_max": "2s"}

        def hook(replica: str) -> dict[str, Any]:
            # The same webhook everywhere; a header tells the test which replica sent a request.
            return {**provider_webhook(f"{sink.url}/hook"), "headers": {"X-Replica": replica}}

        replica_a = dualtrack_factory(
            folder=tmp_path / "replica-a",
            workers=2,
            providers=[PROVIDER_BUILTIN, hook("a")],
            delivery=delivery,
            extra={"storage": {"url": pg_url}},
        )
        replica_b = dualtrack_factory(
            folder=tmp_path / "replica-b",
            workers=2,
            providers=[PROVIDER_BUILTIN, hook("b")],
            delivery=delivery,
            extra={"storage": {"url": pg_url}},
        )
        for replica in (replica_a, replica_b):
            replica.process.start()
        for replica in (replica_a, replica_b):
            replica.wait_ready(45)

        def sent_by(name: str, posts: list[Received] | None = None) -> list[Received]:
            return [
                p
                for p in (sink.received("/hook") if posts is None else posts)
                if p.header("X-Replica") == name
            ]

        refs = replica_a.open_incidents(NOTIFICATIONS, "ReplicaLoad")

        # Replica A is in the middle of deliveries: some done, one or more still waiting for an answer.
        wait_until(
            lambda: (
                len(sent_by("a")) >= 3 and any(p.header("X-Replica") == "a" for p in sink.in_flight("/hook"))
            ),
            timeout=20,
            interval=0.05,
            message=lambda: f"replica A delivering; sink has {len(sink.received('/hook'))} posts",
        )
        killed_at = time.monotonic()
        replica_a.kill()
        dead_at = time.monotonic()
        assert not replica_a.process.running
        before_kill = [p for p in sink.received("/hook") if p.at < killed_at]
        # Requests A sent whose answer it can never have read: it died before the sink replied.
        unanswered = [
            p
            for p in sent_by("a", before_kill)
            if isinstance(p, SlowReceived) and (p.answered_at is None or p.answered_at >= killed_at)
        ]
        assert unanswered, "replica A had no delivery in flight when it was killed"

        # Replica B takes over A's leases once they expire and delivers every remaining notice.
        def all_out() -> bool:
            if waiting(replica_b):
                return False
            found = [n for i in replica_b.incidents("all") for n in replica_b.incident(i["ref"])["notices"]]
            return len(found) == 3 * NOTIFICATIONS

        wait_until(
            all_out,
            timeout=40,
            interval=0.5,
            message=lambda: f"every notice delivered by replica B; still waiting: {len(waiting(replica_b))}",
        )
        time.sleep(1.5)  # let the sink answer the last requests
        took_over = time.monotonic() - killed_at

        incidents = replica_b.incidents("all")
        assert sorted(i["ref"] for i in incidents) == sorted(refs)
        notices = [
            {**n, "incident": i["ref"]} for i in incidents for n in replica_b.incident(i["ref"])["notices"]
        ]
        per_incident = Counter(n["incident"] for n in notices)
        assert set(per_incident.values()) == {3}, per_incident
        lost = [n for n in notices if n["state"] != "delivered"]
        assert not lost, f"notices not delivered after replica A died: {lost}"
        assert replica_b.api("notices", state="dead")["notices"] == []

        # The sink saw every webhook notice at least once, each under its own Idempotency-Key.
        hooks = {n["id"]: n for n in notices if n["provider"] == "ops-hook"}
        assert len(hooks) == NOTIFICATIONS
        posts = sink.received("/hook")
        by_notice: dict[int, list[Received]] = {}
        for post in posts:
            assert signature_ok(HOOK_SECRET, post.body, post.header(SIGNATURE_HEADER))
            by_notice.setdefault(post.json()["notice_id"], []).append(post)
        assert set(by_notice) == set(hooks), f"missing {set(hooks) - set(by_notice)}"
        for notice_id, received in by_notice.items():
            keys = {post.header(IDEMPOTENCY) for post in received}
            assert keys == {notice_key(notice_id)}, f"notice {notice_id} came with keys {keys}"
            assert len({post.body for post in received}) == 1, f"notice {notice_id} changed between sends"
            assert received[0].json()["incident"] == hooks[notice_id]["incident"]
        repeats = {notice_id: len(received) for notice_id, received in by_notice.items() if len(received) > 1}

        # After the kill only replica B sent anything, and it sent again what A left unfinished.
        after_kill = [p for p in posts if p.at > dead_at]
        assert after_kill, "nothing was delivered after the kill"
        assert all(p.header("X-Replica") == "b" for p in after_kill), Counter(
            p.header("X-Replica") for p in after_kill
        )
        resent = {p.json()["notice_id"] for p in after_kill}
        for post in unanswered:
            assert post.json()["notice_id"] in resent, f"notice {post.json()['notice_id']} was not sent again"
        # Every repeat is a notice A had sent before it died, then B sent again.
        for notice_id in repeats:
            senders = [p.header("X-Replica") for p in by_notice[notice_id]]
            assert senders == ["a", "b"], f"notice {notice_id} sent by {senders}"
            assert by_notice[notice_id][0].at < dead_at < by_notice[notice_id][1].at

        print(  # noqa: T201
            f"webhook posts: {len(posts)} for {len(hooks)} notices; before kill: "
            f"a={len(sent_by('a', before_kill))} b={len(sent_by('b', before_kill))}; "
            f"in flight at A at the kill: {len(unanswered)}; after kill (all by B): {len(after_kill)}; "
            f"repeats (same Idempotency-Key, droppable): {len(repeats)} {sorted(repeats.items())}; "
            f"took over in {took_over:.1f}s; test {time.monotonic() - started:.1f}s"
        )
