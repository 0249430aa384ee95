"""Webhook signature checks: PagerDuty V3 `X-PagerDuty-Signature` (HMAC-SHA256 over the raw body)."""

from __future__ import annotations

import hashlib
import hmac

_PAGERDUTY_VERSION = "v1="


def _pagerduty_hex(secret: str, raw_body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def sign_pagerduty(secret: str, raw_body: bytes) -> str:
    """The header value PagerDuty would send for this body and secret: `v1=<hex>`."""
    return _PAGERDUTY_VERSION + _pagerduty_hex(secret, raw_body)


def pagerduty_signature_valid(raw_body: bytes, header: str | None, secrets: list[str]) -> bool:
    """True if any `v1=` entry of the header matches HMAC-SHA256(secret, raw_body) for any secret.

    Several entries appear while PagerDuty rotates a secret; other version prefixes are ignored.
    Empty secrets are skipped: anyone could compute a signature with an empty key.
    """
    if not header:
        return False
    candidates = [
        entry.strip()[len(_PAGERDUTY_VERSION) :].encode("utf-8")
        for entry in header.split(",")
        if entry.strip().startswith(_PAGERDUTY_VERSION)
    ]
    expected = [_pagerduty_hex(secret, raw_body).encode("ascii") for secret in secrets if secret]
    if not candidates or not expected:
        return False
    matched = False
    for want in expected:
        for given in candidates:
            # No early exit, so timing does not reveal which secret or entry matched.
            matched |= hmac.compare_digest(want, given)
    return matched
