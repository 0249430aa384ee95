"""Incidents, alerts, notices and timeline rows as the JSON the API and status.json return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapter.store.records import Notice

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


def notice_json(notice: Notice) -> dict[str, Any]:
    extra = {"incident": notice.incident_ref} if notice.incident_ref is not None else {}
    return {
        **extra,
        "id": notice.id,
        "provider": notice.provider,
        "audience": notice.audience,
        "phase": notice.phase,
        "tenant": notice.tenant,
        "state": notice.state,
        "attempts": notice.attempts,
        "last_error": notice.last_error,
        "subject": notice.subject,
        "body": notice.body,
        "created_at": iso(notice.created_at),
        "due_at": iso(notice.due_at),
        "delivered_at": iso(notice.delivered_at),
    }


def preview_notice_json(notice: Notice) -> dict[str, Any]:
    """A notice as POST /api/v1/preview shows it: what it would say, to whom, and in what state."""
    return {
        "provider": notice.provider,
        "audience": notice.audience,
        "phase": notice.phase,
        "tenant": notice.tenant,
        "state": notice.state,
        "subject": notice.subject,
        "body": notice.body,
    }


def timeline_json(row: Row) -> dict[str, Any]:
    return {"at": iso(row["at"]), "kind": row["kind"], "message": row["message"]}
