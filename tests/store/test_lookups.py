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
        rows = [_alert(incident, "f1", T0 + timedelta(minutes=m)) for m in range(6)]
        rows += [_alert(incident, "f2", T0 + timedelta(minutes=2))]
        repo.insert_alerts(conn, rows)
        wanted = [("f1", T0 + timedelta(minutes=1)), ("f1", T0 + timedelta(minutes=4)), ("f2", T0)]
        found = repo.find_alerts(conn, "alertmanager", wanted)
        # Instances between those asked for, and f2's at another start, are not answers.
        assert sorted(found) == [("f1", T0 + timedelta(minutes=1)), ("f1", T0 + timedelta(minutes=4))]
        assert all(row["fingerprint"] == fp and row["starts_at"] == at for (fp, at), row in found.items())
        assert repo.find_alerts(conn, "pagerduty", wanted) == {}
        assert repo.find_alerts(conn, "alertmanager", []) == {}


def test_related_incidents_are_joinable_ones_sharing_a_fingerprint_or_a_group_key(store: Store):
    since = T0 - timedelta(minutes=30)
    with store.transaction() as conn:
        open_one = _incident(conn, "INC-2026-0001")
        recent = _incident(conn, "INC-2026-0002", "resolved", T0 - timedelta(minutes=5))
        old = _incident(conn, "INC-2026-0003", "resolved", T0 - timedelta(hours=2))
        monitoring = _incident(conn, "INC-2026-0004", "monitoring")
        repo.insert_alerts(
            conn,
            [
                _alert(open_one, "a", T0, "g1"),
                _alert(recent, "b", T0, "g2"),
                _alert(old, "c", T0, "g3"),
                _alert(monitoring, "d", T0, "g4"),
            ],
        )
        related = repo.related_incidents(conn, ["a", "c", "zz"], ["g2", "g4"], since)
        assert sorted(related) == [open_one, recent, monitoring]
        assert related[open_one].fingerprints == {"a"} and related[recent].group_keys == {"g2"}
        assert repo.related_incidents(conn, ["zz"], ["none"], since) == {}
        ids = [open_one, old]
        assert [i["ref"] for i in repo.incidents_by_id(conn, ids)] == ["INC-2026-0001", "INC-2026-0003"]
        assert sorted(repo.alerts_of_many(conn, ids)) == ids


def test_list_lookups_run_the_same_statement_whatever_the_list_length(store: Store):
    with store.transaction() as conn:
        incident = _incident(conn, "INC-2026-0001")
        seen = _statements(store)
        for count in (1, 2, 7):
            fingerprints = [f"f{i}" for i in range(count)]
            repo.find_alerts(conn, "alertmanager", [(fp, T0) for fp in fingerprints])
            repo.related_incidents(conn, fingerprints, fingerprints[:1], T0)
            repo.incidents_by_id(conn, [incident] * count)
            repo.alerts_of_many(conn, [incident] * count)
    assert len(seen) == 12
    assert len(set(seen)) == 4  # one text per lookup, the same for 1, 2 and 7 values
