"""Statuspage components: the impact table, the statuses they had before dualtrack, and giving them back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from adapter.providers.base import Message
from adapter.providers.statuspage.transport import MAX_PAGES, PER_PAGE, Api

ComponentStatus = Literal[
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
]


class ImpactRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    impact: Literal["none", "minor", "major", "critical"]
    component_status: ComponentStatus


DEFAULT_IMPACT: dict[int, dict[str, str]] = {
    1: {"impact": "minor", "component_status": "degraded_performance"},
    2: {"impact": "minor", "component_status": "partial_outage"},
    3: {"impact": "major", "component_status": "partial_outage"},
    4: {"impact": "major", "component_status": "major_outage"},
    5: {"impact": "critical", "component_status": "major_outage"},
}


def merge_impact(value: Any) -> Any:
    """Levels left out keep their default row; a given row replaces the default one."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value
    merged: dict[Any, Any] = dict(DEFAULT_IMPACT)
    for key, row in value.items():
        merged[int(key) if isinstance(key, str) and key.isdigit() else key] = row
    return merged


def component_ids(message: Message) -> list[str]:
    """The page's components of the affected services, once each, in order."""
    return list(dict.fromkeys(str(c) for c in message.data.get("components") or []))


def dualtrack_meta(incident: dict[str, Any]) -> dict[str, Any] | None:
    """dualtrack's part of an incident's metadata; None for an incident dualtrack did not create.

    It holds the incident's ref, audience and stream, the notice that created it, the component
    statuses `before` dualtrack changed them and the ones it `set`.
    """
    metadata = incident.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("dualtrack"), dict):
        return dict(metadata["dualtrack"])
    return None


def statuses(value: Any) -> dict[str, str]:
    """A component id → status mapping from metadata, whatever was stored there."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def current(api: Api, wanted: list[str]) -> dict[str, str]:
    """Current status of these components (paginated list: the unpaginated one is 1/min)."""
    if not wanted:
        return {}
    found: dict[str, str] = {}
    for page in range(1, MAX_PAGES + 1):
        batch = api.call("GET", "components", params={"page": page, "per_page": PER_PAGE}) or []
        for component in batch:
            if isinstance(component, dict) and component.get("id") in wanted:
                found[str(component["id"])] = str(component.get("status") or "")
        if len(batch) < PER_PAGE or all(c in found for c in wanted):
            break
    return found


def before(
    api: Api, wanted: list[str], unresolved: list[dict[str, Any]], exclude: str | None
) -> dict[str, str]:
    """The statuses these components had before dualtrack changed them.

    A component another open dualtrack incident already changed had, before dualtrack, what
    that incident recorded; the others have their current status.
    """
    known: dict[str, str] = {}
    for incident in unresolved:
        meta = dualtrack_meta(incident)
        if meta is not None and incident.get("id") != exclude:
            for component, status in statuses(meta.get("before")).items():
                known.setdefault(component, status)
    found = {c: known[c] for c in wanted if c in known}
    found.update(current(api, [c for c in wanted if c not in known]))
    return found


def held(unresolved: list[dict[str, Any]], exclude: str) -> set[str]:
    """Components another open incident (dualtrack's or anyone's) still holds."""
    holding: set[str] = set()
    for incident in unresolved:
        if incident.get("id") == exclude:
            continue
        meta = dualtrack_meta(incident)
        if meta is not None:
            holding.update(statuses(meta.get("before")))
        for component in incident.get("components") or []:
            if isinstance(component, dict) and component.get("id"):
                holding.add(str(component["id"]))
    return holding


def to_restore(
    ref: str, incident: dict[str, Any], meta: dict[str, Any], unresolved: list[dict[str, Any]]
) -> dict[str, str]:
    """What resolving incident `ref` gives its components back: the status each had before
    dualtrack, unless another open incident still holds it or someone changed it since."""
    previous, setting = statuses(meta.get("before")), statuses(meta.get("set"))
    holding = held(unresolved, exclude=ref)
    now = {
        str(c["id"]): str(c.get("status") or "")
        for c in incident.get("components") or []
        if isinstance(c, dict) and c.get("id")
    }
    restore: dict[str, str] = {}
    for component, status in previous.items():
        if not status or component in holding:
            continue
        if component in now and component in setting and now[component] != setting[component]:
            continue  # changed since by someone else: theirs now
        restore[component] = status
    return restore
