"""Ingest benchmark: `dualtrack serve` against a bare Flask app under the same gunicorn settings."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.server import (  # noqa: E402
    AM_TOKEN,
    PROVIDER_BUILTIN,
    VENV_BIN,
    Dualtrack,
    Process,
    fingerprint,
    free_port,
    metric_sum,
    wait_until,
    write_config,
)

ZERO_TIME = "0001-01-01T00:00:00Z"
ALERTS = [
    ("HighErrorRate", "5xx ratio above 5%"),
    ("LatencyP99High", "p99 latency above 2s"),
    ("InstanceDown", "target is not scraped"),
    ("DiskFillingUp", "disk will be full within 4h"),
    ("ReplicationLag", "replica lag above 30s"),
    ("CertificateExpiry", "TLS certificate expires within 7 days"),
]
SEVERITIES = ["critical"] * 2 + ["warning"] * 6 + ["info"] * 2
SERVICES = [
    ("mysql-shared", "Shared MySQL (mysql-cluster-03)", "Website databases", "database", True),
    ("checkout", "Checkout API (checkout-api)", "Online checkout", "web", False),
    ("search", "Search API (search-api)", "Site search", "web", False),
    ("edge-network", "Edge network (lb-eu-west)", "Website connectivity", "network", True),
    ("object-storage", "Object storage (ceph-rgw)", "File storage and backups", "storage", False),
]
CATALOG: dict[str, Any] = {
    "services": [
        {"id": i, "name": n, "business_name": b, "incident_type": t, "critical_infrastructure": c}
        for i, n, b, t, c in SERVICES
    ],
    "tenants": [
        {
            "id": f"tenant-{k:02d}",
            "name": f"Customer {k:02d}",
            "segment": "technical" if k % 3 == 0 else "business",
            "tier": "enterprise" if k % 4 == 0 else "standard",
            "timezone": "Europe/Dublin",
            "services": [s[0] for j, s in enumerate(SERVICES) if (j + k) % 3 != 0],
        }
        for k in range(20)
    ],
}


# --------------------------------------------------------------------------------------------
# the notification stream


def encode_like_alertmanager(body: dict) -> bytes:
    """Go's json.Encoder: compact, HTML characters escaped, trailing newline."""
    text = json.dumps(body, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return (text + "\n").encode()


@dataclass
class Group:
    number: int
    key: str
    group_labels: dict[str, str]
    alerts: list[dict[str, Any]]
    refs: list[str] = field(default_factory=list)

    def notification(self, resolved: bool) -> bytes:
        alerts = []
        for alert in self.alerts:
            item = dict(alert)
            if resolved:
                ends = datetime.fromisoformat(alert["startsAt"]) + timedelta(minutes=7)
                item["status"] = "resolved"
                item["endsAt"] = ends.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            alerts.append(item)
        common = {
            k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)
        }
        body = {
            "receiver": "dualtrack",
            "status": "resolved" if resolved else "firing",
            "alerts": alerts,
            "groupLabels": self.group_labels,
            "commonLabels": common,
            "commonAnnotations": {"summary": alerts[0]["annotations"]["summary"]},
            "externalURL": "http://alertmanager.example.org:9093",
            "version": "4",
            "groupKey": self.key,
            "truncatedAlerts": 0,
        }
        return encode_like_alertmanager(body)


class Stream:
    """Distinct groups (1-3 alerts each); about a third of the sends resolve an earlier group."""

    def __init__(self, seed: int, resolve_share: float = 0.3):
        self.random = random.Random(seed)
        self.resolve_share = resolve_share
        self.lock = threading.Lock()
        self.count = 0
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self.confirmed: deque[Group] = deque()

    def _new_group(self) -> Group:
        self.count += 1
        n, rnd = self.count, self.random
        alertname, summary = rnd.choice(ALERTS)
        service = rnd.choice(SERVICES)[0] if rnd.random() > 0.05 else f"legacy-{n % 7}"
        cluster = f"k8s-eu-{n:06d}"
        severity = rnd.choice(SEVERITIES)
        group_labels = {"alertname": alertname, "cluster": cluster, "service": service}
        key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
        starts = self.base + timedelta(milliseconds=n * 37)
        alerts = []
        for i in range(rnd.randint(1, 3)):
            labels = {
                **group_labels,
                "instance": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}:{9100 + i}",
                "job": f"{service}-exporter",
                "severity": severity,
            }
            labels = dict(sorted(labels.items()))  # Go encodes maps with sorted keys
            moment = starts + timedelta(microseconds=i * 1013 + 1)
            alerts.append(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": f"{service}: {summary}",
                        "description": f"{summary} on {labels['instance']}",
                        "runbook_url": f"https://runbooks.example.org/{alertname}",
                    },
                    "startsAt": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "endsAt": ZERO_TIME,
                    "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=up&g0.tab=1",
                    "fingerprint": fingerprint(labels),
                }
            )
        return Group(n, key, group_labels, alerts)

    def next(self) -> tuple[Group, bool]:
        """(group, resolved?) for the next request."""
        with self.lock:
            if self.confirmed and self.random.random() < self.resolve_share:
                return self.confirmed.popleft(), True
            return self._new_group(), False

    def confirm(self, group: Group) -> None:
        with self.lock:
            self.confirmed.append(group)


