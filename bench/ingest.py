"""Ingest benchmark: alerta-server, dualtrack (SQLite, PostgreSQL) and a bare Flask app under one wrk load.

Method. One run starts four targets, each once and on a database of its own:
- alerta-server 9.1.0 (PyPI, in a virtualenv of its own under bench/.cache/, made on the first
  run, with dualtrack's gunicorn version) on a fresh PostgreSQL database: `gunicorn -w 2` sync
  workers on `alerta:create_app()`, AUTH_REQUIRED=False, its Alertmanager webhook
  /webhooks/prometheus (served without the /api prefix of its Docker image's nginx);
- `dualtrack serve` on SQLite, and again on a fresh PostgreSQL database, with the gunicorn
  settings dualtrack ships (2 gthread workers x 4 threads), built-in status page;
- the bare Flask app of bench/bare_app.py, which only parses the JSON, under dualtrack's settings.
Load starts once every worker of a target serves and the target has answered one notification
and, where it stores, holds that notification's 2 alerts in its database. The client is wrk
(`wrk -t 2 -c 16`, script bench/ingest.lua): every request is a new Alertmanager v4 notification
of 2 alerts, its groupKey, cluster, instances and fingerprints made new by a key from the turn,
wrk thread and request number, in 64 templates of realistic labels and annotations (severities
critical, major, warning: alerta answers 400 to "info"). Each target first takes an unmeasured
1 s turn; then the targets take turns in rounds (default 4 rounds of 5 s), so that a slow spell
of the shared machine falls on all of them. After each turn the bench waits for the target to
fall quiet (under 5% of a core), so that its background work is not counted against the next.
Figures per target: 2xx answers per second over its rounds; p50/p99 of wrk's latency histograms
(wrk's own, with its correction for coordinated omission) pooled over its rounds; the ratios to
alerta and to the bare app. Then the targets are stopped (SIGTERM) and their databases read:
every 2xx answer's 2 alerts must be there (alerts stored >= 2 x 2xx answers; requests in flight
when a turn ended may add a few).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
import sqlalchemy

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from adapter.config import ServerSettings  # noqa: E402
from tests.support.server import (  # noqa: E402
    AM_TOKEN,
    PROVIDER_BUILTIN,
    VENV_BIN,
    Dualtrack,
    Process,
    free_port,
    wait_until,
    write_config,
)
from tests.support.server import fingerprint as alert_fingerprint  # noqa: E402

WRK = "wrk"
WRK_SCRIPT = BENCH / "ingest.lua"
WRK_THREADS = 2  # the machine's 2 cores
WRK_TIMEOUT = "10s"  # an answer slower than this counts as a timeout, not a latency
PROBE_ID = "00000000000000"  # wrk's turns are numbered from 1: no request of theirs has this key
ALERTA_VENV = BENCH / ".cache" / "alerta-venv"
# The same gunicorn as dualtrack's, so the servers differ in the application only.
ALERTA_REQUIREMENTS = ["alerta-server==9.1.0", f"gunicorn=={version('gunicorn')}", "psycopg2-binary"]
# alerta's sync workers serve one request at a time; this says when each has loaded the app.
READY_HOOK = """\
def post_worker_init(worker):
    print(f"alerta worker ready pid={worker.pid}", flush=True)
