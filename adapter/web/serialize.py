"""Incidents, alerts, notices and timeline rows as the JSON the API and status.json return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapter.store.records import Alert, AuditEntry, AwaitingNotice, Incident, Notice, TimelineEntry

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


def awaiting_json(waiting: AwaitingNotice, now: datetime) -> dict[str, Any]:
    """A notice awaiting approval, with its deadline and whether waiting makes it late."""
    return {
        **notice_json(waiting.notice),
        "incident": waiting.ref,
        "deadline": iso(waiting.deadline),
        "late": waiting.late(now),
        "auto_publish_at": iso(waiting.auto_publish_at),
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


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "kind": entry.kind,
        "message": entry.message,
        "author": entry.data.get("author"),
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "author": entry.author,
        "role": entry.role,
        "action": entry.action,
        "incident": entry.ref,
        "changes": entry.changes,
    }
