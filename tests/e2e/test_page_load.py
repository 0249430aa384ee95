"""16 clients on the public pages of a real server with 2,000 incidents while webhooks arrive."""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
import requests

from adapter.store import Store
from tests.support.catalog import shared_catalog
from tests.support.seed import seed_incidents
from tests.support.server import Dualtrack, webhook_body

pytestmark = pytest.mark.e2e

SECRET = "page-load-secret-0123456789"
CLIENTS = 16
REQUESTS_PER_CLIENT = 40
MIN_WEBHOOKS = 20
# A page shows at most 50 incidents with 5 notices each, bodies cut at 2,000 characters: with
# markup and uptime bars that is well under this. The same pages were 5-28 MB before the bounds.
MAX_PAGE_BYTES = 1_000_000
# Control characters an alert's annotations may carry in JSON (NUL and lone surrogates never
# reach the store: inbound text is made storable first).
CONTROLS = "".join(chr(c) for c in [*range(1, 0x20), *range(0x7F, 0xA0)]) + "\ufffe\uffff"


def token(tenant: str) -> str:
    return hmac.new(SECRET.encode(), tenant.encode(), hashlib.sha256).hexdigest()[:32]


# (the other tenant's name, a tenant's token): never on that tenant's pages
OTHERS = [("Bloom Florists", token("acme")), ("Acme Ltd", token("bloom"))]


@dataclass
class Seen:
    statuses: Counter[int] = field(default_factory=Counter)
    sizes: dict[str, int] = field(default_factory=dict)  # largest 200 body, by path
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_pages(url: str, paths: list[str], seed: int, start: threading.Barrier, seen: Seen) -> None:
    """One client: random public pages, every other one conditional on the ETag it last saw."""
    rnd = random.Random(seed)
    etags: dict[str, str] = {}
    with requests.Session() as session:
        start.wait()
        for number in range(REQUESTS_PER_CLIENT):
            path = rnd.choice(paths)
            headers = {"If-None-Match": etags[path]} if number % 2 and path in etags else {}
            response = session.get(url + path, headers=headers, timeout=60)
            problem = None
            if response.status_code == 200:
                etags[path] = response.headers["ETag"]
                if "feed.atom" in path:
                    try:
                        ElementTree.fromstring(response.content)
                    except ElementTree.ParseError as exc:
                        problem = f"{path}: not XML: {exc}"
                for name, tenant_token in OTHERS:
                    if path.startswith(f"/status/t/{tenant_token}") and name in response.text:
                        problem = f"{path}: shows {name}"
            with seen.lock:
                seen.statuses[response.status_code] += 1
                if response.status_code == 200:
                    seen.sizes[path] = max(seen.sizes.get(path, 0), len(response.content))
                if problem:
                    seen.problems.append(problem)


def test_page_clients_do_not_stop_webhooks(dualtrack_factory, tmp_path):
    folder = tmp_path / "server"
    store = Store(f"sqlite:///{folder / 'dualtrack.db'}")
    try:
        store.migrate()
        catalog = shared_catalog()
        services, tenants = [s.id for s in catalog.services], [t.id for t in catalog.tenants]
        seeded = seed_incidents(store, datetime.now(UTC), services, tenants, count=2000, huge=10)
    finally:
        store.dispose()
    dt: Dualtrack = dualtrack_factory(
        folder=folder, workers=2, extra={"status_page": {"tenant_token_secret": SECRET}}
    ).start()

    acme, bloom = token("acme"), token("bloom")
    paths = [
        "/status",
        "/status/technical",
        "/status?page=2",
        "/status.json",
        "/status/feed.atom?audience=business",
        "/status/feed.atom?audience=technical",
        f"/status/t/{acme}",
        f"/status/t/{acme}/feed.atom",
        f"/status/t/{bloom}",
        f"/status/t/{bloom}/feed.atom",
        f"/status/incidents/{seeded.huge[0]}?audience=technical",
        f"/status/incidents/{seeded.hostile[0]}",
    ]
    seen = Seen()
    start = threading.Barrier(CLIENTS + 1)
    clients = [
        threading.Thread(target=read_pages, args=(dt.url, paths, n, start, seen), name=f"pages-{n}")
        for n in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    start.wait()
    # Webhooks go on until every page client is done, and at least MIN_WEBHOOKS of them.
    answers: Counter[int] = Counter()
    number = 0
    while number < MIN_WEBHOOKS or any(c.is_alive() for c in clients):
        number += 1
        labels = {"alertname": f"LoadTest{number}", "severity": "critical"}
        body = webhook_body({"service": "checkout", "run": str(number)}, [labels])
        body["alerts"][0]["annotations"]["description"] = f"under load {CONTROLS} #{number}"
        answers[dt.post_alertmanager(body, timeout=60).status_code] += 1
    for client in clients:
        client.join()

    print(f"webhooks: {dict(answers)}; pages: {dict(seen.statuses)}; largest: {seen.sizes}")  # noqa: T201
    assert answers == {202: number}, answers
    assert set(seen.statuses) <= {200, 304}, seen.statuses
    assert sum(seen.statuses.values()) == CLIENTS * REQUESTS_PER_CLIENT
    assert seen.statuses[304] > 0  # conditional requests answered from the validator
    assert seen.problems == []
    assert set(seen.sizes) == set(paths)
    too_big = {path: size for path, size in seen.sizes.items() if size > MAX_PAGE_BYTES}
    assert too_big == {}
    # The webhooks' incidents are on the pages now, and their feeds still parse.
    technical = requests.get(f"{dt.url}/status/feed.atom?audience=technical", timeout=10)
    ElementTree.fromstring(technical.content)
    json_body = requests.get(f"{dt.url}/status.json", timeout=10).json()
    assert json_body["pages"] > 1 and len(json_body["incidents"]) == 50
