"""Feedback links: signed tokens, answering and changing an answer, comments, detail requests,
links on the built-in page and in webhooks, the communication report, and reviewing templates."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.app import create_app
from adapter.feedback import BadToken, Link, read, sign
from adapter.metrics import Metrics
from adapter.store import audit, outbox
from adapter.store import feedback as answers_store
from tests.conftest import AUTHOR_TOKEN, VIEWER_TOKEN, base_config
from tests.payloads import am_alert, am_body, encode
from tests.support.scripted import Reply, ScriptedServer
from tests.web.test_status import deliver, post

SECRET = "feedback-test-secret-0123456789"
NOW = datetime(2026, 11, 26, 14, 32, tzinfo=UTC)
LINK = re.compile(r'href="(https?://[^"]+/(?:feedback|details)/[^"]+)"')


# ---------------------------------------------------------------- tokens


@given(
    kind=st.sampled_from(["yes", "no", "details"]),
    notice_id=st.integers(1, 2**31 - 1),
    tenant=st.none() | st.text(min_size=1, max_size=64),
)
def test_a_token_reads_back_as_it_was_made(kind, notice_id, tenant):
    link = Link(kind, notice_id, tenant, NOW + timedelta(days=30))
    assert read(SECRET, sign(SECRET, link), NOW) == link


def test_forged_changed_and_expired_tokens_are_refused():
    token = sign(SECRET, Link("yes", 7, "bloom", NOW + timedelta(days=1)))
    signature = token.split(".")[1]
    other = sign(SECRET, Link("no", 7, "acme", NOW + timedelta(days=1))).split(".")[0]
    for bad in (
        f"{other}.{signature}",
        token + "x",
        "x" + token,
        "",
        ".",
        "abc",
        sign("another-secret-0123", read(SECRET, token, NOW)),
    ):
        with pytest.raises(BadToken):
            read(SECRET, bad, NOW)
    with pytest.raises(BadToken, match="expired"):
        read(SECRET, token, NOW + timedelta(days=2))


# ---------------------------------------------------------------- answering


@pytest.fixture
def world(open_store, make_settings, clock):
    built = []

    def build(secret: str | None = SECRET, providers=None):
        config = base_config()
        if secret:
            config["feedback"] = {"secret": secret}
        config["providers"] = providers or [{"name": "status", "type": "builtin", "audience": "all"}]
        settings = make_settings(config)
        store = open_store(settings.storage.url)
        app = create_app(settings, clock=clock, store=store, metrics=Metrics())
        built.append(store)
        return app

    yield build
    for store in built:
        store.dispose()


def fire(client, service="checkout"):
    labels = {"alertname": "Errors", "service": service, "incident_level": "3"}
    post(client, encode(am_body([am_alert("c000000000000001", labels)], group_key=f"g-{service}")))


def links_on(html: str) -> list[str]:
    return [url.replace("&amp;", "&") for url in LINK.findall(html)]


def test_the_built_in_page_carries_each_notices_links_and_one_click_answers(world, clock):
    app = world()
    client = app.test_client()
    fire(client)
    deliver(app)
    business = links_on(client.get("/status").text)
    technical = links_on(client.get("/status/technical").text)
    assert [u.split("/")[3] for u in business] == ["feedback", "feedback", "details"]
    assert [u.split("/")[3] for u in technical] == ["feedback", "feedback"]
    yes, no, details = (u.split("://", 1)[1].split("/", 1)[1] for u in business)

    assert "helpful" in client.get(f"/{yes}").text
    changed = client.get(f"/{no}")  # a second click changes the answer
    assert changed.status_code == 200 and "not helpful" in changed.text
    svc = app.extensions["dualtrack"]
    with svc.store.read() as conn:
        (answer,) = answers_store.answers(conn)
    assert (answer.helpful, answer.segment, answer.notice.audience) == (False, "business", "business")
    sample = svc.metrics.registry.get_sample_value
    assert (
        sample("dualtrack_feedback_total", {"audience": "business", "segment": "business", "helpful": "yes"})
        == 1
    )

    # A comment follows, from the thank-you page's own form.
    token = re.search(r'name="csrf" value="([^"]+)"', changed.text).group(1)
    assert client.post(f"/{no}", data={"comment": "Too vague"}).status_code == 403
    assert "We have your comment" in client.post(f"/{no}", data={"comment": "Too vague", "csrf": token}).text
    with svc.store.read() as conn:
        (answer,) = answers_store.answers(conn)
    assert answer.comment == "Too vague"

    # Technical details: counted each time, shown without a log-in.
    for _ in range(2):
        shown = client.get(f"/{details}")
        assert shown.status_code == 200 and "Technical details" in shown.text
    with svc.store.read() as conn:
        asked = answers_store.details_asked(conn, NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [(a.tenant, a.segment) for a in asked] == [(None, "business"), (None, "business")]
    # A details link is not an answer, nor an answer a details link.
    assert client.get(f"/{details.replace('details/', 'feedback/')}").status_code == 400


def test_expired_forged_and_unknown_links_get_a_clear_page(world, clock):
    app = world()
    client = app.test_client()
    expired = sign(SECRET, Link("yes", 1, None, NOW - timedelta(seconds=1)))
    answer = client.get(f"/feedback/{expired}")
    assert answer.status_code == 410 and "expired" in answer.text
    assert client.get("/feedback/not-a-token").status_code == 400
    unknown = sign(SECRET, Link("yes", 999, None, NOW + timedelta(days=1)))
    assert client.get(f"/feedback/{unknown}").status_code == 404
    assert "Traceback" not in answer.text
    off = world(secret=None).test_client()
    assert off.get(f"/feedback/{unknown}").status_code == 404


def test_webhooks_get_the_links_as_fields_and_the_teams_notices_none(world):
    with ScriptedServer([Reply(200)] * 10) as receiver:
        providers = [
            {"name": "tech", "type": "webhook", "audience": "technical", "url": receiver.url + "/t"},
            {"name": "biz", "type": "webhook", "audience": "business", "url": receiver.url + "/b"},
        ]
        app = world(providers=providers)
        client = app.test_client()
        fire(client)
        deliver(app)
        bodies = {r.path: json.loads(r.body) for r in receiver.requests}
    assert set(bodies["/b"]["feedback_urls"]) == {"yes", "no"} and "/details/" in bodies["/b"]["details_url"]
    assert set(bodies["/t"]["feedback_urls"]) == {"yes", "no"} and "details_url" not in bodies["/t"]
    assert "Was this update helpful" not in bodies["/b"]["body"]  # fields, not text, for machines


def test_without_a_secret_notices_carry_no_links(world):
    app = world(secret=None)
    client = app.test_client()
    fire(client)
    deliver(app)
    assert links_on(client.get("/status").text) == []


# ---------------------------------------------------------------- the report and reviews


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_the_report_and_the_template_review_of_a_resolved_incident(world, clock):
    app = world()
    client = app.test_client()
    fire(client)
    deliver(app)
    yes = next(u for u in links_on(client.get("/status").text) if "/feedback/" in u)
    client.get("/" + yes.split("://", 1)[1].split("/", 1)[1])
    clock.advance(timedelta(minutes=1))
    report = client.get("/api/v1/reports/communication", headers=headers(VIEWER_TOKEN))
    assert report.status_code == 200
    (said,) = report.get_json()["feedback"]
    assert (said["audience"], said["segment"], said["level"], said["helpful"], said["not_helpful"]) == (
        "business",
        "business",
        3,
        1,
        0,
    )
    assert said["incidents"] == ["INC-2026-0001"] and said["helpful_percent"] == 100.0
    assert (
        client.get("/api/v1/reports/communication?from=soon", headers=headers(VIEWER_TOKEN)).status_code
        == 400
    )
    empty = client.get(
        "/api/v1/reports/communication?to=2026-01-01", headers=headers(VIEWER_TOKEN)
    ).get_json()
    assert empty["feedback"] == [] and empty["first_notices"] == []

    review = "/api/v1/incidents/INC-2026-0001/templates-reviewed"
    assert client.post(review, headers=headers(AUTHOR_TOKEN)).status_code == 409  # still open
    svc = app.extensions["dualtrack"]
    from tests.support.people import ONCALL

    svc.humans.resolve("INC-2026-0001", None, None, None, ONCALL)
    assert client.post(review, headers=headers(VIEWER_TOKEN)).status_code == 403
    assert client.post(review, headers=headers(AUTHOR_TOKEN)).status_code == 200
    assert client.post(review, headers=headers(AUTHOR_TOKEN)).status_code == 409
    with svc.store.read() as conn:
        reviews = [(e.author, e.action) for e in audit.entries(conn) if e.action == "templates_reviewed"]
    assert reviews == [("oncall-bot", "templates_reviewed")]


def test_bodies_end_with_the_links_where_the_provider_takes_them(world):
    mail = {"type": "smtp", "host": "127.0.0.1", "port": 9, "security": "none", "sender": "s@example.com"}
    cachet = {"type": "cachet", "api_url": "http://127.0.0.1:9/api/v1", "token": "t"}
    providers = [
        {"name": "mail", "audience": "business", "to": ["c@example.net"], **mail},
        {"name": "listed", "audience": "business", **cachet},
        {"name": "unlisted", "audience": "business", **cachet},
        {"name": "hook", "type": "webhook", "audience": "business", "url": "http://127.0.0.1:9/h"},
    ]
    config_app = world(providers=providers)
    # Statuspage, Instatus and Cachet bodies carry the links when named in feedback.providers.
    svc = config_app.extensions["dualtrack"]
    svc.dispatcher.links_listed = frozenset({"listed"})
    fire(config_app.test_client())
    with svc.store.read() as conn:
        notices = outbox.notices_of(conn, [1])
    messages = {m.notice_id: m for m in svc.dispatcher._messages(notices).values()}
    bodies = {n.provider: messages[n.id] for n in notices}
    for name in ("mail", "listed"):
        assert "Was this update helpful? Yes: http://status.example.test/feedback/" in bodies[name].body
        assert "Technical details: http://status.example.test/details/" in bodies[name].body
    assert "Was this update helpful" in (bodies["mail"].html or "")
    for name in ("unlisted", "hook"):
        assert "Was this update helpful" not in bodies[name].body
        assert bodies[name].feedback is not None  # the webhook sends them as fields
