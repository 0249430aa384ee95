"""Incidents, alerts, notices and timeline rows as the JSON the API and status.json return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

Row = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def incident_json(row: Row) -> dict[str, Any]:
    return {
        "ref": row["ref"],
        "title": row["title"],
        "status": row["status"],
        "level": row["level"],
        "level_locked": bool(row["level_locked"]),
        "incident_type": row["incident_type"],
        "services": row["services"],
        "unknown_services": row["unknown_services"],
        "tenants": row["tenants"],
        "source": row["source"],
        "opened_at": iso(row["opened_at"]),
        "resolved_at": iso(row["resolved_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def alert_json(row: Row) -> dict[str, Any]:
    return {
        "fingerprint": row["fingerprint"],
        "source": row["source"],
        "status": row["status"],
        "name": row["name"],
        "summary": row["summary"],
        "level": row["level"],
        "services": row["services"],
        "labels": row["labels"],
        "annotations": row["annotations"],
        "links": row["links"],
        "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row["ends_at"]),
        "silenced": bool(row.get("silenced")),
        "missing_since": iso(row.get("missing_since")),
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


def timeline_json(row: Row) -> dict[str, Any]:
    return {"at": iso(row["at"]), "kind": row["kind"], "message": row["message"]}
