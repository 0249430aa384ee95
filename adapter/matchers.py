"""Alertmanager-style label matchers (`severity="critical"`, `team=~"db.*"`): parsed and matched."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


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


def _unquote(text: str, original: str) -> str:
    """A matcher value: bare, or double-quoted with Alertmanager's escapes (\\\\, \\", \\n)."""
    if not text.startswith('"'):
        if '"' in text or any(ch.isspace() for ch in text):
            raise ValueError(f"{original!r} is not a valid matcher: quote a value with quotes or spaces")
        return text
    if len(text) < 2 or not text.endswith('"'):
        raise ValueError(f"{original!r} is not a valid matcher: the closing quote is missing")
    out: list[str] = []
    body = text[1:-1]
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            # Unknown escapes (a regex's \\d) stay as written, as in Alertmanager.
            out.append(_ESCAPES.get(following, char + following))
            index += 2
            continue
        if char == '"':
            raise ValueError(f'{original!r} is not a valid matcher: escape a quote inside the value as \\"')
        out.append(char)
        index += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def parse_matcher(text: str) -> Matcher:
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f'{text!r} is not a matcher such as severity="critical" or team=~"db.*"')
    name, op, raw = match.groups()
    if raw.startswith(("=", "~")):
        raise ValueError(f"{text!r} is not a valid matcher: unknown operator")
    value = _unquote(raw, text)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value)
