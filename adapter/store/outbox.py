"""The outbox: notices written with the incident change, claimed under a lease, marked per delivery."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)

from adapter.store.db import Store
from adapter.store.incidents import OPEN
from adapter.store.records import AwaitingNotice, Backlog, Notice
from adapter.store.schema import incidents, notices, stream_tenant, upsert

Row = dict[str, Any]
WAITING = ("pending", "failed")
# A customer notice an approver publishes or discards (see policy.approval).
AWAITING = "awaiting_approval"
# A notice in one of these states holds back later notices of its (incident, provider, tenant).
UNFINISHED = ("held", AWAITING, "pending", "failed")
# Never went out, nor will: no reader heard it.
UNHEARD = ("held", "suppressed", "discarded")


def insert_notices(conn: Connection, rows: list[Row]) -> dict[str, int]:
    """Insert notices in one statement; those whose dedupe key exists already are skipped.

    Returns the ids of those inserted, by dedupe key: a key that exists means the event was planned
    before.
    """
    if not rows:
        return {}
    statement = (
        upsert(conn, notices)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(notices.c.id, notices.c.dedupe_key)
    )
    return {row.dedupe_key: row.id for row in conn.execute(statement, rows)}


_VISIBLE_PHASES = ("acknowledgement", "update")
# A notice its audience heard, or will once it is delivered: a first notice or update, neither
# held, suppressed nor discarded (one awaiting approval counts, as a pending one does).
_HEARD = and_(notices.c.phase.in_(_VISIBLE_PHASES), notices.c.state.not_in(UNHEARD))


def held(conn: Connection, incident_id: int) -> list[Notice]:
    query = select(notices).where(notices.c.incident_id == incident_id, notices.c.state == "held")
    return [Notice.from_row(row) for row in conn.execute(query.order_by(notices.c.id)).mappings()]


Stream = tuple[str, str, str | None]
Channel = tuple[str, str | None]  # (provider, tenant): what notices go out in order on


@dataclass
class StreamStates:
    """What an incident's notices say of its streams (see `streams`)."""

    held: set[Stream]  # streams that still hold a notice back
    heard: set[Stream]  # streams told of the incident: a first notice not in UNHEARD
    waiting: set[Channel]  # channels with a notice awaiting approval, pending or failed

    def unfinished(self, *, held_suppressed: bool) -> set[Channel]:
        """(provider, tenant) of the streams with a notice not yet finished (held, awaiting
        approval, pending or failed), as they read once the held notices are suppressed or not."""
        held = set() if held_suppressed else {(provider, tenant) for provider, _, tenant in self.held}
        return self.waiting | held


def _of_tenants(tenants: Collection[str | None]) -> ColumnElement[bool]:
    """Notices of these tenants' streams; None stands for the shared streams."""
    named = [t for t in tenants if t is not None]
    clause = notices.c.tenant.in_(named)
    return or_(clause, notices.c.tenant.is_(None)) if None in tenants else clause


def streams(
    conn: Connection, incident_id: int, tenants: Collection[str | None] | None = None
) -> StreamStates:
    """The incident's held, heard and waiting streams, in one read; only those of `tenants`
    (None in it: the shared streams) when given."""
    states = StreamStates(set(), set(), set())
    query = select(notices.c.provider, notices.c.audience, notices.c.tenant, notices.c.phase, notices.c.state)
    query = query.where(
        notices.c.incident_id == incident_id,
        or_(notices.c.state.in_(UNFINISHED), notices.c.phase == "acknowledgement"),
    )
    if tenants is not None:
        query = query.where(_of_tenants(tenants))
    for row in conn.execute(query).mappings():
        key = (row["provider"], row["audience"], row["tenant"])
        state = row["state"]
        if state == "held":
            states.held.add(key)
        elif state in UNFINISHED:
            states.waiting.add((row["provider"], row["tenant"]))
        if row["phase"] == "acknowledgement" and state not in UNHEARD:
            states.heard.add(key)
    return states


def suppress_held(conn: Connection, incident_id: int, held: set[Stream] | None = None) -> set[Stream]:
    """Held notices of a resolved incident are never sent; returns their streams.

    `held`, when the caller has just read it with `streams`, saves reading it again.
    """
    if held is None:
        held = streams(conn, incident_id).held
    if held:
        conn.execute(
            update(notices)
            .where(notices.c.incident_id == incident_id, notices.c.state == "held")
            .where(_of_tenants({tenant for _, _, tenant in held}))
            .values(state="suppressed", last_error="resolved while held")
        )
    return held


