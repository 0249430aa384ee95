"""Builders for Alertmanager v4 bodies shaped exactly like the captured fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

NO_END = "0001-01-01T00:00:00Z"


def am_alert(
    fingerprint: str,
    labels: dict[str, str],
    *,
    status: str = "firing",
    starts_at: datetime = datetime(2026, 11, 26, 14, 30, tzinfo=UTC),
    ends_at: datetime | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations if annotations is not None else {"summary": f"{labels.get('alertname')}"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
        "endsAt": ends_at.isoformat().replace("+00:00", "Z") if ends_at else NO_END,
        "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def am_body(alerts: list[dict[str, Any]], group_key: str = '{}:{alertname="X"}') -> dict[str, Any]:
    return {
        "receiver": "dualtrack",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.org:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
