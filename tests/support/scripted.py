"""A real local HTTP server that answers from a script: status, headers and delay per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def write_reply(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
) -> bool:
    """Answer one request; False when the client had already gone."""
    try:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    # Hold the answer this long (at most until the server stops): past a client's timeout, a hang.
    delay: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted Reply; the last one repeats.

    `on_request`, when set, is called with each request before it is answered.
    """

    def __init__(self, *replies: Reply):
        self.replies = list(replies) or [Reply()]
        self.requests: list[Request] = []
        self.on_request: Callable[[Request], None] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Request(self.command, self.path, dict(self.headers), body)
                with server._lock:
                    server.requests.append(request)
                    reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                if server.on_request is not None:
                    server.on_request(request)
                if reply.delay:
                    server._stopping.wait(reply.delay)
                write_reply(self, reply.status, reply.headers, reply.body)

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
