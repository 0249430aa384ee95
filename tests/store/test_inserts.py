"""Notices inserted several in one statement: each row's id, and dedupe skips."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapter.store import Store, outbox
from adapter.store.schema import notices
from tests.store.test_lookups import T0, _incident


def _notice(incident_id: int, key: str) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "provider": "status",
        "audience": "technical",
        "phase": "acknowledgement",
        "tenant": None,
        "state": "pending",
        "attempts": 0,
        "subject": f"subject {key}",
        "body": "body",
        "data": {"key": key},
        "created_at": T0,
        "due_at": T0,
        "delivered_at": None,
        "provider_ref": None,
        "dedupe_key": key,
    }


def test_insert_notices_returns_the_ids_of_those_inserted_by_key_and_skips_existing_keys(store: Store):
    with store.transaction() as conn:
        incident = _incident(conn, "INC-2026-0001")
        first = outbox.insert_notices(conn, [_notice(incident, k) for k in ("k1", "k2", "k3")])
        # Existing keys in the middle and at both ends: the others still get their own ids.
        again = outbox.insert_notices(conn, [_notice(incident, k) for k in ("k1", "k4", "k2", "k5", "k3")])
        none = outbox.insert_notices(conn, [_notice(incident, "k4")])
        stored = dict(conn.execute(select(notices.c.id, notices.c.dedupe_key)).all())
    assert [(key, stored[i]) for key, i in first.items()] == [("k1", "k1"), ("k2", "k2"), ("k3", "k3")]
    assert [(key, stored[i]) for key, i in again.items()] == [("k4", "k4"), ("k5", "k5")]
    assert none == {}
    assert len(stored) == 5
