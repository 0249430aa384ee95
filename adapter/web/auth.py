"""Bearer and Basic credentials, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from flask import Request

from adapter.config import BasicAuthUser
from adapter.web.errors import ApiError


def matches_any(given: str, secrets: Iterable[str]) -> bool:
    found = False
    for secret in secrets:
        # Compare against every secret so timing says nothing about which one matched.
        found |= hmac.compare_digest(given.encode(), secret.encode())
    return found


def _credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower(), value.strip()


def require(
    request: Request,
    bearer_tokens: list[str],
    basic_users: list[BasicAuthUser] | None = None,
) -> None:
    """Raise 401 unless the request carries one of the configured credentials."""
    scheme, value = _credentials(request)
    if scheme == "bearer" and value and matches_any(value, bearer_tokens):
        return
    if scheme == "basic" and value and basic_users:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        wanted = [f"{u.username}:{u.password}" for u in basic_users]
        if user and matches_any(f"{user}:{password}", wanted):
            return
    if not scheme:
        raise ApiError(401, "unauthorized", "missing credentials (Authorization header)")
    raise ApiError(401, "unauthorized", "invalid credentials")
