"""Segmentation benchmark: `dualtrack segment suggest` on a 100,000-ticket export, in-process and via the CLI.

Method. tests/fixtures/segments/generate.py writes a hosting company's CRM accounts (11,500) and
helpdesk tickets (the first 100,000 of theirs, Zendesk's columns), with each account's true
segment; a catalog holds every account as a tenant (the shared test catalog's services, half the
tenants with a segment), so that every account is matched by id and the diff has work to do. Then
`segment suggest --format json` runs in-process (loading the catalog, reading both exports,
scoring, matching, the JSON and the diff; output to memory), the reading and scoring alone, and
`dualtrack segment suggest` in a process of its own (output to /dev/null), `--repeat` times each:
the best and the median. Then once with `--apply` on a copy of the catalog, which rewrites it
keeping its layout. Figures: seconds, tickets a second, and the suggestions' accuracy against the
labels of accounts with evidence.
Goal (issue 20): 100,000 tickets in under 30 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapter.segments.commands import suggest  # noqa: E402
from adapter.segments.exports import ACCOUNT_COLUMNS, TICKET_COLUMNS, open_export, read_accounts, read_tickets  # noqa: E402
from adapter.segments.indicators import score  # noqa: E402
from tests.fixtures.segments.generate import write_export  # noqa: E402
from tests.support.catalog import catalog_data  # noqa: E402

DUALTRACK = REPO / ".venv" / "bin" / "dualtrack"
GOAL = 30.0


def write_catalog(folder: Path, accounts: Path) -> Path:
    catalog = catalog_data()
    with accounts.open() as file:
        rows = list(csv.DictReader(file))
    catalog["tenants"] = [
        {"id": row["Account ID"], "name": row["Company name"], "services": ["checkout"]}
        | ({"segment": "business" if n % 4 else "technical"} if n % 2 else {})
        for n, row in enumerate(rows)
    ]
    path = folder / "catalog.yaml"
    text = yaml.safe_dump(catalog, allow_unicode=True)
    path.write_text(f"# The benchmark's catalog: every account of the export.\n{text}")
    return path


def arguments(accounts: Path, tickets: Path, catalog: Path, apply: bool = False) -> argparse.Namespace:
    return argparse.Namespace(
        command="segment",
        accounts=str(accounts),
        tickets=str(tickets),
        catalog=str(catalog),
        apply=apply,
        format="json",
        map=[],
        detail_requests=None,
    )


def in_process(args: argparse.Namespace) -> tuple[float, str]:
    out, err, problems = io.StringIO(), io.StringIO(), []
    started = time.perf_counter()
    with redirect_stderr(err):
        code = suggest(args, problems, out, err)
    elapsed = time.perf_counter() - started
    assert code == 0 and not problems, (code, problems, err.getvalue()[-2000:])
    return elapsed, out.getvalue()


def scoring_only(args: argparse.Namespace) -> float:
    """Reading both exports and scoring, without the catalog, the output or the diff."""
    started = time.perf_counter()
    accounts = open_export(Path(args.accounts), ACCOUNT_COLUMNS, [], [])
    tickets = open_export(Path(args.tickets), TICKET_COLUMNS, [], [])
    assert accounts and tickets
    score(read_accounts(accounts, []), read_tickets(tickets), {})
    return time.perf_counter() - started


def via_cli(args: argparse.Namespace) -> float:
    argv = [str(DUALTRACK), "segment", "suggest", "--accounts", args.accounts, "--tickets", args.tickets]
    argv += ["--catalog", args.catalog, "--format", "json"] + (["--apply"] if args.apply else [])
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def accuracy(output: str, labels: Path) -> tuple[int, int]:
    with labels.open() as file:
        truth = {row["Account ID"]: row["segment"] for row in csv.DictReader(file)}
    suggested = {result["tenant"]: result["segment"] for result in json.loads(output)}
    judged = [(suggested[account], label) for account, label in truth.items() if label]
    return sum(segment == label for segment, label in judged), len(judged)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=11_500)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dualtrack-bench-segments-") as name:
        folder = Path(name)
        started = time.perf_counter()
        accounts, tickets, labels = write_export(folder, accounts=options.accounts, tickets=options.tickets)
        catalog = write_catalog(folder, accounts)
        with tickets.open() as file:
            count = sum(1 for _ in csv.reader(file)) - 1
        megabytes = tickets.stat().st_size / 1e6
        written = time.perf_counter() - started
        print(
            f"export: {options.accounts:,} accounts, {count:,} tickets, {megabytes:.1f} MB ({written:.1f} s)"
        )

        args = arguments(accounts, tickets, catalog)
        runs = [in_process(args) for _ in range(options.repeat)]
        times = [elapsed for elapsed, _ in runs]
        right, judged = accuracy(runs[0][1], labels)
        scoring = min(scoring_only(args) for _ in range(options.repeat))
        cli = [via_cli(args) for _ in range(options.repeat)]
        copy = folder / "applied.yaml"
        shutil.copyfile(catalog, copy)
        applied = in_process(arguments(accounts, tickets, copy, apply=True))[0]

    best, median = min(times), statistics.median(times)
    print(f"in-process: best {best:.2f} s, median {median:.2f} s ({count / best:,.0f} tickets/s)")
    print(f"of which reading the exports and scoring: best {scoring:.2f} s")
    print(f"via the CLI: best {min(cli):.2f} s, median {statistics.median(cli):.2f} s")
    print(f"with --apply (catalog of {options.accounts:,} tenants rewritten): {applied:.2f} s")
    print(f"accuracy against the labels: {right / judged:.1%} ({right} of {judged} accounts with evidence)")
    met = max(median, statistics.median(cli)) < GOAL
    print(f"goal: {count:,} tickets in under {GOAL:.0f} s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
