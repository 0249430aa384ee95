"""Bearer and Basic credentials and shared keys, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from adapter.config import BasicAuthUser


def matches_any(given: str, secrets: Iterable[str]) -> bool:
    found = False
    for secret in secrets:
        # Compare against every secret so timing says nothing about which one matched.
        found |= hmac.compare_digest(given.encode(), secret.encode())
    return found


def authorization_refused(
    header: str, bearer_tokens: list[str], basic_users: list[BasicAuthUser] | None = None
) -> str | None:
    """Why an `Authorization` header carries none of the configured credentials, or None if it does."""
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value and matches_any(value, bearer_tokens):
        return None
    if scheme == "basic" and value and basic_users:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        wanted = [f"{u.username}:{u.password}" for u in basic_users]
        if user and matches_any(f"{user}:{password}", wanted):
            return None
    if not scheme:
        return "missing credentials (Authorization header)"
    return "invalid credentials"
