"""Alert storm: two `dualtrack serve` replicas on one PostgreSQL database, 10,000 alerts in 60 s.

Alertmanager-like load (each group's alerts arrive over several notifications, some groups
resolve near the end), spread over both replicas; then the outbox is drained and the database
is checked for anything a 202 promised but is missing, and for duplicate notices.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import (  # noqa: E402
    ALERTS,
    CATALOG,
    SERVICES,
    SEVERITIES,
    firing_alert,
    group_key,
    group_notification,
    postgres_database,
)

from tests.support.server import (  # noqa: E402
    AM_TOKEN,
    PROVIDER_BUILTIN,
    Dualtrack,
    free_port,
    metric_sum,
    provider_webhook,
    write_config,
)

HOOK = "ops-hook"
DRAIN_TIMEOUT = 120.0


# --------------------------------------------------------------------------------------------
# the webhook provider's receiver


@dataclass
class Post:
    key: str | None
    at: float
    incident: str | None
    phase: str | None


class KeySink:
    """In-process HTTP/1.1 server: records each POST's Idempotency-Key and arrival, answers 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.posts: list[Post] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> KeySink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                incident = phase = None
                with contextlib.suppress(ValueError):
                    payload = json.loads(body)
                    incident, phase = payload.get("incident"), payload.get("phase")
                with sink.lock:
                    sink.posts.append(Post(self.headers.get("Idempotency-Key"), at, incident, phase))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="key-sink", daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None


# --------------------------------------------------------------------------------------------
# the storm


