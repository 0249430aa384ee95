"""The ingest path's list lookups: exact answers, and one statement text whatever the list's length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from adapter.store import Store
from adapter.store import incidents as repo

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def _incident(conn: Any, ref: str, status: str = "investigating", resolved_at: datetime | None = None) -> int:
    return repo.insert_incident(
        conn,
        {
            "ref": ref,
            "title": ref,
            "status": status,
            "level": 2,
            "level_locked": False,
            "reopen_count": 0,
            "incident_type": "general",
            "services": [],
            "unknown_services": [],
            "tenants": [],
            "source": "alertmanager",
            "opened_at": T0,
            "resolved_at": resolved_at,
            "updated_at": T0,
        },
    )


def _alert(incident_id: int, fingerprint: str, starts_at: datetime, group_key: str = "g") -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "source": "alertmanager",
        "fingerprint": fingerprint,
        "starts_at": starts_at,
        "ends_at": None,
        "status": "firing",
        "name": "X",
        "summary": "x",
        "group_key": group_key,
        "level": 2,
        "services": [],
        "labels": {},
        "annotations": {},
        "links": {},
        "updated_at": T0,
        "silenced": False,
        "missing_since": None,
    }


def _statements(store: Store) -> list[str]:
    seen: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    return seen


def test_find_alerts_answers_exactly_the_instances_asked_for(store: Store):
    with store.transaction() as conn:
        incident = _incident(conn, "INC-2026-0001")
        # One alert firing again and again: instances a minute apart, and another source's copy.
        for row in [_alert(incident, "f1", T0 + timedelta(minutes=m)) for m in range(6)]:
            repo.insert_alert(conn, row)
        repo.insert_alert(conn, _alert(incident, "f2", T0 + timedelta(minutes=2)))
        asked = [
            ("alertmanager", "f1", T0 + timedelta(minutes=4)),
            ("alertmanager", "f2", T0),  # f2 started at 2 minutes, f1 at 0
            ("pagerduty", "f1", T0),  # another source
        ]
        found = repo.find_alerts(conn, asked)
        assert [(a.source, a.fingerprint, a.starts_at) for a in found] == asked[:1]
        assert repo.find_alerts(conn, []) == []


def test_related_incidents_are_joinable_ones_sharing_a_fingerprint_or_a_group_key(store: Store):
    since = T0 - timedelta(minutes=30)
    with store.transaction() as conn:
        open_one = _incident(conn, "INC-2026-0001")
        recent = _incident(conn, "INC-2026-0002", "resolved", T0 - timedelta(minutes=5))
        old = _incident(conn, "INC-2026-0003", "resolved", T0 - timedelta(hours=2))
        monitoring = _incident(conn, "INC-2026-0004", "monitoring")
        for row in [
            _alert(open_one, "a", T0, "g1"),
            _alert(recent, "b", T0, "g2"),
            _alert(old, "c", T0, "g3"),
            _alert(monitoring, "d", T0, "g4"),
        ]:
            repo.insert_alert(conn, row)
        related = repo.related_incidents(conn, ["a", "c", "zz"], ["g2", "g4"], since)
        assert sorted(related) == [open_one, recent, monitoring]
        assert related[open_one].fingerprints == {"a"} and related[recent].group_keys == {"g2"}
        assert repo.related_incidents(conn, ["zz"], ["none"], since) == {}
        ids = [open_one, old]
        assert sorted(i.ref for i in repo.incidents_by_id(conn, ids)) == ["INC-2026-0001", "INC-2026-0003"]
