"""Thousands of incidents with published notices written straight into a database, for page load."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from adapter.store import Store
from adapter.store.schema import incidents, notices, ref_counters
from adapter.text import storable

# Every character XML 1.0 forbids or printable() removes: C0 and C1 controls, lone surrogates,
# and the two non-characters.
CONTROL_CHARACTERS = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)])
HOSTILE = CONTROL_CHARACTERS + "\ud800\udfff\ufffe\uffff"
# What a store holds of it: what inbound parsing keeps (NUL and lone surrogates as U+FFFD).
STORED_HOSTILE = storable(HOSTILE)
ANNOTATION_BYTES = 300 * 1024


@dataclass(frozen=True)
class Seeded:
    incidents: int
    open: int
    notices: int
    # Refs of incidents whose technical update carries a 300 KB annotation.
    huge: list[str]
    # Refs of incidents whose texts carry every control character.
    hostile: list[str]


def _body(audience: str, phase: str, service: str, rnd: random.Random) -> str:
    if audience == "business":
        lines = [
            f"We are looking into a problem affecting {service}.",
            "Some customers may see errors or slow pages. We will post an update within 30 minutes.",
        ]
    else:
        lines = [
            f"{service}: 5xx ratio above 5% on {rnd.randint(2, 9)} of 12 instances since the last deploy.",
            f"Alert HighErrorRate (severity critical), instance 10.0.{rnd.randint(0, 255)}.7:8080.",
            "Runbook: https://runbooks.example.org/HighErrorRate",
        ]
    if phase == "resolution":
        lines.append("The problem is resolved; we will publish a post-incident review.")
    return "\n".join(lines)


def incident_row(
    ref: str,
    opened_at: datetime,
    *,
    resolved_at: datetime | None = None,
    title: str | None = None,
    services: list[str] | None = None,
    tenants: list[str] | None = None,
    level: int = 3,
) -> dict[str, Any]:
    """An incidents row, open unless resolved."""
    return {
        "ref": ref,
        "title": title if title is not None else f"Checkout errors ({ref})",
        "status": "investigating" if resolved_at is None else "resolved",
        "level": level,
        "level_locked": False,
        "reopen_count": 0,
        "incident_type": "web",
        "services": services if services is not None else ["checkout"],
        "unknown_services": [],
        "tenants": tenants if tenants is not None else [],
        "source": "alertmanager",
        "opened_at": opened_at,
        "resolved_at": resolved_at,
        "updated_at": resolved_at or opened_at,
    }


def notice_row(
    incident_id: int,
    audience: str,
    phase: str,
    at: datetime,
    *,
    subject: str,
    body: str,
    key: str,
    tenant: str | None = None,
    provider: str = "status",
    state: str = "delivered",
) -> dict[str, Any]:
    """A notices row; delivered (published, for a built-in page) at `at` unless `state` says otherwise."""
    return {
        "incident_id": incident_id,
        "provider": provider,
        "audience": audience,
        "phase": phase,
        "tenant": tenant,
        "state": state,
        "attempts": 1 if state == "delivered" else 0,
        "subject": subject,
        "body": body,
        "data": {},
        "created_at": at,
        "due_at": at,
        "delivered_at": at if state == "delivered" else None,
        "provider_ref": f"{provider}/{key}" if state == "delivered" else None,
        "dedupe_key": key,
    }


def seed_incidents(
    store: Store,
    now: datetime,
    services: list[str],
    tenants: list[str],
    *,
    count: int = 3000,
    days: float = 6,
    open_share: float = 0.3,
    huge: int = 30,
    hostile: int = 5,
    provider: str = "status",
    seed: int = 20261126,
) -> Seeded:
    """`count` incidents opened over the last `days` (a share still open, the rest resolved
    since), each with 2-4 published notices per audience; `huge` of them carry a 300 KB
    annotation in a technical update, and the newest `hostile` of them, open, every control
    character in title, subject and body. Into an empty SQLite database: the rows' ids are given."""
    rnd = random.Random(seed)
    incident_rows: list[dict[str, Any]] = []
    notice_rows: list[dict[str, Any]] = []
    huge_refs: list[str] = []
    hostile_refs: list[str] = []
    opened_count = 0
    annotation = ("Stack trace line " + "x" * 60 + "\n") * (ANNOTATION_BYTES // 78)
    for number in range(1, count + 1):
        ref = f"INC-{now.year}-{number:04d}"
        opened = now - timedelta(days=days) + timedelta(seconds=number * days * 86400 // (count + 1))
        # The newest, and open: at the top of the first page, and in the feeds.
        nasty = number > count - hostile
        is_open = nasty or rnd.random() < open_share
        opened_count += is_open
        resolved = None if is_open else min(now, opened + timedelta(minutes=rnd.randint(5, 600)))
        service = rnd.choice(services)
        title = f"{service} 5xx ratio above 5%" + (f" {STORED_HOSTILE}" if nasty else "")
        row = incident_row(
            ref,
            opened,
            resolved_at=resolved,
            title=title,
            services=[service],
            tenants=rnd.sample(tenants, k=rnd.randint(1, len(tenants))),
            level=rnd.randint(1, 5),
        )
        incident_rows.append({"id": number, **row})
        phases = ["acknowledgement"] + ["update"] * rnd.randint(1, 3)
        if resolved is not None:
            phases.append("resolution")
        end = resolved or now
        with_annotation = len(huge_refs) < huge and number % (count // max(huge, 1)) == 1
        if with_annotation:
            huge_refs.append(ref)
        if nasty:
            hostile_refs.append(ref)
        for index, phase in enumerate(phases):
            at = opened + (end - opened) * index / len(phases)
            for audience in ("technical", "business"):
                body = _body(audience, phase, service, rnd)
                if with_annotation and audience == "technical" and phase == "update":
                    body += "\n\n" + annotation
                if nasty:
                    body += f"\n{STORED_HOSTILE}"
                subject = f"[{ref}] {phase} for {service}" + (f" {STORED_HOSTILE}" if nasty else "")
                key = f"seed:{ref}:{index}:{audience}"
                notice_rows.append(
                    notice_row(
                        number, audience, phase, at, subject=subject, body=body, key=key, provider=provider
                    )
                )
    with store.transaction() as conn:
        for start in range(0, len(incident_rows), 500):
            conn.execute(insert(incidents), incident_rows[start : start + 500])
        for start in range(0, len(notice_rows), 500):
            conn.execute(insert(notices), notice_rows[start : start + 500])
        # New incidents continue after the seeded ones.
        conn.execute(insert(ref_counters).values(year=now.year, last=count))
    return Seeded(count, opened_count, len(notice_rows), huge_refs, hostile_refs)
