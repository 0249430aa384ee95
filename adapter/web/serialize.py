"""Incidents, alerts, notices and timeline rows as the JSON the API and status.json return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapter.store.records import Alert, Incident, TimelineEntry

Row = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "ref": incident.ref,
        "title": incident.title,
        "status": incident.status,
        "level": incident.level,
        "level_locked": bool(incident.level_locked),
        "incident_type": incident.incident_type,
        "services": incident.services,
        "unknown_services": incident.unknown_services,
        "tenants": incident.tenants,
        "source": incident.source,
        "opened_at": iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at),
        "updated_at": iso(incident.updated_at),
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "source": alert.source,
        "status": alert.status,
        "name": alert.name,
        "summary": alert.summary,
        "level": alert.level,
        "services": alert.services,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "links": alert.links,
        "starts_at": iso(alert.starts_at),
        "ends_at": iso(alert.ends_at),
        "silenced": bool(alert.silenced),
        "missing_since": iso(alert.missing_since),
    }


def notice_json(row: Row) -> dict[str, Any]:
    extra = {"incident": row["incident_ref"]} if "incident_ref" in row else {}
    return {
        **extra,
        "id": row["id"],
        "provider": row["provider"],
        "audience": row["audience"],
        "phase": row["phase"],
        "tenant": row["tenant"],
        "state": row["state"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "subject": row["subject"],
        "body": row["body"],
        "created_at": iso(row["created_at"]),
        "due_at": iso(row["due_at"]),
        "delivered_at": iso(row["delivered_at"]),
    }


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    return {"at": iso(entry.at), "kind": entry.kind, "message": entry.message}
