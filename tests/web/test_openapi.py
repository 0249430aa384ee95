"""The OpenAPI document: valid OpenAPI 3.1, served without a token, naming every /api/v1 route and
no other, and describing the answers the API really gives."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.sources import SOURCES
from adapter.store import outbox
from adapter.web.api import PatchBody, PostmortemBody, ResolveBody, UpdateBody
from adapter.web.openapi import document
from tests.conftest import am_headers, api_headers, base_config, fixture_bytes
from tests.payloads import am_alert, am_body, encode
from tests.support.scripted import Reply, ScriptedServer

PREFIX = "/api/v1"
FIRING = "alertmanager/alertmanager-firing.json"
REF = "INC-2026-0001"
METHODS = {"get", "put", "post", "patch", "delete"}
# Where the tests find the document's schemas: its JSON pointers resolve under this URI.
URI = "urn:dualtrack:openapi"


@pytest.fixture
def world(open_store, make_settings, clock):
    """An app whose webhook provider answers 410, so a notice goes dead and can be retried."""
    with ScriptedServer(Reply(410)) as hook:
        config = base_config()
        config["providers"] = [
            {"name": "status", "type": "builtin", "audience": "all"},
            {"name": "hook", "type": "webhook", "audience": "technical", "url": hook.url},
        ]
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        app = create_app(settings, clock=clock, store=store, metrics=Metrics())
        yield app
        store.dispose()


def served(client) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return dict(response.get_json())


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check(response, method: str, url: str) -> Any:
    """The answer's status is documented for this operation and its body is valid against the
    schema documented for it; returns the body."""
    spec = document()
    path = next(p for p in spec["paths"] if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", p), url.split("?")[0]))
    responses = spec["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, (
        f"{method.upper()} {path} answered {status}, not documented: {response.data!r}"
    )
    where = pointer("paths", path, method, "responses", status)
    if "$ref" in responses[status]:
        where = responses[status]["$ref"]
    schema = {"$ref": f"{URI}{where}/content/application~1json/schema"}
    registry = Registry().with_resource(URI, Resource(contents=spec, specification=DRAFT202012))
    body = response.get_json()
    validator = Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{method.upper()} {url} ({status}):\n" + "\n".join(errors)
    return body


def call(client, method: str, url: str, body: Any = None, *, token: bool = True) -> tuple[Any, Any]:
    headers = api_headers() if token else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.open(PREFIX + url, method=method.upper(), data=data, headers=headers)
    return response, check(response, method, url)


# -- the document -------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1_and_needs_no_token(client):
    spec = served(client)
    assert spec["openapi"].startswith("3.1.")
    validate(spec)
    assert spec == json.loads(json.dumps(document()))


@pytest.mark.parametrize(
    ("schema", "error"),
    [({"type": "strin"}, OpenAPIValidationError), ({"$ref": "#/components/schemas/Nope"}, Unresolvable)],
)
def test_the_validator_refuses_a_broken_document(client, schema, error):
    spec = served(client)
    spec["components"]["schemas"]["TimelineEntry"]["properties"]["kind"] = schema
    with pytest.raises(error):
        validate(spec)


def test_every_api_route_is_documented_and_every_documented_one_is_routed(app):
    spec = document()
    assert spec["servers"] == [{"url": PREFIX}]
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            # Flask's /incidents/<ref> and /notices/<int(max=…):notice_id> are OpenAPI's {ref}.
            path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
            routed |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    documented = {(path, m) for path, item in spec["paths"].items() for m in item if m in METHODS}
    assert routed == documented
    assert len(routed) >= 10  # the api blueprint's nine operations and the document itself


def test_request_bodies_are_the_models_schemas(client):
    schemas = served(client)["components"]["schemas"]
    for model in (UpdateBody, PatchBody, ResolveBody, PostmortemBody):
        assert schemas[model.__name__]["properties"].keys() == model.model_fields.keys()
        assert schemas[model.__name__]["additionalProperties"] is False
    assert schemas["UpdateBody"]["properties"]["eta"]["anyOf"][0]["type"] == "string"


def test_the_documented_sources_and_notice_states_are_the_codes(client):
    spec = served(client)
    source = next(p for p in spec["paths"]["/preview"]["post"]["parameters"] if p["name"] == "source")
    assert source["schema"]["enum"] == list(SOURCES)
    assert spec["components"]["schemas"]["NoticeState"]["enum"] == list(outbox.STATES)


# -- real answers against it ----------------------------------------------------------------------


def test_every_operation_answers_as_documented(world, clock):
    client = world.test_client()
    svc = world.extensions["dualtrack"]
    assert (
        client.post("/webhooks/alertmanager", data=fixture_bytes(FIRING), headers=am_headers()).status_code
        == 202
    )
    svc.dispatcher.run_once()  # the hook answers 410: its notice is dead

    _, listed = call(client, "get", "/incidents?status=open")
    assert [i["ref"] for i in listed["incidents"]] == [REF]
    assert listed["incidents"][0]["call_list"]  # level 4: someone to call
    _, incident = call(client, "get", f"/incidents/{REF}")
    assert incident["alerts"] and incident["notices"] and incident["timeline"]

    clock.advance(timedelta(minutes=5))
    update = {
        "status": "identified",
        "technical": "Primary is failing over.",
        "eta": "45m",
        "tenants": ["bloom"],
    }
    assert call(client, "post", f"/incidents/{REF}/updates", update)[0].status_code == 201
    assert (
        call(client, "patch", f"/incidents/{REF}", {"level": 3, "title": "Checkout slow"})[0].status_code
        == 200
    )
    _, dead = call(client, "get", "/notices?state=dead,failed")
    assert dead["notices"] and all(n["incident"] == REF for n in dead["notices"])
    _, retried = call(client, "post", f"/notices/{dead['notices'][0]['id']}/retry")
    assert retried["state"] == "pending"

    clock.advance(timedelta(minutes=5))
    _, resolved = call(client, "post", f"/incidents/{REF}/resolve", {"root_cause": "A full disk."})
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    postmortem = {"technical": "The disk filled.", "preventive_measures": ["Alert at 80%", "Rotate logs"]}
    assert call(client, "post", f"/incidents/{REF}/postmortem", postmortem)[0].status_code == 201
    call(client, "get", "/incidents")
    call(client, "get", "/incidents?status=resolved")


@pytest.mark.parametrize(
    ("source", "payload"),
    [
        ("alertmanager", FIRING),
        ("pagerduty", "pagerduty/pagerduty-v3-incident-triggered.json"),
        ("events", "pagerduty/pagerduty-events-v2-trigger.json"),
    ],
)
def test_preview_answers_as_documented(world, source, payload):
    _, preview = call(world.test_client(), "post", f"/preview?source={source}", fixture_bytes(payload))
    assert preview["incidents"]


def test_a_preview_with_rejected_alerts_answers_as_documented(world):
    good = am_alert(
        "0000000000000001", {"alertname": "DiskFull", "service": "search", "severity": "critical"}
    )
    bad = dict(good, fingerprint="0000000000000002", startsAt="yesterday")
    _, preview = call(world.test_client(), "post", "/preview", encode(am_body([good, bad])))
    assert preview["rejected"] and preview["incident"] is not None


def test_a_preview_that_opens_nothing_answers_as_documented(world):
    resolved = am_alert("0000000000000001", {"alertname": "X", "service": "search"}, status="resolved")
    _, preview = call(world.test_client(), "post", "/preview", encode(am_body([resolved])))
    assert preview == {"incident": None, "notices": [], "incidents": []}


@pytest.mark.parametrize(
    ("method", "url", "body", "token", "status"),
    [
        ("get", "/incidents", None, False, 401),
        ("post", f"/incidents/{REF}/updates", {}, False, 401),
        ("post", "/notices/1/retry", None, False, 401),
        ("get", "/incidents?status=closed", None, True, 400),
        ("get", "/notices?state=lost", None, True, 400),
        ("post", "/preview?source=nagios", {}, True, 400),
        ("get", "/incidents/INC-1999-0001", None, True, 404),
        ("patch", "/incidents/INC-1999-0001", {}, True, 404),
        ("post", "/notices/999/retry", None, True, 404),
        ("post", "/notices/2147483648/retry", None, True, 404),
        ("post", f"/incidents/{REF}/postmortem", {"technical": "Too soon."}, True, 409),
        ("post", "/notices/1/retry", None, True, 409),
        ("post", f"/incidents/{REF}/updates", {"colour": "red"}, True, 422),
        ("patch", f"/incidents/{REF}", {"level": 9}, True, 422),
        ("patch", f"/incidents/{REF}", {"services": ["nowhere"]}, True, 422),
        ("post", f"/incidents/{REF}/updates", {"eta": "soon"}, True, 422),
        ("post", "/preview", {"version": "4"}, True, 422),
        ("post", f"/incidents/{REF}/resolve", b"{not json", True, 400),
    ],
)
def test_errors_answer_as_documented(world, method, url, body, token, status):
    client = world.test_client()
    client.post("/webhooks/alertmanager", data=fixture_bytes(FIRING), headers=am_headers())
    response, answer = call(client, method, url, body, token=token)
    assert response.status_code == status, answer
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="dualtrack"'


@pytest.mark.parametrize(
    ("content_type", "size", "status"), [("text/plain", 2, 415), ("application/json", 1_048_577, 413)]
)
def test_a_body_not_json_or_too_large_answers_as_documented(world, content_type, size, status):
    headers = {**api_headers(), "Content-Type": content_type}
    response = world.test_client().post(
        f"{PREFIX}/incidents/{REF}/resolve", data=b" " * size, headers=headers
    )
    assert response.status_code == status
    check(response, "post", f"/incidents/{REF}/resolve")
