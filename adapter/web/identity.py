"""Who is asking, and whether their role allows it: a named API token, or a user a trusted proxy names."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Request

from adapter.config import ROLES, Role, Settings
from adapter.engine.humans import Author
from adapter.web.errors import ApiError


def api_author(request: Request, settings: Settings) -> Author:
    """The author a Bearer API token names; a 401 without a valid one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        # Every token is compared, so timing says nothing about which one matched.
        matched = [t for t in settings.api.named() if hmac.compare_digest(value.encode(), t.token.encode())]
        if matched:
            return Author(matched[0].name, matched[0].role)
    raise ApiError(
        401, "unauthorized", "invalid credentials" if scheme else "missing credentials (Authorization header)"
    )


def require(author: Author, role: Role) -> None:
    """A 403 unless the author's role includes `role`."""
    if not author.may(role):
        raise ApiError(403, "forbidden", f"{author.name} has the {author.role} role; this needs {role}")


def proxied_author(request: Request, settings: Settings) -> Author | None:
    """The user named in auth.trusted_header, when the request comes from a trusted proxy; their
    role is the highest their groups map to, else auth.default_role (None: no role, refused)."""
    auth = settings.auth
    name = request.headers.get(auth.trusted_header, "").strip() if auth.trusted_header else ""
    if not name or not _trusted(request.remote_addr, auth.trusted_proxies):
        return None
    groups = {g.strip() for g in request.headers.get(auth.groups_header, "").split(",")}
    roles = [role for group, role in auth.group_roles.items() if group in groups]
    role = max(roles, key=ROLES.index) if roles else auth.default_role
    if role is None:
        return None
    known = next((u for u in settings.users if u.name == name), None)
    return Author(name[:128], role, known.team if known else None)


def _trusted(address: str | None, networks: list[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
