"""Prometheus-style durations (`30s`, `1h30m`, `2d`) parsed into timedelta."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; raise ValueError with a readable message otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a duration such as 30s, 15m or 2h")
    if text == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    last_rank = -1
    for match in _PART.finditer(text):
        rank = _ORDER.index(match.group(2))
        # Like Prometheus: each unit at most once, largest first.
        if match.start() != pos or rank <= last_rank:
            pos = -1
            break
        last_rank = rank
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m or 2h")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Format as `2h30m` (the inverse of parse_duration, to whole seconds)."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
