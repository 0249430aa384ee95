"""History benchmark: API and page latency at 1,000, 10,000 and 50,000 incidents, and storage per 1,000.

Method. For each size a fresh SQLite database gets that many incidents written straight into its
tables (`tests/support/seed.py`), as a company with 10 incidents a day would have them: opened
over the last size/10 days (100 days for 1,000, 5,000 for 50,000), about 5 still open, each with
2-5 published notices per audience. So every size has as many incidents in the windows pages
show (the open ones, the recently resolved, 90 days of uptime bars): only the history grows.
`dualtrack serve` (2 workers, status_page.cache 0s) is started on it and each endpoint is
fetched once to warm up, then alone, in turn, `--repeat` times: its median time. The goal
(issue 16): every endpoint's time at the largest size within 1.2x of the smallest's.
Then storage: 1,000 incidents ingested in-process (a 2-alert Alertmanager notification each,
resolved by a second one, the built-in page publishing both tracks), and the database's size per
1,000 incidents, before and after storage.retention removed their texts.
`--before REV` measures the latency on another revision's code too (its migrations, its server).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import CATALOG, SERVICES, firing_alert, group_key, group_notification  # noqa: E402
from pages import TENANTS, code_of, endpoints, start_server  # noqa: E402

from adapter.store import Store  # noqa: E402
from tests.support.seed import seed_incidents  # noqa: E402
from tests.support.server import AM_TOKEN, API_TOKEN, PROVIDER_BUILTIN, write_config  # noqa: E402

GOAL = 1.2
PER_DAY = 10  # incidents a day
OPEN = 5  # incidents open at any time


def timed_endpoints() -> dict[str, tuple[str, dict[str, str]]]:
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    pages = {name: (path, {}) for name, path in endpoints().items()}
    return {
        "API: incidents": ("/api/v1/incidents", api),
        "API: open incidents": ("/api/v1/incidents?status=open", api),
        **pages,
    }


def migrate(url: str, env: dict[str, str]) -> None:
    """The schema of the code that will serve it (another revision's, with `env`)."""
    code = "import sys; from adapter.store import Store; s = Store(sys.argv[1]); s.migrate(); s.dispose()"
    # Run elsewhere than this checkout: `python -c` looks in its working directory first.
    subprocess.run(
        [sys.executable, "-c", code, url], check=True, env={**os.environ, **env}, cwd=tempfile.gettempdir()
    )


def latencies(size: int, revision: str | None, repeat: int) -> dict[str, float]:
    """Median seconds per endpoint, served by `revision`'s code (None: this checkout)."""
    with tempfile.TemporaryDirectory(prefix="dualtrack-history-") as tmp, code_of(revision) as env:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'dualtrack.db'}"
        migrate(url, env)
        store = Store(url)
        try:
            began = time.perf_counter()
            seeded = seed_incidents(
                store,
                datetime.now(UTC),
                [s[0] for s in SERVICES],
                TENANTS,
                count=size,
                days=size / PER_DAY,
                open_share=OPEN / size,
                huge=0,
                hostile=0,
            )
            print(
                f"  seeded {seeded.incidents} incidents ({seeded.open} open), {seeded.notices} notices "
                f"in {time.perf_counter() - began:.0f} s",
                flush=True,
            )
        finally:
            store.dispose()
        server = start_server(folder, env, {"cache": "0s"}, threads=4, storage=url)
        samples: dict[str, list[float]] = {name: [] for name in timed_endpoints()}
        try:
            with requests.Session() as session:
                for path, headers in timed_endpoints().values():  # warm-up: templates, caches
                    session.get(server.url + path, headers=headers, timeout=120).raise_for_status()
                for _ in range(repeat):
                    for name, (path, headers) in timed_endpoints().items():
                        began = time.perf_counter()
                        response = session.get(server.url + path, headers=headers, timeout=120)
                        samples[name].append(time.perf_counter() - began)
                        response.raise_for_status()
        finally:
            server.stop()
        return {name: statistics.median(times) for name, times in samples.items()}


def storage_per_thousand() -> tuple[float, float]:
    """Bytes of SQLite database in use per 1,000 incidents ingested, resolved and published; and
    once storage.retention has removed their texts (the freed pages are reused, not given back)."""
    from adapter.app import create_app
    from adapter.config import load_settings
    from adapter.store import retention

    with tempfile.TemporaryDirectory(prefix="dualtrack-storage-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, 9, providers=[PROVIDER_BUILTIN], catalog=CATALOG)
        app = create_app(load_settings(config))
        store = app.extensions["dualtrack"].store
        store.migrate()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
        start = datetime.now(UTC) - timedelta(days=1)
        for n in range(1000):
            service = SERVICES[n % len(SERVICES)][0]
            labels = {"alertname": "HighErrorRate", "cluster": f"k8s-{n}", "service": service}
            alerts = [
                firing_alert(
                    labels,
                    instance=f"10.0.{n % 250}.{i}:8080",
                    severity="critical",
                    summary="5xx ratio above 5%",
                    starts_at=start + timedelta(seconds=n),
                )
                for i in range(2)
            ]
            for resolved in (None, timedelta(minutes=20)):
                body = group_notification(alerts, labels, group_key(labels), resolved)
                answer = client.post("/webhooks/alertmanager", data=body, headers=headers)
                assert answer.status_code == 202, answer.data

        def in_use() -> float:
            with store.engine.connect() as conn:
                pages, free, size = (
                    conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                    for name in ("page_count", "freelist_count", "page_size")
                )
            return float((pages - free) * size)

        before = in_use()
        now = datetime.now(UTC)
        with store.transaction() as conn:
            retention.prune(conn, now + timedelta(days=1), now, 1000)
        after = in_use()
        store.dispose()
        return before, after


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,50000", help="incident counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=15, help="fetches per endpoint")
    parser.add_argument("--before", metavar="REV", help="measure this revision's code too")
    parser.add_argument("--json", metavar="FILE", help="write the figures there too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = ([(f"before ({args.before})", args.before)] if args.before else []) + [("this checkout", None)]
    figures: dict[str, dict[int, dict[str, float]]] = {}
    met = True
    for label, revision in runs:
        print(f"{label}:", flush=True)
        figures[label] = {size: latencies(size, revision, args.repeat) for size in sizes}
        print(f"\n{label}: median ms per endpoint (status_page.cache 0s)")
        print(f"{'endpoint':26}" + "".join(f"{size:>10,}" for size in sizes) + f"{'ratio':>9}")
        for name in timed_endpoints():
            times = [figures[label][size][name] for size in sizes]
            ratio = times[-1] / times[0]
            print(f"{name:26}" + "".join(f"{t * 1000:10.1f}" for t in times) + f"{ratio:8.2f}x")
            if revision is None:
                met = met and ratio <= GOAL
        print()
    print(
        f"goal: every endpoint within {GOAL}x from {sizes[0]:,} to {sizes[-1]:,} incidents: "
        + ("met" if met else "NOT met")
    )
    stored, pruned = storage_per_thousand()
    print(
        f"storage: {stored / 1e6:.2f} MB per 1,000 incidents (2 alerts each, fired and resolved, both "
        f"tracks published on the built-in page); {pruned / 1e6:.2f} MB once past storage.retention"
    )
    if args.json:
        found = {"latency": figures, "storage_per_1000": stored, "after_retention": pruned}
        Path(args.json).write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
