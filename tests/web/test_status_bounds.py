"""Public pages stay small and cheap: bounded, paged, kept a few seconds, revalidated, well-formed."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
from sqlalchemy import insert
from werkzeug.http import http_date

from adapter.clock import FakeClock
from adapter.store import incidents as repo
from adapter.store.schema import notices
from adapter.web.headers import CONTENT_SECURITY_POLICY
from adapter.web.pagecache import PageCache, Rendered
from tests.conftest import base_config
from tests.payloads import am_alert, am_body, encode
from tests.support.catalog import catalog_data
from tests.support.seed import CONTROL_CHARACTERS, STORED_HOSTILE, incident_row, notice_row
from tests.web.test_status import ATOM, CACHE, assert_well_formed_html, post
from tests.web.test_status_tenant import BLOOM_TOKEN, SECRET, acme_token

BOUNDS = {"incidents_per_page": 3, "notices_per_incident": 2, "notices_per_page": 3, "body_chars": 100}
LONG = "word " * 2000  # 10,000 characters


@pytest.fixture
def settings(make_settings):
    config = base_config()
    config["status_page"] = {"tenant_token_secret": SECRET, **BOUNDS}
    catalog = catalog_data()
    catalog["tenants"][1]["status_token"] = BLOOM_TOKEN
    return make_settings(config, catalog)


class Published:
    """Incidents and their published notices, written straight into the app's store."""

    def __init__(self, app: Any, clock: FakeClock):
        self.store = app.extensions["dualtrack"].store
        self.clock = clock
        self.keys = 0

    def incident(self, ref: str, hours_ago: float, *, resolved: bool = False, **row: Any) -> int:
        opened = self.clock.now() - timedelta(hours=hours_ago)
        values = incident_row(
            ref, opened, resolved_at=opened + timedelta(minutes=30) if resolved else None, **row
        )
        with self.store.transaction() as conn:
            return repo.insert_incident(conn, values)

    def notice(self, incident_id: int, audience: str, subject: str, body: str = "", **row: Any) -> int:
        self.keys += 1
        at = self.clock.now() - timedelta(minutes=100 - self.keys)
        values = notice_row(
            incident_id,
            audience,
            "update",
            at,
            subject=subject,
            body=body or subject,
            key=f"k{self.keys}",
            **row,
        )
        with self.store.transaction() as conn:
            return int(conn.execute(insert(notices).returning(notices.c.id), [values]).scalar_one())


@pytest.fixture
def published(app, clock) -> Published:
    return Published(app, clock)


def articles(html: str) -> list[str]:
    return re.findall(r'<article id="([^"]+)"', html)


def error_code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


# --------------------------------------------------------------------------------------------
# bounds and pages


def test_the_overview_is_bounded_and_pages_through_the_rest(client, published):
    for n in range(1, 8):  # 4 open (1-4), then 3 resolved (5-7); newer numbers opened later
        incident_id = published.incident(f"INC-2026-000{n}", 20 - n, resolved=n > 4)
        for update in range(4):
            published.notice(incident_id, "business", f"INC-{n} update {update}")
    long_id = published.notice(4, "business", "INC-4 long update", LONG)

    first = client.get("/status")
    assert first.status_code == 200
    page = first.text
    assert_well_formed_html(page)
    assert articles(page) == ["INC-2026-0004", "INC-2026-0003", "INC-2026-0002"]
    assert "4 ongoing incidents" in page  # all of them, not only this page's
    assert "Page 1 of 3" in page and 'href="/status?page=2" rel="next"' in page
    # The latest two notices of each, a link to the rest, and long bodies cut with a link to them.
    assert "INC-4 long update" in page and "INC-4 update 3" in page and "INC-4 update 2" not in page
    assert "3 earlier updates" in page and 'href="/status/incidents/INC-2026-0004"' in page
    assert LONG not in page and LONG[:99].rstrip() + "…" in page
    assert f'href="/status/notices/{long_id}">Read the full update' in page

    second = client.get("/status?page=2").text
    assert_well_formed_html(second)
    assert articles(second) == ["INC-2026-0001", "INC-2026-0007", "INC-2026-0006"]
    assert 'rel="prev"' in second and "Page 2 of 3" in second
    assert second.index("INC-2026-0001") < second.index("Resolved in the last 7 days")
    assert articles(client.get("/status?page=3").text) == ["INC-2026-0005"]

    assert client.get("/status?page=4").status_code == 404
    for bad in ("0", "x", "-1", "1.5", "9" * 40):
        response = client.get(f"/status?page={bad}")
        assert response.status_code == 400 and error_code(response) == "bad_request"


