"""Shared fixtures: a config with the shared catalog, a store (SQLite or PostgreSQL), an app, a clock."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from adapter.app import create_app
from adapter.catalog import Catalog
from adapter.clock import FakeClock
from adapter.config import Settings, load_settings
from adapter.metrics import Metrics
from adapter.providers import check_settings
from adapter.store import Store
from tests.support.catalog import catalog_data, shared_catalog
from tests.support.postgres import POSTGRES_ADMIN_URL, database_for_tests

FIXTURES = Path(__file__).parent / "fixtures"
AM_TOKEN = "am-test-token"
# The variables the shipped config/dualtrack.yaml reads its secrets from.
SHIPPED_ENV = (
    "AM_TOKEN",
    "AM_PASSWORD",
    "DUALTRACK_API_TOKEN",
    "DUALTRACK_SESSION_SECRET",
    "DUALTRACK_FEEDBACK_SECRET",
    "EVENTS_ROUTING_KEY",
    "STATUS_PAGE_SECRET",
)
API_TOKEN = "api-test-token"
VIEWER_TOKEN = "api-viewer-token"
AUTHOR_TOKEN = "api-author-token"
APPROVER_TOKEN = "api-approver-token"


def base_config() -> dict[str, Any]:
    return {
        "server": {"bind": "127.0.0.1:9095", "public_url": "http://status.example.test"},
        "storage": {"url": "sqlite:///dualtrack.db"},
        "catalog": "catalog.yaml",
        "auth": {
            "alertmanager": {
                "bearer_tokens": [AM_TOKEN],
                "basic_auth": [{"username": "am", "password": "am-password"}],
            }
        },
        "api": {
            "tokens": [
                {"name": "admin-bot", "token": API_TOKEN, "role": "admin"},
                {"name": "dashboard", "token": VIEWER_TOKEN, "role": "viewer"},
                {"name": "oncall-bot", "token": AUTHOR_TOKEN, "role": "author"},
                {"name": "lead-bot", "token": APPROVER_TOKEN, "role": "approver"},
            ]
        },
        # Many tests open several incidents on one service, each its own; the tests of
        # correlation.service_window set it themselves.
        "correlation": {"service_window": "0s"},
        "providers": [{"name": "status", "type": "builtin", "audience": "all"}],
    }


def write_config(folder: Path, config: dict[str, Any], catalog: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog if catalog is not None else catalog_data()))
    path = folder / "dualtrack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(config: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None) -> Settings:
        path = write_config(tmp_path / "config", config or base_config(), catalog)
        return load_settings(path, check_settings)

    return make


@pytest.fixture
def catalog() -> Catalog:
    """The shared catalog (tests/fixtures/catalog.yaml), as the product loads it."""
    return shared_catalog()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 26, 14, 32, tzinfo=UTC))


@pytest.fixture
def settings(make_settings: Callable[..., Settings], storage_url: str) -> Settings:
    config = base_config()
    config["storage"]["url"] = storage_url
    return make_settings(config)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database at the newest migration, copied for a test rather than migrated again."""
    path = tmp_path_factory.mktemp("migrated") / "dualtrack.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.dispose()
    return path


@pytest.fixture
def open_store(migrated_sqlite: Path) -> Callable[[str], Store]:
    """Opens a migrated store on a URL; a new SQLite file starts as a copy of a migrated one."""

    def open_migrated(url: str) -> Store:
        database = make_url(url).database
        if make_url(url).get_backend_name() == "sqlite" and database and not Path(database).exists():
            shutil.copyfile(migrated_sqlite, database)
        store = Store(url)
        store.migrate()
        return store

    return open_migrated


@pytest.fixture
def store(settings: Settings, open_store: Callable[[str], Store]) -> Iterator[Store]:
    store = open_store(settings.storage.url)
    yield store
    store.dispose()


