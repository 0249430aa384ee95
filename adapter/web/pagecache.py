"""Rendered public responses kept a few seconds per key, rendered once per key however many ask."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Request, Response
from werkzeug.http import generate_etag

from adapter.clock import Clock

# Per worker process. Entries live a few seconds, so this only matters when many distinct pages
# are asked for at once; the oldest then go first.
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Rendered:
    """A response body, and when what it shows last changed (None: nothing shown has a time)."""

    body: bytes
    mimetype: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class _Entry:
    rendered: Rendered
    etag: str
    expires: datetime


class PageCache:
    """Responses by key, for `ttl` on `clock`; while one thread renders a key, others asking for
    it wait for that render instead of starting their own."""

    def __init__(self, clock: Clock, ttl: timedelta, max_bytes: int = MAX_BYTES):
        self.clock = clock
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._size = 0
        self._rendering: dict[Hashable, threading.Lock] = {}

    def _fresh(self, key: Hashable) -> _Entry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and self.clock.now() < entry.expires else None

    def get(self, key: Hashable, render: Callable[[], Rendered]) -> tuple[Rendered, str]:
        """The response for `key` and its ETag: kept, else rendered now (once, for all who wait)."""
        with self._lock:
            entry = self._fresh(key)
            if entry is not None:
                return entry.rendered, entry.etag
            turn = self._rendering.setdefault(key, threading.Lock())
        with turn:
            with self._lock:
                entry = self._fresh(key)
            if entry is not None:  # rendered while this thread waited its turn
                return entry.rendered, entry.etag
            try:
                rendered = render()
                entry = _Entry(rendered, generate_etag(rendered.body), self.clock.now() + self.ttl)
                with self._lock:
                    self._keep(key, entry)
            finally:
                with self._lock:
                    if self._rendering.get(key) is turn:
                        del self._rendering[key]
        return entry.rendered, entry.etag

    def _keep(self, key: Hashable, entry: _Entry) -> None:
        if self.ttl <= timedelta(0):
            return
        self._drop(key)
        now = self.clock.now()
        for old in [k for k, e in self._entries.items() if e.expires <= now]:
            self._drop(old)
        self._entries[key] = entry
        self._size += len(entry.rendered.body)
        while self._size > self.max_bytes and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= len(entry.rendered.body)

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
