"""Time as a dependency, so tests can move it instead of sleeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Let `seconds` pass; return early once `stop` is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        # Whoever waits on this clock moves it instead: the wait is over at once.
        self.advance(timedelta(seconds=seconds))