def update_notice(conn: Connection, notice_id: int, values: Row) -> None:
    conn.execute(update(notices).where(notices.c.id == notice_id).values(**values))


def last_heard(conn: Connection, incident_id: int, audience: str) -> datetime | None:
    """When this audience last got an acknowledgement or update of the incident (see `_HEARD`)."""
    query = select(func.max(notices.c.created_at)).where(
        notices.c.incident_id == incident_id, notices.c.audience == audience, _HEARD
    )
    return conn.execute(query).scalar()


def last_heard_open(conn: Connection) -> dict[tuple[int, str], datetime]:
    """`last_heard` for every open incident at once, by (incident id, audience)."""
    query = (
        select(notices.c.incident_id, notices.c.audience, func.max(notices.c.created_at).label("last"))
        .join(incidents, incidents.c.id == notices.c.incident_id)
        .where(incidents.c.status.in_(OPEN), _HEARD)
        .group_by(notices.c.incident_id, notices.c.audience)
    )
    return {(r.incident_id, r.audience): r.last for r in conn.execute(query)}


def held_due(conn: Connection, now: datetime) -> set[int]:
    """Incidents with a held notice whose hold is over."""
    query = select(notices.c.incident_id).where(notices.c.state == "held", notices.c.due_at <= now).distinct()
    return set(conn.execute(query).scalars())


def notices_of(conn: Connection, incident_ids: Iterable[int]) -> list[Notice]:
    ids = list(incident_ids)
    if not ids:
        return []
    query = select(notices).where(notices.c.incident_id.in_(ids)).order_by(notices.c.created_at, notices.c.id)
    return [Notice.from_row(r) for r in conn.execute(query).mappings()]


def stream_of(notice: Notice) -> tuple[int, str, str | None]:
    """Notices of one stream go out in the order they were written."""
    return (notice.incident_id, notice.provider, notice.tenant)


