"""Statuspage's e-mail subscribers, as `dualtrack subscribers sync` needs them: list, add, change, remove."""

from __future__ import annotations

import json
from typing import Any

from adapter.providers.statuspage.transport import Api

# The subscriber list is 0-based, `limit` at most 100 (incident and component lists are 1-based).
PER_PAGE = 100
MAX_PAGES = 1000


def email_subscribers(api: Api) -> list[dict[str, Any]]:
    """Every e-mail subscriber of the page, in any state."""
    rows: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        params = {"type": "email", "state": "all", "page": page, "limit": PER_PAGE}
        batch = api.call("GET", "subscribers", params=params) or []
        rows.extend(r for r in batch if isinstance(r, dict))
        if len(batch) < PER_PAGE:
            break
    return rows


def subscribed_components(subscriber: dict[str, Any]) -> tuple[str, ...]:
    """A subscriber's component ids (the spec types the field as a string; the API sends a list)."""
    value = subscriber.get("components")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        return ()
    ids = (c.get("id") if isinstance(c, dict) else c for c in value)
    return tuple(sorted({str(c) for c in ids if c}))


def subscribe(api: Api, email: str, component_ids: tuple[str, ...]) -> None:
    """Subscribe without the confirmation e-mail: the address comes from the catalog, not a stranger."""
    subscriber = {
        "email": email,
        "component_ids": list(component_ids),
        "skip_confirmation_notification": True,
    }
    api.call("POST", "subscribers", body={"subscriber": subscriber})


def set_components(api: Api, subscriber_id: str, component_ids: tuple[str, ...]) -> None:
    api.call("PATCH", "subscribers", subscriber_id, body={"component_ids": list(component_ids)})


def unsubscribe(api: Api, subscriber_id: str) -> None:
    api.call("DELETE", "subscribers", subscriber_id)
