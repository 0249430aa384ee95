"""Public pages under load: size and time at 3,000 incidents; webhook p99 with and without page clients."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import CATALOG, SERVICES  # noqa: E402
from stream import Stream  # noqa: E402

from adapter.store import Store  # noqa: E402
from tests.support.seed import seed_incidents  # noqa: E402
from tests.support.server import AM_TOKEN, PROVIDER_BUILTIN, Dualtrack, free_port, write_config  # noqa: E402

SECRET = "bench-tenant-secret-0123456789"
TENANTS = [t["id"] for t in CATALOG["tenants"]]


def tenant_token(tenant: str) -> str:
    return hmac.new(SECRET.encode(), tenant.encode(), hashlib.sha256).hexdigest()[:32]


def endpoints() -> dict[str, str]:
    """Every kind of public page, by name: the two audiences, JSON, the feeds, two tenants' pages."""
    technical, business = tenant_token(TENANTS[0]), tenant_token(TENANTS[1])
    return {
        "/status": "/status",
        "/status/technical": "/status/technical",
        "/status.json": "/status.json",
        "feed (business)": "/status/feed.atom?audience=business",
        "feed (technical)": "/status/feed.atom?audience=technical",
        "tenant page (technical)": f"/status/t/{technical}",
        "tenant page (business)": f"/status/t/{business}",
        "tenant feed": f"/status/t/{technical}/feed.atom",
    }


# --------------------------------------------------------------------------------------------
# the server, on the code of this checkout or of another revision


@contextlib.contextmanager
def code_of(revision: str | None) -> Iterator[dict[str, str]]:
    """Environment for `dualtrack serve` running `revision`'s adapter/ (None: this checkout)."""
    if revision is None:
        yield {}
        return
    folder = Path(tempfile.mkdtemp(prefix="dualtrack-code-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "adapter", "templates"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        yield {"PYTHONPATH": str(folder)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_server(
    folder: Path, env: dict[str, str], status_page: dict[str, Any], threads: int, storage: str | None = None
) -> Dualtrack:
    port = free_port()
    extra: dict[str, Any] = {"status_page": {"tenant_token_secret": SECRET, **status_page}}
    if storage:
        extra["storage"] = {"url": storage}
    config = write_config(folder, port, providers=[PROVIDER_BUILTIN], catalog=CATALOG, extra=extra)
    return start_on(Dualtrack(config, port, workers=2, threads=threads), env)


# The CLI, imported from wherever PYTHONPATH says first: another revision's code with code_of().
CLI = [sys.executable, "-c", "import sys; from adapter.cli import main; sys.exit(main())"]


def start_on(server: Dualtrack, env: dict[str, str]) -> Dualtrack:
    """Start the server on the code `env` names (see code_of), or on this checkout's."""
    if env:
        server.process.argv[:1] = CLI
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        server.start(ready_timeout=120)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return server


def worker_peak_rss(server: Dualtrack) -> list[int]:
    """Peak resident memory (VmHWM, bytes) of each gunicorn worker of `server`."""
    peaks = []
    for pid in server_pids(server)[1:]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
    return peaks


# --------------------------------------------------------------------------------------------
# load


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Webhooks:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Pages:
    # by endpoint name: latencies of 200s, bytes of 200s, statuses
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sizes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int | str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)


