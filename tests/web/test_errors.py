"""Error answers: a database outage is 503, anything else unexpected 500, /v2/enqueue in PagerDuty's
format, and a 413 closes the connection."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.store import Store
from tests.conftest import am_headers, base_config, fixture_bytes, fixture_json
from tests.support.server import free_port

ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
FIRING = "alertmanager/alertmanager-firing.json"
TRIGGER = "pagerduty/pagerduty-events-v2-trigger.json"


@pytest.fixture
def make_client(make_settings: Callable[..., Any], clock: Any) -> Iterator[Callable[..., Any]]:
    """A client over an app on `storage_url` (default: a migrated SQLite file); and its store."""
    stores: list[Store] = []

    def make(storage_url: str | None = None, **server: Any) -> tuple[Any, Store]:
        config = base_config()
        config["auth"]["events"] = {"routing_keys": [ROUTING_KEY]}
        config["server"].update(server)
        if storage_url:
            config["storage"]["url"] = storage_url
        settings = make_settings(config)
        store = Store(settings.storage.url)
        stores.append(store)
        if storage_url is None:
            store.migrate()
        return create_app(settings, clock=clock, store=store, metrics=Metrics()).test_client(), store

    yield make
    for store in stores:
        store.dispose()


def post_firing(client: Any) -> Any:
    return client.post("/webhooks/alertmanager", data=fixture_bytes(FIRING), headers=am_headers())


def enqueue(client: Any, body: bytes | None = None, content_type: str = "application/json") -> Any:
    data = body if body is not None else json.dumps(fixture_json(TRIGGER)).encode()
    return client.post("/v2/enqueue", data=data, headers={"Content-Type": content_type})


def assert_answers(client: Any, status: int, code: str, message: str) -> None:
    """The webhook in the house format, /v2/enqueue in PagerDuty's, with the same status."""
    response = post_firing(client)
    assert response.status_code == status
    assert response.get_json() == {"error": {"code": code, "message": message, "details": []}}
    events = enqueue(client)
    assert events.status_code == status
    assert events.get_json() == {"status": "error", "message": message, "errors": [message]}


def test_postgresql_unreachable_is_503_unavailable(make_client, caplog):
    url = f"postgresql+psycopg://dualtrack:pw-not-logged@127.0.0.1:{free_port()}/dualtrack"
    client, _ = make_client(url)
    assert_answers(client, 503, "unavailable", "the database is unavailable; retry later")
    # One line per request with the driver's reason: no traceback, no password.
    lines = [r for r in caplog.records if r.name == "adapter.web.errors"]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"]
    assert all(r.exc_info is None for r in lines)
    assert "database unavailable: POST /webhooks/alertmanager: " in lines[0].getMessage()
    assert "pw-not-logged" not in caplog.text


def test_sqlite_file_removed_while_running_is_503_and_nothing_is_written(make_client):
    client, store = make_client()
    assert post_firing(client).status_code == 202
    path = make_url(store.engine.url).database
    assert path
    os.unlink(path)
    assert_answers(client, 503, "unavailable", "the database is unavailable; retry later")
    assert client.get("/-/ready").status_code == 503


def test_an_unexpected_error_is_500_logged_with_where_it_was_raised(make_client, caplog):
    client, store = make_client()
    # The database refuses every new incident, quoting a row value as PostgreSQL's DETAIL does:
    # for dualtrack, a failure it did not expect.
    summary = fixture_json(FIRING)["alerts"][0]["annotations"]["summary"].replace("'", "''")
    with store.transaction() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON incidents "
            f"BEGIN SELECT RAISE(ABORT, 'refused: Key (title)=({summary})'); END"
        )
    assert_answers(client, 500, "internal_error", "internal error; it was logged")
    (record, _) = [r for r in caplog.records if r.name == "adapter.web.errors"]
    assert record.levelname == "ERROR"
    first_line = record.getMessage().splitlines()[0]
    assert first_line == "unhandled IntegrityError (SQLITE_CONSTRAINT_TRIGGER) on POST /webhooks/alertmanager"
    assert 'File "' in record.getMessage()  # where it was raised
    assert "refused" not in caplog.text  # the driver's message, which quotes the row
    # Nothing of the body is in the log.
    assert fixture_json(FIRING)["alerts"][0]["annotations"]["summary"] not in caplog.text


def test_a_413_closes_the_connection(make_client):
    client, _ = make_client(max_body_bytes=100)
    response = client.post("/webhooks/alertmanager", data=b"{" + b" " * 200 + b"}", headers=am_headers())
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_events_api_errors_are_in_pagerdutys_format(make_client):
    client, _ = make_client(max_body_bytes=100)
    too_large = enqueue(client, b"{" + b" " * 200 + b"}")
    assert too_large.status_code == 413
    assert too_large.headers["Connection"] == "close"
    assert too_large.get_json() == {
        "status": "invalid event",
        "message": "request body is larger than max_body_bytes (100)",
        "errors": ["request body is larger than max_body_bytes (100)"],
    }
    not_json = enqueue(client, b"x", content_type="text/plain")
    assert not_json.status_code == 415
    assert not_json.get_json() == {
        "status": "invalid event",
        "message": "Content-Type must be application/json",
        "errors": ["got 'text/plain'"],
    }
    wrong_method = client.get("/v2/enqueue")
    assert wrong_method.status_code == 405
    assert set(wrong_method.get_json()) == {"status", "message", "errors"}
