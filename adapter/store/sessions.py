"""Desk log-in sessions: created at log-in with a new id, ended at log-out, expired by time."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from adapter.store.records import DeskSession
from adapter.store.schema import desk_sessions


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create(conn: Connection, user: str, now: datetime, expires_at: datetime) -> tuple[str, DeskSession]:
    """A new session for `user`: its id (for the cookie only) and its record."""
    session_id = secrets.token_urlsafe(32)
    record = DeskSession(_hash(session_id), user, secrets.token_urlsafe(32), now, expires_at)
    conn.execute(delete(desk_sessions).where(desk_sessions.c.expires_at <= now))  # old ones go here
    conn.execute(insert(desk_sessions).values(asdict(record)))
    return session_id, record


def find(conn: Connection, session_id: str, now: datetime) -> DeskSession | None:
    query = select(desk_sessions).where(
        desk_sessions.c.id_hash == _hash(session_id), desk_sessions.c.expires_at > now
    )
    row = conn.execute(query).mappings().first()
    return DeskSession.from_row(row) if row is not None else None


def end(conn: Connection, session_id: str) -> None:
    conn.execute(delete(desk_sessions).where(desk_sessions.c.id_hash == _hash(session_id)))
