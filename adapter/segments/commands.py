"""`dualtrack segment suggest` and `catalog import`: read the exports, print, and with --apply write."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from adapter.catalog import Catalog, load_catalog
from adapter.segments.catalogfile import (
    ImportPlan,
    SegmentPlan,
    apply_import,
    apply_segments,
    match_tenants,
    open_catalog_file,
    plan_import,
    plan_segments,
    write_checked,
)
from adapter.segments.exports import (
    ACCOUNT_COLUMNS,
    TENANT_COLUMNS,
    TICKET_COLUMNS,
    ExportError,
    Ticket,
    open_export,
    parse_maps,
    read_accounts,
    read_detail_requests,
    read_tickets,
    require,
    unused_maps,
)
from adapter.segments.indicators import Suggestion, score, suggestions


def run(args: argparse.Namespace) -> int:
    """The command `args` names, its output on stdout and stderr; 0, or 1 with its problems."""
    problems: list[str] = []
    command = suggest if args.command == "segment" else import_tenants
    code = command(args, problems, sys.stdout, sys.stderr)
    for line in problems:
        sys.stderr.write(line + "\n")
    return 1 if problems else code


def suggest(args: argparse.Namespace, problems: list[str], out: TextIO, err: TextIO) -> int:
    maps = parse_maps(args.map, {*ACCOUNT_COLUMNS, *TICKET_COLUMNS}, problems)
    catalog = load_catalog(Path(args.catalog), problems)
    accounts_export = open_export(Path(args.accounts), ACCOUNT_COLUMNS, maps, problems)
    tickets_export = open_export(Path(args.tickets), TICKET_COLUMNS, maps, problems)
    if accounts_export:
        require(accounts_export, ACCOUNT_COLUMNS, ("id", "name"), problems)
    if tickets_export:
        for needed in (("ticket",), ("account",), ("subject", "description")):
            require(tickets_export, TICKET_COLUMNS, needed, problems)
    if accounts_export and tickets_export:
        unused_maps(maps, [accounts_export, tickets_export], problems)
    detail = read_detail_requests(Path(args.detail_requests), problems) if args.detail_requests else {}
    if problems or catalog is None or accounts_export is None or tickets_export is None or detail is None:
        return 1
    try:
        accounts = read_accounts(accounts_export, problems)
        if problems:
            return 1
        matched, matched_by = match_tenants(accounts, catalog)
        account_of = {tenant_id: account for account, tenant_id in matched.items()}
        asked = {account_of[tenant]: count for tenant, count in detail.items() if tenant in account_of}
        scored = score(accounts, _progress(read_tickets(tickets_export), out, err), asked)
    except ExportError as exc:
        problems.append(str(exc))
        return 1
    results = suggestions(scored)
    tenant_of = {account: matched.get(account, account.label) for account in accounts}
    if args.format == "json":
        out.write(
            json.dumps([_as_json(tenant_of[s.account], s) for s in results], indent=2, ensure_ascii=False)
        )
        out.write("\n")
    else:
        _print_table(results, tenant_of, out)
    if scored.unmatched_tickets:
        err.write(
            f"{tickets_export.path}: {scored.unmatched_tickets} ticket(s) name no account of "
            f"{accounts_export.path} (the first: {scored.first_unmatched!r})\n"
        )
    if unknown := sorted(set(detail) - set(account_of)):
        err.write(f"{args.detail_requests}: not in the export, ignored: {', '.join(unknown)}\n")
    plan = plan_segments(results, matched, catalog)
    # The plan goes with the table; beside JSON, to stderr, so that stdout stays one document.
    _print_segment_plan(plan, args.catalog, matched_by, err if args.format == "json" else out)
    return _apply(args, plan, problems, err)


def _progress(tickets: Iterable[Ticket], out: TextIO, err: TextIO) -> Iterable[Ticket]:
    """A progress bar on a terminal; nothing when either output goes to a file or a pipe."""
    if not (out.isatty() and err.isatty()):
        return tickets
    from tqdm import tqdm

    bar: Iterable[Ticket] = tqdm(tickets, desc="scoring", unit=" tickets", file=err, leave=False)
    return bar


def _as_json(tenant: str, suggestion: Suggestion) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "segment": suggestion.segment,
        "confidence": suggestion.confidence,
        "reasons": [{"indicator": r.indicator, "evidence": r.evidence} for r in suggestion.reasons],
    }


def _print_table(results: list[Suggestion], tenant_of: dict[Any, str], out: TextIO) -> None:
    width = max([len("tenant"), *(len(tenant) for tenant in tenant_of.values())])
    out.write(f"{'tenant':<{width}}  {'segment':<10} confidence  reasons\n")
    for suggestion in results:
        lines = [f"{r.indicator}: {r.evidence}" for r in suggestion.reasons] or ["(no evidence)"]
        segment = suggestion.segment or "(none)"
        tenant = tenant_of[suggestion.account]
        out.write(f"{tenant:<{width}}  {segment:<10} {suggestion.confidence:<10.2f}  {lines[0]}\n")
        for line in lines[1:]:
            out.write(f"{'':<{width}}  {'':<10} {'':<10}  {line}\n")


def _print_segment_plan(plan: SegmentPlan, catalog: str, matched_by: str, out: TextIO) -> None:
    out.write(
        f"\n{catalog} (accounts matched to tenants by {matched_by}): {len(plan.new)} new segment(s), "
        f"{len(plan.changed)} changed, {len(plan.unsegmented)} left unsegmented (business version), "
        f"{len(plan.kept)} kept, {len(plan.unchanged)} unchanged, "
        f"{len(plan.not_in_catalog)} not in the catalog\n"
    )
    for change in plan.new:
        out.write(f"  + {change.tenant}: segment {change.after} (confidence {change.confidence:.2f})\n")
    for change in plan.changed:
        confidence = f"confidence {change.confidence:.2f}"
        out.write(f"  ~ {change.tenant}: segment {change.before} -> {change.after} ({confidence})\n")
    for tenant in plan.unsegmented:
        out.write(f"  = {tenant}: no segment, not enough evidence: gets the business version\n")
    for tenant, segment in plan.kept:
        out.write(f"  = {tenant}: stays {segment}, not enough evidence to change it\n")
    for account in plan.not_in_catalog:
        named = f"{account.id} ({account.name})" if account.id and account.name else account.label
        out.write(f"  ? {named}: not in the catalog (`dualtrack catalog import` adds tenants)\n")


def _apply(args: argparse.Namespace, plan: SegmentPlan | ImportPlan, problems: list[str], err: TextIO) -> int:
    """With --apply, the plan written to the catalog (checked first); else how to write it."""
    count = len(plan.segments) if isinstance(plan, SegmentPlan) else len(plan.edits)
    if not count:
        err.write("nothing to change in the catalog\n")
        return 0
    if not args.apply:
        err.write(f"{count} tenant(s) to change; --apply writes them to {args.catalog}\n")
        return 0
    catalog_file = open_catalog_file(Path(args.catalog), problems)
    if catalog_file is None:
        return 1
    if isinstance(plan, SegmentPlan):
        apply_segments(catalog_file, plan.segments)
    else:
        apply_import(catalog_file, plan)
    if not write_checked(catalog_file, problems):
        return 1
    err.write(f"{args.catalog}: {count} tenant(s) changed\n")
    return 0


def import_tenants(args: argparse.Namespace, problems: list[str], out: TextIO, err: TextIO) -> int:
    maps = parse_maps(args.map, set(TENANT_COLUMNS), problems)
    catalog = load_catalog(Path(args.catalog), problems)
    export = open_export(Path(args.tenants), TENANT_COLUMNS, maps, problems)
    if export is not None:
        require(export, TENANT_COLUMNS, ("id",), problems)
        unused_maps(maps, [export], problems)
    if problems or catalog is None or export is None:
        return 1
    try:
        rows = list(export.rows())
    except ExportError as exc:
        problems.append(str(exc))
        return 1
    plan = plan_import(rows, catalog, str(export.path), problems)
    if problems:
        return 1
    _print_import_plan(plan, args.tenants, args.catalog, catalog, out)
    return _apply(args, plan, problems, err)


def _print_import_plan(plan: ImportPlan, source: str, target: str, catalog: Catalog, out: TextIO) -> None:
    out.write(
        f"{source} -> {target}: {len(plan.adds)} to add, {len(plan.updates)} to update, "
        f"{len(plan.unchanged)} unchanged ({len(catalog.tenants)} tenants in the catalog)\n"
    )
    for edit in plan.edits:
        if edit.new:
            shown = ", ".join(f"{key} {_shown(after)}" for key, (_, after) in edit.changes.items())
            out.write(f"  + {edit.tenant} (row {edit.row}): {shown}\n")
        else:
            shown = ", ".join(f"{key} {_shown(b)} -> {_shown(a)}" for key, (b, a) in edit.changes.items())
            out.write(f"  ~ {edit.tenant} (row {edit.row}): {shown}\n")


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return f"[{', '.join(map(str, value))}]"
    return str(value)
