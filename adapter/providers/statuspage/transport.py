"""Statuspage's REST API for one page: the OAuth key, JSON both ways, paginated lists, the rate limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from adapter.providers.base import DeliveryError

# 1 request per second per API key, or 420 with Retry-After: (rate, burst) of the shared bucket.
RATE_LIMIT = (1.0, 1)
PER_PAGE = 100
# Statuspage allows 1 100 components per page; incident lists are read at most this many pages deep.
MAX_PAGES = 11

# The provider's own request(): rate-limited and measured by its hooks, keys masked in errors.
Request = Callable[..., requests.Response]


class Api:
    """Requests under {api_url}/pages/{page_id}; failures and answers that are not JSON: DeliveryError."""

    def __init__(self, name: str, api_url: str, page_id: str, api_key: str, request: Request):
        self.name = name
        self.base = f"{api_url}/pages/{page_id}"
        self.api_key = api_key
        self.request = request

    def call(
        self,
        method: str,
        *path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        url = "/".join((self.base, *path))
        what = f"statuspage {self.name}: {method} /{'/'.join(path)}"
        headers = {
            "Authorization": f"OAuth {self.api_key}",
            "Accept": "application/json",
            "User-Agent": "dualtrack",
        }
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        response = self.request(method, url, what=what, headers=headers, params=params, data=data)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise DeliveryError(f"{what}: the answer is not JSON") from None

    def listing(self, *path: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a 1-based `page`/`per_page` list."""
        rows: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self.call("GET", *path, params={**params, "page": page, "per_page": PER_PAGE})
            if not isinstance(batch, list):
                raise DeliveryError(f"statuspage {self.name}: GET /{'/'.join(path)}: expected a list")
            rows.extend(r for r in batch if isinstance(r, dict))
            if len(batch) < PER_PAGE:
                break
        return rows
