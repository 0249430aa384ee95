"""The gunicorn worker `dualtrack serve` runs: gthread, with the house's HTTP edges."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.workers.gthread import ThreadWorker

from adapter.web.errors import error_json

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Requests gunicorn refuses before the app sees them: (exception, status, reason, code).
_REFUSED = [
    (http.LimitRequestLine, 414, "URI Too Long", "uri_too_long"),
    (http.LimitRequestHeaders, 431, "Request Header Fields Too Large", "header_fields_too_large"),
    # Malformed HTTP, in gunicorn's older names; newer kinds keep gunicorn's own answer.
    (
        (
            http.InvalidRequestLine,
            http.InvalidRequestMethod,
            http.InvalidHTTPVersion,
            http.InvalidHeader,
            http.InvalidHeaderName,
            http.InvalidChunkSize,
            http.ChunkMissingTerminator,
        ),
        400,
        "Bad Request",
        "bad_request",
    ),
]


class Worker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's gthread worker, except that

    - what gunicorn refuses itself (an over-long request line, too many headers, most malformed
      HTTP) is answered in the house JSON format instead of HTML;
    - a chunked body is read up to `max_body_bytes` + 1 before the app runs, so that the app
      sees its length: Werkzeug would otherwise cut it at the limit and parse what it read;
    - a response carrying `Connection: close` (a 413) closes the connection: gunicorn drops
      that header and would keep the connection alive behind the unread body.
    """

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi
        app.wsgi_app = _http_edges(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        refused = next((entry for entry in _REFUSED if isinstance(exc, entry[0])), None)
        if refused is None:
            super().handle_error(req, client, addr, exc)
            return
        _, status, reason, code = refused
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        body = error_json(code, _message(status, self.cfg), [{"message": str(exc)}])
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:
            self.log.debug("Failed to send error message.")


def _message(status: int, cfg: Any) -> str:
    if status == 414:
        return f"the request line is longer than {cfg.limit_request_line} bytes"
    if status == 431:
        return (
            f"more than {cfg.limit_request_fields} header fields, "
            f"or one longer than {cfg.limit_request_field_size} bytes"
        )
    return "malformed HTTP request"


def _http_edges(app: WsgiApp, max_body_bytes: int) -> WsgiApp:
    def edges(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("CONTENT_LENGTH") and environ.get("HTTP_TRANSFER_ENCODING"):
            # One byte past the limit is enough to know it is over: the app then answers 413.
            # Werkzeug ignores Content-Length beside Transfer-Encoding: the body is no longer
            # chunked once read, so it goes.
            body = environ["wsgi.input"].read(max_body_bytes + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
                # start_response is bound to gunicorn's Response for this request.
                start_response.__self__.force_close()  # type: ignore[attr-defined]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return edges
