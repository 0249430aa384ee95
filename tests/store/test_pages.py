"""The status pages' reads: who may see what, in which order, and no more of it than a page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from adapter.store import Store, pages
from adapter.store import incidents as repo
from adapter.store.pages import LINE_CHARS, Readers
from adapter.store.schema import notices
from tests.support.seed import incident_row, notice_row

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)
PUBLIC_BUSINESS = Readers(("business",), ("status",))
PUBLIC_BOTH = Readers(("business", "technical"), ("status",))


def add(store: Store, ref: str, opened: datetime, **kwargs: Any) -> int:
    with store.transaction() as conn:
        return repo.insert_incident(conn, incident_row(ref, opened, **kwargs))


def publish(store: Store, incident_id: int, *rows: tuple[str, int], **kwargs: Any) -> None:
    """Notices of the incident: (audience, minutes after NOW - 1 day) each."""
    values = [
        notice_row(
            incident_id,
            audience,
            "update",
            NOW - timedelta(days=1) + timedelta(minutes=minute),
            subject=f"{audience} {minute}",
            body=f"{audience} body {minute}",
            key=f"{incident_id}:{audience}:{minute}:{kwargs.get('tenant')}:{kwargs.get('provider')}",
            **kwargs,
        )
        for audience, minute in rows
    ]
    with store.transaction() as conn:
        conn.execute(insert(notices), values)


def refs(rows: list[dict[str, Any]]) -> list[str]:
    return [r.ref for r in rows]


def test_only_published_notices_make_an_incident_visible(store):
    shown = add(store, "INC-1", NOW - timedelta(hours=5))
    publish(store, shown, ("business", 1))
    technical_only = add(store, "INC-2", NOW - timedelta(hours=4))
    publish(store, technical_only, ("technical", 1))
    held = add(store, "INC-3", NOW - timedelta(hours=3))
    publish(store, held, ("business", 1), state="held")
    elsewhere = add(store, "INC-4", NOW - timedelta(hours=2))
    publish(store, elsewhere, ("business", 1), provider="statuspage")
    for_a_tenant = add(store, "INC-5", NOW - timedelta(hours=1), tenants=["acme"])
    publish(store, for_a_tenant, ("business", 1), tenant="acme")

    with store.read() as conn:
        assert refs(pages.current_incidents(conn, PUBLIC_BUSINESS, SINCE, limit=10)) == ["INC-1"]
        assert refs(pages.current_incidents(conn, PUBLIC_BOTH, SINCE, limit=10)) == ["INC-2", "INC-1"]
        acme = Readers(("business",), ("status",), "acme")
        assert refs(pages.current_incidents(conn, acme, SINCE, limit=10)) == ["INC-5"]
        bloom = Readers(("business",), ("status",), "bloom")
        assert refs(pages.current_incidents(conn, bloom, SINCE, limit=10)) == []
        assert pages.counts(conn, PUBLIC_BOTH, SINCE) == (2, 2)
        assert pages.incident(conn, PUBLIC_BUSINESS, "INC-2") is None
        assert pages.incident(conn, PUBLIC_BOTH, "INC-2").ref == "INC-2"


def test_a_tenant_sees_incidents_that_affect_it(store):
    both = add(store, "INC-1", NOW - timedelta(hours=3), tenants=["acme", "bloom"])
    publish(store, both, ("technical", 1))
    other = add(store, "INC-2", NOW - timedelta(hours=2), tenants=["bloom"])
    publish(store, other, ("technical", 1))
    # A tenant id that is a prefix of another's, or inside it, is not that tenant.
    lookalike = add(store, "INC-3", NOW - timedelta(hours=1), tenants=["acme-eu", "xacme"])
    publish(store, lookalike, ("technical", 1))
    acme = Readers(("technical",), ("status",), "acme")
    with store.read() as conn:
        assert refs(pages.current_incidents(conn, acme, SINCE, limit=10)) == ["INC-1"]
        assert pages.counts(conn, acme, SINCE) == (1, 1)
        assert pages.incident(conn, acme, "INC-2") is None


def test_open_first_then_recently_resolved_a_page_at_a_time(store):
    expected_open, expected_resolved = [], []
    for n in range(6):
        opened = NOW - timedelta(hours=20 - n)
        resolved = opened + timedelta(minutes=30) if n % 2 else None
        incident_id = add(store, f"INC-{n}", opened, resolved_at=resolved)
        publish(store, incident_id, ("business", 1))
        (expected_resolved if resolved else expected_open).insert(0, f"INC-{n}")
    stale = add(store, "INC-old", NOW - timedelta(days=9), resolved_at=NOW - timedelta(days=8))
    publish(store, stale, ("business", 1))

    with store.read() as conn:
        first = pages.current_incidents(conn, PUBLIC_BUSINESS, SINCE, limit=4)
        second = pages.current_incidents(conn, PUBLIC_BUSINESS, SINCE, limit=4, offset=4)
        assert refs(first) + refs(second) == expected_open + expected_resolved
        assert len(first) == 4 and len(second) == 2
        assert pages.counts(conn, PUBLIC_BUSINESS, SINCE) == (3, 6)
        # The incident's own page finds it however long ago it was resolved.
        assert pages.incident(conn, PUBLIC_BUSINESS, "INC-old").ref == "INC-old"


def test_latest_notices_per_incident_and_audience(store):
    one = add(store, "INC-1", NOW - timedelta(hours=2))
    publish(store, one, *[("business", m) for m in range(7)], *[("technical", m) for m in range(3)])
    two = add(store, "INC-2", NOW - timedelta(hours=1))
    publish(store, two, ("business", 10))

    with store.read() as conn:
        shown = pages.latest_notices(conn, PUBLIC_BOTH, [one, two], count=2, body_chars=100)
        assert [(n.incident_id, n.subject, n.total) for n in shown] == [
            (one, "technical 1", 3),
            (one, "technical 2", 3),
            (one, "business 5", 7),
            (one, "business 6", 7),
            (two, "business 10", 1),
        ]
        # Further back: ranks 3 to 5 from the newest, oldest first.
        older = pages.latest_notices(conn, PUBLIC_BUSINESS, [one], count=3, skip=2, body_chars=100)
        assert [n.subject for n in older] == ["business 2", "business 3", "business 4"]
        assert pages.latest_notices(conn, PUBLIC_BUSINESS, [one], count=3, skip=7, body_chars=100) == []
        assert pages.latest_notices(conn, PUBLIC_BUSINESS, [], count=3, body_chars=100) == []


def test_a_tenant_reads_a_notice_in_its_zone_where_it_was_written_in_it(store):
    incident_id = add(store, "INC-1", NOW - timedelta(hours=1), tenants=["acme", "bloom"])
    values = notice_row(incident_id, "business", "update", NOW, subject="S UTC", body="B UTC", key="z")
    values["data"] = {"zoned": {"Asia/Tokyo": {"subject": "S JST", "body": "B JST " + "x" * 200}}}
    with store.transaction() as conn:
        notice_id = conn.execute(insert(notices).values(values)).inserted_primary_key[0]
    tokyo = Readers(("business",), ("status",), "acme", "Asia/Tokyo")
    london = Readers(("business",), ("status",), "bloom", "Europe/London")
    with store.read() as conn:
        (shown,) = pages.latest_notices(conn, tokyo, [incident_id], count=5, body_chars=10)
        assert (shown.subject, shown.body) == ("S JST", "B JST xxxxx")  # cut as any other is
        (shown,) = pages.latest_notices(conn, london, [incident_id], count=5, body_chars=10)
        assert (shown.subject, shown.body) == ("S UTC", "B UTC")
        (shown,) = pages.latest_notices(conn, PUBLIC_BUSINESS, [incident_id], count=5, body_chars=10)
        assert shown.body == "B UTC"
        assert pages.notice(conn, tokyo, notice_id).body == "B JST " + "x" * 200


def test_long_texts_are_cut_in_the_query(store):
    incident_id = add(store, "INC-1", NOW - timedelta(hours=1), title="T" * 5000)
    values = notice_row(
        incident_id, "business", "update", NOW, subject="S" * 5000, body="é" * 300_000, key="long"
    )
    with store.transaction() as conn:
        conn.execute(insert(notices), [values])
    with store.read() as conn:
        (row,) = pages.current_incidents(conn, PUBLIC_BUSINESS, SINCE, limit=1)
        (shown,) = pages.latest_notices(conn, PUBLIC_BUSINESS, [incident_id], count=1, body_chars=500)
        full = pages.notice(conn, PUBLIC_BUSINESS, shown.id)
    # One character past the limit: enough to tell a cut text from one that fits.
    assert row.title == "T" * (LINE_CHARS + 1)
    assert shown.subject == "S" * (LINE_CHARS + 1)
    assert shown.body == "é" * 501  # characters, not bytes
    assert full is not None and full.body == "é" * 300_000


def test_a_notice_alone_follows_the_same_rules(store):
    acme_only = add(store, "INC-1", NOW - timedelta(hours=1), tenants=["acme"])
    publish(store, acme_only, ("technical", 1), tenant="acme")
    publish(store, acme_only, ("technical", 2))
    with store.read() as conn:
        ids = {
            n.subject: n.id
            for n in pages.latest_notices(
                conn, Readers(("technical",), ("status",), "acme"), [acme_only], count=5, body_chars=100
            )
        }
        acme = Readers(("technical",), ("status",), "acme")
        bloom = Readers(("technical",), ("status",), "bloom")
        public = Readers(("technical",), ("status",))
        assert pages.notice(conn, acme, ids["technical 1"]).body == "technical body 1"
        assert pages.notice(conn, public, ids["technical 1"]) is None  # acme's own version
        assert pages.notice(conn, public, ids["technical 2"]).body == "technical body 2"
        assert pages.notice(conn, bloom, ids["technical 2"]) is None  # not an incident of bloom's
        assert pages.notice(conn, PUBLIC_BUSINESS, ids["technical 2"]) is None


def test_history_is_the_incidents_open_within_the_window(store):
    add(store, "INC-1", NOW - timedelta(days=3), resolved_at=NOW - timedelta(days=2), level=4)
    add(store, "INC-2", NOW - timedelta(hours=1), level=2)
    add(store, "INC-3", NOW - timedelta(days=30), resolved_at=NOW - timedelta(days=29))
    with store.read() as conn:
        rows = pages.history(conn, NOW - timedelta(days=7), NOW)
    assert sorted(r.level for r in rows) == [2, 4]
