"""Notice templates (sandboxed Jinja2) → subject and body, with a built-in fallback; body → e-mail HTML."""

from __future__ import annotations

import html
import logging
import re
import sys
from collections.abc import Callable, Collection, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, Template, TemplateError, TemplateNotFound
from jinja2.environment import TemplateModule
from jinja2.runtime import Context, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from adapter.text import printable

if TYPE_CHECKING:
    from adapter.config import Settings

log = logging.getLogger(__name__)


def _shipped_templates() -> Path:
    """The repository's templates/ in a checkout, else the copy installed under share/."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    installed = Path(sys.prefix) / "share" / "dualtrack" / "templates"
    return checkout if checkout.is_dir() else installed


SHIPPED_TEMPLATES = _shipped_templates()

# Deliberately plain: used when a template is missing or broken, so it must never fail.
_BUILTIN = {
    "technical": (
        "{{ incident.ref }}: {{ incident.title }} - {{ phase_title }}\n\n"
        "Status: {{ incident.status }} (level {{ incident.level }})\n"
        "Affected services: {{ incident.services | map(attribute='name') | join(', ') or 'unknown' }}\n"
        "First detected: {{ incident.opened_at | utc }}\n"
    ),
    "business": (
        "Service update: {{ phase_title }}\n\n"
        "{% if incident.services %}Affected: "
        "{{ incident.services | map(attribute='business_name') | join(', ') }}\n{% endif %}"
        "Status: {{ incident.status_text }}\n"
    ),
}


# Caps a Renderer's template cache: incident types can come from alert labels, so its keys are open-ended.
_MAX_CACHED_TEMPLATES = 512


class NoticeSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with shortcuts for what notice templates do most: read dicts, call macros.

    Each shortcut returns exactly what the checked path would for the objects it takes (plain dicts,
    imported macros); methods, underscore names and every other object still take the checked path.
    """

    # The names getattr() finds on a plain dict; any other name on one can only be a key.
    DICT_ATTRIBUTES = frozenset(dir(dict))

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # A dict rather than Jinja's ChainMap over env.globals, which every render and import copies and
        # compares key by key in Python. Nothing changes env.globals once a Renderer is built.
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
        if type(obj) is dict and attribute not in self.DICT_ATTRIBUTES:
            # The checked path's getattr() can only fail here, and then it subscripts.
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        if type(obj) is TemplateModule and not attribute.startswith("_"):
            # `c.clock`: a public name on an immutable module, and a macro is no str.format.
            value = obj.__dict__.get(attribute)
            if type(value) is Macro:
                return value
        return super().getattr(obj, attribute)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if type(obj) is Macro:
            # A macro is always safe to call; this is Context.call's own path for one (Macro.__call__
            # takes the caller's eval context), less the generic inspection it does first.
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
            try:
                return obj(context.eval_ctx, *args, **kwargs)
            except StopIteration:
                return self.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(context, obj, *args, **kwargs)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    template: str
    fallback: bool


def local_time(value: datetime | None, tz: str = "UTC", fmt: str = "%H:%M %Z") -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz))
    # strftime costs five times as much as these, and templates use them many times a notice. The
    # results are strftime's own (it leaves years before 1000 unpadded, hence the guard).
    if fmt == "%H:%M %Z":
        return f"{local.hour:02d}:{local.minute:02d} {local.tzname() or ''}"
    if fmt == "%H:%M":
        return f"{local.hour:02d}:{local.minute:02d}"
    if fmt == "%Y-%m-%d" and local.year >= 1000:
        return local.date().isoformat()
    return local.strftime(fmt)


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return local_time(value, "UTC", fmt)


def human_duration(value: timedelta | float | int | None) -> str:
    if value is None:
        return ""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds < 60:
        return "less than a minute"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    # "48 hours" reads better than "2 days" for the short spans incidents deal in.
    days, hours = divmod(hours, 24) if hours >= 72 else (0, hours)
    parts = []
    for count, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return humanize_list(parts[:2])


def humanize_list(items: Iterable[Any], conjunction: str = "and") -> str:
    values = [str(i) for i in items if i not in (None, "")]
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} {conjunction} {values[-1]}"


