"""The rules that turn alert labels into a 1-5 level, with Alertmanager-style label matchers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from adapter.matchers import parse_matcher

if TYPE_CHECKING:
    from adapter.catalog import Service
    from adapter.config import SeveritySettings


def _all_match(matchers: list[str], labels: Mapping[str, str]) -> bool:
    return all(parse_matcher(m).matches(labels) for m in matchers)


def classify(labels: Mapping[str, str], services: list[Service], rules: SeveritySettings) -> int:
    """The level one firing alert asks for."""
    explicit = labels.get(rules.level_label, "").strip()
    if explicit in {"1", "2", "3", "4", "5"}:
        return int(explicit)
    level = next(
        (rule.level for rule in rules.rules if _all_match(rule.matchers, labels)),
        rules.default_level,
    )
    if any(s.critical_infrastructure for s in services) and _all_match(rules.critical_matchers, labels):
        level = max(level, rules.critical_infrastructure_level)
    return level
