"""The Renderer's shortcuts: the sandbox's fast paths, the template cache, local_time's own formatting."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment
from jinja2.sandbox import ImmutableSandboxedEnvironment

from adapter.config import Settings
from adapter.engine.planning import plan_notices, recipients, render_context, tenant_zones
from adapter.rendering import NoticeSandbox, Rendered, Renderer, local_time, render_html
from tests.templates_support import (
    alert_record,
    cases,
    incident_record,
    make_settings,
    seed_alerts,
    seed_incident,
)

LIBRARY = """
{% macro shout(text, mark="!") -%}{{ text | upper }}{{ mark }}{%- endmacro %}
{% macro echo(text) -%}{{ text }}{%- endmacro %}
{% macro rest(first) -%}{{ first }}:{{ varargs | join(",") }}:{{ kwargs | dictsort | join }}{%- endmacro %}
{% macro frame() -%}[{{ caller() }}]{%- endmacro %}
{% macro stops() -%}{{ 1 | stopper }}{%- endmacro %}
{% set answer = 42 %}
"""

# Each renders identically (or fails identically) in the stock immutable sandbox and in NoticeSandbox.
SOURCES = [
    "{{ d.a }} {{ d.b.c }} {{ d.missing }} {{ d.missing | default('none') }} {{ d.missing is defined }}",
    "{{ d._private }} {{ d.items is callable }} {{ d.get('a') }} {{ d.keys() | list }} {{ d.__class__ }}",
    "{{ d.values() | list }} {{ d.copy is callable }}",
    "{{ d.update({'a': 2}) }}",
    "{{ d.pop('a') }}",
    "{{ d.setdefault('z', 1) }}",
    "{{ d.clear() }}",
    "{{ d.__class__.__mro__ }}",
    "{{ d.a.__class__.__subclasses__() }}",
    "{{ d.b.c.upper() }} {{ d.b.c.startswith('x') }} {{ '{0.a}'.format(d) }} {{ 'a,b'.split(',') }}",
    "{{ '{0.__class__}'.format(d) }}",
    "{{ l.append(1) }}",
    "{{ d.missing.deeper }}",
    '{% import "lib.j2" as c %}{{ c.shout("hi") }} {{ c.shout("hi", mark="?") }} {{ c.answer }} {{ c.nope }}',
    '{% import "lib.j2" as c %}{{ c.rest(1, 2, 3, x=4) }} {{ c.echo() }} {{ c._private }} {{ c.__dict__ }}',
    '{% import "lib.j2" as c %}{{ c.shout("a", "b", "c") }}',
    '{% import "lib.j2" as c %}{{ c.echo(nope=1) }}',
    '{% import "lib.j2" as c %}{% call c.frame() %}inside {{ d.a }}{% endcall %}',
    '{% import "lib.j2" as c %}{% for x in [1, 2] %}{{ c.shout(x) }}{{ loop.index }}{% endfor %}',
    '{% import "lib.j2" as c %}{% block b %}{% set y = "q" %}{{ c.shout(y) }}{% endblock %}',
    # Macro output is already escaped, or not, by the caller's autoescape setting.
    '{% import "lib.j2" as c %}{% autoescape true %}{{ c.echo("<b>") }}{{ c.echo(d.html) }}'
    "{% endautoescape %}{{ c.echo(d.html) }}",
    '{% import "lib.j2" as c %}{{ c.echo("<b>") }}{% autoescape true %}{{ "<i>" }}{% endautoescape %}',
    '{% import "lib.j2" as c %}[{{ c.stops() }}]',
    "{% macro local(x) %}<{{ x }}>{% endmacro %}{{ local(d.a) }}{{ local }}",
    '{% from "lib.j2" import shout %}{{ shout("from") }}',
]


def environment(cls: type[Environment]) -> Environment:
    def stopper(value: Any) -> Any:
        raise StopIteration

    env = cls(loader=DictLoader({"lib.j2": LIBRARY}), trim_blocks=True, lstrip_blocks=True)
    env.filters["stopper"] = stopper
    return env


def outcome(env: Environment, source: str) -> tuple[str, str]:
    context = {"d": {"a": 1, "b": {"c": "x"}, "_private": 2, "html": "<a&b>"}, "l": [1]}
    try:
        return "ok", env.from_string(source).render(context)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("source", SOURCES)
def test_notice_sandbox_renders_and_refuses_exactly_as_the_immutable_sandbox(source: str) -> None:
    assert outcome(environment(NoticeSandbox), source) == outcome(
        environment(ImmutableSandboxedEnvironment), source
    )


def test_notice_sandbox_still_refuses_what_the_sandbox_refuses() -> None:
    env = environment(NoticeSandbox)
    for source in (
        "{{ d.update({'a': 2}) }}",
        "{{ d.clear() }}",
        "{{ d.__class__.__mro__ }}",
        "{{ l.append(1) }}",
    ):
        assert outcome(env, source)[0] == "SecurityError", source
    assert outcome(env, "{{ d.__class__ }}") == ("ok", "")


# ---------------------------------------------------------------- local_time

ZONES = ["UTC", "Europe/Dublin", "Europe/London", "America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe"]
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@given(
    value=instants,
    tz=st.sampled_from(ZONES),
    fmt=st.sampled_from(["%H:%M %Z", "%H:%M", "%Y-%m-%d", "%d %b %H:%M"]),
)
def test_local_time_formats_exactly_as_strftime(value: datetime, tz: str, fmt: str) -> None:
    assert local_time(value, tz, fmt) == value.astimezone(ZoneInfo(tz)).strftime(fmt)


def test_local_time_across_a_clock_change_and_from_other_offsets() -> None:
    for minute in range(0, 180, 15):
        value = datetime(2026, 10, 25, 0, 0, tzinfo=UTC) + timedelta(minutes=minute)
        assert local_time(value, "Europe/Dublin") == value.astimezone(ZoneInfo("Europe/Dublin")).strftime(
            "%H:%M %Z"
        )
    india = datetime(2026, 11, 26, 23, 50, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert local_time(india, "UTC", "%Y-%m-%d") == "2026-11-26"
    assert local_time(india) == "18:20 UTC"
    assert local_time(datetime(999, 3, 4, tzinfo=UTC), "UTC", "%Y-%m-%d") == datetime(999, 3, 4).strftime(
        "%Y-%m-%d"
    )
    assert local_time(None) == ""


# ---------------------------------------------------------------- template lookup and its cache


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def context(settings: Settings, audience: str = "business", incident_type: str = "general") -> dict[str, Any]:
    """The mail-queue incident's acknowledgement, as the shared status page's `audience` stream sees it."""
    [case] = [c for c in cases() if c.name == "business_acknowledgement"]
    facts = case.scene.facts()
    facts.incident = replace(facts.incident, incident_type=incident_type)
    target = next(r for r in recipients(settings, facts.incident, facts.phase) if r.audience == audience)
    return render_context(facts, target, settings)


def test_templates_are_looked_up_once_per_type_audience_and_phase(settings: Settings) -> None:
    renderer = Renderer()
    first = renderer.template("database", "business", "acknowledgement")
    assert first.name == "database/business/acknowledgement.md.j2"
    assert renderer.template("database", "business", "acknowledgement") is first
    assert (
        renderer.template("general", "business", "acknowledgement").name == "business/acknowledgement.md.j2"
    )
    assert (
        renderer.template("web", "business", "acknowledgement").name == "web/business/acknowledgement.md.j2"
    )
    ctx = context(settings)
    assert renderer.render("general", "business", "acknowledgement", ctx) == renderer.render(
        "general", "business", "acknowledgement", ctx
    )


def test_the_cache_stays_bounded_whatever_types_alerts_bring() -> None:
    renderer = Renderer()
    for n in range(2000):
        renderer.template(f"label-{n}", "technical", "update")
    assert len(renderer._templates) <= 512
    assert renderer.template("label-1", "technical", "update").name == "technical/update.md.j2"


def test_user_templates_override_by_type_then_by_audience(settings: Settings, tmp_path: Path) -> None:
    own = tmp_path / "own"
    (own / "business").mkdir(parents=True)
    (own / "network" / "business").mkdir(parents=True)
    (own / "business" / "acknowledgement.md.j2").write_text("Ours for {{ incident.ref }}\n\nGeneric.\n")
    (own / "network" / "business" / "acknowledgement.md.j2").write_text("Ours, network\n\nTyped.\n")
    renderer = Renderer(str(own))
    for _ in range(2):
        general = renderer.render("general", "business", "acknowledgement", context(settings))
        assert (general.subject, general.template) == (
            "Ours for INC-2026-0226",
            "business/acknowledgement.md.j2",
        )
        network = renderer.render(
            "network", "business", "acknowledgement", context(settings, "business", "network")
        )
        assert (network.subject, network.template) == (
            "Ours, network",
            "network/business/acknowledgement.md.j2",
        )
        shipped = renderer.render("web", "business", "acknowledgement", context(settings, "business", "web"))
        assert shipped.template == "web/business/acknowledgement.md.j2" and not shipped.fallback
        technical = renderer.render("general", "technical", "acknowledgement", context(settings, "technical"))
        assert technical.template == "technical/acknowledgement.md.j2"


@pytest.mark.parametrize(
    ("files", "phase", "reason"),
    [
        ({}, "no_such_phase", "no template"),
        ({"business/acknowledgement.md.j2": "{{ incident.ref }\n"}, "acknowledgement", "TemplateSyntaxError"),
        ({"business/acknowledgement.md.j2": "{{ incident.ref.x.y }}\n"}, "acknowledgement", "UndefinedError"),
        ({"business/acknowledgement.md.j2": "{% if false %}x{% endif %}\n"}, "acknowledgement", "no subject"),
    ],
)
def test_every_render_of_a_missing_or_broken_template_falls_back_and_is_counted(
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    files: dict[str, str],
    phase: str,
    reason: str,
) -> None:
    own = tmp_path / "own"
    for name, text in files.items():
        (own / name).parent.mkdir(parents=True, exist_ok=True)
        (own / name).write_text(text)
    counted: list[tuple[str, str]] = []
    renderer = Renderer(str(own), on_fallback=lambda audience, phase: counted.append((audience, phase)))
    with caplog.at_level(logging.WARNING, logger="adapter.rendering"):
        results = [renderer.render("general", "business", phase, context(settings)) for _ in range(3)]
    assert all(
        r.fallback and r.template == "builtin" and r.subject.startswith("Service update") for r in results
    )
    assert counted == [("business", phase)] * 3
    fallbacks = [r.getMessage() for r in caplog.records if "template fallback" in r.getMessage()]
    assert len(fallbacks) == 3 and all(reason in m for m in fallbacks), fallbacks


# Every C0 and C1 control but tab, line feed and carriage return (which printable() makes a line feed).
CONTROL = "".join(chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n\r")


@pytest.mark.parametrize("broken", [False, True])
def test_no_control_character_reaches_a_notice_and_the_text_stays_readable(
    settings: Settings, tmp_path: Path, broken: bool
) -> None:
    own = tmp_path / "own"
    (own / "technical").mkdir(parents=True)
    # A template of one's own, or (broken) the built-in fallback: both print the title.
    text = "{{ incident.title }}\r\n\r\nTitle: {{ incident.title }}\tend\n"
    (own / "technical" / "acknowledgement.md.j2").write_text("{{ nope( }}" if broken else text)
    ctx = context(settings, "technical")
    ctx["incident"] = {**ctx["incident"], "title": f"Checkout{CONTROL} slow\ufffe \ud800 now"}
    rendered = Renderer(str(own)).render("general", "technical", "acknowledgement", ctx)
    assert rendered.fallback is broken
    for part in (rendered.subject, rendered.body):
        assert not set(part) & set(CONTROL + "\ufffe\ud800\r")
    assert "Checkout slow \ufffd now" in rendered.subject
    if not broken:
        assert rendered.subject == "Checkout slow \ufffd now"
        assert rendered.body == "Title: Checkout slow \ufffd now\tend"


# ---------------------------------------------------------------- planning shares one event view


class Recording:
    """Renders nothing; keeps each context it was given."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def render(self, incident_type: str, audience: str, phase: str, context: dict[str, Any]) -> Rendered:
        self.contexts.append(context)
        return Rendered("subject", "body", "recorded", fallback=False)