def split_subject(text: str) -> tuple[str, str]:
    """The first non-empty line is the subject; the rest, trimmed, is the body; both printable.

    Alert text reaches templates as sent, control characters included: they are taken out here,
    where every notice's text (a template's or the fallback's) passes.
    """
    lines = printable(text).strip().splitlines()
    if not lines:
        return "", ""
    subject = lines[0].strip().removeprefix("Subject:").strip()
    body = "\n".join(lines[1:]).strip("\n")
    # Collapse runs of blank lines that conditional blocks leave behind.
    out: list[str] = []
    for line in body.splitlines():
        if line.strip() == "" and out and out[-1] == "":
            continue
        out.append(line.rstrip())
    return subject, "\n".join(out).strip()


class Renderer:
    """Looks templates up as {type}/{audience}/{phase}.md.j2, then {audience}/{phase}.md.j2."""

    def __init__(
        self,
        templates_dir: str | None = None,
        *,
        on_fallback: Callable[[str, str], None] | None = None,
        extra_filters: dict[str, Callable[..., Any]] | None = None,
    ):
        folders = [p for p in (templates_dir, str(SHIPPED_TEMPLATES)) if p]
        self.env = NoticeSandbox(
            loader=FileSystemLoader(folders),
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Templates change with a reload, which builds a new Renderer: no stat per render.
            auto_reload=False,
        )
        self.env.filters.update(
            local_time=local_time,
            utc=utc,
            duration=human_duration,
            humanize_list=humanize_list,
            **(extra_filters or {}),
        )
        self.builtin = {audience: self.env.from_string(source) for audience, source in _BUILTIN.items()}
        self.on_fallback = on_fallback
        # Templates never change under a Renderer, so each lookup (a stat per folder for every name that
        # misses) is done once. Only found templates are kept: a missing or broken one is looked up,
        # logged and counted again on every render.
        self._templates: dict[tuple[str, str, str], Template] = {}

    def template(self, incident_type: str, audience: str, phase: str) -> Template:
        """{type}/{audience}/{phase}.md.j2, else {audience}/{phase}.md.j2; TemplateNotFound if neither."""
        key = (incident_type, audience, phase)
        found = self._templates.get(key)
        if found is None:
            names = [f"{incident_type}/{audience}/{phase}.md.j2", f"{audience}/{phase}.md.j2"]
            found = self.env.select_template(names)
            if len(self._templates) >= _MAX_CACHED_TEMPLATES:
                self._templates.clear()
            self._templates[key] = found
        return found

    def names(self) -> list[str]:
        """Every template file the renderer can load, by its name ("web/business/update.md.j2")."""
        return [name for name in self.env.list_templates() if name.endswith(".md.j2")]

    def incident_types(self) -> list[str]:
        """The incident types that have templates of their own ({type}/{audience}/{phase}.md.j2)."""
        return sorted({name.split("/")[0] for name in self.names() if name.count("/") == 2})

    def render(self, incident_type: str, audience: str, phase: str, context: dict[str, Any]) -> Rendered:
        try:
            template = self.template(incident_type, audience, phase)
            subject, body = split_subject(template.render(context))
            if not subject:
                raise TemplateError("template rendered no subject line")
            return Rendered(subject, body, str(template.name), fallback=False)
        except TemplateNotFound:
            reason = "no template"
        except Exception as exc:  # a broken template must never drop a notice
            reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "template fallback audience=%s phase=%s type=%s reason=%s",
            audience,
            phase,
            incident_type,
            reason,
        )
        if self.on_fallback:
            self.on_fallback(audience, phase)
        subject, body = split_subject(self.builtin[audience].render(context))
        return Rendered(subject, body, "builtin", fallback=True)


def settings_renderer(settings: Settings, on_fallback: Callable[[str, str], None] | None = None) -> Renderer:
    """The notice renderer for these settings: their templates, and the catalog's `business_name`."""

    def business_name(service: str | dict[str, str]) -> str:
        key = service if isinstance(service, str) else service.get("id", "")
        found = settings.catalog.service(key)
        return found.business_name if found else "one of our services"

    return Renderer(
        settings.templates_dir, on_fallback=on_fallback, extra_filters={"business_name": business_name}
    )


# -- links: which may reach customers ------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"']+")
INTERNAL_LINK = "(internal link removed)"


