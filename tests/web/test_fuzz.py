"""Every inbound endpoint and API write under hostile input: never a 5xx, nothing stored from a
4xx, and the valid alerts of a group stored beside its invalid ones; on SQLite and PostgreSQL.

Cases per test: DUALTRACK_FUZZ_EXAMPLES (default sized for CI); each case is a few requests.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.sources import SOURCES
from adapter.sources.signatures import sign_pagerduty
from adapter.store import Store
from adapter.store.schema import alerts, inbound_events, incidents, notices, timeline
from adapter.text import storable
from tests.conftest import AM_TOKEN, API_TOKEN, base_config, fixture_json
from tests.support.catalog import catalog_data

settings.register_profile(
    "dualtrack-fuzz",
    max_examples=int(os.environ.get("DUALTRACK_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,  # the same cases on every run: CI never flakes on a new one
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
FUZZ = settings.get_profile("dualtrack-fuzz")

SECRET = "whsec-fuzz-0123456789"
ROUTING_KEY = "FUZZR0UTINGKEY0123456789abcdef01"
STATE = (incidents, alerts, notices, timeline, inbound_events)

# -- hostile values ------------------------------------------------------------------------------

# Placeholders the encoder replaces with what Python's json cannot write or a parser cannot read.
HUGE_INT = "\x01huge-int"  # 5,000 digits: past the int conversion limit
DEEP = "\x01deep"  # 100,000 nested arrays
NESTED = "\x01nested"  # 400 nested arrays: parses, but is no value any field takes
RAW = {
    json.dumps(HUGE_INT): "9" * 5000,
    json.dumps(DEEP): "[" * 100_000 + "]" * 100_000,
    json.dumps(NESTED): "[" * 400 + "]" * 400,
}
ODD_TEXT = [
    "\x00",
    "\ud800",
    "a\udfffb",
    "\x00\ud83d",
    "\x1b[2J\x07",
    "\u202e\ufffe",
    "line\r\nbreak",
    "\x85",
]
ODD_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "2026-11-26T20:06:35",
    "2026-02-30T00:00:00Z",
    "2026-11-26T20:06:35.123456789+05:45",
    "1764187595",
]
LONG_TEXT = ["x" * n for n in (32, 33, 64, 65, 125, 126, 128, 129, 255, 256, 20_001)]
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
scalars = st.one_of(
    st.sampled_from([*ODD_TEXT, *ODD_TIMES, *LONG_TEXT, HUGE_INT, DEEP, NESTED]),
    any_text,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
)
keys = st.sampled_from(["labels", "status", "id", "\x00", "\ud800", "incident_type", "x" * 300]) | any_text
hostile = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def encode(body: Any) -> bytes:
    text = json.dumps(body)
    for placeholder, raw in RAW.items():
        text = text.replace(placeholder, raw)
    return text.encode()


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        yield from _paths(child, (*path, key))


@st.composite
def mutated(draw: st.DrawFn, body: Any) -> Any:
    """`body` with up to three of its values replaced, removed or joined by hostile ones."""
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(_paths(body))))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                body = draw(hostile)
            continue
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        operation = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if operation == "replace":
            parent[path[-1]] = draw(hostile)
        elif operation == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(hostile)
        else:
            parent.append(draw(hostile))
    return body


# -- requests ------------------------------------------------------------------------------------


@dataclass
class Call:
    kind: str
    method: str
    url: str
    body: Any
    headers: dict[str, str]
    data: bytes = b""


FINGERPRINTS = ["a64770b64ad10dbc", "f1e3b1d0db0dd851", "fp\x00", "fp\ud800", "5c2a7e9d1f0b3a64", "f" * 128]
STARTS = ["2026-11-26T14:00:00Z", "2026-11-26T20:06:35.164413Z", "2026-11-26T15:00:00.5+01:00"]
GROUP_KEYS = [
    '{}:{alertname="HighErrorRate"}',
    "group\x00",
    "group\ud800",
    "97510b418c30a6bc221ab8cd7f4d49d2",
]
ALERTMANAGER_FIXTURES = [
    "alertmanager/alertmanager-firing.json",
    "alertmanager/alertmanager-mixed.json",
    "alertmanager/alertmanager-resolved.json",
    "grafana/grafana-webhook.json",
    "grafana/grafana-webhook-resolved.json",
]


@st.composite
def alertmanager_body(draw: st.DrawFn) -> Any:
    body = fixture_json(draw(st.sampled_from(ALERTMANAGER_FIXTURES)))
    body["groupKey"] = draw(st.sampled_from(GROUP_KEYS))
    body["alerts"] += copy.deepcopy(body["alerts"][: draw(st.integers(0, 2))])
    for alert in body["alerts"]:
        alert["fingerprint"] = draw(st.sampled_from(FINGERPRINTS))
        alert["startsAt"] = draw(st.sampled_from(STARTS))
        alert["status"] = draw(st.sampled_from(["firing", "resolved"]))
        alert["endsAt"] = "2026-11-26T21:00:00Z" if alert["status"] == "resolved" else "0001-01-01T00:00:00Z"
    return draw(mutated(body))


@st.composite
def alertmanager_call(draw: st.DrawFn) -> Call:
    headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
    return Call(
        "alertmanager",
        draw(st.sampled_from(["POST", "PUT"])),
        "/webhooks/alertmanager",
        draw(alertmanager_body()),
        headers,
    )


PAGERDUTY_FIXTURES = ["triggered", "resolved", "priority-updated", "annotated", "status-update-published"]


@st.composite
def pagerduty_body(draw: st.DrawFn) -> Any:
    name = draw(st.sampled_from([*PAGERDUTY_FIXTURES, "ping"]))
    body = fixture_json(f"pagerduty/pagerduty-v3-{'ping' if name == 'ping' else 'incident-' + name}.json")
    event = body["event"]
    event["id"] = draw(
        st.sampled_from(["01EVENT0000000000000000001", "01EVENT0000000000000000002", "e" * 64])
    )
    event["occurred_at"] = draw(st.sampled_from(STARTS))
    if isinstance(event.get("data"), dict) and event["data"].get("type") == "incident":
        event["data"]["id"] = draw(st.sampled_from(["Q2K8W7ZJ1XNB4R", "Q\x00", "Q\ud800", "Q" * 125]))
    return draw(mutated(body))


@st.composite
def pagerduty_call(draw: st.DrawFn) -> Call:
    body = draw(pagerduty_body())
    headers = {"Content-Type": "application/json"}
    webhook_id = draw(st.sampled_from([None, "", "wh-1", "wh-2", "w" * 255, "w" * 256]))
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    signature = draw(st.sampled_from(["signed", "signed", "signed", "wrong", "none"]))
    call = Call("pagerduty", "POST", "/webhooks/pagerduty", body, headers)
    call.data = encode(body)
    if signature != "none":
        call.headers["X-PagerDuty-Signature"] = sign_pagerduty(
            SECRET if signature == "signed" else "x", call.data
        )
    return call


@st.composite
def events_body(draw: st.DrawFn) -> Any:
    action = draw(st.sampled_from(["trigger", "trigger", "resolve", "acknowledge"]))
    body = fixture_json(
        f"pagerduty/pagerduty-events-v2-{'resolve' if action == 'resolve' else 'trigger'}.json"
    )
    body.update(routing_key=ROUTING_KEY, event_action=action)
    body["dedup_key"] = draw(st.sampled_from(["key-1", "key\x00", "key\ud800", "k" * 255]))
    timestamp = draw(st.sampled_from([None, *STARTS]))
    if timestamp:
        body["payload"]["timestamp"] = timestamp
    return draw(mutated(body))


@st.composite
def events_call(draw: st.DrawFn) -> Call:
    return Call("events", "POST", "/v2/enqueue", draw(events_body()), {"Content-Type": "application/json"})


# One row per registered source (test_every_source_is_fuzzed): its bodies, and its webhook calls.
BODIES = {"alertmanager": alertmanager_body, "pagerduty": pagerduty_body, "events": events_body}
WEBHOOK_CALLS = {"alertmanager": alertmanager_call, "pagerduty": pagerduty_call, "events": events_call}

REFS = ["INC-2026-0001", "INC-2026-0002", "INC-2026-0003", "INC-2026-9999", "%00", "INC-2026-0001%00"]
TEXT = (
    st.sampled_from(["Pool drained", "Failed over"])
    | st.sampled_from(ODD_TEXT)
    | st.sampled_from(["", "x" * 20_001])
)
# Catalog ids, aliases, unknown ones and things that are no ids at all.
IDS = st.sampled_from(
    [["acme"], ["checkout"], ["checkout-api", "checkout"], ["nobody"], [], [""], ["a\x00"], "acme", [1]]
)
API_BODIES = {
    ("POST", "updates"): {
        "status": st.sampled_from(["identified", "monitoring", "fixed"]),
        "technical": TEXT,
        "business": TEXT,
        "eta": st.sampled_from(["2h", "45m", "365d", "366d", "9" * 400 + "h", *ODD_TIMES]),
        "workaround": TEXT,
        "root_cause": TEXT,
        "action_required": TEXT,
        "tenants": IDS,
    },
    ("PATCH", ""): {
        "level": st.integers(-1, 6),
        "title": TEXT,
        "incident_type": st.sampled_from(["database", "Web", "t" * 64, "t" * 65, "a\x00"]),
        "services": IDS,
        "publish": st.sampled_from([True, False, "yes", None, 1]),
    },
    ("POST", "resolve"): {"technical": TEXT, "business": TEXT, "root_cause": TEXT},
    ("POST", "postmortem"): {
        "technical": TEXT,
        "business": TEXT,
        "root_cause": TEXT,
        "preventive_measures": TEXT | st.lists(TEXT, max_size=3),
    },
}


@st.composite
def api_call(draw: st.DrawFn) -> Call:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    what = draw(st.sampled_from([*API_BODIES, "retry", "preview"]))
    if what == "retry":
        notice = draw(st.sampled_from(["1", "2", "0", "-1", str(2**31), str(2**63), "9" * 5000, "x"]))
        return Call("api", "POST", f"/api/v1/notices/{notice}/retry", None, headers)
    if what == "preview":
        source, body = draw(
            st.sampled_from(list(BODIES)).flatmap(lambda s: st.tuples(st.just(s), BODIES[s]()))
        )
        return Call("preview", "POST", f"/api/v1/preview?source={source}", body, headers)
    method, action = what
    fields = API_BODIES[what]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
    body = {name: draw(fields[name]) for name in chosen}
    ref = draw(st.sampled_from(REFS))
    url = f"/api/v1/incidents/{ref}" + (f"/{action}" if action else "")
    return Call("api", method, url, draw(mutated(body)), headers)


calls = st.one_of(*(call() for call in WEBHOOK_CALLS.values()), api_call())


def test_every_source_is_fuzzed():
    assert list(BODIES) == list(WEBHOOK_CALLS) == list(SOURCES)


# -- the checks ----------------------------------------------------------------------------------


@pytest.fixture
def fuzzed(make_settings, clock, backend, capsys):
    config = base_config()
    config["auth"]["pagerduty"] = {"signing_secrets": [SECRET]}
    config["auth"]["events"] = {"routing_keys": [ROUTING_KEY]}
    catalog = catalog_data()
    catalog["pagerduty"] = {"PSVC123": "checkout"}
    settings_ = make_settings(config, catalog)
    store = Store(settings_.storage.url)
    store.migrate()
    client = create_app(settings_, clock=clock, store=store, metrics=Metrics()).test_client()
    figures: Counter[str] = Counter()
    yield client, store, clock, figures
    store.dispose()
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(figures.items()) if k[0].isdigit() and k != "5xx")
    with capsys.disabled():
        print(  # noqa: T201
            f"\nfuzz[{backend}]: {figures['cases']} cases, {figures['requests']} requests,"
            f" {figures['5xx']} 5xx; statuses {statuses}"
        )


def snapshot(store: Store) -> tuple[list[int], set[tuple[str, str, datetime]]]:
    with store.read() as conn:
        counts = [int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in STATE]
        instances = {(r.source, r.fingerprint, r.starts_at) for r in conn.execute(select(alerts))}
    return counts, instances


def alert_instances(body: Any, rejected: list[dict[str, Any]]) -> tuple[set[Any], set[Any]]:
    """(every accepted alert's instance, the accepted firing ones') of a body answered 202."""
    source = "grafana" if body["version"] == "1" else "alertmanager"
    refused = {r["index"] for r in rejected}
    accepted = [a for i, a in enumerate(body["alerts"]) if i not in refused]
    every, firing = set(), set()
    for alert in accepted:
        start = datetime.fromisoformat(alert["startsAt"].strip()).astimezone(UTC)
        instance = (source, storable(alert["fingerprint"]), start)
        every.add(instance)
        if alert["status"] == "firing":
            firing.add(instance)
    grafana_test = source == "grafana" and all(
        a["labels"].get("alertname") == "TestAlert" and a["labels"].get("instance") == "Grafana"
        for a in accepted
    )
    return every, set() if grafana_test else firing


def check(client: Any, store: Store, call: Call, figures: Counter[str]) -> None:
    data = call.data or (encode(call.body) if call.body is not None else b"")
    before = snapshot(store)
    response = client.open(call.url, method=call.method, data=data, headers=call.headers)
    status = response.status_code
    figures["requests"] += 1
    figures[f"{status}"] += 1
    if status >= 500:
        figures["5xx"] += 1
    assert status < 500, (call.kind, call.url, response.get_data(as_text=True)[:500])
    assert response.is_json
    after = snapshot(store)
    if status >= 400 or call.kind == "preview":
        assert after == before, f"{call.kind} {call.url} answered {status} but changed the database"
    if call.kind == "alertmanager" and status == 202:
        answer = response.get_json()
        rejected = answer.get("rejected", [])
        assert set(answer) == ({"incidents", "rejected"} if rejected else {"incidents"})
        assert all(f"{r['field']}.".startswith(f"alerts.{r['index']}.") for r in rejected)
        figures["202 with rejected alerts"] += bool(rejected)
        every, firing = alert_instances(call.body, rejected)
        assert firing <= after[1], "a valid firing alert was not stored"
        assert after[1] - before[1] <= every, "an alert was stored that was rejected"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@FUZZ
@given(st.lists(st.tuples(calls, st.integers(0, 40)), min_size=1, max_size=4))
def test_no_input_gives_a_5xx_or_half_a_write(fuzzed, backend, sequence):
    client, store, clock, figures = fuzzed
    figures["cases"] += 1
    for call, minutes in sequence:
        clock.advance(timedelta(minutes=minutes))
        check(client, store, call, figures)
