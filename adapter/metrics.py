"""Every Prometheus metric dualtrack exports, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from adapter.store.records import Backlog, Notice


class Metrics:
    """Built per app; under gunicorn the values live in prometheus_client's multiprocess files."""

    def __init__(self, registry: CollectorRegistry | None = None):
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.webhooks = Counter(
            "dualtrack_webhooks_total",
            "Inbound webhook requests by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.signals = Counter(
            "dualtrack_signals_total",
            "Alert events received, by source and outcome (new, duplicate, stale, orphan, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.incidents_opened = Counter(
            "dualtrack_incidents_opened_total", "Incidents opened, by level.", ["level"], registry=r
        )
        self.incidents_triage = Counter(
            "dualtrack_incidents_triage_total",
            "Incidents opened in triage: on no catalog service, published nowhere until a human says.",
            registry=r,
        )
        self.incidents_resolved = Counter(
            "dualtrack_incidents_resolved_total", "Incidents resolved.", registry=r
        )
        self.unknown_services = Counter(
            "dualtrack_unknown_services_total",
            "Alerts whose service label matched no catalog service.",
            registry=r,
        )
        self.notices_planned = Counter(
            "dualtrack_notices_planned_total",
            "Notices written to the outbox.",
            ["provider", "audience", "phase"],
            registry=r,
        )
        self.template_fallbacks = Counter(
            "dualtrack_template_fallbacks_total",
            "Notices rendered with the built-in template because a template was missing or broken.",
            ["audience", "phase"],
            registry=r,
        )
        self.deliveries = Counter(
            "dualtrack_deliveries_total",
            "Delivery attempts by provider and outcome (delivered, retry, dead).",
            ["provider", "outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "dualtrack_delivery_seconds",
            "Time spent in one provider send.",
            ["provider"],
            registry=r,
        )
        self.first_notice_seconds = Histogram(
            "dualtrack_first_notice_seconds",
            "From an incident's opening to the delivery of its first notice, per audience and level.",
            ["audience", "level"],
            buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 7200),
            registry=r,
        )
        self.deadline_missed = Counter(
            "dualtrack_deadline_missed_total",
            "Notices delivered after their policy deadline (first notice within, update every).",
            ["audience", "phase"],
            registry=r,
        )
        self.postmortem_overdue = Counter(
            "dualtrack_postmortem_overdue",
            "Resolved incidents with no post-mortem after policy.postmortem_due.",
            registry=r,
        )
        self.provider_requests = Counter(
            "dualtrack_provider_requests_total",
            "HTTP requests to providers by outcome (success, retryable, permanent).",
            ["provider", "outcome"],
            registry=r,
        )
        self.provider_request_seconds = Histogram(
            "dualtrack_provider_request_seconds",
            "Duration of one HTTP request to a provider.",
            ["provider"],
            registry=r,
        )
        self.config_reload = reload_gauge(r)
        self.config_reload.set(1)
        self.ingest_seconds = Histogram(
            "dualtrack_ingest_seconds",
            "Time from a parsed webhook to its committed transaction.",
            ["source"],
            registry=r,
        )
        self.feedback = Counter(
            "dualtrack_feedback_total",
            "Answers to 'Was this update helpful?', by audience, the reader's segment and yes/no.",
            ["audience", "segment", "helpful"],
            registry=r,
        )
        self.detail_requests = Counter(
            "dualtrack_detail_requests_total",
            "Requests for the technical details of a business notice, by the reader's segment.",
            ["segment"],
            registry=r,
        )

    def delivered(self, notice: Notice, level: int, now: datetime) -> None:
        """Count a delivered notice, and how it kept its deadlines (`data`: opened_at, deadline)."""
        audience, phase, data = notice.audience, notice.phase, notice.data or {}
        self.deliveries.labels(notice.provider, "delivered").inc()
        if phase == "acknowledgement" and data.get("opened_at"):
            opened = datetime.fromisoformat(data["opened_at"])
            self.first_notice_seconds.labels(audience, str(level)).observe(
                max(0.0, (now - opened).total_seconds())
            )
        if data.get("deadline") and now > datetime.fromisoformat(data["deadline"]):
            self.deadline_missed.labels(audience, phase).inc()


def reload_gauge(registry: CollectorRegistry | None) -> Gauge:
    """1 when the last configuration reload succeeded, like Alertmanager's metric of that name.

    Set by the gunicorn master (on SIGHUP) and by workers (a refused POST /-/reload); under
    gunicorn the most recent value wins.
    """
    return Gauge(
        "dualtrack_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
        registry=registry,
        multiprocess_mode="mostrecent",
    )


class BacklogCollector:
    """Outbox backlog, read from the database at scrape time so every worker reports the same."""

    def __init__(self, read: Callable[[], Backlog]):
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self.read()
        yield GaugeMetricFamily("dualtrack_outbox_pending", "Notices waiting for delivery.", backlog.pending)
        yield GaugeMetricFamily(
            "dualtrack_outbox_oldest_pending_seconds",
            "Age of the oldest notice waiting for delivery.",
            backlog.oldest_seconds,
        )
        yield GaugeMetricFamily(
            "dualtrack_notices_awaiting_approval",
            "Customer notices waiting for an approver (policy.approval).",
            backlog.awaiting_approval,
        )


class _Discarded:
    def labels(self, *_: object, **__: object) -> _Discarded:
        return self

    def inc(self, *_: object) -> None:
        pass

    def observe(self, *_: object) -> None:
        pass

    def __call__(self, *_: object, **__: object) -> None:
        pass


class DiscardMetrics:
    """Stands in for Metrics where nothing may be counted (previews)."""

    def __getattr__(self, name: str) -> _Discarded:
        return _Discarded()