@dataclass
class Group:
    number: int
    key: str
    group_labels: dict[str, str]
    alerts: list[dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: set[str] = field(default_factory=set)
    first_answer: float | None = None  # when the first accepted notification was answered


@dataclass
class Send:
    at: float  # "natural" moment in the storm, before the rate is evened out
    group: Group
    count: int  # the group's first `count` alerts (Alertmanager sends the whole group each time)
    resolved: bool
    replica: int = 0
    status: int = 0
    began: float = 0.0
    answered: float = 0.0
    refs: list[str] = field(default_factory=list)


def make_group(n: int, size: int, rnd: random.Random, base: datetime) -> Group:
    alertname, summary = rnd.choice(ALERTS)
    service = rnd.choice(SERVICES)[0] if rnd.random() > 0.05 else f"legacy-{n % 7}"
    group_labels = {"alertname": alertname, "cluster": f"storm-{n:05d}", "service": service}
    severity = rnd.choice(SEVERITIES)
    alerts = [
        firing_alert(
            group_labels,
            instance=f"10.{n // 256 % 256}.{n % 256}.{i % 256}:{9100 + i // 256}",
            severity=severity,
            summary=summary,
            starts_at=base + timedelta(milliseconds=n * 41 + i * 7),
            runbook=False,
        )
        for i in range(size)
    ]
    return Group(n, group_key(group_labels), group_labels, alerts)


def plan(alerts: int, groups: int, duration: float, resolve_share: float, seed: int) -> list[Send]:
    """Every notification of the storm, in order; each group's alerts over 2-3 notifications."""
    rnd = random.Random(seed)
    sizes = [1] * groups
    for _ in range(alerts - groups):
        sizes[rnd.randrange(groups)] += 1
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    interval = duration / 12  # Alertmanager's group_interval, scaled to the storm
    sends: list[Send] = []
    for n, size in enumerate(sizes, start=1):
        group = make_group(n, size, rnd, base)
        parts = min(size, rnd.randint(2, 3))
        cuts = sorted(rnd.sample(range(1, size), parts - 1)) if parts > 1 else []
        start = rnd.uniform(0, duration * 0.7)
        moments = [start + i * interval for i in range(parts)]
        for moment, count in zip(moments, [*cuts, size], strict=True):
            sends.append(Send(moment, group, count, False))
        if rnd.random() < resolve_share:
            end = max(rnd.uniform(duration * 0.88, duration * 0.98), moments[-1] + interval / 2)
            sends.append(Send(end, group, size, True))
    sends.sort(key=lambda s: s.at)
    for index, send in enumerate(sends):
        send.replica = index % 2  # alternate between the replicas
    return sends


def body(send: Send) -> bytes:
    group = send.group
    resolved_after = timedelta(minutes=9) if send.resolved else None
    return group_notification(group.alerts[: send.count], group.group_labels, group.key, resolved_after)


def storm(sends: list[Send], urls: list[str], duration: float, threads: int) -> float:
    """Send at an even rate over `duration` with `threads` clients; returns the send window."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Alertmanager/0.27.0",
        "Authorization": f"Bearer {AM_TOKEN}",
    }
    work: queue.Queue[Send | None] = queue.Queue(maxsize=threads * 2)

    def client() -> None:
        sessions = [requests.Session() for _ in urls]
        try:
            while (send := work.get()) is not None:
                data = body(send)
                # One notification of a group at a time, as one Alertmanager would.
                with send.group.lock:
                    send.began = time.monotonic()
                    try:
                        response = sessions[send.replica].post(
                            urls[send.replica], data=data, headers=headers, timeout=30
                        )
                        send.status = response.status_code
                        send.answered = time.monotonic()
                        if 200 <= send.status < 300:
                            send.refs = list(response.json().get("incidents", []))
                            if not send.resolved and send.group.first_answer is None:
                                send.group.first_answer = send.answered
                    except (requests.RequestException, ValueError):
                        send.status = -1
        finally:
            for session in sessions:
                session.close()

    pool = [threading.Thread(target=client, name=f"client-{i}", daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    step = duration / max(len(sends), 1)
    began = time.monotonic()
    try:
        for index, send in enumerate(sends):
            delay = began + index * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            work.put(send)
    finally:
        for _ in pool:
            work.put(None)
        for thread in pool:
            thread.join(timeout=60)
    return time.monotonic() - began


# --------------------------------------------------------------------------------------------
# memory


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Peak RSS (VmHWM) of every worker process of every replica, sampled every 0.5 s."""

    def __init__(self, masters: dict[str, int]):
        self.masters = masters
        self.peaks: dict[tuple[str, int], int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="rss", daemon=True)

    def sample(self) -> None:
        for name, master in self.masters.items():
            for pid in children(master):
                kib = vm_hwm_kib(pid)
                if kib is not None:
                    self.peaks[(name, pid)] = max(kib, self.peaks.get((name, pid), 0))

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# checks


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def drain(replica: Dualtrack, timeout: float) -> tuple[bool, float]:
    """Wait until the outbox is empty (dualtrack_outbox_pending 0); (drained?, seconds waited)."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if metric_sum(replica.metrics(), "dualtrack_outbox_pending") == 0:
                return True, time.monotonic() - began
        if time.monotonic() >= deadline:
            return False, time.monotonic() - began
        time.sleep(0.5)


def check_database(pg_url: str, sends: list[Send]) -> tuple[int, int, list[str]]:
    """(lost, duplicate notices, report lines) from the database itself."""
    import psycopg

    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        incidents = {
            ref: (iid, status) for iid, ref, status in conn.execute("SELECT id, ref, status FROM incidents")
        }
        stored_alerts = {
            (ref, fp)
            for ref, fp in conn.execute(
                "SELECT i.ref, a.fingerprint FROM alerts a JOIN incidents i ON i.id = a.incident_id"
            )
        }
        notices = conn.execute(
            "SELECT incident_id, phase, audience, provider, tenant, data->>'event', state FROM notices"
        ).fetchall()

    lines: list[str] = []
    lost_incidents = lost_alerts = lost_notices = 0
    want_alerts = 0
    accepted_groups: dict[int, set[str]] = {}
    resolved_groups: dict[int, set[str]] = {}
    examples: list[str] = []
    for send in sends:
        if not 200 <= send.status < 300:
            continue
        group = send.group
        if len(send.refs) != 1:
            lost_incidents += 1
            examples.append(f"  {group.key}: 202 named {send.refs} (want one incident)")
            continue
        ref = send.refs[0]
        (resolved_groups if send.resolved else accepted_groups).setdefault(group.number, set()).add(ref)
        if ref not in incidents:
            lost_incidents += 1
            examples.append(f"  {ref} ({group.key}) was named by a 202 but is not stored")
            continue
        for alert in group.alerts[: send.count]:
            want_alerts += 1
            if (ref, alert["fingerprint"]) not in stored_alerts:
                lost_alerts += 1
                if lost_alerts <= 3:
                    examples.append(f"  {ref}: alert {alert['fingerprint']} accepted but not stored")

    # Notices: every incident an accepted notification named has an acknowledgement planned; every
    # accepted resolve has a resolution on each stream that heard the acknowledgement.
    by_incident: dict[int, list[tuple[Any, ...]]] = {}
    for row in notices:
        by_incident.setdefault(row[0], []).append(row)
    refs = set().union(*accepted_groups.values()) if accepted_groups else set()
    resolved_refs = set().union(*resolved_groups.values()) if resolved_groups else set()
    not_resolved = 0
    for ref in refs | resolved_refs:
        if ref not in incidents:
            continue
        iid, status = incidents[ref]
        rows = by_incident.get(iid, [])
        acks = [r for r in rows if r[1] == "acknowledgement"]
        if not acks:
            lost_notices += 1
            examples.append(f"  {ref}: no acknowledgement notice")
        if ref in resolved_refs:
            if status != "resolved":
                not_resolved += 1
                examples.append(f"  {ref}: resolve accepted but status is {status}")
                continue
            heard = {(r[3], r[2], r[4]) for r in acks if r[6] not in ("held", "suppressed")}
            told = {(r[3], r[2], r[4]) for r in rows if r[1] == "resolution"}
            if heard - told:
                lost_notices += 1
                examples.append(f"  {ref}: no resolution notice on {sorted(heard - told)}")

    per_event = Counter((r[0], r[1], r[2], r[3], r[4], r[5]) for r in notices)
    duplicates = sum(n - 1 for n in per_event.values() if n > 1)
    ack_streams = Counter((r[0], r[2], r[3], r[4]) for r in notices if r[1] == "acknowledgement")
    ack_repeats = sum(n - 1 for n in ack_streams.values() if n > 1)
    states = Counter(r[6] for r in notices)

    lost = lost_incidents + lost_alerts + lost_notices + not_resolved
    lines.append(
        f"  incidents: {len(refs)} named by accepted firing notifications, "
        f"{len(refs & set(incidents))} stored; {len(incidents)} in the database"
    )
    distinct = {
        (s.group.number, a["fingerprint"])
        for s in sends
        if 200 <= s.status < 300
        for a in s.group.alerts[: s.count]
    }
    lines.append(
        f"  alerts: {want_alerts - lost_alerts}/{want_alerts} (alert, accepted notification) pairs stored"
        f" ({len(distinct)} distinct alerts accepted, {len(stored_alerts)} alert rows)"
    )
    lines.append(
        f"  resolves: {sum(1 for r in resolved_refs if incidents.get(r, (0, ''))[1] == 'resolved')}"
        f"/{len(resolved_refs)} accepted resolves stored as resolved"
    )
    lines.append(f"  notices: {len(notices)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})")
    lines.append(
        f"  lost: incidents {lost_incidents}, alerts {lost_alerts}, notices {lost_notices}, "
        f"resolves {not_resolved}"
    )
    lines.append(
        f"  acknowledgements per (incident, audience, provider) beyond one: {ack_repeats} "
        "(a reopen or level change may add one legitimately)"
    )
    lines.extend(examples[:10])
    return lost, duplicates, lines


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts in all")
    parser.add_argument("--groups", type=int, default=1_000, help="Alertmanager groups")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to send them over")
    parser.add_argument("--threads", type=int, default=16, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per replica")
    parser.add_argument("--resolve-share", type=float, default=0.25, help="groups resolving at the end")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (configs, logs)")
    args = parser.parse_args()
    if not 0 < args.groups <= args.alerts:
        parser.error("need 0 < --groups <= --alerts")

    started = time.monotonic()
    sends = plan(args.alerts, args.groups, args.duration, args.resolve_share, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="dualtrack-storm-"))
    sink = KeySink().start()
    replicas: list[Dualtrack] = []
    figures: dict[str, Any] = {}
    try:
        with postgres_database("dualtrack_bench_storm") as (dt_url, pg_url):
            try:
                providers = [PROVIDER_BUILTIN, provider_webhook(f"{sink.url}/hook", name=HOOK)]
                for n in (1, 2):
                    port = free_port()
                    config = write_config(
                        folder / f"replica{n}",
                        port,
                        providers=providers,
                        catalog=CATALOG,
                        extra={"storage": {"url": dt_url}},
                    )
                    replicas.append(Dualtrack(config, port, workers=args.workers, name=f"replica{n}"))
                for replica in replicas:
                    replica.process.start()
                for replica in replicas:
                    replica.wait_ready(45)
                masters = {}
                for replica in replicas:
                    assert replica.process.proc is not None
                    masters[replica.process.name] = replica.process.proc.pid
                urls = [f"{r.url}/webhooks/alertmanager" for r in replicas]
                with RssSampler(masters) as sampler:
                    figures["window"] = storm(sends, urls, args.duration, args.threads)
                    figures["drained"], figures["drain_s"] = drain(replicas[0], DRAIN_TIMEOUT)
                    sampler.sample()
                figures["rss"] = dict(sampler.peaks)
                figures["workers"] = {name: len(children(pid)) for name, pid in masters.items()}
            finally:
                for replica in replicas:
                    figures.setdefault("exit", []).append(replica.stop())
                    replica.session.close()
            figures["db"] = check_database(pg_url, sends)
    finally:
        sink.close()
        if args.keep:
            print(f"kept {folder} (configs, logs)")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    # ---------------------------------------------------------------- report
    sent = len(sends)
    accepted = [s for s in sends if 200 <= s.status < 300]
    failed = Counter(s.status for s in sends if not 200 <= s.status < 300)
    lost, duplicates, lines = figures["db"]

    posts = list(sink.posts)
    by_key = Counter(p.key for p in posts)
    repeated = sum(n - 1 for n in by_key.values() if n > 1)
    first_ack: dict[str, float] = {}
    for post in posts:
        if post.phase == "acknowledgement" and post.incident and post.incident not in first_ack:
            first_ack[post.incident] = post.at
    latencies = []
    created: dict[str, float] = {}
    for send in accepted:
        if not send.resolved and send.refs:
            ref = send.refs[0]
            created[ref] = min(created.get(ref, send.answered), send.answered)
    for ref, answered in created.items():
        if ref in first_ack:
            latencies.append(first_ack[ref] - answered)

    print()
    print(
        f"storm: {args.alerts} alerts in {args.groups} groups, {sent} Alertmanager v4 notifications "
        f"over {args.duration:.0f} s ({args.threads} client threads), alternating between 2 replicas "
        f"x {args.workers} workers on one PostgreSQL database"
    )
    print(
        f"  sent {sent} in {figures['window']:.1f} s ({sent / figures['window']:.1f}/s); "
        f"accepted (2xx) {len(accepted)}; other {dict(failed) or 0}; "
        f"target rate {sent / args.duration:.1f}/s"
    )
    answer = [s.answered - s.began for s in accepted]
    print(
        f"  webhook answer time: p50 {percentile(answer, 50) * 1000:.0f} ms, "
        f"p99 {percentile(answer, 99) * 1000:.0f} ms"
    )
    print(
        f"  outbox drained: {'yes' if figures['drained'] else 'NO'} after {figures['drain_s']:.1f} s "
        f"(limit {DRAIN_TIMEOUT:.0f} s); replicas exited with {figures['exit']}"
    )
    print(f"  lost (promised by a 2xx, missing in the database): {lost}")
    print(f"  duplicate notices (per incident, phase, audience, provider, tenant, event): {duplicates}")
    print(f"  sink: {len(posts)} POSTs, {len(by_key)} Idempotency-Keys, repeated by key: {repeated}")
    print(
        f"  webhook-to-delivery latency ({HOOK} acknowledgement, {len(latencies)} incidents): "
        f"p50 {percentile(latencies, 50):.2f} s, p99 {percentile(latencies, 99):.2f} s, "
        f"max {max(latencies, default=float('nan')):.2f} s"
    )
    print("  peak RSS (VmHWM) per worker:")
    for (name, pid), kib in sorted(figures["rss"].items()):
        print(f"    {name} pid {pid}: {kib / 1024:.1f} MiB")
    if figures["rss"]:
        print(f"    max {max(figures['rss'].values()) / 1024:.1f} MiB")
    print("database:")
    print("\n".join(lines))
    print(f"total runtime {time.monotonic() - started:.0f} s")
    bad = lost > 0 or duplicates > 0
    print("RESULT:", "FAILED" if bad else "OK")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
