"""The desk in Debian's chromium, driven by Playwright: log in, declare, compose with live previews,
roles, CSRF, log-in limits, keyboard use, labels, and screenshots at phone and desktop widths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher

from tests.support.server import AM_TOKEN, Dualtrack, Sink, wait_until, webhook_body

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"
HASH = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)  # fast, for tests
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
# Every visible form field must have a label the browser knows (or an aria-label).
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter(el => el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
  .map(el => el.name)"""


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


class Visit:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, size: str = "desktop"):
        self.context = browser.new_context(viewport=SIZES[size])
        self.page = self.context.new_page()
        self.base = base
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type in ("error", "warning") else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def go(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def log_in(self, name: str, password: str = PASSWORD) -> Any:
        self.go("/desk/login")
        self.page.fill("#name", name)
        self.page.fill("#password", password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        return self.page


@pytest.fixture
def desk(dualtrack_factory: Any) -> Iterator[tuple[Dualtrack, Sink]]:
    with Sink() as sink:
        providers = [
            {"name": "status", "type": "builtin", "audience": "all"},
            {"name": "engineers", "type": "webhook", "audience": "technical", "url": f"{sink.url}/technical"},
            {"name": "customers", "type": "webhook", "audience": "business", "url": f"{sink.url}/business"},
        ]
        extra = {
            "users": [
                {"name": "ana", "password_hash": HASH, "role": "author", "team": "SRE"},
                {"name": "vic", "password_hash": HASH, "role": "viewer"},
                {"name": "lea", "password_hash": HASH, "role": "approver", "team": "Support"},
            ],
            # Business notices from level 3 wait for an approver.
            "policy": {"approval": {"business": {"min_level": 3}}},
            "feedback": {"secret": "desk-browser-feedback-0123456789"},
            "auth": {
                "alertmanager": {"bearer_tokens": [AM_TOKEN]},
                "session_secret": "desk-browser-secret-0123456789",
                "login_attempts": 5,
            },
        }
        yield dualtrack_factory(providers=providers, extra=extra).start(), sink


def shows(page: Any, selector: str, text: str) -> None:
    """Wait until the preview under `selector` shows `text` (htmx swaps it in after typing stops)."""
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).innerText.includes(t)", arg=[selector, text]
    )


def _tracks(page: Any, selector: str) -> dict[str, str]:
    return {
        audience: page.inner_text(f"{selector} .track[aria-label^='{audience.capitalize()}']")
        for audience in ("technical", "business")
    }


def test_declare_update_and_approve_watching_both_previews_then_delivered(
    desk: tuple[Dualtrack, Sink], chromium: Any, tmp_path: Path
) -> None:
    server, sink = desk
    visit = Visit(chromium, server.url)
    page = visit.log_in("ana")
    assert "ana · author" in page.inner_text("header")

    # Declare, by keyboard where a person would: services are checkboxes, the rest fields.
    visit.go("/desk/declare")
    page.check("input[name=services][value=checkout]")
    page.select_option("#level", "3")
    page.fill("#title", "Customers report failed card payments")
    page.fill("#technical", "Card payments time out at the payment gateway.")
    page.fill("#business", "Some card payments fail. Please retry in a few minutes.")
    shows(page, "#declare-preview", "Please retry in a few minutes.")
    preview = _tracks(page, "#declare-preview")
    assert "payment gateway" in preview["technical"] and "payment gateway" not in preview["business"]
    assert page.evaluate(UNLABELLED) == []
    page.screenshot(path=str(tmp_path / "declare-desktop.png"), full_page=True)
    with page.expect_navigation():
        page.click("#declare button[type=submit]")
    assert page.url.endswith("/desk/incidents/INC-2026-0001")

    # The business acknowledgement waits for an approver; the technical one went out.
    wait_until(lambda: sink.received("/technical"), timeout=30, message=server.logs)
    assert "waiting for approval" in page.inner_text("#approvals h2").lower()
    assert page.query_selector("#approvals textarea") is None  # an author reads, an approver edits

    # Write an update: each keystroke batch re-renders both tracks through the real templates.
    page.fill("#u-technical", "Gateway failover in progress")
    shows(page, "#update-preview", "Gateway failover in progress")
    first = _tracks(page, "#update-preview")
    page.fill("#u-business", "A fix is on its way")
    shows(page, "#update-preview", "A fix is on its way")
    second = _tracks(page, "#update-preview")
    assert first["business"] != second["business"] and "A fix is on its way" in second["business"]
    assert "Gateway failover in progress" not in second["business"]
    page.select_option("#u-status", "identified")
    with page.expect_navigation():
        page.click("#update button[type=submit]")
    assert "Done: update." in page.inner_text("main")
    assert "ana (author): update" in page.inner_text("#audit")
    technical = lambda: [json.loads(r.body) for r in sink.received("/technical")]  # noqa: E731
    wait_until(lambda: "Gateway failover in progress" in json.dumps(technical()), timeout=30)
    assert sink.received("/business") == []

    # An approver edits the acknowledgement and approves it, then approves the update as written.
    approver = Visit(chromium, server.url)
    approver.log_in("lea")
    approver.go("/desk/approvals")
    # The business acknowledgement and update, each on the built-in page and the customers' webhook.
    headings = approver.page.locator("article.awaiting h3").all_inner_texts()
    assert len(headings) == 4 and all("(business" in h for h in headings)
    while approver.page.locator("article.awaiting").count():
        item = approver.page.locator("article.awaiting").first
        if "acknowledgement to customers" in item.locator("h3").inner_text():
            body = item.locator("textarea")
            body.fill(body.input_value() + "\nWe are sorry for the trouble.")
        with approver.page.expect_navigation():
            item.get_by_role("button", name="Approve and send").click()
    assert "Nothing is waiting for approval." in approver.page.inner_text("main")

    def business() -> list[str]:
        return [json.dumps(json.loads(r.body)) for r in sink.received("/business")]

    wait_until(
        lambda: len(business()) == 2, timeout=30, message=lambda: "two business notices\n" + server.logs()
    )
    acknowledgement, update = business()
    assert "We are sorry for the trouble." in acknowledgement
    assert "A fix is on its way" in update
    trail = server.api("/audit", incident="INC-2026-0001")["entries"]
    approvals = [e for e in trail if e["action"] == "approve"]
    assert [e["author"] for e in approvals] == ["lea"] * 4
    assert [("body" in e["changes"]) for e in approvals] == [False, True, False, False]
    assert approver.problems == []

    # Screenshots of the list and the incident page at both widths, with no console errors.
    for size in SIZES:
        shot = Visit(chromium, server.url, size)
        shot.log_in("ana")
        pages = {
            "list": "/desk/",
            "incident": "/desk/incidents/INC-2026-0001",
            "approvals": "/desk/approvals",
        }
        for name, path in pages.items():
            shot.go(path)
            shot.page.screenshot(path=str(tmp_path / f"{name}-{size}.png"), full_page=True)
            width = shot.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= SIZES[size]["width"], f"{name} scrolls sideways at {size} width"
        assert shot.problems == []
    assert visit.problems == []


