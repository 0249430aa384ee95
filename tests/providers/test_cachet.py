"""Cachet provider against fake Cachet 2.x and 3.x APIs: open, update, resolve, quirks, failures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message
from adapter.providers.cachet import Cachet
from tests.support.fake_status_apis import FakeCachet2, FakeCachet3

MADE: list[Cachet] = []


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
        services=["checkout", "mysql-shared"],
        tenants=["acme"],
        data={"components": ["3", "5"], "opened_at": "2026-05-01T10:02:30+00:00"},
    )
    values.update(overrides)
    return Message(**values)


def cachet(server: FakeCachet2 | FakeCachet3, **options) -> Cachet:
    version = 2 if isinstance(server, FakeCachet2) else 3
    values = dict(api_url=server.api_url, token=server.token, version=version)
    values.update(options)
    provider = Cachet(ProviderSettings(name="cachet", type="cachet", audience="business", **values))
    MADE.append(provider)
    return provider


@pytest.fixture
def v2():
    with FakeCachet2(components=[3, 5]) as fake:
        yield fake
    while MADE:
        MADE.pop().close()


@pytest.fixture
def v3():
    with FakeCachet3(components=[3, 5]) as fake:
        yield fake
    while MADE:
        MADE.pop().close()


@pytest.fixture(params=[2, 3])
def any_version(request):
    fake = FakeCachet2 if request.param == 2 else FakeCachet3
    with fake(components=[3, 5]) as server:
        yield server
    while MADE:
        MADE.pop().close()


# -- Cachet 2.x ---------------------------------------------------------------------------


def test_v2_open_update_resolve(v2):
    provider = cachet(v2)
    ref = provider.send(message())

    (create,) = v2.writes()
    assert (create.method, create.path) == ("POST", "/api/v1/incidents")
    assert create.header("X-Cachet-Token") == v2.token
    assert create.header("Authorization") is None
    assert create.body == {
        "name": "INC-2026-0001: Online checkout errors - Initial Response",
        "message": "We're investigating errors in online checkout.",
        "status": 1,
        "visible": True,
        "notify": True,
        "occurred_at": "2026-05-01 10:02",
        # One component per incident: the first.
        "component_id": 3,
        "component_status": 4,
    }
    assert ref == "1"
    assert v2.components == {3: 4, 5: 1}

    update = message(phase="update", status="identified", level=2, body="Cause found.", provider_ref=ref)
    assert provider.send(update) == ref
    put, post = v2.writes()[1:]
    # The update endpoint ignores components, so a level change goes through the incident.
    assert (put.method, put.path, put.body) == (
        "PUT",
        "/api/v1/incidents/1",
        {"component_id": 3, "component_status": 3},
    )
    assert (post.method, post.path, post.body) == (
        "POST",
        "/api/v1/incidents/1/updates",
        {"status": 2, "message": "Cause found."},
    )
    assert v2.components[3] == 3

    resolution = message(phase="resolution", status="resolved", level=2, body="Fixed.", provider_ref=ref)
    assert provider.send(resolution) == ref
    put, post = v2.writes()[3:]
    assert (put.method, put.body) == ("PUT", {"status": 4, "component_id": 3, "component_status": 1})
    assert (post.path, post.body) == ("/api/v1/incidents/1/updates", {"status": 4, "message": "Fixed."})
    assert v2.incidents[1]["status"] == 4
    assert v2.incidents[1]["message"] == "We're investigating errors in online checkout."  # not overwritten
    assert [u["status"] for u in v2.updates] == [2, 4]
    assert v2.components == {3: 1, 5: 1}


def test_v2_occurred_at_is_in_cachets_own_format_and_zone(v2):
    cachet(v2, site_timezone="Europe/Dublin").send(message())
    assert v2.writes()[0].body["occurred_at"] == "2026-05-01 11:02"


def test_v2_without_components_sends_neither_field(v2):
    provider = cachet(v2)
    ref = provider.send(message(data={}))
    assert "component_id" not in v2.writes()[0].body and "component_status" not in v2.writes()[0].body
    provider.send(message(phase="update", status="monitoring", provider_ref=ref, data={}))
    # Nothing to change on the incident: the update alone.
    assert [c.method for c in v2.writes()] == ["POST", "POST"]
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref, data={}))
    assert v2.writes()[-2].body == {"status": 4}
    assert v2.incidents[1]["status"] == 4


def test_v2_options(v2):
    cachet(v2, visible=False, notify=False, component_status={4: 3}).send(message())
    body = v2.writes()[0].body
    assert body["visible"] is False and body["notify"] is False
    assert body["component_status"] == 3


@pytest.mark.parametrize("after", [0, 1], ids=["put-fails", "update-fails"])
def test_v2_resolution_retries_cleanly(v2, after):
    provider = cachet(v2)
    ref = provider.send(message())
    resolution = message(phase="resolution", status="resolved", provider_ref=ref, body="Fixed.")
    v2.fail(503, after=after)
    with pytest.raises(DeliveryError) as info:
        provider.send(resolution)
    assert not info.value.permanent
    # The PUT comes first and can be repeated; the update (what subscribers hear) is sent once.
    provider.send(resolution)
    expected = ["PUT", "PUT", "POST"] if after == 0 else ["PUT", "POST", "PUT", "POST"]
    assert [c.method for c in v2.writes()[1:]] == expected
    assert [u["message"] for u in v2.updates] == ["Fixed."]
    assert v2.components[3] == 1 and v2.incidents[1]["status"] == 4


def test_v2_wrong_token_is_permanent(v2):
    with pytest.raises(DeliveryError) as info:
        cachet(v2, token="nope").send(message())
    assert info.value.permanent
    assert "HTTP 401" in str(info.value) and "Authentication required." in str(info.value)


def test_v2_validation_error_is_permanent_with_details(v2):
    with pytest.raises(DeliveryError) as info:
        cachet(v2).send(message(subject=""))
    assert info.value.permanent
    assert "HTTP 400" in str(info.value) and "The name field is required." in str(info.value)


def test_v2_update_of_unknown_incident_is_permanent(v2):
    with pytest.raises(DeliveryError) as info:
        cachet(v2).send(message(phase="update", provider_ref="999"))
    assert info.value.permanent and "HTTP 404" in str(info.value)


def test_v2_long_subject_is_cut_to_255(v2):
    cachet(v2).send(message(subject="x" * 300))
    assert len(v2.incidents[1]["name"]) == 255


def test_non_numeric_component_id_is_permanent(v2):
    with pytest.raises(DeliveryError) as info:
        cachet(v2).send(message(data={"components": ["checkout"]}))
    assert info.value.permanent and "numbers" in str(info.value)
    assert v2.calls == []


# -- Cachet 3.x ---------------------------------------------------------------------------


def test_v3_open_update_resolve(v3):
    provider = cachet(v3)
    ref = provider.send(message())

    (create,) = v3.writes()
    assert (create.method, create.path) == ("POST", "/api/incidents")
    assert create.header("Authorization") == f"Bearer {v3.token}"
    assert create.header("X-Cachet-Token") is None
    assert create.body == {
        "name": "INC-2026-0001: Online checkout errors - Initial Response",
        "message": "We're investigating errors in online checkout.",
        "status": 1,
        "visible": True,
        "notifications": True,
        "components": [{"id": 3, "status": 4}, {"id": 5, "status": 4}],
    }
    assert ref == "1"
    assert v3.incidents[1]["visible"] and v3.incidents[1]["notifications"]
    assert (v3.component_status(3), v3.component_status(5)) == (4, 4)

    provider.send(message(phase="update", status="monitoring", body="Watching.", provider_ref=ref))
    update = v3.writes()[-1]
    assert (update.path, update.body) == ("/api/incidents/1/updates", {"status": 3, "message": "Watching."})

    provider.send(message(phase="resolution", status="resolved", body="Fixed.", provider_ref=ref))
    resolve = v3.writes()[-1]
    # PUT /incidents takes no components in 3.x; the Fixed update ends their impact.
    assert (resolve.method, resolve.body) == ("POST", {"status": 4, "message": "Fixed."})
    assert v3.incidents[1]["status"] == 4
    assert (v3.component_status(3), v3.component_status(5)) == (1, 1)
    assert v3.notified == [(1, "created"), (1, "update 1"), (1, "update 2")]


def test_v3_not_visible_means_nobody_is_told(v3):
    cachet(v3, visible=False).send(message())
    assert v3.writes()[0].body["visible"] is False
    assert v3.notified == []


def test_v3_validation_error_is_permanent_with_message(v3):
    with pytest.raises(DeliveryError) as info:
        cachet(v3).send(message(data={"components": ["99"]}))
    assert info.value.permanent
    assert "HTTP 422" in str(info.value) and "components.id is invalid" in str(info.value)


def test_v3_wrong_token_is_permanent(v3):
    with pytest.raises(DeliveryError) as info:
        cachet(v3, token="nope").send(message())
    assert info.value.permanent and "Unauthenticated." in str(info.value)


# -- both ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "expected"), [(1, 2), (2, 3), (3, 3), (4, 4), (5, 4)])
def test_component_status_from_level(any_version, level, expected):
    cachet(any_version).send(message(level=level))
    body = any_version.writes()[0].body
    assert (body.get("component_status") or body["components"][0]["status"]) == expected


def test_answer_without_id_is_permanent(any_version):
    any_version.fail(200, body={"data": {}})
    with pytest.raises(DeliveryError) as info:
        cachet(any_version).send(message())
    assert info.value.permanent and "data.id" in str(info.value)


def test_first_notice_that_is_a_resolution_opens_it_fixed(any_version):
    ref = cachet(any_version).send(message(phase="resolution", status="resolved"))
    assert any_version.incidents[int(ref)]["status"] == 4
    body = any_version.writes()[0].body
    assert (body.get("component_status") or body["components"][0]["status"]) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"version": 4},
        {"api_url": "not a url"},
        {"token": ""},
        {"component_status": {1: 5}},
        {"component_status": {0: 2}},
        {"site_timezone": "Mars/Olympus"},
    ],
)
def test_bad_options_are_rejected(v2, options):
    with pytest.raises(ValidationError):
        cachet(v2, **options)


def test_rate_key_is_per_site_and_token(v2):
    assert cachet(v2).rate_key() == cachet(v2).rate_key() != cachet(v2, token="other").rate_key()
    assert v2.token not in cachet(v2).rate_key()
