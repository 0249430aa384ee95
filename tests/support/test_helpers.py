"""Checks of the e2e helpers themselves (no dualtrack process needed)."""

from __future__ import annotations

import json

import requests

from tests.support.server import (
    FIXTURES,
    Sink,
    fingerprint,
    metric_sum,
    sign,
    signature_ok,
    wait_until,
)


def test_fingerprint_matches_alertmanager():
    body = json.loads((FIXTURES / "alertmanager" / "alertmanager-firing.json").read_bytes())
    for alert in body["alerts"]:
        assert fingerprint(alert["labels"]) == alert["fingerprint"]


def test_signature_round_trip():
    body = b'{"incident":"INC-2026-0001"}'
    header = sign("s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_ok("s3cret", body, header)
    assert not signature_ok("s3cret", body + b"\n", header)
    assert not signature_ok("other", body, header)
    assert not signature_ok("s3cret", body, None)


def test_metric_sum():
    text = (
        "# HELP x_total x\n"
        'x_total{integration="webhook"} 3\n'
        'x_total{integration="email"} 1\n'
        "x_total_created 5\n"
    )
    assert metric_sum(text, "x_total") == 4
    assert metric_sum(text, "x_total", integration="webhook") == 3
    assert metric_sum(text, "missing") == 0


def test_sink_records_and_proxy_forwards():
    with Sink(status=500) as upstream, Sink(forward=upstream.url) as proxy:
        with requests.Session() as session:
            response = session.post(
                f"{proxy.url}/hook?x=1",
                data=b'{"a": 1}',
                headers={"Authorization": "Bearer t", "X-Other": "no"},
                timeout=5,
            )
        assert response.status_code == 500
        got = wait_until(lambda: upstream.received("/hook"), timeout=5)
        assert got[0].body == b'{"a": 1}'
        assert got[0].header("authorization") == "Bearer t"
        assert got[0].header("X-Other") is None
        assert [r.answered for r in proxy.received("/hook")] == [500]
