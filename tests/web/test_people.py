"""People through the API: named tokens and their roles, declaring an incident, the audit trail."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from adapter.app import create_app
from adapter.config import config_warnings
from adapter.engine.humans import Declaration
from adapter.metrics import Metrics
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import (
    API_TOKEN,
    AUTHOR_TOKEN,
    VIEWER_TOKEN,
    am_headers,
    base_config,
)
from tests.payloads import am_alert, am_body, encode
from tests.support.people import ONCALL

DECLARATION = {
    "services": ["checkout"],
    "level": 3,
    "title": "Customers report failed payments",
    "technical": "Payments to one card network fail with a gateway timeout.",
    "business": "Some card payments fail at checkout. Please retry or use another card.",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def world(open_store, make_settings, clock):
    def build(policy=None):
        config = base_config()
        config["providers"] = [
            {"name": "status", "type": "builtin", "audience": "all"},
            {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"},
            {"name": "shops", "type": "webhook", "audience": "business", "url": "http://127.0.0.1:9/b"},
        ]
        config["policy"] = policy or {}
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        app = create_app(settings, clock=clock, store=store, metrics=Metrics())
        built.append(store)
        return app.test_client(), app.extensions["dualtrack"]

    built: list = []
    yield build
    for store in built:
        store.dispose()


def send(client, method, url, token, body=None):
    data = json.dumps(body) if body is not None else None
    return client.open(url, method=method, data=data, headers=bearer(token))


def test_a_declared_incident_goes_where_an_alerted_one_would(world):
    client, svc = world()
    response = send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION)
    assert response.status_code == 201, response.get_json()
    document = response.get_json()
    assert document["ref"] == "INC-2026-0001"
    assert document["level"] == 3 and document["services"] == ["checkout"]
    assert document["status"] == "investigating" and document["level_locked"] is True
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, "INC-2026-0001")
        notices = outbox.notices_of(conn, [incident.id])
    first = {(n.provider, n.audience) for n in notices if n.phase == "acknowledgement"}
    business = next(n for n in notices if n.provider == "shops")
    assert "Please retry or use another card." in business.body
    assert "gateway timeout" not in business.body
    technical = next(n for n in notices if n.provider == "team")
    assert "gateway timeout" in technical.body

    # An alert on the same service at the same level reaches the same tenants and streams.
    labels = {"alertname": "CheckoutErrors", "service": "checkout", "incident_level": "3"}
    body = encode(am_body([am_alert("c000000000000001", labels)], group_key="g-checkout"))
    assert client.post("/webhooks/alertmanager", data=body, headers=am_headers()).status_code == 202
    with svc.store.read() as conn:
        other = repo.get_incident_by_ref(conn, "INC-2026-0002")
        streams = {(n.provider, n.audience) for n in outbox.notices_of(conn, [other.id])}
    assert (other.level, other.tenants) == (incident.level, incident.tenants)
    assert (
        streams
        == first
        == {("status", "technical"), ("status", "business"), ("team", "technical"), ("shops", "business")}
    )


def test_declaring_refuses_what_it_cannot_do(world):
    client, _ = world()
    unknown = send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, {**DECLARATION, "services": ["nope"]})
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["details"] == [
        {"field": "services", "message": "no service nope in the catalog"}
    ]
    for wrong in (
        {**DECLARATION, "level": 6},
        {**DECLARATION, "title": ""},
        {"title": "x"},
        {**DECLARATION, "x": 1},
    ):
        answer = send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, wrong)
        assert answer.status_code == 422, wrong
        assert answer.get_json()["error"]["code"] == "invalid_payload"
    # A viewer may not declare.
    refused = send(client, "POST", "/api/v1/incidents", VIEWER_TOKEN, DECLARATION)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == {
        "code": "forbidden",
        "message": "dashboard has the viewer role; this needs author",
        "details": [],
    }


def test_a_declaration_on_a_service_with_a_fresh_incident_points_at_it(world, make_settings):
    client, _ = world()
    # service_window is 0s in the tests' base config; a fresh incident joins only within it.
    first = send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION)
    assert first.status_code == 201
    second = send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION)
    assert second.status_code == 201 and second.get_json()["ref"] == "INC-2026-0002"


@pytest.mark.parametrize(
    ("method", "url", "body", "role"),
    [
        ("GET", "/api/v1/incidents", None, "viewer"),
        ("GET", "/api/v1/incidents/INC-2026-0001", None, "viewer"),
        ("GET", "/api/v1/audit", None, "viewer"),
        ("GET", "/api/v1/notices", None, "viewer"),
        ("POST", "/api/v1/incidents/INC-2026-0001/updates", {"technical": "Looking."}, "author"),
        ("PATCH", "/api/v1/incidents/INC-2026-0001", {"level": 4}, "author"),
        ("POST", "/api/v1/incidents/INC-2026-0001/resolve", {}, "author"),
        ("POST", "/api/v1/notices/1/retry", None, "admin"),
        ("POST", "/-/reload", None, "admin"),
    ],
)
def test_each_action_needs_its_role(world, method, url, body, role):
    client, _ = world()
    assert send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION).status_code == 201
    tokens = {"viewer": VIEWER_TOKEN, "author": AUTHOR_TOKEN, "admin": API_TOKEN}
    order = ["viewer", "author", "admin"]
    for who in order[: order.index(role)]:
        answer = send(client, method, url, tokens[who], body)
        assert answer.status_code == 403, (who, answer.get_json())
        assert answer.get_json()["error"]["code"] == "forbidden"
    allowed = send(client, method, url, tokens[role], body)
    assert allowed.status_code not in (401, 403), allowed.get_json()
    assert send(client, method, url, "not-a-token", body).status_code == 401


def test_every_human_action_is_in_the_audit_trail(world, clock):
    client, _ = world()
    ref = "/api/v1/incidents/INC-2026-0001"
    steps = [
        ("POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION),
        ("POST", f"{ref}/updates", AUTHOR_TOKEN, {"status": "identified", "business": "Found it."}),
        ("PATCH", ref, API_TOKEN, {"level": 4, "title": "Card payments fail"}),
        ("POST", f"{ref}/resolve", AUTHOR_TOKEN, {"technical": "Gateway failed over."}),
        ("POST", f"{ref}/postmortem", AUTHOR_TOKEN, {"technical": "Write-up.", "root_cause": "A bad route."}),
        ("POST", "/api/v1/incidents", AUTHOR_TOKEN, {**DECLARATION, "services": ["search"]}),
    ]
    for method, url, token, body in steps:
        assert send(client, method, url, token, body).status_code in (200, 201), url
        clock.advance(timedelta(minutes=1))

    entries = send(client, "GET", "/api/v1/audit?incident=INC-2026-0001", VIEWER_TOKEN).get_json()["entries"]
    assert [(e["action"], e["author"], e["role"]) for e in entries] == [
        ("declare", "oncall-bot", "author"),
        ("update", "oncall-bot", "author"),
        ("level_change", "admin-bot", "admin"),
        ("resolve", "oncall-bot", "author"),
        ("postmortem", "oncall-bot", "author"),
    ]
    assert entries[1]["changes"] == {"status": "identified", "business": "Found it."}
    assert entries[2]["changes"] == {
        "level": {"from": 3, "to": 4},
        "title": {"from": "Customers report failed payments", "to": "Card payments fail"},
    }
    everyone = send(client, "GET", "/api/v1/audit", VIEWER_TOKEN).get_json()["entries"]
    assert len(everyone) == 6
    by_admin = send(client, "GET", "/api/v1/audit?author=admin-bot", VIEWER_TOKEN).get_json()["entries"]
    assert [e["action"] for e in by_admin] == ["level_change"]
    later = send(client, "GET", f"/api/v1/audit?from={entries[-1]['at']}", VIEWER_TOKEN).get_json()["entries"]
    assert [e["incident"] for e in later] == ["INC-2026-0001", "INC-2026-0002"]
    bad = send(client, "GET", "/api/v1/audit?from=yesterday", VIEWER_TOKEN)
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["field"] == "from"
    # The timeline says who, for operators.
    timeline = send(client, "GET", ref, VIEWER_TOKEN).get_json()["timeline"]
    assert {"kind": "declared", "author": "oncall-bot"}.items() <= timeline[1].items()


def test_no_code_path_changes_or_deletes_the_audit_trail():
    root = Path(__file__).parents[2] / "adapter"
    users = [p for p in root.rglob("*.py") if re.search(r"schema import [^\n]*\baudit\b", p.read_text())]
    assert users == [root / "store" / "audit.py"]
    assert not re.search(r"\b(update|delete)\(", users[0].read_text())


@pytest.mark.parametrize(("how", "signature"), [("team", "— SRE"), ("name", "— oncall"), ("none", None)])
def test_notices_carry_the_authors_signature_when_asked(world, how, signature):
    _, svc = world({"sign_notices": how})
    declaration = Declaration(("checkout",), 3, "Card payments fail", technical="Looking.", business="Sorry.")
    svc.humans.declare(declaration, ONCALL)
    with svc.store.read() as conn:
        notices = outbox.notices_of(conn, [1])
    for notice in notices:
        said = "Looking." if notice.audience == "technical" else "Sorry."
        if signature:
            assert f"{said}\n\n{signature}" in notice.body
        else:
            assert "—" not in notice.body


def test_a_plain_token_still_works_as_an_unnamed_admin_and_check_config_says_so(make_settings):
    config = base_config()
    config["api"] = {"tokens": ["legacy-token-0123"]}
    settings = make_settings(config)
    (token,) = settings.api.named()
    assert (token.token, token.role) == ("legacy-token-0123", "admin")
    assert any(
        "api.tokens[0]: a plain token is an unnamed admin token" in w for w in config_warnings(settings)
    )


def test_the_desks_previews_are_in_the_api_too_and_keep_nothing(world):
    client, svc = world()
    drafted = send(client, "POST", "/api/v1/drafts/declare", AUTHOR_TOKEN, DECLARATION)
    assert drafted.status_code == 200
    drafts = drafted.get_json()["drafts"]
    readers = {d["audience"]: d["readers"] for d in drafts}
    assert readers == {
        "technical": ["status (technical)", "team (technical)"],
        "business": ["status (business)", "shops (business)"],
    }
    texts = {d["audience"]: d["body"] for d in drafts}
    assert "gateway timeout" in texts["technical"] and "gateway timeout" not in texts["business"]
    assert "Please retry or use another card." in texts["business"]
    assert send(client, "GET", "/api/v1/incidents", VIEWER_TOKEN).get_json() == {"incidents": []}
    assert send(client, "POST", "/api/v1/drafts/declare", VIEWER_TOKEN, DECLARATION).status_code == 403

    send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION)
    url = "/api/v1/incidents/INC-2026-0001/drafts"
    update = send(client, "POST", f"{url}/update", AUTHOR_TOKEN, {"business": "Fixed by noon.", "eta": "2h"})
    assert any("Fixed by noon." in d["body"] for d in update.get_json()["drafts"])
    assert send(client, "POST", f"{url}/sla_followup", AUTHOR_TOKEN).status_code == 409
    assert send(client, "POST", f"{url}/nothing", AUTHOR_TOKEN, {}).status_code == 404
    with svc.store.read() as conn:
        assert [n.phase for n in outbox.notices_of(conn, [1])] == ["acknowledgement"] * 4


def test_a_draft_of_an_update_with_text_only_changes_nothing_else(world):
    """Found by schemathesis: an update draft with no field to change was an empty UPDATE (500)."""
    client, _ = world()
    send(client, "POST", "/api/v1/incidents", AUTHOR_TOKEN, DECLARATION)
    drafted = send(
        client, "POST", "/api/v1/incidents/INC-2026-0001/drafts/update", AUTHOR_TOKEN, {"business": "0"}
    )
    assert drafted.status_code == 200 and any(d["body"] for d in drafted.get_json()["drafts"])