def test_plan_notices_gives_each_stream_the_context_render_context_builds(settings: Settings) -> None:
    [case] = [c for c in cases() if c.name == "database_technical_update"]
    facts = case.scene.facts()
    facts.incident = incident_record(seed_incident(status="identified", eta=facts.now + timedelta(hours=1)))
    facts.alerts = [alert_record(a) for a in seed_alerts()]
    facts.extra = {"sla": {"target": 99.9}}
    streams = recipients(settings, facts.incident, facts.phase)
    recording = Recording()
    planned = plan_notices(facts, streams, settings, recording)  # type: ignore[arg-type]
    assert len(planned) == len(streams) and len(recording.contexts) >= 2
    zones = tenant_zones(settings, facts.incident)
    expected, seen = [], set()
    for stream in streams:
        # A shared page's text is rendered again in each affected tenant's zone (see _zoned).
        variants = [stream]
        if stream.provider.type == "builtin" and stream.tenant is None:
            others = sorted(zones.get(stream.audience, set()) - {stream.timezone})
            variants += [replace(stream, zone=zone) for zone in others]
        for variant in variants:
            key = (variant.audience, variant.timezone, variant.tenant.id if variant.tenant else None)
            if key not in seen:
                seen.add(key)
                expected.append(render_context(facts, variant, settings))
    assert recording.contexts == expected
    assert [list(c) for c in recording.contexts] == [list(c) for c in expected]


