"""Reading a config file: YAML, `${VAR}` and `*_file` references; problems as `file: key.path: message`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

# libyaml's parser when PyYAML was built with it (its wheels are): a 10,000-tenant catalog
# parses in about 1 s instead of 11 s.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str, problems: list[str], where: str, defaults: dict[str, str]) -> Any:
    """`${VAR}` and `${VAR:-default}` replaced; `defaults` learns where a default was used."""
    if isinstance(node, dict):
        return {
            k: _expand_env(v, f"{path}.{k}" if path else str(k), problems, where, defaults)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", problems, where, defaults) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if default is not None and not value:
                defaults[path] = name
                return default
            if value is None:
                problems.append(f"{where}: {path}: environment variable {name} is not set")
                return ""
            return value

        return _ENV_REF.sub(substitute, node)
    return node


def _read_file_refs(node: Any, path: str, problems: list[str], where: str, base: Path) -> Any:
    """`password_file: /run/secrets/x` → `password: <file contents, stripped>`."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key.endswith("_file") and isinstance(value, str):
                target = key[: -len("_file")]
                try:
                    out[target] = (base / value).read_text().strip()
                except OSError as exc:
                    problems.append(f"{where}: {child}: cannot read {value}: {exc.strerror}")
                continue
            out[key] = _read_file_refs(value, child, problems, where, base)
        return out
    if isinstance(node, list):
        return [_read_file_refs(v, f"{path}[{i}]", problems, where, base) for i, v in enumerate(node)]
    return node


def error_paths(error: ValidationError) -> list[tuple[str, str]]:
    """Each problem of a pydantic error as (key path such as `rules[1].level`, message)."""
    found = []
    for item in error.errors():
        # Validator names, and a tagged union's tags ("~text"), are no keys of the file.
        parts = [
            p for p in item["loc"] if p not in ("function-after", "[key]") and not str(p).startswith("~")
        ]
        loc = ".".join(str(part) for part in parts)
        loc = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelled?)"
        found.append((loc, message))
    return found


def problem_line(where: str, prefix: str, key: str, message: str) -> str:
    """`file: prefix.key: message`, the one shape of every configuration problem."""
    full = f"{prefix}.{key}" if prefix and key else (prefix or key or "(top level)")
    return f"{where}: {full}: {message}"


def format_validation_error(where: str, error: ValidationError, prefix: str = "") -> list[str]:
    return [problem_line(where, prefix, key, message) for key, message in error_paths(error)]


def read_yaml(
    path: Path, problems: list[str], env_defaults: dict[str, str] | None = None
) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except OSError as exc:
        problems.append(f"{path}: (file): cannot read: {exc.strerror}")
        return None
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (see _LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else "(file)"
        problems.append(f"{path}: {at}: invalid YAML: {getattr(exc, 'problem', exc)}")
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: (top level): expected a mapping")
        return None
    expanded = _expand_env(data, "", problems, str(path), {} if env_defaults is None else env_defaults)
    read: dict[str, Any] = _read_file_refs(expanded, "", problems, str(path), path.parent)
    return read