def send_webhooks(url: str, rate: float, stop: threading.Event, stream: Stream, result: Webhooks) -> None:
    """Webhooks at a fixed rate (not as fast as possible), so that both phases carry the same ingest load."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {AM_TOKEN}"}
    interval = 1 / rate
    with requests.Session() as session:
        due = time.monotonic()
        while not stop.is_set():
            group, resolved = stream.next()
            began = time.perf_counter()
            try:
                response = session.post(url, data=group.notification(resolved), headers=headers, timeout=60)
                status: int | str = response.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            took = time.perf_counter() - began
            with result.lock:
                result.statuses[status] += 1
                if status == 202:
                    result.latencies.append(took)
            if status == 202 and not resolved:
                stream.confirm(group)
            due += interval
            stop.wait(max(0.0, due - time.monotonic()))


def read_pages(base: str, stop: threading.Event, seed: int, result: Pages, interval: float) -> None:
    """One page client: random public pages, half of them conditional on the ETag it last saw;
    one every `interval` seconds, or (0) each as soon as the one before is answered."""
    rnd = random.Random(seed)
    pages = list(endpoints().items())
    etags: dict[str, str] = {}
    due = time.monotonic()
    with requests.Session() as session:
        while not stop.wait(max(0.0, due - time.monotonic())):
            due += interval
            name, path = rnd.choice(pages)
            headers = {}
            if name in etags and rnd.random() < 0.5:
                headers["If-None-Match"] = etags[name]
            began = time.perf_counter()
            try:
                response = session.get(base + path, headers=headers, timeout=120)
                status: int | str = response.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
                response = None
            took = time.perf_counter() - began
            with result.lock:
                result.statuses[name][status] += 1
                if status == 200 and response is not None:
                    result.latencies[name].append(took)
                    result.sizes[name].append(len(response.content))
            if response is not None and response.headers.get("ETag"):
                etags[name] = response.headers["ETag"]


def run_for(seconds: float, threads: list[threading.Thread], stop: threading.Event) -> None:
    """Start the threads, let them run `seconds`, then stop them and wait for them."""
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()


def page_clients(url: str, seconds: float, clients: int, seed: int, interval: float, out: Any) -> None:
    """`clients` page clients for `seconds`, in a process of their own: their threads then share
    no interpreter lock with the webhook sender, whose times are measured."""
    stop = threading.Event()
    pages = Pages()
    threads = [
        threading.Thread(target=read_pages, args=(url, stop, seed + n, pages, interval))
        for n in range(clients)
    ]
    run_for(seconds, threads, stop)
    out.put(
        {"latencies": dict(pages.latencies), "sizes": dict(pages.sizes), "statuses": dict(pages.statuses)}
    )


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(server: Dualtrack) -> list[int]:
    """The gunicorn master's process id, then its workers'."""
    assert server.process.proc is not None
    master = server.process.proc.pid
    return [master, *map(int, Path(f"/proc/{master}/task/{master}/children").read_text().split())]


@dataclass
class Phase:
    hooks: Webhooks
    pages: Pages
    server_cpu: float  # seconds of CPU the server used per second of the phase
    clients_cpu: float  # and the page clients


def phase(
    server: Dualtrack,
    seconds: float,
    rate: float,
    clients: int,
    stream: Stream,
    seed: int,
    pages_url: str = "",
    interval: float = 0.0,
) -> Phase:
    """`seconds` of webhooks at `rate` into `server`, and of `clients` page clients on `pages_url`
    (default: the same server), each asking every `interval` seconds (0: as fast as answered)."""
    stop = threading.Event()
    hooks, pages = Webhooks(), Pages()
    context = multiprocessing.get_context("fork")
    results: Any = context.Queue()
    child = None
    if clients:
        child = context.Process(
            target=page_clients, args=(pages_url or server.url, seconds, clients, seed, interval, results)
        )
    pids = server_pids(server)
    server_before = cpu_seconds(pids)
    if child is not None:
        child.start()
    senders = [
        threading.Thread(
            target=send_webhooks, args=(f"{server.url}/webhooks/alertmanager", rate / 2, stop, stream, hooks)
        )
        for _ in range(2)
    ]
    run_for(seconds, senders, stop)
    server_used = cpu_seconds(pids) - server_before
    clients_used = 0.0
    if child is not None:
        found = results.get(timeout=300)
        clients_used = cpu_seconds([child.pid or 0])
        child.join()
        pages.latencies.update(found["latencies"])
        pages.sizes.update(found["sizes"])
        pages.statuses.update(found["statuses"])
    return Phase(hooks, pages, server_used / seconds, clients_used / seconds)


def render_times(server: Dualtrack, repeat: int) -> dict[str, tuple[int, float]]:
    """(bytes, median seconds) of each endpoint fetched alone, `repeat` times in turn."""
    samples: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}
    with requests.Session() as session:
        for _ in range(repeat):
            for name, path in endpoints().items():
                began = time.perf_counter()
                response = session.get(server.url + path, timeout=120)
                samples[name].append(time.perf_counter() - began)
                response.raise_for_status()
                sizes[name] = len(response.content)
    return {name: (sizes[name], statistics.median(times)) for name, times in samples.items()}


# --------------------------------------------------------------------------------------------


def seed(folder: Path, incidents: int, huge: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{folder / 'dualtrack.db'}")
    try:
        store.migrate()
        seeded = seed_incidents(
            store, datetime.now(UTC), [s[0] for s in SERVICES], TENANTS, count=incidents, huge=huge
        )
    finally:
        store.dispose()
    print(
        f"seeded {seeded.incidents} incidents ({seeded.open} open), {seeded.notices} published notices, "
        f"{len(seeded.huge)} with a 300 KB annotation"
    )


def fmt_size(size: float) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} KB"


def run(args: argparse.Namespace, revision: str | None, out: Callable[[str], None]) -> None:
    label = revision or "this checkout"
    folder = Path(tempfile.mkdtemp(prefix="dualtrack-bench-pages-"))
    try:
        with code_of(revision) as env:
            seed(folder / "server", args.incidents, args.huge)
            # Render cost: no cache, one request at a time (the old code has no cache to turn off).
            uncached = {} if revision else {"cache": "0s"}
            server = start_server(folder / "server", env, uncached, args.threads)
            try:
                times = render_times(server, args.repeat)
            finally:
                server.close()
            out(f"\n{label}: each public endpoint alone, uncached, median of {args.repeat}")
            out(f"{'endpoint':<26} {'size':>10} {'time':>9}")
            for name, (size, seconds) in times.items():
                out(f"{name:<26} {fmt_size(size):>10} {seconds * 1000:>7.0f} ms")

            server = start_server(
                folder / "server", env, {"cache": args.cache} if args.cache else {}, args.threads
            )
            try:
                stream = Stream(args.seed)
                interval = 1 / args.page_rate if args.page_rate else 0.0
                # Warm-up: first webhooks and first renders; the phases then measure a running server.
                phase(server, args.warmup, args.rate, args.clients, stream, args.seed, interval=interval)
                alone = phase(server, args.seconds, args.rate, 0, stream, args.seed)
                loaded = phase(
                    server, args.seconds, args.rate, args.clients, stream, args.seed, interval=interval
                )
                peaks = worker_peak_rss(server)
                # The share of the machine: the same page clients on another server on the same
                # cores and database, and webhooks into this one.
                database = f"sqlite:///{folder / 'server' / 'dualtrack.db'}"
                other = start_server(folder / "other", env, {}, args.threads, storage=database)
                try:
                    phase(
                        server, args.warmup, args.rate, args.clients, stream, args.seed, other.url, interval
                    )
                    apart = phase(
                        server, args.seconds, args.rate, args.clients, stream, args.seed, other.url, interval
                    )
                finally:
                    other.close()
            finally:
                server.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    pace = f"{args.page_rate:g} requests/s each" if args.page_rate else "each request as soon as answered"
    out(
        f"\n{label}: webhooks at {args.rate:.0f}/s for {args.seconds:.0f} s alone, then as long with "
        f"{args.clients} page clients ({pace}; 2 workers x {args.threads} threads)"
    )
    out(
        f"{'webhooks':<34} {'202':>7} {'other':>7} {'p50 ms':>9} {'p99 ms':>9}"
        f" {'server CPU':>11} {'clients CPU':>12}"
    )
    rows = (
        ("alone", alone),
        (f"with {args.clients} page clients", loaded),
        (f"{args.clients} page clients elsewhere", apart),
    )
    for name, result in rows:
        hooks = result.hooks
        other = sum(n for status, n in hooks.statuses.items() if status != 202)
        out(
            f"{name:<34} {hooks.statuses[202]:>7} {other:>7} {percentile(hooks.latencies, 50) * 1000:>9.1f}"
            f" {percentile(hooks.latencies, 99) * 1000:>9.1f}"
            f" {result.server_cpu:>11.2f} {result.clients_cpu:>12.2f}"
        )
    ratio = percentile(loaded.hooks.latencies, 99) / percentile(alone.hooks.latencies, 99)
    pages = loaded.pages
    out(f"webhook p99 with page load / alone: {ratio:.2f}x (target <= 2x)")
    floor = percentile(apart.hooks.latencies, 99) / percentile(alone.hooks.latencies, 99)
    out(f"webhook p99 with the page clients on another server / alone: {floor:.2f}x (the machine's share)")
    out(
        f"{'pages under load':<26} {'200':>7} {'304':>7} {'other':>7} {'p50 ms':>9} {'p99 ms':>9}"
        f" {'max size':>10}"
    )
    for name in endpoints():
        statuses = pages.statuses[name]
        other = sum(n for status, n in statuses.items() if status not in (200, 304))
        times = pages.latencies[name]
        out(
            f"{name:<26} {statuses[200]:>7} {statuses[304]:>7} {other:>7}"
            f" {percentile(times, 50) * 1000:>9.1f} {percentile(times, 99) * 1000:>9.1f}"
            f" {fmt_size(max(pages.sizes[name], default=0)):>10}"
        )
    out(f"peak RSS per worker: {', '.join(fmt_size(p) for p in peaks)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=3000)
    parser.add_argument("--huge", type=int, default=30, help="incidents with a 300 KB annotation")
    parser.add_argument("--clients", type=int, default=16, help="page client threads")
    parser.add_argument(
        "--page-rate",
        type=float,
        default=0.0,
        help="requests per second of each page client (default 0: the next as soon as one is answered)",
    )
    parser.add_argument("--rate", type=float, default=40.0, help="webhooks per second, in every phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the phases on a server")
    parser.add_argument("--repeat", type=int, default=3, help="fetches per endpoint for its render time")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (server.threads' default)")
    parser.add_argument("--cache", help="status_page.cache under load (default: the default, 5s)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--before",
        metavar="REVISION",
        help="also measure the server at this git revision first (e.g. f13d18e), on the same data",
    )
    args = parser.parse_args()
    for revision in ([args.before] if args.before else []) + [None]:
        run(args, revision, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