def test_an_incident_page_lists_every_update_newest_first(client, published):
    incident_id = published.incident("INC-2026-0001", 3)
    for update in range(7):
        published.notice(incident_id, "business", f"business update {update}")
    published.notice(incident_id, "technical", "technical update")

    first = client.get("/status/incidents/INC-2026-0001").text
    assert_well_formed_html(first)
    assert re.findall(r"<h4>(business update \d)</h4>", first) == [
        "business update 6",
        "business update 5",
        "business update 4",
    ]
    assert "technical update" not in first
    assert "Page 1 of 3" in first and 'href="/status/incidents/INC-2026-0001?page=2"' in first
    last = client.get("/status/incidents/INC-2026-0001?page=3").text
    assert re.findall(r"<h4>(business update \d)</h4>", last) == ["business update 0"]
    technical = client.get("/status/incidents/INC-2026-0001?audience=technical").text
    assert "technical update" in technical and "business update" not in technical

    assert client.get("/status/incidents/INC-2026-0001?page=4").status_code == 404
    assert client.get("/status/incidents/INC-2026-0404").status_code == 404
    assert client.get("/status/incidents/INC-2026-0001?audience=all").status_code == 400


def test_a_notice_page_shows_the_whole_text_to_whoever_may_read_it(client, published):
    incident_id = published.incident("INC-2026-0001", 3, tenants=["acme"], services=["mysql-shared"])
    public = published.notice(incident_id, "technical", "Replica lag", LONG)
    acme_only = published.notice(incident_id, "technical", "For Acme", "the version for Acme", tenant="acme")

    page = client.get(f"/status/notices/{public}").text
    assert_well_formed_html(page)
    assert LONG.strip() in page and "Every update of this incident" in page
    assert 'href="/status/incidents/INC-2026-0001?audience=technical"' in page
    assert client.get(f"/status/notices/{acme_only}").status_code == 404
    acme = client.get(f"/status/t/{acme_token()}/notices/{acme_only}")
    assert acme.status_code == 200 and "the version for Acme" in acme.text
    assert f'href="/status/t/{acme_token()}/incidents/INC-2026-0001"' in acme.text
    assert client.get(f"/status/t/{BLOOM_TOKEN}/notices/{public}").status_code == 404
    assert client.get("/status/notices/987654").status_code == 404


def test_status_json_is_bounded_the_same_way_with_the_same_fields(client, published):
    for n in range(1, 5):
        incident_id = published.incident(f"INC-2026-000{n}", 10 - n)
        for update in range(3):
            published.notice(incident_id, "business", f"business {n}.{update}")
            published.notice(incident_id, "technical", f"technical {n}.{update}", LONG)

    body = client.get("/status.json").get_json()
    assert body["status"] == "degraded" and (body["page"], body["pages"]) == (1, 2)
    assert [i["ref"] for i in body["incidents"]] == ["INC-2026-0004", "INC-2026-0003", "INC-2026-0002"]
    incident = body["incidents"][0]
    assert set(incident) >= {"ref", "status", "level", "opened_at", "resolved_at", "services", "updates"}
    assert incident["earlier_updates"] == 2
    assert [u["subject"] for u in incident["updates"]] == [
        "business 4.1",
        "technical 4.1",
        "business 4.2",
        "technical 4.2",
    ]
    for update in incident["updates"]:
        assert set(update) >= {"audience", "phase", "subject", "body", "published_at"}
        assert update["truncated"] == (update["audience"] == "technical")
        assert len(update["body"]) <= BOUNDS["body_chars"] + 1
    assert [i["ref"] for i in client.get("/status.json?page=2").get_json()["incidents"]] == ["INC-2026-0001"]


# --------------------------------------------------------------------------------------------
# kept, revalidated, never mixed up


