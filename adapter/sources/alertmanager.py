"""Alertmanager webhook v4 and Grafana Alerting v1 bodies → signals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from adapter.sources.fields import (
    FINGERPRINT_MAX,
    INCIDENT_TYPE_MAX,
    Text,
    Time,
    error_details,
    in_range,
    iso_time,
)
from adapter.sources.signal import Batch, PayloadError, Signal

_NO_END_YEAR = 1
ALERTS_MAX = 10_000


def _end(moment: datetime) -> datetime | None:
    # Go's zero time ("0001-01-01T00:00:00Z") is how Alertmanager and Grafana say "no end".
    return None if moment.year == _NO_END_YEAR else in_range(moment)


EndTime = Annotated[AwareDatetime, BeforeValidator(iso_time), AfterValidator(_end)]


class _Alert(BaseModel):
    # Senders add fields over time (Grafana: ruleUID, enrichments…); tolerate them.
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[Text, Text]
    annotations: dict[Text, Text] = {}
    startsAt: Time
    endsAt: EndTime | None = None
    generatorURL: Text = ""
    fingerprint: Annotated[Text, Field(min_length=1, max_length=FINGERPRINT_MAX)]
    silenceURL: Text = ""
    dashboardURL: Text = ""
    panelURL: Text = ""


class _Notification(BaseModel):
    """The envelope; its alerts are validated one by one, so one bad alert rejects only itself."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4", "1"]
    groupKey: Annotated[Text, Field(min_length=1, max_length=4096)]
    status: Literal["firing", "resolved"]
    alerts: list[Any] = Field(min_length=1, max_length=ALERTS_MAX)


def _is_grafana_test(version: str, alerts: list[_Alert]) -> bool:
    return version == "1" and all(
        a.labels.get("alertname") == "TestAlert" and a.labels.get("instance") == "Grafana" for a in alerts
    )


def _links(alert: _Alert) -> dict[str, str]:
    candidates = {
        "runbook": alert.annotations.get("runbook_url", ""),
        "dashboard": alert.dashboardURL or alert.annotations.get("dashboard_url", ""),
        "panel": alert.panelURL,
        "source": alert.generatorURL,
        "silence": alert.silenceURL,
    }
    return {name: url for name, url in candidates.items() if url.startswith(("http://", "https://"))}


def parse(body: Any) -> Batch:
    """Validate one decoded webhook body into its valid alerts and the rejected ones.

    Raise PayloadError naming the bad fields when the envelope is invalid or every alert is.
    """
    if not isinstance(body, dict):
        raise PayloadError(
            "body is not an Alertmanager or Grafana notification",
            [{"field": "(body)", "message": "expected a JSON object"}],
        )
    note: _Notification | None = None
    problems: list[dict[str, Any]] = []
    try:
        note = _Notification.model_validate(body)
    except ValidationError as exc:
        problems = error_details(exc)
    raw_alerts = body.get("alerts")
    alerts: list[tuple[int, _Alert]] = []
    rejected: list[dict[str, Any]] = []
    if isinstance(raw_alerts, list):
        for index, raw in enumerate(raw_alerts[:ALERTS_MAX]):
            try:
                alert = _Alert.model_validate(raw)
            except ValidationError as exc:
                rejected += [{"index": index, **d} for d in error_details(exc, "alerts", index)]
                continue
            # The incident's type when the catalog gives none, so it must fit its column.
            if len(alert.labels.get("incident_type", "")) > INCIDENT_TYPE_MAX:
                field = f"alerts.{index}.labels.incident_type"
                message = f"String should have at most {INCIDENT_TYPE_MAX} characters"
                rejected.append({"index": index, "field": field, "message": message})
                continue
            alerts.append((index, alert))
    if note is None:
        raise PayloadError(
            "body is not a valid Alertmanager (version 4) or Grafana (version 1) notification",
            problems + [{"field": r["field"], "message": r["message"]} for r in rejected],
        )
    source = "grafana" if note.version == "1" else "alertmanager"
    if not alerts:
        raise PayloadError(
            "every alert of the notification is invalid",
            [{"field": r["field"], "message": r["message"]} for r in rejected],
            source=source,
            rejected_alerts=len(note.alerts),
        )
    signals = [
        Signal(
            source=source,
            fingerprint=alert.fingerprint,
            status=alert.status,
            starts_at=alert.startsAt,
            ends_at=alert.endsAt,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            group_key=note.groupKey,
            generator_url=alert.generatorURL,
            links=_links(alert),
        )
        for _, alert in alerts
    ]
    return Batch(
        source=source,
        group_key=note.groupKey,
        signals=signals,
        test=_is_grafana_test(note.version, [a for _, a in alerts]),
        rejected=rejected,
    )