def test_a_viewer_cannot_post_and_a_form_without_its_token_is_refused(
    desk: tuple[Dualtrack, Sink], chromium: Any
) -> None:
    server, _ = desk
    author = Visit(chromium, server.url)
    author.log_in("ana")
    author.go("/desk/declare")
    page = author.page
    page.check("input[name=services][value=search]")
    page.select_option("#level", "2")
    page.fill("#title", "Search is slow")
    # The hidden CSRF field removed, as a forged cross-site form would lack it.
    page.evaluate("() => document.querySelector('#declare input[name=csrf]').remove()")
    with page.expect_navigation():
        page.click("#declare button[type=submit]")
    assert "csrf" in page.content()
    assert server.api("/incidents") == {"incidents": []}

    viewer = Visit(chromium, server.url)
    viewer.log_in("vic")
    viewer.go("/desk/")
    assert "Declare an incident" not in viewer.page.inner_text("header")
    answer = viewer.page.evaluate(
        """async () => {
            const csrf = document.querySelector("input[name=csrf]").value;
            const body = new URLSearchParams({csrf, services: "search", level: "2", title: "x"});
            const r = await fetch("/desk/declare", {method: "POST", body});
            return [r.status, (await r.json()).error.code];
        }"""
    )
    assert answer == [403, "forbidden"]


def test_wrong_passwords_are_refused_and_attempts_are_limited(
    desk: tuple[Dualtrack, Sink], chromium: Any
) -> None:
    server, _ = desk
    visit = Visit(chromium, server.url)
    for _ in range(5):
        page = visit.log_in("ana", "not the password")
        assert "Wrong user name or password." in page.inner_text("[role=alert]")
    page = visit.log_in("ana")
    assert "Too many attempts" in page.inner_text("[role=alert]")
    # The limit holds for this address whoever logs in from it.
    page = visit.log_in("vic")
    assert "Too many attempts" in page.inner_text("[role=alert]")


def test_the_desk_works_by_keyboard(desk: tuple[Dualtrack, Sink], chromium: Any) -> None:
    server, _ = desk
    visit = Visit(chromium, server.url)
    visit.go("/desk/login")
    page = visit.page
    assert page.evaluate("() => document.activeElement.id") == "name"  # autofocus
    page.keyboard.type("ana")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "ana · author" in page.inner_text("header")
    assert page.evaluate(UNLABELLED) == []

    # Declare by keyboard alone: Tab from the title through the form, Space ticks a service.
    visit.go("/desk/declare")
    page.focus("input[name=services]")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    while page.evaluate("() => document.activeElement.name") == "services":
        page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "level"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # level 3
    page.keyboard.press("Tab")
    page.keyboard.type("Checkout is down for some customers")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/desk/incidents/INC-2026-0001")
    incident = server.incident("INC-2026-0001")
    assert incident["level"] == 3 and incident["services"] == ["mysql-shared"]
    assert visit.problems == []


def test_the_report_page_draws_its_charts(
    desk: tuple[Dualtrack, Sink], chromium: Any, tmp_path: Path
) -> None:
    server, sink = desk
    alert = {"alertname": "ReplicaLag", "service": "mysql-shared", "incident_level": "2"}
    assert server.post_alertmanager(webhook_body({"service": "mysql-shared"}, [alert])).status_code == 202
    wait_until(lambda: "/feedback/" in json.dumps([json.loads(r.body) for r in sink.received()]), timeout=30)
    said = json.loads(sink.received()[0].body)
    assert requests.get(said["feedback_urls"]["no"], timeout=10).status_code == 200
    today = datetime.now(UTC).date().isoformat()  # the report's last day: the answer is in it

    for size in SIZES:
        visit = Visit(chromium, server.url, size)
        visit.log_in("vic")
        visit.go(f"/desk/reports?to={today}")
        page = visit.page
        assert page.locator("figure.chart").count() == 4
        assert page.locator("figure.chart svg").count() == 3  # no progress update went out yet
        assert page.locator("figure.chart svg rect.bar").count() >= 2  # first notices and feedback, at least
        assert "Readers who found updates helpful" in page.inner_text("main")
        page.screenshot(path=str(tmp_path / f"report-{size}.png"), full_page=True)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= SIZES[size]["width"]
        assert visit.problems == []
