"""A fresh PostgreSQL database for a test session, a test or a benchmark run; dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = os.environ.get(
    "DUALTRACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Unreachable(RuntimeError):
    """PostgreSQL did not answer; tests skip locally and fail in CI."""


@contextmanager
def fresh_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new, empty database: (SQLAlchemy URL for dualtrack, libpq URL for psycopg).

    Dropped on exit WITH (FORCE), so a server left connected after a failure cannot keep it.
    """
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise Unreachable(f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL)!r} is not reachable: {exc}") from None
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield (
            url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
            url.render_as_string(hide_password=False),
        )
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_for_tests(prefix: str) -> Iterator[str]:
    """fresh_database for pytest: skip when PostgreSQL is down, but fail in CI, where it must run."""
    import pytest

    try:
        with fresh_database(prefix) as (url, _):
            yield url
    except Unreachable as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI is set: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(str(exc))
