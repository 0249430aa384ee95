"""Statuspage subscribers from the catalog: each tenant's e-mail on its segment's page, per component."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from adapter.config import ProviderSettings, Settings
from adapter.providers.base import DeliveryError, Provider
from adapter.providers.statuspage import Statuspage

PER_PAGE = 100
MAX_PAGES = 1000
BAR_WIDTH = 30

Progress = Callable[[int, int], None]

# Which subscribers are dualtrack's: the Subscriber object has no field dualtrack could tag (no
# metadata as incidents have), so dualtrack manages exactly the e-mail subscribers whose address is
# a tenant's `contacts.email` in the catalog, and leaves every other subscriber alone. The cost: a
# tenant removed from the catalog (or whose address changed) keeps its subscription until removed
# by hand, since nothing then says the address was ever dualtrack's.


@dataclass(frozen=True)
class Add:
    provider: str
    email: str
    component_ids: tuple[str, ...]
    tenants: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    provider: str
    subscriber_id: str
    email: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class Removal:
    provider: str
    subscriber_id: str
    email: str


@dataclass
class Plan:
    adds: list[Add] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    # Tenants that cannot be subscribed, and why.
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.adds) + len(self.changes) + len(self.removals)


def managed_emails(settings: Settings) -> set[str]:
    return {t.contacts.email.strip().lower() for t in settings.catalog.tenants if t.contacts.email}


def desired(settings: Settings, provider: ProviderSettings) -> tuple[dict[str, Add], list[str]]:
    """E-mail (lower case) → the subscription it should have on this provider's page."""
    wanted: dict[str, tuple[str, set[str], list[str]]] = {}
    notes = []
    for tenant in settings.catalog.tenants:
        if tenant.segment != provider.audience or not tenant.contacts.email:
            continue
        components = set()
        for service_id in tenant.services:
            service = settings.catalog.service(service_id)
            if service is not None and provider.name in service.components:
                components.add(service.components[provider.name])
        if not components:
            # Without component_ids a subscriber hears of every incident on the page.
            notes.append(f"tenant {tenant.id}: none of its services has a component on {provider.name}")
            continue
        email = tenant.contacts.email.strip()
        entry = wanted.setdefault(email.lower(), (email, set(), []))
        entry[1].update(components)
        entry[2].append(tenant.id)
    adds = {
        key: Add(provider.name, email, tuple(sorted(components)), tuple(tenants))
        for key, (email, components, tenants) in wanted.items()
    }
    return adds, notes


def subscribed_components(subscriber: dict[str, Any]) -> tuple[str, ...]:
    """A subscriber's component ids (the spec types the field as a string; the API sends a list)."""
    value = subscriber.get("components")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        return ()
    ids = (c.get("id") if isinstance(c, dict) else c for c in value)
    return tuple(sorted({str(c) for c in ids if c}))


def existing(client: Statuspage) -> list[dict[str, Any]]:
    """Every e-mail subscriber of the page, in any state (0-based `page`, `limit` ≤ 100)."""
    rows: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        params = {"type": "email", "state": "all", "page": page, "limit": PER_PAGE}
        batch = client.call("GET", "subscribers", params=params) or []
        rows.extend(r for r in batch if isinstance(r, dict))
        if len(batch) < PER_PAGE:
            break
    return rows


def plan(settings: Settings, provider_settings: ProviderSettings, client: Statuspage) -> Plan:
    """What it takes to make this page's subscribers match the catalog."""
    result = Plan()
    if provider_settings.audience not in ("technical", "business"):
        result.notes.append(f"{provider_settings.name}: audience {provider_settings.audience}: skipped")
        return result
    wanted, result.notes = desired(settings, provider_settings)
    ours = managed_emails(settings)
    seen: set[str] = set()
    for subscriber in existing(client):
        email = str(subscriber.get("email") or "").strip().lower()
        if subscriber.get("mode", "email") != "email" or email not in ours or email in seen:
            continue  # not dualtrack's (or a second subscriber for an address already handled)
        seen.add(email)
        sid = str(subscriber["id"])
        if email not in wanted:
            result.removals.append(Removal(provider_settings.name, sid, str(subscriber.get("email"))))
            continue
        now, want = subscribed_components(subscriber), wanted[email].component_ids
        if now != want:
            result.changes.append(Change(provider_settings.name, sid, wanted[email].email, now, want))
    result.adds = [add for key, add in sorted(wanted.items()) if key not in seen]
    return result


