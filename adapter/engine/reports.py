"""The communication report: deadlines kept, deliveries made, and what readers said, by segment."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from statistics import quantiles
from typing import Any

from adapter.config import Settings
from adapter.store.records import Answer, DetailRequest, NoticeFacts

# The dimensions every figure is given by.
Key = tuple[str, str, int, str, str]  # audience, segment, level, incident type, provider


@dataclass
class Figure:
    """Who a figure is about: audience, the reader's segment, level, incident type, provider."""

    audience: str
    segment: str
    level: int
    incident_type: str
    provider: str


@dataclass
class Share(Figure):
    """A count of good out of all."""

    good: int = 0
    total: int = 0
    incidents: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.good / self.total, 1) if self.total else None

    def add(self, good: bool, ref: str) -> None:
        self.good += good
        self.total += 1
        if ref not in self.incidents:
            self.incidents.append(ref)

    def json(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


@dataclass
class Feedback(Figure):
    """Readers' answers and comments."""

    helpful: int = 0
    not_helpful: int = 0
    comments: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        answered = self.helpful + self.not_helpful
        share = round(100.0 * self.helpful / answered, 1) if answered else None
        return {**asdict(self), "answers": answered, "helpful_percent": share}


@dataclass
class Latency(Figure):
    """Deliveries that got through or were given up, and how long they took."""

    delivered: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        finished = self.delivered + self.failed
        p50 = p95 = None
        if self.seconds:
            cuts = quantiles(self.seconds, n=20) if len(self.seconds) > 1 else self.seconds * 19
            p50, p95 = round(cuts[9], 3), round(cuts[18], 3)
        return {
            "audience": self.audience,
            "segment": self.segment,
            "level": self.level,
            "incident_type": self.incident_type,
            "provider": self.provider,
            "delivered": self.delivered,
            "failed": self.failed,
            "finished": finished,
            "success_percent": round(100.0 * self.delivered / finished, 1) if finished else None,
            "latency_p50_seconds": p50,
            "latency_p95_seconds": p95,
            "incidents": self.incidents,
        }


@dataclass
class Report:
    start: datetime
    end: datetime
    first_notices: list[Share]
    updates: list[Share]
    deliveries: list[Latency]
    feedback: list[Feedback]
    detail_requests: list[dict[str, Any]]

    def json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "first_notices": [s.json() for s in self.first_notices],
            "updates": [s.json() for s in self.updates],
            "deliveries": [d.json() for d in self.deliveries],
            "feedback": [f.json() for f in self.feedback],
            "detail_requests": self.detail_requests,
        }

    def csv(self) -> str:
        """Every figure as one row: `figure` names it, the dimensions and counts follow."""
        columns = [
            "figure",
            "audience",
            "segment",
            "level",
            "incident_type",
            "provider",
            "tenant",
            "good",
            "total",
            "percent",
            "latency_p50_seconds",
            "latency_p95_seconds",
            "comments",
            "incidents",
        ]
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()

        def write(figure: str, row: dict[str, Any]) -> None:
            listed = {k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()}
            writer.writerow({**listed, "figure": figure})

        for share in self.first_notices:
            write("first_notice_on_time", share.json())
        for share in self.updates:
            write("update_on_time", share.json())
        for latency in self.deliveries:
            row = latency.json()
            counts = {"good": latency.delivered, "total": latency.delivered + latency.failed}
            write("delivery", {**row, **counts, "percent": row["success_percent"]})
        for answers in self.feedback:
            row = answers.json()
            comments = " | ".join(c.replace("\n", " ") for c in answers.comments)
            counts = {"good": answers.helpful, "total": row["answers"], "percent": row["helpful_percent"]}
            write("helpful", {**row, **counts, "comments": comments})
        for asked in self.detail_requests:
            write("detail_requests", {**asked, "total": asked["count"]})
        return out.getvalue()


def _segment(settings: Settings, notice: NoticeFacts) -> str:
    """A per-tenant notice's reader is its tenant's segment; a shared one's, its audience."""
    if notice.tenant is not None and (tenant := settings.catalog.tenant(notice.tenant)) is not None:
        return tenant.segment
    return notice.audience


def _key(settings: Settings, notice: NoticeFacts) -> Key:
    level = int(notice.data.get("level", 0))
    return (notice.audience, _segment(settings, notice), level, notice.incident_type, notice.provider)


def communication(
    settings: Settings,
    notices: list[NoticeFacts],
    answers: list[Answer],
    details: list[DetailRequest],
    start: datetime,
    end: datetime,
) -> Report:
    """The report over notices written and answers given in [start, end)."""
    firsts: dict[Key, Share] = {}
    updates: dict[Key, Share] = {}
    latencies: dict[Key, Latency] = {}
    for notice in notices:
        finished = notice.state in ("delivered", "dead")
        if finished:
            key = _key(settings, notice)
            latency = latencies.setdefault(key, Latency(*key))
            latency.delivered += notice.state == "delivered"
            latency.failed += notice.state == "dead"
            if notice.delivered_at is not None:
                latency.seconds.append((notice.delivered_at - notice.created_at).total_seconds())
            if notice.ref not in latency.incidents:
                latency.incidents.append(notice.ref)
        deadline = notice.data.get("deadline")
        if not deadline or notice.state in ("suppressed", "discarded", "held"):
            continue  # only notices with a deadline that were meant to go out count
        table = firsts if notice.phase == "acknowledgement" else updates if notice.phase == "update" else None
        if table is None:
            continue
        key = _key(settings, notice)
        on_time = notice.delivered_at is not None and notice.delivered_at <= datetime.fromisoformat(deadline)
        table.setdefault(key, Share(*key)).add(on_time, notice.ref)

    said: dict[Key, Feedback] = {}
    for answer in answers:
        audience, _, level, kind, provider = _key(settings, answer.notice)
        key = (audience, answer.segment, level, kind, provider)
        entry = said.setdefault(key, Feedback(*key))
        entry.helpful += answer.helpful
        entry.not_helpful += not answer.helpful
        if answer.comment:
            entry.comments.append(answer.comment)
        if answer.notice.ref not in entry.incidents:
            entry.incidents.append(answer.notice.ref)

    asked: dict[tuple[str | None, str], list[DetailRequest]] = defaultdict(list)
    for request in details:
        asked[(request.tenant, request.segment)].append(request)
    flag_at = settings.feedback.flag_detail_requests
    detail_rows = [
        {
            "tenant": tenant,
            "segment": segment,
            "count": len(requests),
            # A business reader who keeps asking for the technical version may be a technical one.
            "flagged": segment == "business" and tenant is not None and len(requests) >= flag_at,
            "incidents": list(dict.fromkeys(r.ref for r in requests)),
        }
        for (tenant, segment), requests in sorted(asked.items(), key=lambda kv: (-len(kv[1]), str(kv[0][0])))
    ]
    return Report(
        start,
        end,
        sorted(firsts.values(), key=_order),
        sorted(updates.values(), key=_order),
        sorted(latencies.values(), key=_order),
        sorted(said.values(), key=_order),
        detail_rows,
    )


def _order(row: Figure) -> tuple[str, str, int, str, str]:
    return (row.audience, row.segment, row.level, row.incident_type, row.provider)