"""
SERVED = ServerSettings()  # the workers and threads dualtrack ships with

ZERO_TIME = "0001-01-01T00:00:00Z"
ALERTS = [
    ("HighErrorRate", "5xx ratio above 5%"),
    ("LatencyP99High", "p99 latency above 2s"),
    ("InstanceDown", "target is not scraped"),
    ("DiskFillingUp", "disk will be full within 4h"),
    ("ReplicationLag", "replica lag above 30s"),
    ("CertificateExpiry", "TLS certificate expires within 7 days"),
]
SEVERITIES = ["critical"] * 2 + ["warning"] * 6 + ["info"] * 2  # bench/storm.py's mix
# alerta answers 400 to a severity it does not know, such as Alertmanager's common "info".
SEVERITIES_ALERTA_KNOWS = ["critical"] * 2 + ["warning"] * 6 + ["major"] * 2
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
# the notifications


def encode_like_alertmanager(body: dict) -> bytes:
    """Go's json.Encoder: compact, HTML characters escaped, trailing newline."""
    text = json.dumps(body, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return (text + "\n").encode()


def group_key(group_labels: dict[str, str]) -> str:
    """Alertmanager's groupKey for a route with no matchers."""
    return "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"


def firing_alert(
    group_labels: dict[str, str],
    *,
    instance: str,
    severity: str,
    summary: str,
    starts_at: datetime,
    fingerprint: str | None = None,
    runbook: bool = True,
) -> dict[str, Any]:
    """One firing alert of a group as Alertmanager sends it; its fingerprint from its labels unless given."""
    service, alertname = group_labels["service"], group_labels["alertname"]
    labels = {**group_labels, "instance": instance, "job": f"{service}-exporter", "severity": severity}
    labels = dict(sorted(labels.items()))  # Go encodes maps with sorted keys
    annotations = {"summary": f"{service}: {summary}", "description": f"{summary} on {instance}"}
    if runbook:
        annotations["runbook_url"] = f"https://runbooks.example.org/{alertname}"
    return {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "endsAt": ZERO_TIME,
        "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": fingerprint or alert_fingerprint(labels),
    }


def group_notification(
    alerts: list[dict[str, Any]], group_labels: dict[str, str], key: str, resolved_after: timedelta | None
) -> bytes:
    """An Alertmanager v4 notification of these alerts, all resolved `resolved_after` their start
    when it is given."""
    if resolved_after is not None:
        alerts = [
            {
                **alert,
                "status": "resolved",
                "endsAt": (datetime.fromisoformat(alert["startsAt"]) + resolved_after).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                ),
            }
            for alert in alerts
        ]
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    body = {
        "receiver": "dualtrack",
        "status": "resolved" if resolved_after is not None else "firing",
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {"summary": alerts[0]["annotations"]["summary"]},
        "externalURL": "http://alertmanager.example.org:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }
    return encode_like_alertmanager(body)


def shared(maps: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every map has, as Alertmanager's commonLabels and commonAnnotations."""
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps)}


def notification_templates(count: int, seed: int) -> list[str]:
    """Alertmanager v4 notifications of one group of 2 alerts, without the trailing newline.

    "@ID@" stands for what makes each request new: bench/ingest.lua puts a key there made of the
    turn, its thread's number and the request's, so groupKey, cluster, instances and fingerprints
    are new in every request.
    """
    rnd = random.Random(seed)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    templates = []
    for n in range(count):
        alertname, summary = rnd.choice(ALERTS)
        service = rnd.choice(SERVICES)[0] if rnd.random() > 0.05 else f"legacy-{n % 7}"
        severity = rnd.choice(SEVERITIES_ALERTA_KNOWS)
        group_labels = {"alertname": alertname, "cluster": "k8s-eu-@ID@", "service": service}
        alerts = [
            firing_alert(
                group_labels,
                instance=f"ip-@ID@-{i}.eu-west-1.compute.internal:9100",
                severity=severity,
                summary=summary,
                starts_at=base + timedelta(milliseconds=37 * n + i),
                fingerprint=f"@ID@{i:02x}",
            )
            for i in range(2)
        ]
        body = {
            "receiver": "dualtrack",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": group_labels,
            "commonLabels": shared([alert["labels"] for alert in alerts]),
            "commonAnnotations": shared([alert["annotations"] for alert in alerts]),
            "externalURL": "http://alertmanager.example.org:9093",
            "version": "4",
            "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
            "truncatedAlerts": 0,
        }
        templates.append(encode_like_alertmanager(body).decode().rstrip("\n"))
    return templates


# --------------------------------------------------------------------------------------------
# the targets