# --------------------------------------------------------------------------------------------
# load


@dataclass
class Result:
    name: str
    duration: float = 0.0  # seconds under load, over all rounds
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    firing_ok: list[Group] = field(default_factory=list)
    resolved_ok: list[Group] = field(default_factory=list)
    unknown: list[Group] = field(default_factory=list)  # no answer: may or may not be stored
    transactions: float = 0.0  # dualtrack's write transactions, and the webhooks they wrote
    transacted: float = 0.0
    rounds: list[float] = field(default_factory=list)  # requests/s of each round
    splits: list[list[int]] = field(default_factory=list)  # dualtrack: webhooks per worker, by round
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def per_transaction(self) -> float | None:
        """dualtrack's mean webhooks per write transaction."""
        return self.transacted / self.transactions if self.transactions else None

    @property
    def rate(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def drive(url: str, duration: float, concurrency: int, stream: Stream, result: Result) -> None:
    """Add `duration` seconds of load on `url` to `result` (a round: the stream goes on across rounds)."""
    name = result.name
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Alertmanager/0.25.0",
        "Authorization": f"Bearer {AM_TOKEN}",
    }
    start = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def client() -> None:
        with requests.Session() as session:
            start.wait()
            while time.monotonic() < deadline[0]:
                group, resolved = stream.next()
                body = group.notification(resolved)
                began = time.perf_counter()
                try:
                    response = session.post(url, data=body, headers=headers, timeout=60)
                except requests.RequestException:
                    with result.lock:
                        result.errors += 1
                        result.unknown.append(group)
                    continue
                took = time.perf_counter() - began
                good = 200 <= response.status_code < 300
                with result.lock:
                    if not good:
                        result.errors += 1
                        continue
                    result.latencies.append(took)
                    if resolved:
                        result.resolved_ok.append(group)
                if good and not resolved:
                    if name.startswith("dualtrack"):
                        group.refs = list(response.json().get("incidents", []))
                    with result.lock:
                        result.firing_ok.append(group)
                    stream.confirm(group)

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + duration
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    result.duration += time.monotonic() - began


# --------------------------------------------------------------------------------------------
# servers


def start_bare(folder: Path, workers: int, threads: int) -> tuple[Process, str]:
    """The baseline, under the gunicorn settings `dualtrack serve` uses (adapter/cli.py)."""
    port = free_port()
    argv = [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--graceful-timeout",
        "30",
        "--no-control-socket",
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(Path(__file__).resolve().parent),
        "bare_app:app",
    ]
    process = Process("bare", argv, folder / "logs", cwd=folder)
    process.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not process.running:
            raise RuntimeError("bare gunicorn exited early\n" + process.logs())
        # Every worker, as for dualtrack: one alone often takes every connection opened now.
        if process.stdout_path.read_text(errors="replace").count("bare worker ready pid=") < workers:
            return False
        data = b'{"alerts": []}'
        return requests.post(f"{url}/webhooks/alertmanager", data=data, timeout=2).ok

    wait_until(ready, timeout=30, message="bare app")
    return process, url


def postgres_database(prefix: str) -> contextlib.AbstractContextManager[tuple[str, str]]:
    """A new, empty PostgreSQL database: (SQLAlchemy URL for dualtrack, URL for psycopg)."""
    from tests.support.postgres import fresh_database

    return fresh_database(prefix)


# --------------------------------------------------------------------------------------------
# durability

INCIDENTS_SQL = "SELECT ref, status FROM incidents"
ALERTS_SQL = "SELECT i.ref, a.fingerprint, a.status FROM alerts a JOIN incidents i ON i.id = a.incident_id"


