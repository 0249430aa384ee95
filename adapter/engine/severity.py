"""Alertmanager-style label matchers and the rules that turn alert labels into a 1-5 level."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapter.catalog import Service
    from adapter.config import SeveritySettings

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        # Alertmanager anchors regex matchers at both ends.
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@lru_cache(maxsize=1024)
def parse_matcher(text: str) -> Matcher:
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f'{text!r} is not a matcher such as severity="critical" or team=~"db.*"')
    name, op, quoted, bare = match.groups()
    value = quoted.encode().decode("unicode_escape") if quoted is not None else bare
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value)


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