def claim_due(
    store: Store,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    *,
    provider: str | None = None,
    excluding: Collection[str] = (),
) -> list[Notice]:
    """Lease up to `limit` due notices, in order: each stream from its oldest unfinished notice on.

    A stream's notices are claimed only as a prefix of its unfinished ones, so a notice never
    overtakes an earlier one that is held, awaiting approval, waiting for a retry, or leased
    elsewhere. `provider`
    claims only that provider's notices; `excluding` only those of other providers.

    What it reads grows with `limit`, not with the notices waiting: the streams are found by their
    first unfinished notice, and only those streams' notices are read.
    """
    mine: list[ColumnElement[bool]] = []
    if provider is not None:
        mine.append(notices.c.provider == provider)
    if excluding:
        mine.append(notices.c.provider.not_in(list(excluding)))
    free = or_(notices.c.lease_until.is_(None), notices.c.lease_until < now)
    earlier = notices.alias("earlier")
    first_of_stream = ~exists().where(
        earlier.c.incident_id == notices.c.incident_id,
        earlier.c.provider == notices.c.provider,
        stream_tenant(earlier) == stream_tenant(notices),
        earlier.c.id < notices.c.id,
        earlier.c.state.in_(UNFINISHED),
    )
    key = (notices.c.incident_id, notices.c.provider, stream_tenant(notices))
    # Most passes find nothing due: find that out without the write lock.
    with store.read() as conn:
        anything = select(notices.c.id).where(
            notices.c.state.in_(WAITING), notices.c.due_at <= now, free, *mine
        )
        if conn.execute(anything.limit(1)).first() is None:
            return []
    with store.transaction() as conn:
        # The streams whose first unfinished notice is due, oldest due first: one ordered index
        # range per waiting state, so each read stops after `limit` of them.
        heads: list[Any] = []  # (stream's incident, provider, tenant key, due at, id)
        for state in WAITING:
            query = (
                select(*key, notices.c.due_at, notices.c.id)
                .where(notices.c.state == state, notices.c.due_at <= now, free, first_of_stream, *mine)
                .order_by(notices.c.due_at, notices.c.id)
                .limit(limit)
            )
            heads += conn.execute(query).all()
        streams = {tuple(head[:3]) for head in sorted(heads, key=lambda h: (h[3], h[4]))[:limit]}
        if not streams:
            return []
        unfinished = (
            select(notices)
            .where(
                # A probe of the stream index per combination of the streams' incidents, providers
                # and tenants: bounded by the batch, not by the notices waiting. Sorted out below.
                *(column.in_({stream[n] for stream in streams}) for n, column in enumerate(key)),
                notices.c.state.in_(UNFINISHED),
            )
            .order_by(notices.c.id)
        )
        if not store.is_sqlite:
            unfinished = unfinished.with_for_update(skip_locked=True)
        stopped: set[tuple[int, str, str | None]] = set()
        claimed: list[RowMapping] = []
        for row in conn.execute(unfinished).mappings():
            stream = (row["incident_id"], row["provider"], row["tenant"])
            if (*stream[:2], stream[2] or "") not in streams or stream in stopped:
                continue
            due = (
                row["state"] in WAITING
                and row["due_at"] <= now
                and (row["lease_until"] is None or row["lease_until"] < now)
            )
            if not due or len(claimed) >= limit:
                stopped.add(stream)
                continue
            claimed.append(row)
        if not claimed:
            return []
        ids = [row["id"] for row in claimed]
        conn.execute(
            update(notices).where(notices.c.id.in_(ids)).values(lease_owner=owner, lease_until=now + lease)
        )
    # Made into records once the write lock is given back.
    leased = {"lease_owner": owner, "lease_until": now + lease}
    return [Notice.from_row({**row, **leased}) for row in claimed]


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to: delivered (at, ref), failed (retry at), or dead; or
    deferred: not attempted, due again at `at`."""

    notice_id: int
    state: str
    at: datetime
    ref: str | None = None
    error: str | None = None


_FINISH = (
    update(notices)
    .where(notices.c.id == bindparam("b_id"), notices.c.lease_owner == bindparam("b_owner"))
    .values(attempts=notices.c.attempts + 1, lease_owner=None, lease_until=None)
)
_RELEASE = (
    update(notices)
    .where(notices.c.id == bindparam("b_id"), notices.c.lease_owner == bindparam("b_owner"))
    .values(lease_owner=None, lease_until=None)
)


def finish(store: Store, owner: str, outcomes: list[Outcome], unstarted: Iterable[int] = ()) -> set[int]:
    """Record outcomes and give back unstarted leases, in one short transaction.

    Only rows this owner still leases change: a dispatcher whose lease ran out records nothing.
    Returns the notices whose outcome was recorded (deferred ones aside).
    """
    release = [{"b_id": notice_id, "b_owner": owner} for notice_id in unstarted]
    if not outcomes and not release:
        return set()
    recorded = set()
    with store.transaction() as conn:
        for outcome in outcomes:
            if outcome.state == "deferred":
                # Not an attempt: the provider's breaker is open; try again when it may be.
                conn.execute(
                    _RELEASE.values(due_at=outcome.at), {"b_id": outcome.notice_id, "b_owner": owner}
                )
                continue
            values: Row = {"b_id": outcome.notice_id, "b_owner": owner, "state": outcome.state}
            if outcome.state == "delivered":
                values.update(delivered_at=outcome.at, provider_ref=outcome.ref, last_error=None)
            elif outcome.state == "failed":
                values.update(due_at=outcome.at, last_error=outcome.error)
            else:
                values.update(last_error=outcome.error)
            if conn.execute(_FINISH, values).rowcount:
                recorded.add(outcome.notice_id)
        if release:
            conn.execute(_RELEASE, release)
    return recorded


def mark_delivered(store: Store, notice_id: int, owner: str, now: datetime, ref: str) -> bool:
    return notice_id in finish(store, owner, [Outcome(notice_id, "delivered", at=now, ref=ref)])


RefKey = tuple[int, str, str, str | None]  # (incident, provider, audience, tenant)


def ref_key(notice: Notice) -> RefKey:
    return (notice.incident_id, notice.provider, notice.audience, notice.tenant)


def first_refs(conn: Connection, batch: list[Notice]) -> dict[RefKey, str | None]:
    """The provider's id for each incident and version of the batch, from its first delivered
    notice: one read, of those streams only."""
    keys = {ref_key(notice) for notice in batch}
    query = (
        select(
            notices.c.incident_id,
            notices.c.provider,
            notices.c.audience,
            notices.c.tenant,
            notices.c.provider_ref,
        )
        .where(
            notices.c.incident_id.in_({key[0] for key in keys}),
            notices.c.provider.in_({key[1] for key in keys}),
            stream_tenant(notices).in_({key[3] or "" for key in keys}),
            notices.c.state == "delivered",
        )
        .order_by(notices.c.id.desc())
    )
    # Newest first, so that the first delivered of each stream is the one kept.
    refs = {(row[0], row[1], row[2], row[3]): row[4] for row in conn.execute(query)}
    return {key: refs.get(key) for key in keys}


def backlog(conn: Connection, now: datetime) -> Backlog:
    """How many notices wait for delivery, the age of the oldest, and how many await approval."""
    waiting = notices.c.state.in_(WAITING)
    count, oldest, awaiting = conn.execute(
        select(
            func.count().filter(waiting),
            func.min(notices.c.created_at).filter(waiting),
            func.count().filter(notices.c.state == AWAITING),
        ).where(notices.c.state.in_((*WAITING, AWAITING)))
    ).one()
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(int(count), age, int(awaiting))


STATES = ("held", AWAITING, "pending", "delivered", "failed", "dead", "suppressed", "discarded")


def _with_ref() -> Any:
    from adapter.store.schema import incidents

    return select(notices, incidents.c.ref.label("incident_ref")).join(
        incidents, incidents.c.id == notices.c.incident_id
    )


def by_state(conn: Connection, states: Iterable[str], limit: int = 500) -> list[Notice]:
    """Notices in these states, oldest first, with their incident's ref."""
    query = (
        _with_ref()
        .where(notices.c.state.in_(list(states)))
        .order_by(notices.c.created_at, notices.c.id)
        .limit(limit)
    )
    return [Notice.from_row(r) for r in conn.execute(query).mappings()]