@dataclass
class Round:
    """One turn of wrk on one target."""

    seconds: float
    answered: int
    ok: int  # 2xx answers
    errors: int  # connections wrk could not open, read or write, and answers slower than WRK_TIMEOUT
    latency: Counter[int]  # µs -> answers
    busy_after: float = 0.0  # seconds the target went on working after wrk stopped

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Target:
    name: str
    url: str  # its Alertmanager webhook
    authorization: str  # the Authorization header, "" for none
    process: Process
    database: str | None = None  # SQLAlchemy URL of where it stores alerts; None: it stores nothing
    warmup: Round | None = None  # wrk's first turn, not measured
    rounds: list[Round] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.rounds)

    @property
    def stored_ok(self) -> int:
        """2xx answers whose alerts must be stored: the probe's, the warm-up's and the rounds'."""
        return 1 + (self.warmup.ok if self.warmup else 0) + self.ok

    @property
    def rate(self) -> float:
        seconds = sum(r.seconds for r in self.rounds)
        return self.ok / seconds if seconds else 0.0

    @property
    def failed(self) -> int:
        """Answers other than 2xx, and wrk's errors, in every turn."""
        turns = [*self.rounds, self.warmup] if self.warmup else self.rounds
        return sum(r.answered - r.ok + r.errors for r in turns)

    def percentile(self, p: float) -> float:
        """Milliseconds, over all rounds, ranked as wrk ranks its own."""
        latency: Counter[int] = sum((r.latency for r in self.rounds), Counter())
        rank = round(p / 100 * latency.total() + 0.5)
        seen = 0
        for micros in sorted(latency):
            seen += latency[micros]
            if seen >= rank:
                return micros / 1000
        return float("nan")


def start_gunicorn(name: str, argv: list[str], folder: Path, env: dict[str, str], ready: str) -> Process:
    """Start gunicorn; return once each worker has printed `ready` (it loaded the app and serves)."""
    process = Process(name, argv, folder / "logs", cwd=folder)
    process.start(env)

    def serving() -> bool:
        if not process.running:
            raise RuntimeError(f"{name} exited early\n{process.logs()}")
        return process.stdout_path.read_text(errors="replace").count(ready) >= SERVED.workers

    wait_until(serving, timeout=60, message=lambda: f"{name} workers\n{process.logs()}")
    return process


def gunicorn_options(port: int) -> list[str]:
    """What every gunicorn here shares with `dualtrack serve` (adapter/cli.py)."""
    return [
        f"--workers={SERVED.workers}",
        "--timeout=30",
        "--graceful-timeout=30",
        "--no-control-socket",
        f"--bind=127.0.0.1:{port}",
    ]


def start_bare(folder: Path) -> Target:
    port = free_port()
    argv = [str(VENV_BIN / "gunicorn"), *gunicorn_options(port), "--worker-class=gthread"]
    argv += [f"--threads={SERVED.threads}", f"--chdir={BENCH}", "bare_app:app"]
    process = start_gunicorn("bare", argv, folder, {}, "bare worker ready pid=")
    return Target("bare Flask", f"http://127.0.0.1:{port}/webhooks/alertmanager", "", process)


def start_dualtrack(name: str, folder: Path, database: str) -> Target:
    port = free_port()
    config = write_config(
        folder, port, providers=[PROVIDER_BUILTIN], catalog=CATALOG, extra={"storage": {"url": database}}
    )
    server = Dualtrack(config, port, workers=SERVED.workers)
    server.session.close()  # the bench talks to it with wrk and its own probe only
    server.start(ready_timeout=60)
    url = f"{server.url}/webhooks/alertmanager"
    return Target(name, url, f"Bearer {AM_TOKEN}", server.process, database)


def alerta_bin() -> Path:
    """alerta-server's virtualenv: its dependencies are not dualtrack's. Made once, then reused."""
    marker = ALERTA_VENV / "bench-requirements.txt"
    wanted = "\n".join(ALERTA_REQUIREMENTS) + "\n"
    if not (marker.is_file() and marker.read_text() == wanted):
        print(f"installing {', '.join(ALERTA_REQUIREMENTS)} into {ALERTA_VENV}", flush=True)
        shutil.rmtree(ALERTA_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(ALERTA_VENV)], check=True)
        pip = [str(ALERTA_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *ALERTA_REQUIREMENTS], check=True)
        marker.write_text(wanted)
    return ALERTA_VENV / "bin"


def start_alerta(folder: Path, database: str, libpq_url: str) -> Target:
    bin_dir = alerta_bin()
    folder.mkdir(parents=True)
    env = {"DATABASE_URL": libpq_url, "AUTH_REQUIRED": "False"}
    # Each worker runs alerta's schema script when it loads the app; on an empty database two at
    # once can trip over each other, so the schema is made once first.
    schema = [str(bin_dir / "python"), "-c", "from alerta import create_app; create_app()"]
    subprocess.run(schema, env={**os.environ, **env}, check=True, cwd=folder)
    (folder / "gunicorn.conf.py").write_text(READY_HOOK)
    port = free_port()
    argv = [str(bin_dir / "gunicorn"), "--config=gunicorn.conf.py", *gunicorn_options(port)]
    argv += ["--worker-class=sync", "alerta:create_app()"]
    process = start_gunicorn("alerta", argv, folder, env, "alerta worker ready pid=")
    return Target("alerta", f"http://127.0.0.1:{port}/webhooks/prometheus", "", process, database)


