"""One batch's ingest state: its lookups read once, its alert and timeline writes sent together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from adapter.sources.signal import Signal
from adapter.store import incidents as repo

Row = dict[str, Any]


class Pending:
    """Correlation for a whole batch from a few queries instead of a few per alert.

    Every decision is made against memory that mirrors the database plus what this batch has
    done so far, so an alert sees the incident an earlier alert of the same batch opened.
    """

    def __init__(self, conn: Connection, signals: list[Signal], resolved_since: datetime):
        self.conn = conn
        self.signals = signals
        self.resolved_since = resolved_since
        self._alerts: dict[tuple[str, str, datetime], Row] | None = None
        self._incidents: dict[int, Row] = {}
        self._related: dict[int, repo.Related] | None = None
        self._group_keys: dict[tuple[str, str], list[str]] = {}  # (source, group key) -> same outage
        self._new_alerts: list[Row] = []
        self._added: dict[int, list[Row]] = {}  # incident id -> its alerts this batch added
        self._alert_updates: list[tuple[Row, Row]] = []
        self._timeline: list[tuple[Row, Row | None]] = []

    # -- reads --------------------------------------------------------------------------------

    def stored_alert(self, signal: Signal) -> Row | None:
        """The alert for this signal's instance (fingerprint + startsAt), stored or added by the batch."""
        if self._alerts is None:
            self._alerts = {}
            by_source: dict[str, list[tuple[str, datetime]]] = {}
            for s in self.signals:
                if s.identity == "instance":
                    by_source.setdefault(s.source, []).append((s.fingerprint, s.starts_at))
            for source, instances in by_source.items():
                for (fingerprint, starts_at), row in repo.find_alerts(self.conn, source, instances).items():
                    self._alerts[(source, fingerprint, starts_at)] = row
        return self._alerts.get((signal.source, signal.fingerprint, signal.starts_at))

    def incident(self, incident_id: int) -> Row:
        """A stored incident; the first call reads every incident the batch's stored alerts are in."""
        if incident_id not in self._incidents:
            wanted = {incident_id}
            if self._alerts is not None:
                wanted |= {row["incident_id"] for row in self._alerts.values() if "id" in row}
            wanted -= self._incidents.keys()
            self._incidents.update((row["id"], row) for row in repo.incidents_by_id(self.conn, wanted))
        return self._incidents[incident_id]

    def related(self, signal: Signal, group_keys_of: Callable[[Signal], list[str]]) -> repo.Related | None:
        """The incident a new alert joins: see `repo.related_incidents` for the order.

        `group_keys_of` names the group keys that mean the same outage as a signal's (they depend
        on its source and group key only); it is asked once per group of the batch.
        """
        if self._related is None:
            for s in self.signals:
                if (s.source, s.group_key) not in self._group_keys:
                    self._group_keys[(s.source, s.group_key)] = group_keys_of(s)
            self._related = repo.related_incidents(
                self.conn,
                [s.fingerprint for s in self.signals],
                [key for keys in self._group_keys.values() for key in keys],
                self.resolved_since,
            )
        keys = set(self._group_keys[(signal.source, signal.group_key)])
        matches = [
            r
            for r in self._related.values()
            if signal.fingerprint in r.fingerprints or not keys.isdisjoint(r.group_keys)
        ]
        return max(matches, key=lambda r: r.rank(signal.fingerprint)) if matches else None

    # -- writes -------------------------------------------------------------------------------

    def opened(self, incident: Row) -> repo.Related:
        related = repo.Related(incident)
        if self._related is not None:
            self._related[incident["id"]] = related
        return related

    def add_alert(self, signal: Signal, row: Row) -> Row:
        self._new_alerts.append(row)
        self._added.setdefault(row["incident_id"], []).append(row)
        if self._alerts is not None and signal.identity == "instance":
            self._alerts[(signal.source, signal.fingerprint, signal.starts_at)] = row
        return row

    def alerts_of_opened(self, incident_id: int) -> list[Row]:
        """The alerts of an incident this batch opened, as `repo.alerts_of` would read them.

        They are all in memory: nothing else can have joined it inside this transaction.
        """
        rows = [
            {
                **row,
                "starts_at": row["starts_at"].astimezone(UTC),
                "ends_at": row["ends_at"].astimezone(UTC) if row["ends_at"] else None,
                "updated_at": row["updated_at"].astimezone(UTC),
            }
            for row in self._added.get(incident_id, [])
        ]
        return sorted(rows, key=lambda r: (r["starts_at"], r["id"]))

    def resolve_alert(self, alert: Row, ends_at: datetime, now: datetime) -> None:
        values = {"status": "resolved", "ends_at": ends_at, "updated_at": now}
        if "id" in alert:
            self._alert_updates.append((alert, values))
        alert.update(values)  # not stored yet: it is inserted resolved

    def timeline(
        self, incident_id: int, at: datetime, kind: str, message: str, *, alert: Row | None = None
    ) -> None:
        entry = {"incident_id": incident_id, "at": at, "kind": kind, "message": message, "data": {}}
        self._timeline.append((entry, alert))

    def flush(self) -> None:
        """Write what the batch has added so far: alerts first, as timeline entries name them."""
        conn = self.conn
        for row, alert_id in zip(self._new_alerts, repo.insert_alerts(conn, self._new_alerts), strict=True):
            row["id"] = alert_id
        repo.update_alerts(conn, [(alert["id"], values) for alert, values in self._alert_updates])
        entries = []
        for entry, alert in self._timeline:
            if alert is not None:
                entry["data"] = {"alert": alert["id"]}
            entries.append(entry)
        repo.add_timeline_many(conn, entries)
        self._new_alerts, self._alert_updates, self._timeline = [], [], []