def link_allowed(url: str, hosts: Collection[str]) -> bool:
    """Whether the URL's host is one of `hosts` ("example.com"; ".example.com" with subdomains)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h.lower() or (h.startswith(".") and host.endswith(h.lower())) for h in hosts)


def scrub_links(text: str, hosts: Collection[str]) -> str:
    """Every link in `text` to a host outside `hosts` replaced by a note that one was there."""
    return _URL.sub(lambda m: m.group(0) if link_allowed(m.group(0), hosts) else INTERNAL_LINK, text)


# -- the HTML part of an e-mail, from a notice's plain text ----------------------------------------

# "Label: value" - a short capitalised phrase, never a URL scheme or a clock time.
_LABEL = re.compile(r"([A-Z][\w'\u2019&/() -]{0,46}?):(?=\s|$)")
_BULLET = re.compile(r"[-*•] ")

FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
STYLES = {
    "body": "margin:0;padding:0;background:#f6f8fa;",
    "card": (
        f"max-width:640px;margin:0 auto;padding:24px;background:#ffffff;font-family:{FONT};"
        "font-size:15px;line-height:1.5;color:#1f2328;"
    ),
    "h1": "margin:0 0 16px;font-size:18px;line-height:1.3;color:#1f2328;",
    "p": "margin:0 0 14px;",
    "ul": "margin:0 0 14px;padding-left:22px;",
    "li": "margin:0 0 6px;",
    "detail": "color:#57606a;font-size:14px;",
    "a": "color:#0969da;text-decoration:underline;word-break:break-all;",
}


def _link(text: str) -> str:
    """Escape text, with http(s) URLs as links (trailing punctuation stays outside the link)."""
    out = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        if url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1]
        out.append(html.escape(text[position : match.start()], quote=False))
        href = html.escape(url, quote=True)
        out.append(f'<a href="{href}" style="{STYLES["a"]}">{href}</a>')
        position = match.start() + len(url)
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


def _inline(line: str) -> str:
    """One line of text: a leading "Label:" in bold, the rest escaped and linked."""
    match = _LABEL.match(line)
    if match and len(match.group(1).split()) <= 6:
        rest = line[match.end() :]
        return f"<strong>{html.escape(match.group(1), quote=False)}:</strong>{_link(rest)}"
    return _link(line)


def _list(items: list[tuple[str, list[str]]]) -> str:
    parts = []
    for head, details in items:
        inner = _inline(head)
        nested = [d[2:] for d in details if _BULLET.match(d)]
        plain = [d for d in details if not _BULLET.match(d)]
        if plain:
            inner += "".join(f'<br><span style="{STYLES["detail"]}">{_link(d)}</span>' for d in plain)
        if nested:
            inner += _list([(n, []) for n in nested])
        parts.append(f'<li style="{STYLES["li"]}">{inner}</li>')
    return f'<ul style="{STYLES["ul"]}">{"".join(parts)}</ul>'


def _block(lines: list[str]) -> str:
    """Consecutive non-blank lines: runs of text as paragraphs, runs of "- " items as lists."""
    out = []
    text: list[str] = []
    items: list[tuple[str, list[str]]] = []

    def flush_text() -> None:
        if text:
            out.append(f'<p style="{STYLES["p"]}">{"<br>".join(_inline(t) for t in text)}</p>')
            text.clear()

    def flush_items() -> None:
        if items:
            out.append(_list(items))
            items.clear()

    for line in lines:
        stripped = line.strip()
        if _BULLET.match(line):
            flush_text()
            items.append((stripped[2:].strip(), []))
        elif items and line[:1].isspace():
            items[-1][1].append(stripped)
        else:
            flush_items()
            text.append(stripped)
    flush_text()
    flush_items()
    return "".join(out)


def render_html(body: str, subject: str = "") -> str:
    """The plain-text notice as a small, self-contained HTML page with inline styles."""
    subject = " ".join(subject.split())
    blocks: list[list[str]] = [[]]
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.strip():
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    blocks = [b for b in blocks if b]
    parts = []
    if blocks and len(blocks[0]) == 1 and blocks[0][0].strip() == subject.strip():
        # The body's first line repeats the subject: show it as the title.
        parts.append(f'<h1 style="{STYLES["h1"]}">{_link(blocks.pop(0)[0].strip())}</h1>')
    parts.extend(_block(b) for b in blocks)
    title = html.escape(subject, quote=False)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>\n"
        f'<body style="{STYLES["body"]}"><div style="{STYLES["card"]}">\n'
        + "\n".join(parts)
        + "\n</div></body></html>\n"
    )
