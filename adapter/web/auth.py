"""The API's and ops endpoints' Bearer tokens: a 401 unless the request carries one."""

from __future__ import annotations

from flask import Request

from adapter.sources.credentials import authorization_refused
from adapter.web.errors import ApiError


def require(request: Request, bearer_tokens: list[str]) -> None:
    refused = authorization_refused(request.headers.get("Authorization", ""), bearer_tokens)
    if refused:
        raise ApiError(401, "unauthorized", refused)
