"""Who is at the desk: log-in with argon2 passwords, sessions in the store, CSRF tokens, limited attempts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Request
from werkzeug.wrappers import Response as BaseResponse

from adapter.config import DEMO_PASSWORD_HASH, Settings
from adapter.engine.humans import Author
from adapter.store import buckets, sessions
from adapter.web import identity
from adapter.web.services import Services

COOKIE = "dualtrack_desk"
# The log-in form's CSRF token, before there is a session to hold one (double-submit cookie).
LOGIN_COOKIE = "dualtrack_login"
HASHER = PasswordHasher()


@dataclass(frozen=True)
class Visitor:
    """The desk's reader: who they are, and their session's CSRF token."""

    author: Author
    csrf: str


def _signed(settings: Settings, session_id: str) -> str:
    """The cookie's value: the id and its HMAC under auth.session_secret, so a forged cookie costs
    no database read, and a new secret logs everyone out."""
    secret = (settings.auth.session_secret or "").encode()
    return f"{session_id}.{hmac.new(secret, session_id.encode(), hashlib.sha256).hexdigest()[:32]}"


def _session_id(settings: Settings, cookie: str) -> str | None:
    session_id, _, _ = cookie.partition(".")
    if settings.auth.session_secret is None or not session_id:
        return None
    signed = _signed(settings, session_id)
    return session_id if hmac.compare_digest(signed.encode(), cookie.encode()) else None


def visitor(svc: Services, request: Request) -> Visitor | None:
    """The logged-in user (their role read from the config now), or the one a trusted proxy names."""
    settings = svc.settings
    session_id = _session_id(settings, request.cookies.get(COOKIE, ""))
    session = None
    if session_id is not None:
        with svc.store.read() as conn:
            session = sessions.find(conn, session_id, svc.clock.now())
    proxied = identity.proxied_author(request, settings)
    if proxied is not None:
        if session is not None and session.user == proxied.name:
            return Visitor(proxied, session.csrf)
        return None  # the desk starts a session for them (see `start_proxied`)
    if session is None:
        return None
    user = next((u for u in settings.users if u.name == session.user), None)
    if user is None:  # removed from the config since
        return None
    return Visitor(Author(user.name, user.role, user.team), session.csrf)


def check_password(settings: Settings, name: str, password: str) -> Author | None:
    """The user if the password is theirs; an unknown name costs the same time as a wrong password."""
    user = next((u for u in settings.users if hmac.compare_digest(u.name.encode(), name.encode())), None)
    try:
        HASHER.verify(user.password_hash if user else DEMO_PASSWORD_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return Author(user.name, user.role, user.team) if user else None


def attempts_left(svc: Services, address: str, name: str) -> float:
    """Take one log-in attempt for the address and the user name: 0 if allowed, else the seconds
    until one is (auth.login_attempts per auth.login_window each)."""
    auth = svc.settings.auth
    rate = auth.login_attempts / auth.login_window.total_seconds()
    now = svc.clock.now()
    with svc.store.transaction() as conn:
        waits = [
            buckets.take(conn, key, rate, auth.login_attempts, now)
            for key in (f"login:address:{address}", f"login:user:{name.lower()[:64]}")
        ]
    return max(waits)


def start(svc: Services, response: BaseResponse, name: str, secure: bool) -> None:
    """A new session for `name` (a new id at every log-in), its cookie on the response."""
    settings = svc.settings
    now = svc.clock.now()
    with svc.store.transaction() as conn:
        session_id, _ = sessions.create(conn, name, now, now + settings.auth.session_lifetime)
    response.set_cookie(
        COOKIE,
        _signed(settings, session_id),
        max_age=int(settings.auth.session_lifetime.total_seconds()),
        path="/desk",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/desk")


def end(svc: Services, request: Request, response: BaseResponse) -> None:
    session_id = _session_id(svc.settings, request.cookies.get(COOKIE, ""))
    if session_id is not None:
        with svc.store.transaction() as conn:
            sessions.end(conn, session_id)
    response.delete_cookie(COOKIE, path="/desk")


def login_token(request: Request) -> str:
    """The log-in form's CSRF token: the one in its cookie, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_token(response: BaseResponse, token: str, secure: bool) -> None:
    response.set_cookie(LOGIN_COOKIE, token, path="/desk", secure=secure, httponly=True, samesite="Strict")


def csrf_ok(expected: str | None, given: str | None) -> bool:
    # Bytes: compare_digest refuses str with non-ASCII characters, which anyone can send.
    return bool(expected and given) and hmac.compare_digest(str(expected).encode(), str(given).encode())
