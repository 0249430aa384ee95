"""JSON errors `{"error": {"code", "message", "details"}}` for every failure, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

from flask import Flask, Request, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from adapter.sources.signal import PayloadError
from adapter.store.db import is_outage, reason

log = logging.getLogger(__name__)
# PagerDuty's Events API v2: its senders read errors in PagerDuty's format (see `events_api_error`).
EVENTS_API_PATH = "/v2/enqueue"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def invalid_payload(exc: PayloadError) -> ApiError:
    """A 422 naming the fields of a body that is JSON but not a valid payload."""
    return ApiError(422, "invalid_payload", str(exc), exc.details)


def error_json(code: str, message: str, details: Any = None) -> bytes:
    """The house error body."""
    body = {"error": {"code": code, "message": message, "details": details if details is not None else []}}
    return json.dumps(body).encode()


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    response = Response(error_json(code, message, details), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="dualtrack"'
    return response


def events_api_error(status: int, message: str, errors: list[str]) -> Response:
    """An error as PagerDuty's Events API v2 answers it: `{"status", "message", "errors"}`."""
    body = {"status": "invalid event" if status < 500 else "error", "message": message, "errors": errors}
    return Response(json.dumps(body), status=status, mimetype="application/json")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_payload",
}


def _answer(status: int, code: str, message: str, details: Any = None) -> Response:
    if request.path == EVENTS_API_PATH:
        listed = [d["message"] for d in details or [] if isinstance(d, dict) and "message" in d]
        response = events_api_error(status, message, listed or [message])
    else:
        response = error_response(status, code, message, details)
    if status == 413:
        # The body was not read to its end: what is left of it must never be taken for the next
        # request on this connection (`dualtrack serve` closes it when it sees this header).
        response.headers["Connection"] = "close"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _answer(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body is larger than max_body_bytes ({app.config['MAX_CONTENT_LENGTH']})"
        return _answer(status, _HTTP_CODES.get(status, "http_error"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if is_outage(exc):
            # 503: the sender retries, and nothing was acknowledged. The driver's reason only:
            # no SQL, no parameters, no body.
            log.warning("database unavailable: %s %s: %s", request.method, request.path, reason(exc))
            return _answer(503, "unavailable", "the database is unavailable; retry later")
        if isinstance(exc, DBAPIError):
            # The driver's message can quote row values (PostgreSQL's "DETAIL: Key (…)=(…)"), and
            # alert text is customer data: the error's code and where it was raised, not its text.
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
            where = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "unhandled %s (%s) on %s %s\n%s",
                type(exc).__name__,
                code,
                request.method,
                request.path,
                where,
            )
        else:
            log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=exc)
        return _answer(500, "internal_error", "internal error; it was logged")


def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON, or an ApiError with the right 4xx."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body is larger than max_body_bytes ({max_bytes})")
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json",
            [{"field": "Content-Type", "message": f"got {request.mimetype or 'none'!r}"}],
        )
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body is larger than max_body_bytes ({max_bytes})")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = getattr(exc, "pos", None)
        raise ApiError(
            400,
            "malformed_json",
            "request body is not valid JSON",
            [{"field": "(body)", "message": str(exc).split(":")[0], "position": position}],
        ) from None
    except RecursionError:
        # Arrays or objects nested about a thousand deep: no real payload comes near.
        raise ApiError(
            400,
            "malformed_json",
            "request body is nested too deeply",
            [{"field": "(body)", "message": "arrays and objects nested too deeply"}],
        ) from None
    except ValueError:
        # The only other ValueError json.loads raises: an integer past Python's digit limit.
        raise ApiError(
            400,
            "malformed_json",
            "request body holds a number too long to read",
            [{"field": "(body)", "message": f"integers have at most {sys.get_int_max_str_digits()} digits"}],
        ) from None
