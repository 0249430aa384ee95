"""Shared fixtures: a config written to a temp folder, a migrated SQLite store, an app, a clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.app import create_app
from adapter.clock import FakeClock
from adapter.config import Settings, load_settings
from adapter.metrics import Metrics
from adapter.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
AM_TOKEN = "am-test-token"
API_TOKEN = "api-test-token"

CATALOG: dict[str, Any] = {
    "services": [
        {
            "id": "mysql-shared",
            "name": "Shared MySQL (mysql-cluster-03)",
            "business_name": "Website databases",
            "incident_type": "database",
            "critical_infrastructure": True,
        },
        {
            "id": "checkout",
            "name": "Checkout API (checkout-api)",
            "business_name": "Online checkout",
            "incident_type": "web",
            "aliases": ["checkout-api"],
        },
        {
            "id": "search",
            "name": "Search API (search-api)",
            "business_name": "Site search",
            "incident_type": "web",
        },
    ],
    "tenants": [
        {
            "id": "acme",
            "name": "Acme Ltd",
            "segment": "technical",
            "tier": "enterprise",
            "timezone": "Europe/Dublin",
            "services": ["mysql-shared", "checkout"],
            "contacts": {"email": "ops@acme.example"},
        },
        {
            "id": "bloom",
            "name": "Bloom Florists",
            "timezone": "Europe/London",
            "services": ["checkout", "search"],
        },
    ],
}


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
        "api": {"tokens": [API_TOKEN]},
        "providers": [{"name": "status", "type": "builtin", "audience": "all"}],
    }


def write_config(folder: Path, config: dict[str, Any], catalog: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog if catalog is not None else CATALOG))
    path = folder / "dualtrack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(config: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None) -> Settings:
        return load_settings(write_config(tmp_path / "config", config or base_config(), catalog))

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 26, 14, 32, tzinfo=UTC))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Store:
    store = Store(settings.storage.url)
    store.migrate()
    yield store
    store.dispose()


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
