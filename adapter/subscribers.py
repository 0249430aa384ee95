"""Statuspage subscribers from the catalog: each tenant's e-mail on its segment's page, per component."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from adapter.clock import Clock, SystemClock
from adapter.config import ProviderSettings, Settings
from adapter.providers.base import DeliveryError, Provider, RequestHooks
from adapter.providers.statuspage import Statuspage
from adapter.providers.statuspage.subscribers import (
    email_subscribers,
    set_components,
    subscribe,
    subscribed_components,
    unsubscribe,
)

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


def plan(settings: Settings, provider_settings: ProviderSettings, client: Statuspage) -> Plan:
    """What it takes to make this page's subscribers match the catalog."""
    result = Plan()
    if provider_settings.audience not in ("technical", "business"):
        result.notes.append(f"{provider_settings.name}: audience {provider_settings.audience}: skipped")
        return result
    wanted, result.notes = desired(settings, provider_settings)
    ours = managed_emails(settings)
    seen: set[str] = set()
    for subscriber in email_subscribers(client.api):
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
    api = client.api
    steps: list[tuple[str, Callable[[], None]]] = []
    for add in plan.adds:
        steps.append((f"add {add.email}", functools.partial(subscribe, api, add.email, add.component_ids)))
    for change in plan.changes:
        what = f"change {change.email}"
        steps.append((what, functools.partial(set_components, api, change.subscriber_id, change.after)))
    for removal in plan.removals:
        steps.append((f"remove {removal.email}", functools.partial(unsubscribe, api, removal.subscriber_id)))
    errors = []
    for done, (what, step) in enumerate(steps, start=1):
        try:
            step()
        except DeliveryError as exc:
            errors.append(f"{what}: {exc}")
        if progress is not None:
            progress(done, len(steps))
    return errors


class DatabasePacer:
    """Takes the provider's rate-limit tokens from the same database bucket as the dispatcher."""

    def __init__(self, store: Any, clock: Clock):
        self.store = store
        self.clock = clock

    def __call__(self, provider: Provider) -> None:
        from adapter.store import buckets

        if provider.rate_limit is None:
            return
        rate, burst = provider.rate_limit
        buckets.acquire(self.store, provider.rate_key(), rate, burst, max_wait=None, clock=self.clock)


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


def sync(settings: Settings, dry_run: bool, out: TextIO, progress: bool, clock: Clock | None = None) -> int:
    """Print each Statuspage provider's plan and, unless dry_run, apply it. 0 when all went well.

    Requests are paced on `clock` (the system's by default) by the dispatcher's rate limit.
    """
    from adapter.store import Store

    targets = [p for p in settings.providers if p.type == Statuspage.type]
    if not targets:
        out.write("no statuspage providers configured\n")
        return 0
    store = Store(settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous)
    failed = False
    try:
        store.migrate()
        hooks = RequestHooks(before=DatabasePacer(store, clock or SystemClock()))
        for provider_settings in targets:
            client = Statuspage(provider_settings, hooks)
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
