"""A stoppable background thread that repeats one pass, waiting between idle passes."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Subclasses implement run_once() -> int (work done) and may override idle()."""

    name = "dualtrack-loop"
    # Wait between passes even after one that did work: the clock, not the backlog, sets the pace.
    paced = False

    def __init__(self, stop: threading.Event | None = None) -> None:
        # Loops that stop together (one per provider, say) share one event.
        self._stop = stop or threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        raise NotImplementedError

    def idle(self) -> None:
        """Wait before the next pass when the last one found nothing to do."""
        self._wake.wait(1.0)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("%s pass failed", self.name)
                worked = 0
            if (self.paced or not worked) and not self._stop.is_set():
                self.idle()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the pass in progress finish, then return."""
        self._stop.set()
        self._wake.set()
        self.join(timeout)

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after its stop event was set)."""
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