def apply(plan: Plan, client: Statuspage, progress: Progress | None = None) -> list[str]:
    """Carry the plan out, step by step; the errors, one line each (the other steps still run)."""
    steps: list[tuple[str, str, tuple[str, ...], dict[str, Any] | None]] = []
    for add in plan.adds:
        subscriber = {
            "email": add.email,
            "component_ids": list(add.component_ids),
            "skip_confirmation_notification": True,
        }
        steps.append((f"add {add.email}", "POST", ("subscribers",), {"subscriber": subscriber}))
    for change in plan.changes:
        body = {"component_ids": list(change.after)}
        steps.append((f"change {change.email}", "PATCH", ("subscribers", change.subscriber_id), body))
    for removal in plan.removals:
        steps.append((f"remove {removal.email}", "DELETE", ("subscribers", removal.subscriber_id), None))
    errors = []
    for done, (what, method, path, payload) in enumerate(steps, start=1):
        try:
            client.call(method, *path, body=payload)
        except DeliveryError as exc:
            errors.append(f"{what}: {exc}")
        if progress is not None:
            progress(done, len(steps))
    return errors


class DatabasePacer:
    """Takes the provider's rate-limit tokens from the same database bucket as the dispatcher."""

    def __init__(self, store: Any):
        self.store = store

    def __call__(self, provider: Provider) -> None:
        from adapter.store import buckets

        if provider.rate_limit is None:
            return
        rate, burst = provider.rate_limit
        buckets.acquire(self.store, provider.rate_key(), rate, burst, max_wait=None)


def progress_bar(out: TextIO) -> Progress:
    def show(done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        out.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def print_plan(name: str, page_id: str, audience: str, plan: Plan, out: TextIO) -> None:
    out.write(
        f"{name} ({audience} page {page_id}): {len(plan.adds)} to add, {len(plan.changes)} to change, "
        f"{len(plan.removals)} to remove\n"
    )
    for add in plan.adds:
        out.write(
            f"  + {add.email}  components {','.join(add.component_ids)}  (tenants {','.join(add.tenants)})\n"
        )
    for change in plan.changes:
        before = ",".join(change.before) or "(all)"
        out.write(f"  ~ {change.email}  components {before} -> {','.join(change.after)}\n")
    for removal in plan.removals:
        out.write(f"  - {removal.email}  (subscriber {removal.subscriber_id})\n")
    for note in plan.notes:
        out.write(f"  ! {note}\n")


def sync(settings: Settings, dry_run: bool, out: TextIO, progress: bool) -> int:
    """Print each Statuspage provider's plan and, unless dry_run, apply it. 0 when all went well."""
    from adapter.store import Store

    targets = [p for p in settings.providers if p.type == Statuspage.type]
    if not targets:
        out.write("no statuspage providers configured\n")
        return 0
    store = Store(settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous)
    failed = False
    try:
        store.migrate()
        pacer = DatabasePacer(store)
        for provider_settings in targets:
            client = Statuspage(provider_settings)
            client.before_request = pacer
            try:
                try:
                    result = plan(settings, provider_settings, client)
                except DeliveryError as exc:
                    out.write(f"{provider_settings.name}: cannot read subscribers: {exc}\n")
                    failed = True
                    continue
                print_plan(
                    provider_settings.name, client.options.page_id, provider_settings.audience, result, out
                )
                if dry_run or not result.steps:
                    continue
                errors = apply(result, client, progress_bar(out) if progress else None)
                for line in errors:
                    out.write(f"  error: {line}\n")
                failed = failed or bool(errors)
                out.write(f"{provider_settings.name}: {result.steps - len(errors)}/{result.steps} done\n")
            finally:
                client.close()
        if dry_run:
            out.write("dry run: nothing changed\n")
    finally:
        store.dispose()
    return 1 if failed else 0
