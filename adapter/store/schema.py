"""Tables, as SQLAlchemy Core metadata shared by the repositories and the migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite stores datetimes as text. Converting in one step instead of SQLAlchemy's two (ours,
    # then its DATETIME's) halves what every row written or read costs; the text is the same.
    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_utc = self.process_bind_param

        def process(value: Any) -> str | None:
            utc = to_utc(value, dialect)
            return None if utc is None else utc.isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse, to_aware = datetime.fromisoformat, self.process_result_value

        def process(value: Any) -> datetime | None:
            return None if value is None else to_aware(parse(value), dialect)

        return process


metadata = MetaData()

ref_counters = Table(
    "ref_counters",
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ref", String(32), nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("level_locked", Boolean, nullable=False, default=False),
    Column("reopen_count", Integer, nullable=False, default=0),
    # Set by humans through the API.
    Column("eta", UTCDateTime),
    Column("workaround", Text),
    Column("root_cause", Text),
    Column("action_required", Text),
    Column("preventive_measures", Text),
    Column("postmortem_at", UTCDateTime),
    Column("incident_type", String(64), nullable=False),
    Column("services", JSON, nullable=False),
    Column("unknown_services", JSON, nullable=False),
    Column("tenants", JSON, nullable=False),
    Column("source", String(32), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # When its texts were removed, past storage.retention (see store/retention.py).
    Column("pruned_at", UTCDateTime),
    Index("ix_incidents_status", "status", "opened_at", "id"),
    Index("ix_incidents_resolved_at", "resolved_at"),
    Index("ix_incidents_opened", "opened_at", "id"),
    Index("ix_incidents_unpruned", "pruned_at", "resolved_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("source", String(32), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("services", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("links", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # From reconciliation with Alertmanager: silenced there, or missing there since.
    Column("silenced", Boolean, nullable=False, default=False),
    Column("missing_since", UTCDateTime),
    # One row per alert instance: the dedupe key's first two parts (status is the third).
    UniqueConstraint("source", "fingerprint", "starts_at", name="uq_alerts_instance"),
    Index("ix_alerts_incident", "incident_id"),
    Index("ix_alerts_fingerprint", "fingerprint"),
    Index("ix_alerts_group_key", "group_key"),
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_timeline_incident", "incident_id"),
)

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    # The scheduler forgets ids older than pagerduty.dedupe_window.
    Index("ix_inbound_events_received_at", "received_at"),
)

rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

breakers = Table(
    "breakers",
    metadata,
    Column("provider", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    # Set while open: no delivery to the provider before then, except one probe per interval.
    Column("open_until", UTCDateTime),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("tenant", String(64)),
    Column("state", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("provider_ref", Text),
    # Last line of defence against a second notice for the same event.
    Column("dedupe_key", String(255), nullable=False, unique=True),
    Index("ix_notices_due", "state", "due_at", "id"),
    Index("ix_notices_stream", "incident_id", "provider", "tenant"),
    Index("ix_notices_incident_state", "incident_id", "state"),
)


# Per-tenant providers' notices of one event, written after the transaction that planned it
# (see `engine/expand.py`); `after`: the last tenant written so far, in the order of their ids.
expansions = Table(
    "expansions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("event", String(128), nullable=False),
    Column("options", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("after", String(64)),
)


def stream_tenant(table: Any) -> Any:
    """The tenant of a notice's stream, '' for a shared stream, as `ix_notices_stream_order` has it."""
    return func.coalesce(table.c.tenant, literal_column("''"))


# A stream's notices in writing order. Shared streams' tenant is NULL: coalesced, one equality
# finds a stream (see `outbox.claim_due`).
Index(
    "ix_notices_stream_order", notices.c.incident_id, notices.c.provider, stream_tenant(notices), notices.c.id
)


def upsert(conn: Connection, table: Table) -> Any:
    """INSERT … ON CONFLICT for the connection's dialect (SQLite and PostgreSQL speak the same clause)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# Every human action: who did what, when, to which incident. Append-only: nothing updates or
# deletes a row (retention keeps it, as it keeps the incidents' own rows).
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("author", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id")),
    Column("ref", String(32)),
    Column("changes", JSON, nullable=False),
    Index("ix_audit_incident", "incident_id", "id"),
    Index("ix_audit_at", "at"),
)

# Desk log-ins; the cookie holds the id, the table its SHA-256, so a read of the table logs
# nobody in.
desk_sessions = Table(
    "desk_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_desk_sessions_expires", "expires_at"),
)


# Answers to "Was this update helpful?": one per notice and reader (`reader`: the tenant's id,
# or "" for a shared notice's anonymous reader), the answer changing on a second click.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("notice_id", Integer, ForeignKey("notices.id"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("reader", String(64), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("helpful", Boolean, nullable=False),
    Column("comment", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("notice_id", "reader", name="uq_feedback_notice_reader"),
    Index("ix_feedback_created", "created_at"),
)

# Each time a reader of a business notice opened its technical version.
detail_requests = Table(
    "detail_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("notice_id", Integer, ForeignKey("notices.id"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False),
    Column("tenant", String(64)),
    Column("segment", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_detail_requests_at", "at"),
)
