"""Status pages in headless Chromium at phone and desktop widths: screenshots, content, no console output."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.web.headers import CONTENT_SECURITY_POLICY
from tests.support.catalog import catalog_data
from tests.support.server import Dualtrack, rfc3339, wait_until, webhook_body

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "browser-test-secret-0123456789"
BLOOM_TOKEN = "bloom-browser-token-0123456789"
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
# Chromium logs every console message (log, warning, error, uncaught exception) as a CONSOLE line;
# these pages run no script, so any such line is a fault (a failed load, a CSP report, an error).
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")

WEB_LABELS = {"alertname": "CheckoutLatencyHigh", "service": "checkout", "severity": "error"}
DB_LABELS = {"alertname": "MySQLSlowQueries", "service": "mysql-shared", "severity": "error"}


@dataclass
class Visit:
    dom: str
    console: list[str]
    screenshot: Path


def chromium(url: str, out: Path, size: tuple[int, int], profile: Path) -> Visit:
    """Load `url` once: screenshot at `size`, the DOM after load, and any console lines."""
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={out}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=out.parent)
    assert done.returncode == 0, f"chromium exited with {done.returncode}:\n{done.stderr[-3000:]}"
    assert out.exists() and out.stat().st_size > 1000, f"no screenshot at {out}:\n{done.stderr[-3000:]}"
    console = [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
    return Visit(done.stdout, console, out)


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")

    def visit(url: str, name: str, size: tuple[int, int]) -> Visit:
        shots = tmp_path / "screenshots"
        shots.mkdir(exist_ok=True)
        return chromium(url, shots / f"{name}.png", size, tmp_path / f"profile-{name}")

    return visit


def test_status_pages_render_at_phone_and_desktop(browser, dualtrack_factory):
    catalog = catalog_data()
    catalog["tenants"][1]["status_token"] = BLOOM_TOKEN
    catalog["tenants"][1]["services"].append("mysql-shared")  # so its page lists a resolved incident
    dt: Dualtrack = dualtrack_factory(
        catalog=catalog, extra={"status_page": {"tenant_token_secret": SECRET, "resolved_days": 3}}
    ).start()

    # One open incident, one already resolved; level 3 so business readers hear at once.
    started = datetime.now(UTC) - timedelta(minutes=20)
    db = webhook_body({"service": "mysql-shared"}, [DB_LABELS], starts_at=rfc3339(started))
    assert dt.post_alertmanager(db).status_code == 202
    web = webhook_body({"service": "checkout"}, [WEB_LABELS])
    # Longer than a page shows of a notice (status_page.body_chars): cut there, whole on its own page.
    trace = "".join(f"frame {n}: checkout.handlers.pay (line {n})\n" for n in range(150)) + "END OF TRACE"
    web["alerts"][0]["annotations"]["description"] = trace
    assert dt.post_alertmanager(web).status_code == 202
    ended = webhook_body(
        {"service": "mysql-shared"},
        [DB_LABELS],
        status="resolved",
        starts_at=rfc3339(started),
        ends_at=rfc3339(),
    )
    assert dt.post_alertmanager(ended).status_code == 202

    business = "Investigating Errors Affecting Online checkout"
    firing = "CheckoutLatencyHigh is firing"
    acme_token = hmac.new(SECRET.encode(), b"acme", hashlib.sha256).hexdigest()[:32]
    pages = {
        "business": ("/status", [business, "Resolved: Performance Issues Affecting Website databases"]),
        "technical": ("/status/technical", [firing, "Level 3"]),
        "acme": (f"/status/t/{acme_token}", ["Service status for Acme Ltd", firing]),
        "bloom": (f"/status/t/{BLOOM_TOKEN}", ["Service status for Bloom Florists", business]),
    }

    def published() -> bool:
        for path, texts in pages.values():
            text = requests.get(dt.url + path, timeout=10).text
            if not all(t in text for t in texts) or "Resolved in the last 3 days" not in text:
                return False
        return True

    wait_until(published, timeout=30, message=lambda: "notices on every status page\n" + dt.logs())

    # The technical notice is cut on the overview and links to itself in full; the incident's
    # own page lists its updates.
    technical = requests.get(dt.url + "/status/technical", timeout=10).text
    assert "END OF TRACE" not in technical and "Read the full update" in technical
    (notice_path,) = set(re.findall(r'href="(/status/notices/\d+)"', technical))
    (incident_path,) = {p for p in re.findall(r'href="(/status/incidents/[^"]+)"', technical) if "0002" in p}
    details = {
        "incident": (incident_path.replace("&amp;", "&"), [firing, "Level 3"]),
        "notice": (notice_path, [firing, "END OF TRACE", "Every update of this incident"]),
    }

    for name, (path, texts) in {**pages, **details}.items():
        response = requests.get(dt.url + path, timeout=10)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        for size_name, size in SIZES.items():
            visit = browser(dt.url + path, f"{name}-{size_name}", size)
            for text in texts:
                assert text in visit.dom, f"{text!r} missing from {name} at {size_name}"
            # No console line: the style sheet loaded (else a failed load or a CSP refusal is logged).
            assert 'rel="stylesheet"' in visit.dom
            assert visit.console == [], f"console output on {name} at {size_name}: {visit.console}"
            if name in details:
                continue
            assert "1 ongoing incident" in visit.dom
            assert visit.dom.count("<rect ") >= 2 * 90  # two services, a bar a day
            other = "Bloom Florists" if name == "acme" else "Acme Ltd"
            if name in ("acme", "bloom"):
                assert other not in visit.dom
