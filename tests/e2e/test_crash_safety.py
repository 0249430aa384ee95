"""A 202 survives kill -9: after a restart the outbox still delivers the notice."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import pytest
import requests
import sqlalchemy

from tests.support.catalog import with_shops
from tests.support.server import (
    AM_TOKEN,
    FIXTURES,
    HOOK_SECRET,
    PROVIDER_BUILTIN,
    SIGNATURE_HEADER,
    Dualtrack,
    free_port,
    provider_webhook,
    signature_ok,
    wait_until,
    webhook_body,
)

pytestmark = pytest.mark.e2e

FIRING = FIXTURES / "alertmanager" / "alertmanager-firing.json"


def hook_notice(incident: dict[str, Any]) -> dict[str, Any]:
    found = [n for n in incident["notices"] if n["provider"] == "ops-hook"]
    assert len(found) == 1, incident["notices"]
    return found[0]


def test_accepted_webhook_survives_kill_9(tmp_path, dualtrack_factory, sink_factory):
    sink_port = free_port()  # nothing listens here until the end of the test
    folder = tmp_path / "dualtrack"
    providers = [PROVIDER_BUILTIN, provider_webhook(f"http://127.0.0.1:{sink_port}/hook")]
    # A short lease, so a notice claimed by the killed server is soon free to claim again.
    delivery = {"backoff_initial": "1s", "backoff_max": "2s", "lease": "10s"}
    first: Dualtrack = dualtrack_factory(folder=folder, providers=providers, delivery=delivery)
    first.start()

    body = FIRING.read_bytes()
    response = first.post_alertmanager(body)
    assert response.status_code == 202, response.text
    refs = response.json()["incidents"]
    assert len(refs) == 1, refs
    first.kill()
    assert not first.process.running

    # Same config, same port, same database file.
    second: Dualtrack = dualtrack_factory(
        folder=folder, port=first.port, providers=providers, delivery=delivery
    )
    second.start()

    incident = second.incident(refs[0])
    assert incident["services"] == ["checkout"]
    assert incident["status"] != "resolved"
    assert incident["level"] == 4  # severity=critical on a service that is not critical infra
    assert len(incident["alerts"]) == 2
    acks = [n for n in incident["notices"] if n["phase"] == "acknowledgement"]
    assert sorted((n["provider"], n["audience"]) for n in acks) == [
        ("ops-hook", "technical"),
        ("status", "business"),
        ("status", "technical"),
    ]

    # The webhook cannot be delivered yet: the dispatcher tries, fails and keeps it for later.
    failing = wait_until(
        lambda: (lambda n: n if n["attempts"] >= 1 else None)(hook_notice(second.incident(refs[0]))),
        timeout=30,
        message=lambda: f"a failed delivery attempt: {second.incident(refs[0])['notices']}",
    )
    assert failing["state"] in {"pending", "failed"}, failing
    assert failing["last_error"]

    # Bring the sink up: the retry delivers the notice, signed, exactly once.
    sink = sink_factory(sink_port).start()
    done = wait_until(
        lambda: (lambda n: n if n["state"] == "delivered" else None)(hook_notice(second.incident(refs[0]))),
        timeout=30,
        message=lambda: f"delivery after restart: {second.incident(refs[0])['notices']}",
    )
    assert done["delivered_at"]
    posts = sink.received("/hook")
    assert len(posts) == 1, [p.body for p in posts]
    assert signature_ok(HOOK_SECRET, posts[0].body, posts[0].header(SIGNATURE_HEADER))
    payload = posts[0].json()
    assert payload["incident"] == refs[0]
    assert payload["phase"] == "acknowledgement"
    assert payload["audience"] == "technical"

    # Builtin notices were not lost either.
    status = [n for n in second.incident(refs[0])["notices"] if n["provider"] == "status"]
    wait_until(
        lambda: all(
            n["state"] == "delivered"
            for n in second.incident(refs[0])["notices"]
            if n["provider"] == "status"
        ),
        timeout=30,
        message="builtin notices delivered",
    )
    assert len(status) == 2

    # A clean stop after all that.
    assert second.stop() == 0


def test_kill_9_under_load_loses_no_accepted_webhook(tmp_path, dualtrack_factory):
    folder = tmp_path / "dualtrack"
    first: Dualtrack = dualtrack_factory(folder=folder, workers=2)
    first.start()
    accepted: list[tuple[dict[str, Any], list[str]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
        with requests.Session() as session:
            for i in itertools.count():
                if stop.is_set():
                    return
                body = webhook_body(
                    {"alertname": "CrashLoad", "service": "checkout", "client": f"c{number}-{i}"},
                    [{"instance": f"10.1.{number}.{n}:9100", "severity": "warning"} for n in (1, 2)],
                )
                try:
                    response = session.post(
                        f"{first.url}/webhooks/alertmanager", json=body, headers=headers, timeout=10
                    )
                except requests.RequestException:
                    return  # the server is gone; this one may or may not be stored
                if response.status_code == 202:
                    with lock:
                        accepted.append((body, response.json()["incidents"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(accepted) >= 40, timeout=30, message="40 accepted webhooks")
        first.kill()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    with lock:
        done = list(accepted)

    second: Dualtrack = dualtrack_factory(folder=folder, port=first.port, workers=2)
    second.start()
    stored = {i["ref"]: i for i in second.incidents("all")}
    for body, refs in done:
        assert len(refs) == 1, refs
        assert refs[0] in stored, f"{refs[0]} was answered 202 but is gone after kill -9"
        fingerprints = {a["fingerprint"] for a in second.incident(refs[0])["alerts"]}
        assert fingerprints == {a["fingerprint"] for a in body["alerts"]}
    assert len({refs[0] for _, refs in done}) == len(done), "two groups share an incident"


def test_a_fan_out_killed_right_after_its_202_reaches_every_tenant_exactly_once(
    tmp_path, dualtrack_factory, sink_factory
):
    tenants = 300  # 6 expansion chunks, 20 ms apart: far longer than from the 202 to the kill
    sink_port = free_port()  # nothing listens until the restart: nothing is delivered before it
    catalog = with_shops(tenants, f"http://127.0.0.1:{sink_port}")
    direct = {
        "name": "direct",
        "type": "webhook",
        "audience": "all",
        "per_tenant": True,
        "secret": HOOK_SECRET,
    }
    folder = tmp_path / "dualtrack"
    delivery = {"backoff_initial": "1s", "backoff_max": "2s", "lease": "10s"}
    config = {"providers": [PROVIDER_BUILTIN, direct], "catalog": catalog, "delivery": delivery}
    first: Dualtrack = dualtrack_factory(folder=folder, **config)
    first.start(ready_timeout=60)
    response = first.post_alertmanager(FIRING.read_bytes())
    assert response.status_code == 202, response.text
    first.kill()

    database = sqlalchemy.create_engine(f"sqlite:///{folder / 'dualtrack.db'}")
    with database.connect() as conn:
        waiting = conn.exec_driver_sql("SELECT count(*) FROM expansions").scalar_one()
        written = conn.exec_driver_sql("SELECT count(*) FROM notices WHERE tenant IS NOT NULL").scalar_one()
    database.dispose()
    assert waiting == 1 and written < tenants  # killed between the commit and the end of the expansion

    sink = sink_factory(sink_port).start()
    second: Dualtrack = dualtrack_factory(folder=folder, port=first.port, **config)
    second.start(ready_timeout=60)
    wait_until(
        lambda: len({post.path for post in sink.received()}) == tenants,
        timeout=120,
        message=lambda: f"{len({post.path for post in sink.received()})} of {tenants} tenants reached",
    )
    # Once every notice is marked delivered nothing more is sent: the count is final.
    ref = response.json()["incidents"][0]
    wait_until(
        lambda: all(
            n["state"] == "delivered" for n in second.incident(ref)["notices"] if n["provider"] == "direct"
        ),
        timeout=60,
        message="every per-tenant notice marked delivered",
    )
    received = Counter(post.path for post in sink.received())
    assert len(received) == tenants and set(received.values()) == {1}
    assert all(signature_ok(HOOK_SECRET, p.body, p.header(SIGNATURE_HEADER)) for p in sink.received()[:10])
    assert second.stop() == 0
