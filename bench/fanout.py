"""Fan-out benchmark: one critical alert on a service that every tenant uses, at 2,000 and 10,000 tenants.

Method. For each size a catalog of that many tenants on one service is written, each with an
e-mail address and a webhook (half technical, half business), and checked with `dualtrack
check-config`: its time is the catalog's load time. `dualtrack serve` (SQLite, 2 workers) is
started with two per-tenant providers, a webhook (to a local HTTP sink) and SMTP (to a local SMTP
server). Webhooks on other services (no tenant, so no fan-out) are sent on a schedule of 20/s, each
timed from when it was due, from 5 s before until every notice is delivered or 120 s have passed;
meanwhile one Alertmanager notification opens the critical incident. Figures: the catalog's load
time; that notification's answer time; the other webhooks' p50/p99 while the fan-out runs (from
its 202 until the last notice is delivered); the time until every webhook and every e-mail has
arrived; and whether each arrived exactly once (distinct Idempotency-Keys and Message-IDs, one
per tenant).
`--before REV` measures another revision's code first (its check-config, its server).
Goals (issue 16): catalog under 2 s; the 202 under 100 ms; other webhooks' p99 under 100 ms;
10,000 e-mails in under 20 s and 10,000 webhooks in under 10 s, each exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import firing_alert, group_key, group_notification  # noqa: E402
from pages import CLI, code_of, percentile, start_on  # noqa: E402

from tests.support.server import (  # noqa: E402
    AM_TOKEN,
    PROVIDER_BUILTIN,
    VENV_BIN,
    Dualtrack,
    Sink,
    SlowSink,
    free_port,
    write_config,
)
from tests.support.smtp_server import SmtpServer  # noqa: E402

OTHER_RATE = 20.0  # other webhooks a second
LIMIT = 120.0  # seconds to wait for every delivery


def catalog(tenants: int, sink: str) -> dict[str, Any]:
    services = [
        {
            "id": "hosting",
            "name": "Shared hosting (web-*)",
            "business_name": "Websites",
            "incident_type": "web",
        },
        {"id": "billing", "name": "Billing API", "business_name": "Billing", "incident_type": "web"},
    ]
    return {
        "services": services,
        "tenants": [
            {
                "id": f"t{n:05d}",
                "name": f"Customer {n:05d}",
                "segment": "technical" if n % 2 else "business",
                "services": ["hosting"],
                "contacts": {"email": f"ops@t{n:05d}.example", "webhook": f"{sink}/t{n:05d}"},
            }
            for n in range(tenants)
        ],
    }


def notification(service: str, key: str) -> bytes:
    labels = {"alertname": "HostDown", "cluster": key, "service": service}
    alerts = [
        firing_alert(
            labels,
            instance=f"{key}-{i}:9100",
            severity="critical",
            summary="host down",
            starts_at=datetime.now(UTC),
        )
        for i in range(2)
    ]
    return group_notification(alerts, labels, group_key(labels), None)


def post(url: str, body: bytes) -> float:
    headers = {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}
    began = time.perf_counter()
    answer = requests.post(f"{url}/webhooks/alertmanager", data=body, headers=headers, timeout=30)
    answer.raise_for_status()
    return time.perf_counter() - began


def send_others(url: str, stop: Any, results: Any) -> None:
    """Webhooks on a service no tenant uses, on a schedule of OTHER_RATE a second, each timed from
    when it was due: one held up behind the fan-out delays those after it, and they count that
    wait too. Puts [(due, seconds)] in `results` once `stop` is set."""
    timed: list[tuple[float, float]] = []
    began, n = time.perf_counter(), 0
    while not stop.is_set():
        due = began + n / OTHER_RATE
        stop.wait(max(0.0, due - time.perf_counter()))
        post(url, notification("billing", f"other-{n}"))
        timed.append((due, time.perf_counter() - due))
        n += 1
    results.put(timed)


def run(tenants: int, revision: str | None, concurrency: dict[str, int], latency: float) -> dict[str, Any]:
    """The figures of one size, served by `revision`'s code (None: this checkout), to receivers
    that answer `latency` seconds after a webhook or an e-mail has arrived."""
    figures: dict[str, Any] = {"tenants": tenants}
    with (
        tempfile.TemporaryDirectory(prefix="dualtrack-fanout-") as tmp,
        SmtpServer(delay=latency) as smtp,
        code_of(revision) as env,
    ):
        folder = Path(tmp)
        sink = (SlowSink(delay=latency) if latency else Sink()).start()
        port = free_port()
        providers = [
            PROVIDER_BUILTIN,
            {
                "name": "tenant-hook",
                "type": "webhook",
                "audience": "all",
                "per_tenant": True,
                "secret": "k",
                **concurrency,
            },
            {
                "name": "tenant-mail",
                "type": "smtp",
                "audience": "all",
                "per_tenant": True,
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "sender": "Status <status@example.com>",
                **concurrency,
            },
        ]
        config = write_config(folder, port, providers=providers, catalog=catalog(tenants, sink.url))
        began = time.perf_counter()
        command = CLI if env else [str(VENV_BIN / "dualtrack")]
        # From elsewhere than this checkout: `python -c` looks in its working directory first.
        subprocess.run(
            [*command, "check-config", "--config", str(config)],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
            cwd=tmp,
        )
        figures["check_config"] = time.perf_counter() - began
        server = start_on(Dualtrack(config, port, workers=2), env)
        # The other webhooks' sender runs in a process of its own: the sink and the SMTP server
        # of this one would otherwise hold up its requests, and its times with them.
        context = multiprocessing.get_context("fork")
        stop, results = context.Event(), context.Queue()
        sender = context.Process(target=send_others, args=(server.url, stop, results), daemon=True)
        try:
            sender.start()
            time.sleep(5)
            start, started = time.perf_counter(), datetime.now(UTC)
            figures["answer"] = post(server.url, notification("hosting", "fanout"))
            mailed_at = hooked_at = None
            while time.perf_counter() - start < LIMIT and not (mailed_at and hooked_at):
                now = time.perf_counter() - start
                if hooked_at is None and len(sink.received()) >= tenants:
                    hooked_at = now
                if mailed_at is None and len(smtp.received) >= tenants:
                    mailed_at = now
                time.sleep(0.1)
            end = start + max(t for t in (hooked_at, mailed_at, 0.0) if t is not None)
        finally:
            stop.set()
            other: list[tuple[float, float]] = results.get(timeout=60)
            sender.join(30)
            server.stop()
            sink.close()
        figures["written_at"] = written_at(folder / "dualtrack.db", started)
        during = [seconds for at, seconds in other if start <= at <= end]
        figures.update(
            webhooks_at=hooked_at,
            mails_at=mailed_at,
            others=len(during),
            others_p50=statistics.median(during) if during else float("nan"),
            others_p99=percentile(during, 99),
        )
        keys = Counter(r.header("Idempotency-Key") for r in sink.received())
        ids = Counter(r.message["Message-ID"] for r in smtp.received)
        figures["webhooks"] = (len(sink.received()), len(keys), max(keys.values(), default=0))
        figures["mails"] = (len(smtp.received), len(ids), max(ids.values(), default=0))
    return figures


def written_at(database: Path, started: datetime) -> float:
    """Seconds from the alert until the last per-tenant notice was written."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as conn:
        (last,) = conn.execute("SELECT max(created_at) FROM notices WHERE tenant IS NOT NULL").fetchone()
    return (datetime.fromisoformat(last).replace(tzinfo=UTC) - started).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", default="2000,10000", help="catalog sizes, comma-separated")
    parser.add_argument("--before", metavar="REV", help="measure this revision's code too, first")
    parser.add_argument("--concurrency", type=int, help="the per-tenant providers' `concurrency`")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the receivers take to answer (default 0)"
    )
    args = parser.parse_args()
    runs = [(args.before, tenants) for tenants in args.tenants.split(",")] if args.before else []
    runs += [(None, tenants) for tenants in args.tenants.split(",")]
    for revision, tenants in ((r, int(t)) for r, t in runs):
        f = run(
            tenants, revision, {"concurrency": args.concurrency} if args.concurrency else {}, args.latency
        )
        latency = f", receivers answering after {args.latency * 1000:.0f} ms" if args.latency else ""
        print(f"\n{tenants:,} tenants, {revision or 'this checkout'}{latency}")
        print(f"  check-config: {f['check_config']:.2f} s (goal: under 2 s)")
        print(f"  the alert's answer: {f['answer'] * 1000:.0f} ms (goal: under 100 ms)")
        print(f"  per-tenant notices all written after {f['written_at']:.1f} s")
        print(
            f"  other webhooks meanwhile ({f['others']}): p50 {f['others_p50'] * 1000:.0f} ms, "
            f"p99 {f['others_p99'] * 1000:.0f} ms (goal: p99 under 100 ms)"
        )
        for name, at, (received, distinct, most), goal in (
            ("webhooks", f["webhooks_at"], f["webhooks"], 10),
            ("e-mails", f["mails_at"], f["mails"], 20),
        ):
            when = f"{at:.1f} s" if at is not None else f"not all within {LIMIT:.0f} s"
            print(
                f"  {name}: {received:,} received ({distinct:,} distinct, at most {most} of one) "
                f"in {when} (goal at 10,000: under {goal} s, each once)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
