"""Hot reload under load: a valid config switches every worker; an invalid one is refused."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.support.server import (
    API_TOKEN,
    PROVIDER_BUILTIN,
    metric_sum,
    provider_webhook,
    wait_until,
    webhook_body,
    write_config,
)

pytestmark = pytest.mark.e2e


def test_reload_under_load(dualtrack_factory, sink, tmp_path):
    folder = tmp_path / "dualtrack"
    dt = dualtrack_factory(folder=folder, workers=2, providers=[PROVIDER_BUILTIN])
    dt.start()
    statuses: list[int] = []
    stop = threading.Event()

    def post_forever() -> None:
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            body = webhook_body({"alertname": "Load", "service": "checkout"}, [{"instance": f"i-{n}"}])
            body["groupKey"] = f"load-{n}"
            statuses.append(dt.post_alertmanager(body).status_code)

    poster = threading.Thread(target=post_forever, daemon=True)
    poster.start()
    try:
        wait_until(lambda: len(statuses) >= 20, timeout=30, message="webhooks flowing")
        # A valid change: a webhook provider appears, in every worker, without a failed request.
        write_config(folder, dt.port, providers=[PROVIDER_BUILTIN, provider_webhook(f"{sink.url}/hook")])
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        response = dt.session.post(f"{dt.url}/-/reload", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "reloading"
        wait_until(
            lambda: len(sink.received("/hook")) >= 10, timeout=60, message="notices from the new provider"
        )

        # An invalid change is refused, over HTTP and by SIGHUP; the old config keeps serving.
        (folder / "dualtrack.yaml").write_text(
            "server: {bind: nowhere}\nproviders: [{type: carrier-pigeon}]\n"
        )
        response = dt.session.post(f"{dt.url}/-/reload", headers=headers, timeout=10)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_config"
        assert any("server.bind" in d["message"] for d in response.json()["error"]["details"])
        assert metric_sum(dt.metrics(), "dualtrack_config_last_reload_successful") == 0
        os.kill(dt.process.proc.pid, signal.SIGHUP)
        before = len(sink.received("/hook"))
        wait_until(lambda: len(sink.received("/hook")) >= before + 10, timeout=60, message="still delivering")
        assert dt.process.running
    finally:
        stop.set()
        poster.join(timeout=30)
    assert statuses and set(statuses) == {202}, {s for s in statuses if s != 202}
