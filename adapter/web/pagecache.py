"""Rendered public responses kept a few seconds per key, rendered once per key however many ask."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Request, Response
from werkzeug.http import generate_etag

from adapter.clock import Clock

# Per worker process. Entries live a few seconds, so this only matters when many distinct pages
# are asked for at once; the oldest then go first.
MAX_BYTES = 32 * 1024 * 1024
# How long after it expires a response may still answer while it is being rendered again.
STALE = timedelta(minutes=1)

T = TypeVar("T")


@dataclass(frozen=True)
class Rendered:
    """A response body, and when what it shows last changed (None: nothing shown has a time)."""

    body: bytes
    mimetype: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class _Entry:
    value: Any
    size: int
    expires: datetime


class PageCache:
    """Values by key, for `ttl` on `clock`, each computed by one thread at a time however many ask.

    Renders take turns, one at a time in the process: a worker's request threads are few, and a
    render keeps one busy for tens of milliseconds, so the others stay free for webhooks. While a
    key is rendered again, or another render runs, those asking for it get the response kept
    before; only when there is none do they wait.
    """

    def __init__(self, clock: Clock, ttl: timedelta, max_bytes: int = MAX_BYTES):
        self.clock = clock
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._size = 0
        self._computing: dict[Hashable, threading.Lock] = {}
        self._render = threading.Lock()

    def keep(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value kept for `key`, else `compute()`d now; such values (not responses) are few,
        and count nothing towards `max_bytes`."""
        return self._get(key, compute, lambda _: 0, exclusive=False)

    def get(self, key: Hashable, render: Callable[[], Rendered]) -> tuple[Rendered, str]:
        """The response for `key` and its ETag: kept, else rendered now, one render at a time."""

        def tagged() -> tuple[Rendered, str]:
            rendered = render()
            return rendered, generate_etag(rendered.body)

        kept: tuple[Rendered, str] = self._get(key, tagged, lambda pair: len(pair[0].body), exclusive=True)
        return kept

    def _get(
        self, key: Hashable, compute: Callable[[], T], size: Callable[[T], int], *, exclusive: bool
    ) -> T:
        with self._lock:
            entry = self._entries.get(key)
            now = self.clock.now()
            if entry is not None and now < entry.expires:
                value: T = entry.value
                return value
            turn = self._computing.get(key)
            busy = turn is not None or (exclusive and self._render.locked())
            if entry is not None and busy and now < entry.expires + STALE:
                value = entry.value  # no waiting while an answer is at hand
                return value
            if turn is None:
                turn = self._computing[key] = threading.Lock()
        with turn:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and self.clock.now() < entry.expires:  # computed meanwhile
                    value = entry.value
                    return value
            try:
                if exclusive:
                    with self._render:
                        value = compute()
                else:
                    value = compute()
                with self._lock:
                    self._keep(key, _Entry(value, size(value), self.clock.now() + self.ttl))
            finally:
                with self._lock:
                    if self._computing.get(key) is turn:
                        del self._computing[key]
        return value

    def _keep(self, key: Hashable, entry: _Entry) -> None:
        if self.ttl <= timedelta(0):
            return
        self._drop(key)
        now = self.clock.now()
        for old in [k for k, e in self._entries.items() if e.expires + STALE <= now]:
            self._drop(old)
        self._entries[key] = entry
        self._size += entry.size
        while self._size > self.max_bytes and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= entry.size

    def response(
        self, key: Hashable, render: Callable[[], Rendered], request: Request, *, private: bool = False
    ) -> Response:
        """The response for `key`, with a strong ETag over its body, Last-Modified and
        Cache-Control; 304 to a request whose If-None-Match (or If-Modified-Since) still holds.

        A private response (a tenant's page) may be kept by the reader's browser, not in between.
        """
        rendered, etag = self.get(key, render)
        response = Response(rendered.body, mimetype=rendered.mimetype)
        response.set_etag(etag)
        if rendered.last_modified is not None:
            response.last_modified = rendered.last_modified
        seconds = int(self.ttl.total_seconds())
        response.headers["Cache-Control"] = f"{'private' if private else 'public'}, max-age={seconds}"
        response.make_conditional(request)
        return response
