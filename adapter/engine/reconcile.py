"""Reconciliation with Alertmanager: resolve what it no longer holds, mark what it silences."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import requests

from adapter.config import AlertmanagerSource
from adapter.engine.core import Engine
from adapter.engine.correlate import Change
from adapter.engine.effects import writing
from adapter.store import incidents as repo
from adapter.store.records import Alert

log = logging.getLogger(__name__)
SOURCES = ("alertmanager",)


class Unreachable(RuntimeError):
    """An Alertmanager did not answer: decide nothing on partial knowledge."""


@dataclass
class Held:
    """What the Alertmanagers hold: fingerprint → silenced (True when every holder silences it)."""

    alerts: dict[str, bool] = field(default_factory=dict)


@dataclass
class Plan:
    missing: list[Alert] = field(default_factory=list)  # newly missing: start the grace
    expired: list[Alert] = field(default_factory=list)  # missing past the grace: resolve
    back: list[Alert] = field(default_factory=list)  # held again: forget the missing time
    silenced: list[tuple[Alert, bool]] = field(default_factory=list)  # silence changed

    def lines(self, refs: dict[int, str]) -> list[str]:
        out = []
        for alert in self.expired:
            out.append(
                f"{refs[alert.incident_id]}: resolve {alert.name} ({alert.fingerprint}): "
                f"missing from Alertmanager since {alert.missing_since:%Y-%m-%d %H:%M} UTC"
            )
        for alert in self.missing:
            out.append(
                f"{refs[alert.incident_id]}: {alert.name} ({alert.fingerprint}) is "
                "missing from Alertmanager; resolving it after the grace period"
            )
        for alert in self.back:
            out.append(f"{refs[alert.incident_id]}: {alert.name} is back in Alertmanager")
        for alert, silenced in self.silenced:
            state = "silenced" if silenced else "no longer silenced"
            out.append(f"{refs[alert.incident_id]}: {alert.name} is {state}")
        return out


def fetch(source: AlertmanagerSource, session: requests.Session) -> Held:
    """Every alert one Alertmanager holds, silenced and inhibited ones included."""
    headers = {"Accept": "application/json"}
    if source.bearer_token:
        headers["Authorization"] = f"Bearer {source.bearer_token}"
    try:
        response = session.get(
            source.url.rstrip("/") + "/api/v2/alerts",
            params={"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"},
            headers=headers,
            timeout=source.timeout.total_seconds(),
        )
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise Unreachable(f"{source.url}: {type(exc).__name__}") from None
    held = Held()
    for alert in body if isinstance(body, list) else []:
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str):
            continue
        status = alert.get("status") or {}
        held.alerts[fingerprint] = bool(status.get("silencedBy")) and status.get("state") == "suppressed"
    return held


def merge(helds: list[Held]) -> Held:
    merged = Held()
    for held in helds:
        for fingerprint, silenced in held.alerts.items():
            merged.alerts[fingerprint] = merged.alerts.get(fingerprint, True) and silenced
    return merged


class Reconciler:
    def __init__(self, engine: Engine, session: requests.Session | None = None):
        self.engine = engine
        self.sources = engine.settings.reconcile.alertmanager
        self.session = session or requests.Session()
        self.last_run: datetime | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def due(self, now: datetime) -> bool:
        interval = min(s.interval for s in self.sources)
        return self.enabled and (self.last_run is None or now - self.last_run >= interval)

    def plan(self, now: datetime) -> tuple[Plan, dict[int, str]]:
        held = merge([fetch(source, self.session) for source in self.sources])
        grace = min(s.grace for s in self.sources)
        plan = Plan()
        with self.engine.store.read() as conn:
            alerts = repo.firing_alerts_of_open_incidents(conn, SOURCES)
            refs = {i.id: i.ref for i in repo.incidents_by_id(conn, {a.incident_id for a in alerts})}
        for alert in alerts:
            if alert.fingerprint in held.alerts:
                if alert.missing_since is not None:
                    plan.back.append(alert)
                silenced = held.alerts[alert.fingerprint]
                if silenced != bool(alert.silenced):
                    plan.silenced.append((alert, silenced))
            elif alert.missing_since is None:
                plan.missing.append(alert)
            elif now - alert.missing_since >= grace:
                plan.expired.append(alert)
        return plan, refs

    def run(self, now: datetime, *, dry_run: bool = False) -> list[str]:
        """One pass: returns what changed (or would, with dry_run)."""
        self.last_run = now
        plan, refs = self.plan(now)
        lines = plan.lines(refs)
        if dry_run or not lines:
            return lines
        engine = self.engine
        with writing(engine.store) as (conn, effects):
            for alert in plan.missing:
                repo.update_alert(conn, alert.id, {"missing_since": now})
            for alert in plan.back:
                repo.update_alert(conn, alert.id, {"missing_since": None})
            for alert, silenced in plan.silenced:
                repo.update_alert(conn, alert.id, {"silenced": silenced})
                state = "silenced in Alertmanager" if silenced else "no longer silenced"
                repo.add_timeline(conn, alert.incident_id, now, "silenced", f"{alert.name} {state}")
            touched: dict[int, Change] = {}
            for alert in plan.expired:
                repo.update_alert(conn, alert.id, {"status": "resolved", "ends_at": now, "updated_at": now})
                repo.add_timeline(
                    conn,
                    alert.incident_id,
                    now,
                    "alert_resolved",
                    f"{alert.name} resolved by reconciliation: Alertmanager no longer holds it "
                    "(resolved while silenced, or a resolve that never arrived)",
                )
                if alert.incident_id not in touched:
                    incident = repo.get_incident(conn, alert.incident_id)
                    assert incident is not None
                    touched[alert.incident_id] = Change(incident)
                touched[alert.incident_id].resolved += 1
            written = sum(engine.settle(conn, effects, change, now) for change in touched.values())
        if written and engine.on_commit:
            engine.on_commit()
        for line in lines:
            log.info("reconcile %s", line)
        return lines