def test_a_response_is_kept_a_few_seconds_and_revalidated(client, published, clock):
    first_id = published.incident("INC-2026-0001", 2)
    published.notice(first_id, "business", "first")
    for path in ("/status", "/status.json", "/status/feed.atom?audience=business"):
        first = client.get(path)
        etag = first.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{40}"', etag)  # strong, over the body
        assert first.headers["Cache-Control"] == "public, max-age=5"
        # The newest change shown: the notice, published 99 minutes ago.
        assert first.headers["Last-Modified"] == http_date(clock.now() - timedelta(minutes=99))
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
        not_modified = client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
        assert not_modified.status_code == 304 and not_modified.data == b""
        assert not_modified.headers["ETag"] == etag

    second_id = published.incident("INC-2026-0002", 1)
    published.notice(second_id, "business", "second")
    kept = client.get("/status")
    assert "second" not in kept.text and client.get("/status.json").get_json()["incidents"][0][
        "ref"
    ].endswith("1")

    clock.advance(CACHE)
    fresh = client.get("/status", headers={"If-None-Match": kept.headers["ETag"]})
    assert fresh.status_code == 200 and "second" in fresh.text
    assert fresh.headers["ETag"] != kept.headers["ETag"]
    # Now the second incident's opening, an hour before it was added.
    assert fresh.headers["Last-Modified"] == http_date(clock.now() - CACHE - timedelta(hours=1))


def test_no_cache_renders_every_request(make_settings, store, clock):
    from adapter.app import create_app
    from adapter.metrics import Metrics

    config = base_config()
    config["status_page"] = {"cache": "0s"}
    app = create_app(make_settings(config), clock=clock, store=store, metrics=Metrics())
    client = app.test_client()
    assert "All systems operational" in client.get("/status").text
    post(
        client,
        encode(am_body([am_alert("c0c0000000000001", {"service": "checkout", "severity": "critical"})])),
    )
    response = client.get("/status")
    assert "1 ongoing incident" in response.text
    assert response.headers["Cache-Control"] == "public, max-age=0"