def postgres_database(prefix: str) -> contextlib.AbstractContextManager[tuple[str, str]]:
    """A new, empty PostgreSQL database: (SQLAlchemy URL, libpq URL); bench/storm.py uses it too."""
    from tests.support.postgres import fresh_database

    return fresh_database(prefix)


def stored_alerts(database: str) -> int:
    """Rows in the `alerts` table, which alerta and dualtrack both have: one row a stored alert."""
    engine = sqlalchemy.create_engine(database, poolclass=sqlalchemy.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text("SELECT count(*) FROM alerts")).scalar_one())
    finally:
        engine.dispose()


def probe(target: Target, template: str) -> None:
    """One notification before the load: answered 2xx, and (where stored) its 2 alerts are."""
    headers = {"Content-Type": "application/json"}
    if target.authorization:
        headers["Authorization"] = target.authorization
    body = (template.replace("@ID@", PROBE_ID) + "\n").encode()
    response = requests.post(target.url, data=body, headers=headers, timeout=30)
    if not response.ok:
        raise RuntimeError(f"{target.name} answered {response.status_code}: {response.text[:500]}")
    if target.database and (stored := stored_alerts(target.database)) != 2:
        raise RuntimeError(f"{target.name} stored {stored} alerts of a first notification of 2")


# --------------------------------------------------------------------------------------------
# load


