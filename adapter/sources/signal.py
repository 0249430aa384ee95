"""The normalized alert event every source parses into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SignalStatus = Literal["firing", "resolved"]


class PayloadError(ValueError):
    """A body that is JSON but not a valid payload; `details` name the fields."""

    def __init__(
        self, message: str, details: list[dict[str, Any]], *, source: str = "", rejected_alerts: int = 0
    ):
        super().__init__(message)
        self.details = details
        # A group whose every alert is invalid: the alerts read and rejected, for the signals metric.
        self.source = source
        self.rejected_alerts = rejected_alerts


@dataclass(frozen=True)
class Signal:
    source: str
    fingerprint: str
    status: SignalStatus
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    group_key: str
    generator_url: str = ""
    # Named links a human can follow: runbook, dashboard, panel, silence, source.
    links: dict[str, str] = field(default_factory=dict)
    # "instance": fingerprint + startsAt name one firing (Alertmanager); "open": the fingerprint
    # alone names the alert while it fires (PagerDuty incidents, Events API dedup keys).
    identity: str = "instance"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def summary(self) -> str:
        return (
            self.annotations.get("summary")
            or self.annotations.get("title")
            or self.annotations.get("description")
            or self.name
        )


@dataclass(frozen=True)
class Batch:
    """What one inbound request said: its signals, or that it was a test to acknowledge only."""

    source: str
    group_key: str
    signals: list[Signal]
    test: bool = False
    # The body's invalid alerts, one entry per problem: {"index", "field", "message"}.
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_alerts(self) -> int:
        return len({r["index"] for r in self.rejected})
