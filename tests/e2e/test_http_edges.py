"""`dualtrack serve` at the edges of HTTP and of its database: JSON for what gunicorn refuses, an
honest 413, no chunked body cut and parsed, /-/ready never behind the write lock, and 503 (never
202) once the SQLite file is removed or corrupted under it."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.server import AM_TOKEN, Dualtrack, free_port, webhook_body

pytestmark = pytest.mark.e2e

# What a read may wait for on the client side: far above the server's own second.
CLIENT_TIMEOUT = 15
MAX_BODY = 2000


def serve(dualtrack_factory: Any, *, workers: int = 2, max_body_bytes: int = 1_048_576) -> Dualtrack:
    port = free_port()
    server = {
        "bind": f"127.0.0.1:{port}",
        "public_url": f"http://127.0.0.1:{port}",
        "max_body_bytes": max_body_bytes,
    }
    dualtrack: Dualtrack = dualtrack_factory(port=port, workers=workers, extra={"server": server})
    return dualtrack.start()


def exchange(port: int, *requests_: bytes) -> bytes:
    """Send raw bytes on one connection and read until the server closes it (or goes quiet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        for request in requests_:
            sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            received += b"<no close>"
        return received


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) of each response in `raw`, framed by Content-Length."""
    found = []
    while raw.startswith(b"HTTP/1.1 "):
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        found.append((int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    assert raw in (b"", b"<no close>"), raw[:200]
    return found


def alertmanager_post(body: bytes, *, chunked: bool = False) -> bytes:
    head = (
        "POST /webhooks/alertmanager HTTP/1.1\r\nHost: dualtrack\r\n"
        f"Authorization: Bearer {AM_TOKEN}\r\nContent-Type: application/json\r\n"
    )
    if not chunked:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700)
    )
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"


def firing(service: str = "checkout", instance: str = "10.0.0.1:8080") -> bytes:
    body = webhook_body({"alertname": f"Down-{instance}", "service": service}, [{"instance": instance}])
    return json.dumps(body).encode()


def test_what_gunicorn_refuses_is_answered_in_json(dualtrack_factory):
    dualtrack = serve(dualtrack_factory)
    long_line = b"GET /status?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: dualtrack\r\n\r\n"
    ((status, headers, body),) = responses(exchange(dualtrack.port, long_line))
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "uri_too_long"
    assert json.loads(body)["error"]["message"] == "the request line is longer than 4094 bytes"

    many_headers = b"GET /-/healthy HTTP/1.1\r\nHost: dualtrack\r\n" + b"".join(
        b"X-Filler-%d: x\r\n" % i for i in range(120)
    )
    ((status, headers, body),) = responses(exchange(dualtrack.port, many_headers + b"\r\n"))
    assert status == 431
    assert json.loads(body)["error"]["code"] == "header_fields_too_large"

    ((status, _, body),) = responses(
        exchange(dualtrack.port, b"GET /-/healthy HTTP/1.1\r\nHost dualtrack\r\n\r\n")
    )
    assert status == 400
    assert set(json.loads(body)["error"]) == {"code", "message", "details"}


def test_a_413_closes_the_kept_alive_connection(dualtrack_factory):
    dualtrack = serve(dualtrack_factory, max_body_bytes=MAX_BODY)
    # The body over the limit is itself a request: it must never be read and answered as one.
    smuggled = b"GET /-/healthy HTTP/1.1\r\nHost: dualtrack\r\n\r\n"
    over = smuggled + b" " * (MAX_BODY + 1 - len(smuggled))
    raw = exchange(
        dualtrack.port,
        b"GET /-/healthy HTTP/1.1\r\nHost: dualtrack\r\n\r\n",
        alertmanager_post(over),
        smuggled,
    )
    (healthy, too_large) = responses(raw)
    assert healthy[0] == 200
    assert healthy[1]["connection"] == "keep-alive"
    assert too_large[0] == 413
    assert too_large[1]["connection"] == "close"
    assert json.loads(too_large[2])["error"]["code"] == "payload_too_large"
    assert not raw.endswith(b"<no close>")


def test_a_chunked_body_over_the_limit_is_413_never_cut_and_parsed(dualtrack_factory):
    dualtrack = serve(dualtrack_factory, max_body_bytes=MAX_BODY)
    valid = firing()
    # Cut at the limit, what is left would be valid JSON (and a valid notification) on its own.
    just_over = valid.ljust(MAX_BODY) + b"{}"
    ((status, headers, body),) = responses(
        exchange(dualtrack.port, alertmanager_post(just_over, chunked=True))
    )
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert dualtrack.incidents() == []

    # At the limit exactly, a chunked body is read and accepted like any other.
    response = requests.post(
        f"{dualtrack.url}/webhooks/alertmanager",
        data=iter([valid.ljust(MAX_BODY)[:700], valid.ljust(MAX_BODY)[700:]]),  # requests sends chunks
        headers={"Authorization": f"Bearer {AM_TOKEN}", "Content-Type": "application/json"},
        timeout=CLIENT_TIMEOUT,
    )
    assert response.status_code == 202, response.text
    assert len(dualtrack.incidents()) == 1


def test_ready_answers_while_another_process_holds_the_write_lock(dualtrack_factory):
    dualtrack = serve(dualtrack_factory)
    writer = sqlite3.connect(dualtrack.config.parent / "dualtrack.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM alembic_version WHERE version_num = 'none'")
        response = requests.get(f"{dualtrack.url}/-/ready", timeout=CLIENT_TIMEOUT)
    finally:
        writer.close()
    assert response.status_code == 200


def test_database_removed_while_running_answers_503(dualtrack_factory):
    dualtrack = serve(dualtrack_factory)
    assert dualtrack.post_alertmanager(firing()).status_code == 202
    (dualtrack.config.parent / "dualtrack.db").unlink()
    for instance in ("10.0.0.2:8080", "10.0.0.3:8080"):
        response = dualtrack.post_alertmanager(firing("mysql-shared", instance))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
    assert requests.get(f"{dualtrack.url}/-/ready", timeout=CLIENT_TIMEOUT).status_code == 503


def corrupt(database: Path) -> None:
    """Overwrite every page but the first (the header and the schema's root)."""
    size = database.stat().st_size
    assert size > 8192
    with database.open("r+b") as file:
        file.seek(4096)
        file.write((b"corrupt!" * (size // 8))[: size - 4096])


def test_database_corrupted_while_running_answers_503_and_a_restart_is_refused(dualtrack_factory):
    # One worker: what one process has seen of the file holds for every request.
    dualtrack = serve(dualtrack_factory, workers=1)
    assert dualtrack.post_alertmanager(firing()).status_code == 202
    database = dualtrack.config.parent / "dualtrack.db"
    corrupt(database)

    ready = requests.get(f"{dualtrack.url}/-/ready", timeout=CLIENT_TIMEOUT)
    assert ready.status_code == 503
    for instance in ("10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080"):
        response = dualtrack.post_alertmanager(firing("mysql-shared", instance))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
    dualtrack.stop()

    dualtrack.process.start()
    assert dualtrack.process.proc is not None
    assert dualtrack.process.proc.wait(timeout=60) == 1
    (line,) = dualtrack.process.stderr_path.read_text().splitlines()
    assert line.startswith(f"dualtrack: cannot use the database: {database}: the database is corrupted")
    assert line.endswith("; restore it from a backup, or move it away to start with an empty one")
