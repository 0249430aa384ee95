"""The desk through Flask's client: log-in, sessions, CSRF, roles, forms and previews."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.store import audit, outbox
from adapter.store import incidents as repo
from tests.conftest import base_config

HASH = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse")  # fast, for tests
USERS = [
    {"name": "ana", "password_hash": HASH, "role": "author", "team": "SRE"},
    {"name": "vic", "password_hash": HASH, "role": "viewer"},
    {"name": "root", "password_hash": HASH, "role": "admin"},
]
DECLARE = {
    "services": ["checkout"],
    "level": "3",
    "title": "Customers report failed payments",
    "status": "investigating",
    "technical": "Card payments time out at the gateway.",
    "business": "Some card payments fail. Please retry.",
}


@pytest.fixture
def desk(open_store, make_settings, clock):
    config = base_config()
    config["users"] = USERS
    config["auth"]["session_secret"] = "desk-session-secret-0123456789"
    config["auth"]["login_attempts"] = 3
    config["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all"},
        {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"},
    ]
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    yield app
    store.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


PASSWORD = "correct horse"


def log_in(client, name="ana", password=PASSWORD):
    page = client.get("/desk/login")
    answer = client.post("/desk/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)})
    return answer


def test_the_desk_asks_for_a_log_in_and_sets_a_safe_cookie(desk):
    client = desk.test_client()
    first = client.get("/desk/")
    assert first.status_code == 303 and first.headers["Location"].startswith("/desk/login")
    answer = log_in(client)
    assert answer.status_code == 303 and answer.headers["Location"] == "/desk/"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("dualtrack_desk="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/desk" in cookie
    page = client.get("/desk/")
    assert page.status_code == 200 and "ana · author" in page.text
    for name in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert name in page.headers
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_a_session_cookie_is_secure_over_https(desk):
    client = desk.test_client()
    page = client.get("/desk/login", base_url="https://desk.example")
    answer = client.post(
        "/desk/login",
        data={"name": "ana", "password": "correct horse", "csrf": csrf_of(page.text)},
        base_url="https://desk.example",
    )
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("dualtrack_desk="))
    assert "Secure" in cookie


def test_wrong_passwords_are_refused_and_attempts_are_limited(desk, clock):
    client = desk.test_client()
    for _ in range(3):
        wrong = log_in(client, password="wrong horse")
        assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    limited = log_in(client)  # the right password, but too many attempts from here
    assert limited.status_code == 429 and "Too many attempts" in limited.text
    assert limited.headers["Retry-After"]
    clock.advance(timedelta(minutes=15))
    assert log_in(client).status_code == 303
    # Per user too: another address guessing ana's password is limited by her name.
    other = desk.test_client()
    for _ in range(3):
        other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
        log_in(other, password="nope nope")
    other.environ_base["REMOTE_ADDR"] = "10.0.0.10"
    assert log_in(other).status_code == 429


def test_a_form_without_its_csrf_token_is_refused(desk):
    client = desk.test_client()
    log_in(client)
    refused = client.post("/desk/declare", data=DECLARE)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf"
    forged = client.post("/desk/declare", data={**DECLARE, "csrf": "x" * 43})
    assert forged.status_code == 403
    no_login_token = desk.test_client().post("/desk/login", data={"name": "ana", "password": "correct horse"})
    assert no_login_token.status_code == 403


def test_a_viewer_reads_but_cannot_post(desk):
    client = desk.test_client()
    log_in(client, "vic")
    page = client.get("/desk/")
    assert page.status_code == 200 and "Declare an incident" not in page.text
    token = csrf_of(page.text)
    refused = client.post("/desk/declare", data={**DECLARE, "csrf": token})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert client.post("/desk/preview/declare", data={**DECLARE, "csrf": token}).status_code == 403


def test_declare_then_update_through_the_forms_with_their_authors_on_record(desk):
    client = desk.test_client()
    log_in(client)
    form = client.get("/desk/declare")
    token = csrf_of(form.text)
    preview = client.post("/desk/preview/declare", data={**DECLARE, "csrf": token})
    assert preview.status_code == 200
    assert "Card payments time out at the gateway." in preview.text  # technical
    assert "Some card payments fail. Please retry." in preview.text  # business
    assert "team (technical)" in preview.text
    declared = client.post("/desk/declare", data={**DECLARE, "csrf": token})
    assert declared.status_code == 303 and declared.headers["Location"] == "/desk/incidents/INC-2026-0001"
    page = client.get("/desk/incidents/INC-2026-0001")
    assert "Customers report failed payments" in page.text and "Post an update" in page.text

    update = {
        "status": "identified",
        "technical": "Gateway failover running.",
        "business": "Fix on its way.",
        "eta": "2h",
    }
    drafted = client.post("/desk/incidents/INC-2026-0001/preview/update", data={**update, "csrf": token})
    assert "Gateway failover running." in drafted.text and "Fix on its way." in drafted.text
    posted = client.post("/desk/incidents/INC-2026-0001/update", data={**update, "csrf": token})
    assert posted.status_code == 303
    app_svc = desk.extensions["dualtrack"]
    with app_svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, "INC-2026-0001")
        trail = audit.entries(conn, ref="INC-2026-0001")
        notices = outbox.notices_of(conn, [incident.id])
    assert incident.status == "identified"
    assert [(a.author, a.action) for a in trail] == [("ana", "declare"), ("ana", "update")]
    assert any("Gateway failover running." in n.body for n in notices if n.phase == "update")
    # The preview stored and sent nothing.
    assert len([n for n in notices if n.phase == "acknowledgement"]) == 3


def test_a_refused_form_comes_back_filled_with_its_errors_beside_the_fields(desk):
    client = desk.test_client()
    log_in(client)
    token = csrf_of(client.get("/desk/declare").text)
    wrong = client.post("/desk/declare", data={**DECLARE, "level": "9", "title": "", "csrf": token})
    assert wrong.status_code == 422
    assert (
        'id="level-error"' in wrong.text
        and 'aria-invalid="true" aria-describedby="level-error"' in wrong.text
    )
    assert 'id="title-error"' in wrong.text
    assert "Card payments time out at the gateway." in wrong.text  # what was typed is kept
    unknown = client.post("/desk/declare", data={**DECLARE, "services": "nope", "csrf": token})
    assert unknown.status_code == 422 and "no service nope in the catalog" in unknown.text


def test_log_out_ends_the_session_for_good(desk):
    client = desk.test_client()
    log_in(client)
    cookie = client.get_cookie("dualtrack_desk", path="/desk")
    assert cookie is not None
    token = csrf_of(client.get("/desk/").text)
    assert client.post("/desk/logout", data={"csrf": token}).status_code == 303
    replay = desk.test_client()
    replay.set_cookie("dualtrack_desk", cookie.value, path="/desk")
    assert replay.get("/desk/").status_code == 303  # back to the log-in
    # Each log-in gets a new session id.
    log_in(client)
    assert client.get_cookie("dualtrack_desk", path="/desk").value != cookie.value


def test_a_trusted_proxy_names_the_user_and_groups_give_the_role(open_store, make_settings, clock):
    config = base_config()
    config["auth"].update(
        session_secret="desk-session-secret-0123456789",
        trusted_header="X-Forwarded-User",
        group_roles={"sre": "author", "leads": "approver"},
    )
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    client = app.test_client()
    headers = {"X-Forwarded-User": "pat", "X-Forwarded-Groups": "sre, leads"}
    first = client.get("/desk/", headers=headers)
    assert first.status_code == 303  # a session is started for them
    page = client.get("/desk/", headers=headers)
    assert page.status_code == 200 and "pat · approver" in page.text
    # Not from a trusted address: the header counts for nothing.
    outsider = app.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    assert outsider.get("/desk/", headers=headers).headers["Location"].startswith("/desk/login")
    # In no mapped group and no default role: no way in.
    assert app.test_client().get("/desk/", headers={"X-Forwarded-User": "eve"}).status_code == 303
    store.dispose()


def test_the_list_puts_open_incidents_first_and_filters_by_status_level_and_service(desk, clock):
    svc = desk.extensions["dualtrack"]
    from adapter.engine.humans import Declaration
    from tests.support.people import ONCALL

    for services, level in [(("checkout",), 3), (("search",), 2), (("mysql-shared",), 4)]:
        svc.humans.declare(Declaration(services, level, f"Trouble with {services[0]}"), ONCALL)
        clock.advance(timedelta(minutes=1))
    svc.humans.resolve("INC-2026-0003", None, None, None, ONCALL)
    client = desk.test_client()
    log_in(client, "vic")

    def listed(query: str = "") -> list[str]:
        return re.findall(r'href="/desk/incidents/(INC-[0-9-]+)"', client.get(f"/desk/{query}").text)

    assert listed() == ["INC-2026-0002", "INC-2026-0001", "INC-2026-0003"]
    assert listed("?status=resolved") == ["INC-2026-0003"]
    assert listed("?level=2") == ["INC-2026-0002"]
    assert listed("?service=checkout") == ["INC-2026-0001"]
    assert listed("?service=check") == []  # a service id, not a part of one
    assert client.get("/desk/?level=9").status_code == 400
    page = client.get("/desk/").text
    assert "Next business notice" in page and "1 business" in page


def test_approvers_approve_with_their_edits_or_discard_and_others_only_read(open_store, make_settings, clock):
    config = base_config()
    config["users"] = [*USERS, {"name": "lea", "password_hash": HASH, "role": "approver"}]
    config["auth"]["session_secret"] = "desk-session-secret-0123456789"
    config["policy"] = {"approval": {"business": {"min_level": 3}}}
    config["providers"] = [
        {"name": "shops", "type": "webhook", "audience": "business", "url": "http://127.0.0.1:9/b"}
    ]
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    svc = app.extensions["dualtrack"]
    from adapter.engine.humans import Declaration
    from tests.support.people import ONCALL

    for service in ("checkout", "search"):
        svc.humans.declare(Declaration((service,), 3, f"{service} is down"), ONCALL)
    with store.read() as conn:
        first, second = outbox.awaiting_approval(conn, timedelta(0))

    author = app.test_client()
    log_in(author, "ana")
    listed = author.get("/desk/").text
    assert listed.count("1 notice waiting for approval") == 2
    page = author.get("/desk/approvals").text
    assert "textarea" not in page and first.notice.subject in page
    refused = author.post(f"/desk/notices/{first.notice.id}/approve", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403

    lea = app.test_client()
    log_in(lea, "lea")
    token = csrf_of(lea.get("/desk/approvals").text)
    edited = first.notice.body.replace("\n", "\r\n") + "\r\nSorry for the trouble."  # as a browser sends it
    done = lea.post(
        f"/desk/notices/{first.notice.id}/approve",
        data={"csrf": token, "subject": first.notice.subject, "body": edited, "ref": first.ref},
    )
    assert done.status_code == 303 and done.headers["Location"].endswith(
        f"/desk/incidents/{first.ref}?done=approve"
    )
    assert lea.post(f"/desk/notices/{second.notice.id}/discard", data={"csrf": token}).status_code == 303
    again = lea.post(f"/desk/notices/{second.notice.id}/discard", data={"csrf": token})
    assert again.status_code == 409
    with store.read() as conn:
        approved, discarded = outbox.one(conn, first.notice.id), outbox.one(conn, second.notice.id)
        trail = audit.entries(conn)
    assert approved.state == "pending" and approved.body.endswith("\nSorry for the trouble.")
    assert discarded.state == "discarded"
    decisions = [(a.author, a.action, sorted(a.changes)) for a in trail if a.action in ("approve", "discard")]
    assert (
        decisions[0][:2] == ("lea", "approve")
        and "body" in decisions[0][2]
        and "subject" not in decisions[0][2]
    )
    assert decisions[1][:2] == ("lea", "discard")
    store.dispose()


def test_a_resolved_incident_lists_its_templates_with_their_feedback_until_reviewed(
    open_store, make_settings, clock
):
    config = base_config()
    config["users"] = USERS
    config["auth"]["session_secret"] = "desk-session-secret-0123456789"
    config["feedback"] = {"secret": "feedback-desk-secret-0123456789"}
    settings = make_settings(config)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    svc = app.extensions["dualtrack"]
    from adapter.engine.humans import Declaration
    from tests.support.people import ONCALL

    svc.humans.declare(Declaration(("checkout",), 3, "Checkout is down"), ONCALL)
    public = app.test_client().get("/status").text
    no = re.search(r'href="http://[^/]+(/feedback/[^"]+)"[^>]*>No', public).group(1)
    app.test_client().get(no)
    app.test_client().post(no, data={"comment": "Say when it will be fixed"})  # no form token: refused
    svc.humans.resolve("INC-2026-0001", None, None, None, ONCALL)

    client = app.test_client()
    log_in(client)
    page = client.get("/desk/incidents/INC-2026-0001").text
    assert "Templates used, and what readers said" in page and "To do: review these templates" in page
    cells = r"<td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
    row = re.search(r"<tr><td>web/business/acknowledgement\.md\.j2</td>" + cells, page)
    assert row is not None and row.groups() == ("1", "0", "1")
    done = client.post("/desk/incidents/INC-2026-0001/templates-reviewed", data={"csrf": csrf_of(page)})
    assert done.status_code == 303
    assert "Templates reviewed." in client.get("/desk/incidents/INC-2026-0001").text
    clock.advance(timedelta(minutes=1))
    report = client.get("/desk/reports")
    assert (
        report.status_code == 200
        and "<svg" in report.text
        and "Readers who found updates helpful" in report.text
    )
    exported = client.get("/desk/reports.csv")
    assert (
        exported.headers["Content-Type"].startswith("text/csv")
        and "helpful,business,business,3" in exported.text
    )
    store.dispose()


FORM_TEXT = st.text(max_size=60) | st.sampled_from(["", "3", "9", "2h", "-1", "checkout", "nope", "x" * 600])
REF = "incidents/INC-2026-0001"
FORMS = [
    "declare",
    f"{REF}/update",
    f"{REF}/change",
    f"{REF}/resolve",
    f"{REF}/postmortem",
    f"{REF}/templates-reviewed",
    "preview/declare",
    f"{REF}/preview/update",
    f"{REF}/preview/sla_followup",
    f"{REF}/nothing",
    "notices/1/approve",
    "notices/99/discard",
]
FIELDS = [
    *("services", "level", "title", "status", "technical", "business", "eta", "workaround"),
    *("root_cause", "action_required", "tenants", "incident_type", "publish", "preventive_measures"),
    *("subject", "body"),
]


@pytest.fixture
def admin(desk):
    """A logged-in admin's client, and an incident to act on."""
    from adapter.engine.humans import Declaration
    from tests.support.people import ONCALL

    desk.extensions["dualtrack"].humans.declare(Declaration(("checkout",), 3, "Checkout is down"), ONCALL)
    client = desk.test_client()
    log_in(client, "root")
    return client, csrf_of(client.get("/desk/").text)


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(FORMS), data=st.dictionaries(st.sampled_from(FIELDS), FORM_TEXT, max_size=8))
def test_no_form_input_gets_a_server_error(admin, form, data):
    client, token = admin
    answer = client.post(f"/desk/{form}", data={**data, "csrf": token})
    assert answer.status_code < 500, (form, data, answer.text[:500])


@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=120), kind=st.sampled_from(["feedback", "details"]))
def test_no_token_gets_a_server_error(desk, token, kind):
    answer = desk.test_client().get(f"/{kind}/{token}")
    assert answer.status_code < 500


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=80), password=st.text(max_size=80), next_url=st.text(max_size=40))
def test_no_log_in_input_gets_a_server_error(desk, name, password, next_url):
    client = desk.test_client()
    token = csrf_of(client.get("/desk/login").text)
    answer = client.post(
        "/desk/login",
        query_string={"next": next_url},
        data={"name": name, "password": password, "csrf": token},
    )
    assert answer.status_code in (303, 401, 429)
    if answer.status_code == 303:
        assert answer.headers["Location"].startswith("/desk")