def drive(target: Target, seconds: int, connections: int, templates: Path, turn: int) -> Round:
    """One turn of wrk on `target`; its requests are new as long as `turn` is (1-255)."""
    argv = [WRK, f"--threads={min(WRK_THREADS, connections)}", f"--connections={connections}"]
    argv += [f"--duration={seconds}s", f"--timeout={WRK_TIMEOUT}", f"--script={WRK_SCRIPT}"]
    argv += [target.url, "--", str(templates), target.authorization, str(turn)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ingest.lua ")]
    if done.returncode != 0 or len(lines) != 1:
        raise RuntimeError(f"wrk failed on {target.name} ({done.returncode})\n{done.stdout}\n{done.stderr}")
    summary = json.loads(lines[0].removeprefix("ingest.lua "))
    return Round(
        seconds=summary["seconds"],
        answered=summary["requests"],
        ok=summary["2xx"],
        errors=sum(summary["errors"].values()),
        latency=Counter(dict(summary["latency_us"])),
    )


def cpu_seconds(process: Process) -> float:
    """CPU time of the live processes of `process`'s group (Linux /proc)."""
    assert process.proc is not None
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # After the command's closing parenthesis: state ppid pgrp ... utime (12th) stime (13th).
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == process.proc.pid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(target: Target, limit: float = 30.0) -> float:
    """Wait until the target uses under 5% of a core over half a second; return the seconds waited."""
    began = time.monotonic()
    before = cpu_seconds(target.process)
    while time.monotonic() - began < limit:
        time.sleep(0.5)
        now = cpu_seconds(target.process)
        if now - before < 0.025:
            break
        before = now
    return time.monotonic() - began


# --------------------------------------------------------------------------------------------
# report


def durability(target: Target, in_flight: int) -> tuple[bool, str]:
    """After stop: every 2xx answer's 2 alerts are in the target's database.

    `in_flight`: requests wrk had sent and not seen answered when its turns ended; the target may
    have stored theirs too.
    """
    if target.database is None:
        return True, f"{target.name}: stores nothing"
    stored = stored_alerts(target.database)
    promised = 2 * target.stored_ok
    ok = stored >= promised
    return ok, (
        f"{target.name}: {'OK' if ok else 'FAILED'}, {stored} alerts stored for {target.stored_ok}"
        f" 2xx answers of 2 alerts ({stored - promised:+d}; up to +{2 * in_flight} from requests"
        " in flight when a turn ended)"
    )


def table(targets: list[Target], alerta: Target, bare: Target) -> list[str]:
    lines = [
        f"{'target':<22} {'2xx':>8} {'failed':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'x alerta':>9} {'x bare':>7}"
    ]
    for target in targets:
        lines.append(
            f"{target.name:<22} {target.ok:>8} {target.failed:>7} {target.rate:>8.1f}"
            f" {target.percentile(50):>8.2f} {target.percentile(99):>8.2f}"
            f" {target.rate / alerta.rate:>9.2f} {target.rate / bare.rate:>7.3f}"
        )
    return lines


def start_targets(stack: contextlib.ExitStack, folder: Path) -> list[Target]:
    """alerta, dualtrack on SQLite and on PostgreSQL, bare: each serving, on a database of its own."""
    alerta_db, alerta_libpq = stack.enter_context(postgres_database("alerta_bench_ingest"))
    dualtrack_db, _ = stack.enter_context(postgres_database("dualtrack_bench_ingest"))
    sqlite_db = f"sqlite:///{folder / 'sqlite' / 'dualtrack.db'}"
    starts: list[Callable[[], Target]] = [
        lambda: start_alerta(folder / "alerta", alerta_db, alerta_libpq),
        lambda: start_dualtrack("dualtrack/sqlite", folder / "sqlite", sqlite_db),
        lambda: start_dualtrack("dualtrack/postgresql", folder / "postgresql", dualtrack_db),
        lambda: start_bare(folder / "bare"),
    ]
    targets = []
    for start in starts:
        target = start()
        stack.callback(target.process.stop)
        targets.append(target)
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per target, all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="turns each target takes (1-250)")
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (configs, logs, SQLite)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 250:
        parser.error("--rounds: from 1 to 250")
    seconds = max(1, round(args.duration / args.rounds))

    folder = Path(tempfile.mkdtemp(prefix="dualtrack-bench-ingest-"))
    templates = notification_templates(64, seed=20261126)
    templates_path = folder / "notifications.txt"
    templates_path.write_text("\n".join(templates) + "\n")
    try:
        with contextlib.ExitStack() as stack:
            targets = start_targets(stack, folder)
            for target in targets:
                probe(target, templates[0])
                # A fresh process is slower at first (imports, caches, a new database): not measured.
                target.warmup = drive(target, 1, args.connections, templates_path, turn=1)
                settle(target)
            for number in range(1, args.rounds + 1):
                for target in targets:
                    turn = drive(target, seconds, args.connections, templates_path, turn=number + 1)
                    turn.busy_after = settle(target)
                    target.rounds.append(turn)
                rates = ", ".join(f"{t.name} {t.rounds[-1].rate:.0f} req/s" for t in targets)
                print(f"round {number}/{args.rounds}: {rates}", flush=True)
            exits = {target.name: target.process.stop() for target in targets}
            checks = [durability(t, args.connections * (args.rounds + 1)) for t in targets]
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    alerta, sqlite, postgresql, bare = targets
    print()
    print(
        f"ingest: wrk -t {min(WRK_THREADS, args.connections)} -c {args.connections}, {args.rounds} rounds"
        f" of {seconds} s per target, Alertmanager v4 notifications of 2 new alerts each; gunicorn"
        f" {SERVED.workers} workers (alerta sync; dualtrack and bare gthread x {SERVED.threads})"
    )
    print("\n".join(table(targets, alerta, bare)))
    for target in targets:
        rates = ", ".join(f"{r.rate:.0f}" for r in target.rounds)
        busy = ", ".join(f"{r.busy_after:.1f}" for r in target.rounds)
        print(f"{target.name} by round: {rates} req/s; busy after each turn: {busy} s")
    for target, goal in [(sqlite, 4.0), (postgresql, 2.0)]:
        ratio = target.rate / alerta.rate
        verdict = "met" if ratio >= goal else "NOT met"
        print(f"goal {target.name} >= {goal:.0f}x alerta: {ratio:.2f}x, {verdict}")
    print("durability (after SIGTERM):")
    for _, line in checks:
        print(f"  {line}")
    stopped_badly = {name: code for name, code in exits.items() if code != 0}
    if stopped_badly:
        print(f"exit codes other than 0: {stopped_badly}")
    clean = all(ok for ok, _ in checks) and not stopped_badly and not any(t.failed for t in targets)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
