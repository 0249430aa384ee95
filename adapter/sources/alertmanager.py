"""Alertmanager webhook v4 and Grafana Alerting v1 bodies → signals."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapter.sources.signal import Batch, PayloadError, Signal

_NO_END_YEAR = 1


class _Alert(BaseModel):
    # Senders add fields over time (Grafana: ruleUID, enrichments…); tolerate them.
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: AwareDatetime
    endsAt: AwareDatetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""


class _Notification(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4", "1"]
    groupKey: str = Field(min_length=1, max_length=4096)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[_Alert] = Field(min_length=1, max_length=10_000)
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    externalURL: str = ""


def _details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in item["loc"]), "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def _is_grafana_test(note: _Notification) -> bool:
    return note.version == "1" and all(
        a.labels.get("alertname") == "TestAlert" and a.labels.get("instance") == "Grafana"
        for a in note.alerts
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
    """Validate one decoded webhook body; raise PayloadError naming the bad fields."""
    if not isinstance(body, dict):
        raise PayloadError(
            "body is not an Alertmanager or Grafana notification",
            [{"field": "(body)", "message": "expected a JSON object"}],
        )
    try:
        note = _Notification.model_validate(body)
    except ValidationError as exc:
        raise PayloadError(
            "body is not a valid Alertmanager (version 4) or Grafana (version 1) notification",
            _details(exc),
        ) from None
    source = "grafana" if note.version == "1" else "alertmanager"
    signals = [
        Signal(
            source=source,
            fingerprint=alert.fingerprint,
            status=alert.status,
            starts_at=alert.startsAt,
            ends_at=(
                alert.endsAt if alert.endsAt is not None and alert.endsAt.year != _NO_END_YEAR else None
            ),
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            group_key=note.groupKey,
            generator_url=alert.generatorURL,
            links=_links(alert),
        )
        for alert in note.alerts
    ]
    return Batch(source=source, group_key=note.groupKey, signals=signals, test=_is_grafana_test(note))