def test_a_render_is_shared_by_everyone_asking_at_once(clock):
    cache = PageCache(clock, timedelta(seconds=5))
    asking = 16
    arrived = threading.Semaphore(0)
    renders: list[int] = []

    def render() -> Rendered:
        # Until every asker has arrived, none can have been answered: they wait for this render.
        # (Were each to render its own, they would share out the arrivals and time out.)
        for _ in range(asking - 1):
            if not arrived.acquire(timeout=10):
                break
        renders.append(1)
        return Rendered(b"the page", "text/plain")

    answers: list[tuple[Rendered, str]] = []

    def ask() -> None:
        arrived.release()
        answers.append(cache.get("page", render))

    threads = [threading.Thread(target=ask) for _ in range(asking)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(renders) == 1 and len(answers) == asking
    assert {etag for _, etag in answers} == {answers[0][1]}
    clock.advance(CACHE)
    cache.get("page", lambda: Rendered(b"again", "text/plain"))
    assert cache.get("page", render)[0].body == b"again"


def test_while_a_page_is_rendered_again_the_kept_one_answers(clock):
    cache = PageCache(clock, timedelta(seconds=5))
    for key in ("a", "b"):
        cache.get(key, lambda key=key: Rendered(f"old {key}".encode(), "text/plain"))
    clock.advance(CACHE)
    rendering, go = threading.Event(), threading.Event()

    def slow() -> Rendered:
        rendering.set()
        go.wait(timeout=10)
        return Rendered(b"new a", "text/plain")

    def unexpected() -> Rendered:
        raise AssertionError("rendered while an answer was at hand")

    renderer = threading.Thread(target=cache.get, args=("a", slow))
    renderer.start()
    assert rendering.wait(timeout=10)
    # "a" is being rendered, and renders take turns: both expired pages answer as they were.
    assert cache.get("a", unexpected)[0].body == b"old a"
    assert cache.get("b", unexpected)[0].body == b"old b"
    go.set()
    renderer.join()
    assert cache.get("a", unexpected)[0].body == b"new a"
    assert cache.get("b", lambda: Rendered(b"new b", "text/plain"))[0].body == b"new b"


def test_the_cache_holds_a_bounded_number_of_bytes(clock):
    cache = PageCache(clock, timedelta(seconds=5), max_bytes=1000)
    for n in range(5):
        cache.get(n, lambda n=n: Rendered(bytes([n]) * 400, "text/plain"))
    # The two newest fit; asking for an older one renders it again.
    assert cache.get(4, lambda: Rendered(b"new", "text/plain"))[0].body == bytes([4]) * 400
    assert cache.get(0, lambda: Rendered(b"new", "text/plain"))[0].body == b"new"


def test_tenant_pages_are_kept_per_tenant_and_privately(client, published):
    acme_id = published.incident("INC-2026-0001", 2, tenants=["acme"], services=["mysql-shared"])
    published.notice(acme_id, "technical", "Acme replica lag")
    bloom_id = published.incident("INC-2026-0002", 1, tenants=["bloom"], services=["search"])
    published.notice(bloom_id, "business", "Bloom search slow")

    for suffix in ("", "/feed.atom", "/incidents/INC-2026-0001"):
        acme = client.get(f"/status/t/{acme_token()}{suffix}")
        bloom = client.get(f"/status/t/{BLOOM_TOKEN}{suffix}")
        assert acme.status_code == 200
        assert acme.headers["Cache-Control"] == "private, max-age=5"
        assert acme.headers["Referrer-Policy"] == "no-referrer"
        assert "Acme replica lag" in acme.text and "Bloom" not in acme.text
        if suffix.startswith("/incidents"):
            assert bloom.status_code == 404  # not an incident of bloom's
            continue
        assert "Bloom search slow" in bloom.text and "Acme" not in bloom.text
        # One tenant's validator is not another's.
        swapped = client.get(
            f"/status/t/{BLOOM_TOKEN}{suffix}", headers={"If-None-Match": acme.headers["ETag"]}
        )
        assert swapped.status_code == 200 and "Acme" not in swapped.text
    assert client.get(f"/status/t/{acme_token()}x").status_code == 404


# --------------------------------------------------------------------------------------------
# headers and text


def test_every_response_carries_the_security_headers(app, client, published):
    incident_id = published.incident("INC-2026-0001", 1, tenants=["acme"])
    notice_id = published.notice(incident_id, "business", "Checkout errors", LONG)
    html = [
        "/status",
        "/status/technical",
        "/status?page=1",
        "/status/incidents/INC-2026-0001",
        f"/status/notices/{notice_id}",
        f"/status/t/{acme_token()}",
        f"/status/t/{BLOOM_TOKEN}",
    ]
    other = [
        "/status.json",
        "/status/feed.atom",
        f"/status/t/{BLOOM_TOKEN}/feed.atom",
        "/status/nope",
        "/-/healthy",
    ]
    for path in html + other + ["/status/static/status.css"]:
        with client.get(path) as response:
            pass
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["Referrer-Policy"] in ("no-referrer", "strict-origin-when-cross-origin"), path
    assert (
        "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "default-src 'self'" in CONTENT_SECURITY_POLICY
    )
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    for path in html:
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html", path
        page = response.text
        # Nothing inline for the policy to refuse: no script, no style element or attribute.
        assert "<script" not in page and "<style" not in page and " style=" not in page, path
        assert '<link rel="stylesheet" href="/status/static/status.css">' in page
    with client.get("/status/static/status.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css" and ".banner" in css.text


def test_every_feed_is_well_formed_xml_whatever_the_text(app, client, published, clock):
    nasty = f"before {STORED_HOSTILE} after"
    incident_id = published.incident(
        "INC-2026-0900", 2, title=nasty, tenants=["acme", "bloom"], services=["checkout"]
    )
    for audience in ("business", "technical"):
        published.notice(incident_id, audience, nasty, nasty + LONG)
        published.notice(incident_id, audience, f"for acme {nasty}", nasty, tenant="acme")
    # And through a webhook: the controls JSON can carry, in an alert's annotations.
    controls = CONTROL_CHARACTERS.replace("\x00", "")
    alert = am_alert(
        "e0e0000000000001",
        {"alertname": f"Bad{controls}Name", "service": "checkout", "severity": "critical"},
        annotations={"summary": f"summary {controls} end", "description": f"text {controls}\ufffe\uffff end"},
    )
    post(client, encode(am_body([alert])))
    clock.advance(CACHE)

    feeds = [
        "/status/feed.atom?audience=business",
        "/status/feed.atom?audience=technical",
        f"/status/t/{acme_token()}/feed.atom",
        f"/status/t/{BLOOM_TOKEN}/feed.atom",
    ]
    pages = ["/status", "/status/technical", "/status.json", "/status/incidents/INC-2026-0900"]
    forbidden = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
    for path in feeds:
        response = client.get(path)
        feed = ElementTree.fromstring(response.data)  # a real XML parser: any control character fails it
        entries = feed.findall(f"{ATOM}entry")
        assert len(entries) >= 2, path  # the incident above, and the webhook's
        texts = [e.find(f"{ATOM}title").text + e.find(f"{ATOM}content").text for e in entries]
        assert any("before" in t and "after" in t for t in texts), path
        assert not forbidden.search(response.text), path
    technical = ElementTree.fromstring(client.get(feeds[1]).data)
    content = " ".join(e.find(f"{ATOM}content").text for e in technical.findall(f"{ATOM}entry"))
    assert "Full text: http://status.example.test/status/notices/" in content
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert not forbidden.search(response.text), path
    json.loads(client.get("/status.json").data)