# ---------------------------------------------------------------- plain text → e-mail HTML

NOTICE = """INC-2026-0001: Checkout API 5xx ratio above 5% - Initial Response

We're investigating <script>alert("x")</script> & more.

Affected Services: Checkout API (checkout-api)
Severity: Level 4 (significant outage)
Status page: https://status.example.com/incidents/INC-2026-0001.

Metrics and Diagnostics:
- HighErrorRate on checkout-1:8080: 5xx above 5% (since 08:00 UTC)
  Runbook at https://runbooks.example.com/checkout?a=1&b=2
- Latency: p99 above 2s

Next Update: 12:10 UTC or sooner if status changes"""


def test_html_escapes_the_text_bolds_labels_links_urls_and_lists_items() -> None:
    markup = render_html(NOTICE, "INC-2026-0001: Checkout API 5xx ratio above 5% - Initial Response")
    assert "<script>" not in markup
    assert 'We\'re investigating &lt;script&gt;alert("x")&lt;/script&gt; &amp; more.' in markup
    assert "<strong>Affected Services:</strong> Checkout API (checkout-api)" in markup
    # Trailing punctuation stays outside the link.
    assert (
        '<a href="https://status.example.com/incidents/INC-2026-0001" style="' in markup
        and "INC-2026-0001</a>." in markup
    )
    assert 'href="https://runbooks.example.com/checkout?a=1&amp;b=2"' in markup
    assert markup.count("<li") == 2 and "<ul" in markup
    assert "<strong>Latency:</strong> p99 above 2s" in markup
    # The first line repeats the subject and becomes the title.
    assert "<h1" in markup and "<title>INC-2026-0001: Checkout API" in markup


def test_html_of_plain_structure() -> None:
    markup = render_html("Hello\n\nUpdate: a <b>\nsecond line\n\n- one\n  - nested\n- two", "Subject")
    assert '<p style="margin:0 0 14px;"><strong>Update:</strong> a &lt;b&gt;<br>second line</p>' in markup
    assert markup.count("<ul") == 2 and markup.count("<li") == 3
    assert "<h1" not in markup and "<title>Subject</title>" in markup
    # Times and URLs are not labels.
    assert "<strong>" not in render_html("14:32 opened\nhttps://x.example/a: b", "S")
