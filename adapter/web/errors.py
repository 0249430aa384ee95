"""JSON errors `{"error": {"code", "message", "details"}}` for every failure, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from flask import Flask, Request, Response
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details if details is not None else [],
        }
    }
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="dualtrack"'
    return response


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


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body is larger than max_body_bytes ({app.config['MAX_CONTENT_LENGTH']})"
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # 503, not 500: the sender retries, and nothing was acknowledged.
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(503, "unavailable", "temporary failure; retry later")


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