def read_sqlite(db_path: Path) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        incidents = dict(conn.execute(INCIDENTS_SQL).fetchall())
        alert_rows = conn.execute(ALERTS_SQL).fetchall()
    return incidents, alert_rows


def read_postgres(url: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        incidents = dict(conn.execute(INCIDENTS_SQL).fetchall())
        alert_rows = conn.execute(ALERTS_SQL).fetchall()
    return incidents, alert_rows


def check_durability(
    stored: tuple[dict[str, str], list[tuple[str, str, str]]], result: Result
) -> tuple[bool, list[str]]:
    """Compare what dualtrack answered 2xx to with what is in its database after stop."""
    lines: list[str] = []
    incidents, alert_rows = stored
    alerts_by_ref: dict[str, dict[str, str]] = {}
    for ref, fp, status in alert_rows:
        alerts_by_ref.setdefault(ref, {})[fp] = status

    resolved_numbers = {g.number for g in result.resolved_ok}
    problems = 0
    refs_seen: dict[str, int] = {}
    want_alerts = have_alerts = want_resolved = have_resolved = 0
    for group in result.firing_ok:
        if len(group.refs) != 1:
            problems += 1
            if problems <= 5:
                lines.append(f"  group {group.key}: 202 named {group.refs} (want one incident)")
            continue
        ref = group.refs[0]
        refs_seen[ref] = refs_seen.get(ref, 0) + 1
        stored = alerts_by_ref.get(ref, {})
        want_alerts += len(group.alerts)
        have_alerts += sum(1 for a in group.alerts if a["fingerprint"] in stored)
        if ref not in incidents:
            problems += 1
            if problems <= 5:
                lines.append(f"  {ref} ({group.key}) was accepted but is not stored")
            continue
        if group.number in resolved_numbers:
            want_resolved += 1
            if incidents[ref] == "resolved" and all(
                stored.get(a["fingerprint"]) == "resolved" for a in group.alerts
            ):
                have_resolved += 1
            else:
                problems += 1
                if problems <= 5:
                    lines.append(f"  {ref} resolve was accepted but status is {incidents[ref]}")
    shared = {ref: n for ref, n in refs_seen.items() if n > 1}
    extra = set(incidents) - set(refs_seen)
    lines.insert(
        0,
        f"  accepted: {result.ok} notifications = {len(result.firing_ok)} new groups"
        f" + {len(result.resolved_ok)} resolves; no answer: {len(result.unknown)}",
    )
    lines.insert(1, f"  incidents stored {len(set(refs_seen) & set(incidents))}/{len(refs_seen)}")
    lines.insert(2, f"  alerts stored {have_alerts}/{want_alerts}")
    lines.insert(3, f"  resolved groups stored as resolved {have_resolved}/{want_resolved}")
    lines.insert(
        4,
        f"  incidents in DB not named by any 202: {len(extra)} (unanswered: up to {len(result.unknown)})",
    )
    if shared:
        lines.append(f"  {len(shared)} incidents were named by several groups")
    ok = (
        problems == 0
        and not shared
        and have_alerts == want_alerts
        and have_resolved == want_resolved
        and len(extra) <= len(result.unknown)
    )
    return ok, lines


# --------------------------------------------------------------------------------------------


def report(result: Result) -> str:
    rate = result.rate
    shared = f" {result.per_transaction:>8.2f}" if result.per_transaction else ""
    return (
        f"{result.name:<20} {result.ok:>9} {rate:>10.1f} {result.percentile(50):>9.2f}"
        f" {result.percentile(99):>9.2f} {result.errors:>7}{shared}"
    )


def ratio_line(result: Result, bare: Result) -> str:
    ratio = result.rate / max(bare.rate, 1e-9)
    by_round = " ".join(
        f"{mine / max(theirs, 1e-9):.2f}" for mine, theirs in zip(result.rounds, bare.rounds, strict=True)
    )
    return (
        f"ratio {result.name}/bare: throughput {ratio:.3f}x (rounds: {by_round}), "
        f"p50 {result.percentile(50) / bare.percentile(50):.1f}x, "
        f"p99 {result.percentile(99) / bare.percentile(99):.1f}x"
    )


def round_of_bare(folder: Path, args: argparse.Namespace, stream: Stream, result: Result) -> None:
    bare, url = start_bare(folder, args.workers, args.threads)
    try:
        measured(
            result,
            lambda: drive(f"{url}/webhooks/alertmanager", args.seconds, args.concurrency, stream, result),
        )
    finally:
        bare.stop()


def round_of_dualtrack(
    folder: Path, args: argparse.Namespace, storage_url: str | None, stream: Stream, result: Result
) -> None:
    """Start dualtrack on the target's database (kept from round to round), load it, stop it."""
    port = free_port()
    extra = {"storage": {"url": storage_url}} if storage_url else None
    config = write_config(folder, port, providers=[PROVIDER_BUILTIN], catalog=CATALOG, extra=extra)
    server = Dualtrack(config, port, workers=args.workers, threads=args.threads)
    try:
        server.start(ready_timeout=45)
        url = f"{server.url}/webhooks/alertmanager"
        measured(result, lambda: drive(url, args.seconds, args.concurrency, stream, result))
        text = server.metrics()
        metric = "dualtrack_ingest_webhooks_per_transaction"
        result.transactions += metric_sum(text, f"{metric}_count")
        result.transacted += metric_sum(text, f"{metric}_sum")
    finally:
        code = server.stop()
        server.session.close()
    if code != 0:
        raise RuntimeError(f"{result.name} stopped with exit code {code}\n{server.logs()}")
    log = server.process.stderr_path.read_text(errors="replace")
    served = Counter(re.findall(r"\[(\d+)\] webhook source=alertmanager outcome=accepted", log))
    result.splits.append(sorted(served.values(), reverse=True))


def round_line(result: Result) -> str:
    """The last round's requests/s, and for dualtrack how many webhooks each worker served."""
    split = f" (per worker: {'/'.join(map(str, result.splits[-1]))})" if result.splits else ""
    return f"{result.name} {result.rounds[-1]:.0f} req/s{split}"


def measured(result: Result, load: Callable[[], None]) -> None:
    """Run one round of load, recording the round's own requests/s."""
    ok, duration = result.ok, result.duration
    load()
    result.rounds.append((result.ok - ok) / (result.duration - duration))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per target, over all rounds")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="the targets take turns this many times, so that a slower spell of a shared machine "
        "falls on all of them",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker for both (server.threads' default)"
    )
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="dualtrack's database (PostgreSQL: a fresh database on the local server, dropped after)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    args.seconds = args.duration / args.rounds
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    folder = Path(tempfile.mkdtemp(prefix="dualtrack-bench-"))
    targets = ["bare", *backends]
    # The same stream for every target; each target's goes on from round to round.
    streams = {target: Stream(args.seed) for target in targets}
    results = {target: Result("bare" if target == "bare" else f"dualtrack/{target}") for target in targets}
    durable: dict[str, tuple[bool, list[str]]] = {b: (False, ["  not run"]) for b in backends}
    try:
        with contextlib.ExitStack() as stack:
            urls: dict[str, str | None] = {"sqlite": None}
            pg_url = ""
            if "postgresql" in backends:
                urls["postgresql"], pg_url = stack.enter_context(postgres_database("dualtrack_bench_ingest"))
            for number in range(1, args.rounds + 1):
                round_of_bare(folder / "bare", args, streams["bare"], results["bare"])
                for backend in backends:
                    target = folder / f"dualtrack-{backend}"
                    round_of_dualtrack(target, args, urls[backend], streams[backend], results[backend])
                print(f"round {number}/{args.rounds}: " + ", ".join(map(round_line, results.values())))
            for backend in backends:
                if backend == "sqlite":
                    stored = read_sqlite(folder / "dualtrack-sqlite" / "dualtrack.db")
                else:
                    stored = read_postgres(pg_url)
                durable[backend] = check_durability(stored, results[backend])
    finally:
        if args.keep:
            print(f"kept {folder} (configs, logs, dualtrack.db)")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    bare_r = results["bare"]
    print()
    print(
        f"ingest: {args.concurrency} client threads, {args.duration:.0f} s per target in {args.rounds} "
        f"rounds, gunicorn {args.workers} gthread workers x {args.threads} threads, "
        "Alertmanager v4 bodies (1-3 alerts, ~30% resolves)"
    )
    print(f"{'target':<20} {'2xx':>9} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'per txn':>8}")
    print(report(bare_r))
    for backend in backends:
        print(report(results[backend]))
    for backend in backends:
        print(ratio_line(results[backend], bare_r))
    ok_all = True
    for backend in backends:
        ok, lines = durable[backend]
        ok_all = ok_all and ok
        label = "SQLite" if backend == "sqlite" else "PostgreSQL"
        print(f"durability ({label} after SIGTERM): {'OK' if ok else 'FAILED'}")
        print("\n".join(lines))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
