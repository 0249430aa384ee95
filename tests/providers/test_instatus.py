"""Instatus provider against a fake Instatus API: open, update, resolve, and failure classes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message
from adapter.providers.instatus import Instatus
from tests.support.fake_status_apis import FakeInstatus


def message(**overrides) -> Message:
    values = dict(
        notice_id=7,
        incident_ref="INC-2026-0001",
        phase="acknowledgement",
        audience="business",
        subject="INC-2026-0001: Online checkout errors - Initial Response",
        body="We're investigating errors in online checkout.",
        level=4,
        status="investigating",
        services=["checkout"],
        tenants=["acme"],
        data={"components": ["cmp-checkout"], "opened_at": "2026-05-01T10:02:00+00:00"},
    )
    values.update(overrides)
    return Message(**values)


MADE: list[Instatus] = []


def instatus(server: FakeInstatus, **options) -> Instatus:
    values = dict(page_id=server.page_id, api_key=server.api_key, api_url=server.url)
    values.update(options)
    provider = Instatus(ProviderSettings(name="ins", type="instatus", audience="business", **values))
    MADE.append(provider)
    return provider


@pytest.fixture
def server():
    with FakeInstatus(components=["cmp-checkout", "cmp-db"]) as fake:
        yield fake
    while MADE:
        MADE.pop().close()


def test_open_update_resolve(server):
    provider = instatus(server)
    data = {
        "components": ["cmp-checkout", "cmp-db", "cmp-checkout"],
        "opened_at": "2026-05-01T12:02:00+02:00",
    }
    ref = provider.send(message(data=data))

    (create,) = server.writes()
    assert create.path == f"/v1/{server.page_id}/incidents"
    assert create.header("Authorization") == f"Bearer {server.api_key}"
    assert create.body == {
        "name": "INC-2026-0001: Online checkout errors - Initial Response",
        "message": "We're investigating errors in online checkout.",
        "components": ["cmp-checkout", "cmp-db"],
        "started": "2026-05-01T10:02:00.000Z",
        "status": "INVESTIGATING",
        "notify": True,
        "statuses": [
            {"id": "cmp-checkout", "status": "MAJOROUTAGE"},
            {"id": "cmp-db", "status": "MAJOROUTAGE"},
        ],
        "shouldPublish": True,
    }
    assert ref in server.incidents
    assert server.components == {"cmp-checkout": "MAJOROUTAGE", "cmp-db": "MAJOROUTAGE"}

    update = message(
        phase="update", status="identified", level=2, body="Cause found.", provider_ref=ref, data=data
    )
    assert provider.send(update) == ref
    call = server.writes()[-1]
    assert call.path == f"/v1/{server.page_id}/incidents/{ref}/incident-updates"
    assert call.body["status"] == "IDENTIFIED"
    assert call.body["message"] == "Cause found."
    assert call.body["components"] == ["cmp-checkout", "cmp-db"]
    assert datetime.fromisoformat(call.body["started"].replace("Z", "+00:00")) <= datetime.now(UTC)
    assert server.components == {"cmp-checkout": "PARTIALOUTAGE", "cmp-db": "PARTIALOUTAGE"}

    resolution = message(
        phase="resolution", status="resolved", level=2, body="Fixed.", provider_ref=ref, data=data
    )
    assert provider.send(resolution) == ref
    call = server.writes()[-1]
    assert call.body["status"] == "RESOLVED"
    assert call.body["statuses"] == [
        {"id": "cmp-checkout", "status": "OPERATIONAL"},
        {"id": "cmp-db", "status": "OPERATIONAL"},
    ]
    incident = server.incidents[ref]
    assert incident["status"] == "RESOLVED" and incident["resolved"]
    assert [u["status"] for u in incident["updates"]] == ["INVESTIGATING", "IDENTIFIED", "RESOLVED"]
    assert server.components == {"cmp-checkout": "OPERATIONAL", "cmp-db": "OPERATIONAL"}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (1, "DEGRADEDPERFORMANCE"),
        (2, "PARTIALOUTAGE"),
        (3, "PARTIALOUTAGE"),
        (4, "MAJOROUTAGE"),
        (5, "MAJOROUTAGE"),
    ],
)
def test_component_status_from_level(server, level, expected):
    instatus(server).send(message(level=level))
    assert server.components["cmp-checkout"] == expected


def test_component_status_is_configurable(server):
    provider = instatus(server, component_status={1: "MINOROUTAGE", "5": "PARTIALOUTAGE"})
    assert provider.options.component_status[4] == "MAJOROUTAGE"  # the default stays
    provider.send(message(level=1))
    assert server.components["cmp-checkout"] == "MINOROUTAGE"
    provider.send(message(level=5))
    assert server.components["cmp-checkout"] == "PARTIALOUTAGE"


@pytest.mark.parametrize(
    "options",
    [
        {"component_status": {6: "MAJOROUTAGE"}},
        {"component_status": {1: "BROKEN"}},
        {"page_id": ""},
        {"api_key": None},
        {"unknown": 1},
    ],
)
def test_bad_options_are_rejected(server, options):
    with pytest.raises(ValidationError):
        instatus(server, **options)


def test_notify_false_and_no_components(server):
    instatus(server, notify=False).send(message(data={}))
    body = server.writes()[0].body
    assert body["notify"] is False
    assert body["components"] == [] and body["statuses"] == []


def test_first_notice_that_is_an_update_opens_the_incident(server):
    # The acknowledgement never got through: the first delivered notice creates the incident.
    ref = instatus(server).send(message(phase="update", status="monitoring"))
    assert server.incidents[ref]["status"] == "MONITORING"
    assert server.writes()[0].path.endswith("/incidents")


def test_wrong_api_key_is_permanent_with_instatus_message(server):
    with pytest.raises(DeliveryError) as info:
        instatus(server, api_key="nope").send(message())
    assert info.value.permanent
    assert "HTTP 401" in str(info.value) and "Not authorized" in str(info.value)


def test_unknown_component_is_permanent(server):
    with pytest.raises(DeliveryError) as info:
        instatus(server).send(message(data={"components": ["cmp-gone"]}))
    assert info.value.permanent
    assert "unknown component 'cmp-gone'" in str(info.value)
    assert server.incidents == {}


def test_update_of_unknown_incident_is_permanent(server):
    with pytest.raises(DeliveryError) as info:
        instatus(server).send(message(phase="update", provider_ref="cins-missing"))
    assert info.value.permanent and "HTTP 404" in str(info.value)


def test_answer_without_id_is_permanent(server):
    # Retrying could open a second incident.
    server.fail(200, body={"name": "x"})
    with pytest.raises(DeliveryError) as info:
        instatus(server).send(message())
    assert info.value.permanent and "without an incident id" in str(info.value)


def test_rate_key_is_per_api_key(server):
    one, two = instatus(server), instatus(server)
    other = instatus(server, api_key="another")
    assert one.rate_key() == two.rate_key() != other.rate_key()
    assert server.api_key not in one.rate_key()
    assert Instatus.coalesce and Instatus.rate_limit is not None
