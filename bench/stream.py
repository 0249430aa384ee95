"""A stream of realistic Alertmanager notifications, new groups and resolves, for page and load benchmarks."""

from __future__ import annotations

import random
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest import ALERTS, SERVICES, SEVERITIES, firing_alert, group_key, group_notification  # noqa: E402


@dataclass
class Group:
    number: int
    key: str
    group_labels: dict[str, str]
    alerts: list[dict[str, Any]]
    refs: list[str] = field(default_factory=list)

    def notification(self, resolved: bool) -> bytes:
        return group_notification(
            self.alerts, self.group_labels, self.key, timedelta(minutes=7) if resolved else None
        )


class Stream:
    """Distinct groups (1-3 alerts each); about a third of the sends resolve an earlier group."""

    def __init__(self, seed: int, resolve_share: float = 0.3):
        self.random = random.Random(seed)
        self.resolve_share = resolve_share
        self.lock = threading.Lock()
        self.count = 0
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self.confirmed: deque[Group] = deque()

    def _new_group(self) -> Group:
        self.count += 1
        n, rnd = self.count, self.random
        alertname, summary = rnd.choice(ALERTS)
        service = rnd.choice(SERVICES)[0] if rnd.random() > 0.05 else f"legacy-{n % 7}"
        cluster = f"k8s-eu-{n:06d}"
        severity = rnd.choice(SEVERITIES)
        group_labels = {"alertname": alertname, "cluster": cluster, "service": service}
        starts = self.base + timedelta(milliseconds=n * 37)
        alerts = [
            firing_alert(
                group_labels,
                instance=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}:{9100 + i}",
                severity=severity,
                summary=summary,
                starts_at=starts + timedelta(microseconds=i * 1013 + 1),
            )
            for i in range(rnd.randint(1, 3))
        ]
        return Group(n, group_key(group_labels), group_labels, alerts)

    def next(self) -> tuple[Group, bool]:
        """(group, resolved?) for the next request."""
        with self.lock:
            if self.confirmed and self.random.random() < self.resolve_share:
                return self.confirmed.popleft(), True
            return self._new_group(), False

    def confirm(self, group: Group) -> None:
        with self.lock:
            self.confirmed.append(group)
