"""Signed links in customer notices ("Was this update helpful?", technical details), per notice and reader."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

KINDS = ("yes", "no", "details")


class BadToken(ValueError):
    """A link that was not made here, was changed, or has expired."""


@dataclass(frozen=True)
class Link:
    """What a signed link stands for: an answer or a detail request, about one notice, by one reader."""

    kind: str  # yes | no | details
    notice_id: int
    tenant: str | None
    expires: datetime


@dataclass(frozen=True)
class Links:
    """A notice's links, as providers put them in what they send."""

    yes: str
    no: str
    details: str | None  # business notices only: their technical version

    def text(self) -> str:
        """The lines a text body ends with."""
        lines = [f"Was this update helpful? Yes: {self.yes} · No: {self.no}"]
        if self.details:
            lines.append(f"Technical details: {self.details}")
        return "\n".join(lines)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:18])


def sign(secret: str, link: Link) -> str:
    body = [link.kind, link.notice_id, link.tenant, int(link.expires.timestamp())]
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_signature(secret, payload)}"


def read(secret: str, token: str, now: datetime) -> Link:
    """The link a token stands for; BadToken if it is forged, changed or expired."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(_signature(secret, payload).encode(), signature.encode()):
        raise BadToken("this link is not one of ours, or it was changed")
    try:
        kind, notice_id, tenant, expires = json.loads(_unb64(payload))
        moment = datetime.fromtimestamp(int(expires), tz=now.tzinfo)
    except (ValueError, TypeError, OverflowError):
        raise BadToken("this link is not one of ours") from None
    if kind not in KINDS or not isinstance(notice_id, int) or not (tenant is None or isinstance(tenant, str)):
        raise BadToken("this link is not one of ours")
    if moment <= now:
        raise BadToken("this link has expired")
    return Link(kind, notice_id, tenant, moment)


def links(
    secret: str,
    base_url: str,
    notice_id: int,
    tenant: str | None,
    audience: str,
    now: datetime,
    ttl: timedelta,
) -> Links:
    """A notice's signed links under `base_url` (the server's public URL)."""
    expires = now + ttl

    def url(kind: str) -> str:
        prefix = "details" if kind == "details" else "feedback"
        return f"{base_url.rstrip('/')}/{prefix}/{sign(secret, Link(kind, notice_id, tenant, expires))}"

    return Links(url("yes"), url("no"), url("details") if audience == "business" else None)


@dataclass(frozen=True)
class LinkMaker:
    """Makes each customer notice's links as it goes out (`feedback` settings; none without a secret)."""

    secret: str
    base_url: str
    ttl: timedelta
    phases: frozenset[str]  # the customer-facing ones: the team's own notices carry no links

    def for_notice(
        self, notice_id: int, phase: str, audience: str, tenant: str | None, now: datetime
    ) -> Links | None:
        if phase not in self.phases:
            return None
        return links(self.secret, self.base_url, notice_id, tenant, audience, now, self.ttl)