# -- storage backends ---------------------------------------------------------------------------
#
# Database-backed tests under these folders run once per backend: `test_x[sqlite]` and
# `test_x[postgresql]` (pick with `-k sqlite` / `-k postgresql`, or DUALTRACK_TEST_BACKENDS=sqlite).
# A test pins its backend with `@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)`.
# The PostgreSQL variant gets one database per test session (dropped at the end), emptied before
# every test. Without a reachable server the PostgreSQL variants fail when CI is set, else skip.

BACKENDS = ("sqlite", "postgresql")
_PER_BACKEND_SUITES = ("store", "engine")
_DEFAULT_STORAGE_URL = "sqlite:///dualtrack.db"


def _selected_backends() -> list[str]:
    wanted = os.environ.get("DUALTRACK_TEST_BACKENDS", "")
    chosen = [b.strip() for b in wanted.split(",") if b.strip()] or list(BACKENDS)
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"DUALTRACK_TEST_BACKENDS: unknown backend(s) {sorted(unknown)}")
    return chosen


def _pins_backend(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "backend" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `make_settings` is in the closure of every test that opens a store (settings, store, app).
    if "backend" not in metafunc.fixturenames or "make_settings" not in metafunc.fixturenames:
        return
    if _pins_backend(metafunc):
        return
    try:
        suite = Path(metafunc.definition.path).relative_to(Path(__file__).parent).parts[0]
    except ValueError:
        return
    if suite in _PER_BACKEND_SUITES:
        metafunc.parametrize("backend", _selected_backends(), indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test: its parameter, else SQLite."""
    return str(getattr(request, "param", "sqlite"))


def _pg_conninfo(database: str) -> str:
    return make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session, as a SQLAlchemy URL; dropped at the end."""
    with database_for_tests("dualtrack_test") as url:
        yield url


def migrations_head() -> str | None:
    """The newest migration's revision."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from adapter.store.db import _MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def reset_postgres(url: str) -> None:
    """Empty the database: truncate a schema at head, drop any other schema (the test migrates)."""
    import psycopg
    from psycopg import sql

    from adapter.store.schema import metadata

    head = migrations_head()
    with psycopg.connect(_pg_conninfo(str(make_url(url).database)), autocommit=True) as conn:
        # A connection some earlier test leaked would otherwise hang the suite here.
        conn.execute("SET lock_timeout = '10s'")
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        if not tables:
            return
        version = None
        if "alembic_version" in tables:
            version = conn.execute("SELECT string_agg(version_num, ',') FROM alembic_version").fetchone()
        if tables == {*metadata.tables, "alembic_version"} and version == (head,):
            names = sql.SQL(", ").join(sql.Identifier(t) for t in sorted(metadata.tables))
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
        else:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")


@pytest.fixture
def postgresql_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, empty, for this test."""
    reset_postgres(postgres_database)
    return postgres_database


@pytest.fixture
def storage_url(request: pytest.FixtureRequest, backend: str) -> str:
    """`storage.url` for this test's backend (relative SQLite paths land in the config folder)."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgresql_url"))
    return _DEFAULT_STORAGE_URL


@pytest.fixture(autouse=True)
def _backend_storage(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every config `make_settings` writes with the default storage to this test's backend.

    Tests that build their own stores (`make_settings(config)` then `Store(...)`) follow the
    backend this way without knowing of it; a config naming its own storage is left alone.
    """
    if backend == "sqlite":
        return
    url = str(request.getfixturevalue("storage_url"))
    module = sys.modules[__name__]
    original = module.write_config

    def write(folder: Path, config: dict[str, Any], catalog: dict[str, Any] | None = None) -> Path:
        storage = dict(config.get("storage") or {})
        if storage.get("url", _DEFAULT_STORAGE_URL) == _DEFAULT_STORAGE_URL:
            config = {**config, "storage": {**storage, "url": url}}
        return original(folder, config, catalog)

    monkeypatch.setattr(module, "write_config", write)


@pytest.fixture
def app(settings: Settings, store: Store, clock: FakeClock):
    return create_app(settings, clock=clock, store=store, metrics=Metrics())


@pytest.fixture
def client(app):
    return app.test_client()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def am_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"}


def api_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}