def one(conn: Connection, notice_id: int) -> Notice | None:
    row = conn.execute(_with_ref().where(notices.c.id == notice_id)).mappings().first()
    return Notice.from_row(row) if row is not None else None


def retry(conn: Connection, notice_ids: Iterable[int], now: datetime) -> list[int]:
    """Dead or failed notices go out again now; returns the ids that were retried.

    The notice counts as written now, so `delivery.max_age` gives it a full new window.
    """
    ids = list(notice_ids)
    if not ids:
        return []
    retried = list(
        conn.execute(
            select(notices.c.id).where(notices.c.id.in_(ids), notices.c.state.in_(("dead", "failed")))
        ).scalars()
    )
    if retried:
        conn.execute(
            update(notices)
            .where(notices.c.id.in_(retried))
            .values(state="pending", due_at=now, created_at=now, lease_owner=None, lease_until=None)
        )
    return retried


def awaiting_approval(
    conn: Connection,
    auto_publish_after: timedelta,
    *,
    written_by: datetime | None = None,
    incident_id: int | None = None,
    limit: int = 500,
) -> list[AwaitingNotice]:
    """Notices awaiting approval, oldest first, with their incident's ref, their deadline and when
    they go out unapproved (`auto_publish_after` after they were written; 0: never); only those
    written by `written_by`, and of `incident_id`, when given."""
    query = _with_ref().where(notices.c.state == AWAITING)
    if incident_id is not None:
        query = query.where(notices.c.incident_id == incident_id)
    if written_by is not None:
        query = query.where(notices.c.created_at <= written_by)
    query = query.order_by(notices.c.created_at, notices.c.id).limit(limit)
    found = []
    for row in conn.execute(query).mappings():
        notice = Notice.from_row(row)
        deadline = notice.data.get("deadline")
        found.append(
            AwaitingNotice(
                notice,
                row["incident_ref"],
                datetime.fromisoformat(deadline) if deadline else None,
                notice.created_at + auto_publish_after if auto_publish_after else None,
            )
        )
    return found


def update_awaiting(conn: Connection, notice_id: int, values: Row) -> bool:
    """Change a notice that still awaits approval; False if it no longer does (someone was first)."""
    changed = conn.execute(
        update(notices).where(notices.c.id == notice_id, notices.c.state == AWAITING).values(**values)
    )
    return bool(changed.rowcount)


def behind_unfinished(conn: Connection, notice: Notice) -> bool:
    """Whether an earlier notice of the notice's stream is unfinished, so it must go out after it."""
    earlier = select(notices.c.id).where(
        notices.c.incident_id == notice.incident_id,
        notices.c.provider == notice.provider,
        stream_tenant(notices) == (notice.tenant or ""),
        notices.c.id < notice.id,
        notices.c.state.in_(UNFINISHED),
    )
    return conn.execute(earlier.limit(1)).first() is not None
