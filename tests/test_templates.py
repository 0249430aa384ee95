"""Shipped notice templates: golden files, the jargon guard, time zones and tenant privacy."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from adapter.config import PublishSettings, Settings
from adapter.engine.planning import INTERNAL_PHASES
from adapter.rendering import SHIPPED_TEMPLATES, Renderer, scrub_links
from tests.templates_support import (
    CATALOG,
    SEED_WORKAROUND,
    URGENT_CONTACT,
    Scene,
    alert,
    at,
    cases,
    entry,
    incident,
    make_settings,
    render,
    renderer_for,
    seed_alerts,
    seed_incident,
    text,
)

GOLDEN = Path(__file__).parent / "golden"
HEADINGS = ("Since the last update:", "Timeline (UTC):", "What's Down:", "Metrics and Diagnostics:")
CASES = {case.name: case for case in cases()}
PHASES = ("acknowledgement", "update", "resolution", "postmortem", "sla_followup")
TYPES = ("database", "network", "storage", "web", "general")
EVENTS = {
    "acknowledgement": ["open"],
    "update": ["cadence-1", "reopen-1", "level-4-g0", "human-3"],
    "resolution": ["resolve-g0", "manual-resolve"],
    "postmortem": ["postmortem"],
    "sla_followup": ["sla"],
}
SLA = {
    "target": 99.9,
    "availability": 99.78,
    "impact": timedelta(minutes=93),
    "below_target": True,
    "month": "November 2026",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Renderer]:
    settings = make_settings(tmp_path_factory.mktemp("templates"))
    return settings, renderer_for(settings)


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(env: tuple[Settings, Renderer], name: str) -> None:
    case = CASES[name]
    notice = render(*env, case.scene, case.audience, case.tenant)
    assert notice.data["template"] == case.template + ".md.j2", "rendered by another template (or fallback)"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text(notice))
    assert path.exists(), f"missing golden {path.name}; run with UPDATE_GOLDEN=1"
    assert text(notice) == path.read_text()


def test_every_shipped_template_has_a_golden() -> None:
    shipped = {
        str(p.relative_to(SHIPPED_TEMPLATES)).removesuffix(".md.j2")
        for p in SHIPPED_TEMPLATES.rglob("*.md.j2")
        if not p.name.startswith("_")
    }
    assert shipped == {case.template for case in CASES.values()}
    assert {f"{audience}/{phase}" for audience in ("technical", "business") for phase in PHASES} <= shipped
    for kind in ("database", "network", "storage", "web"):
        for audience in ("technical", "business"):
            for phase in ("acknowledgement", "update", "resolution"):
                assert f"{kind}/{audience}/{phase}" in shipped


@pytest.mark.parametrize("name", sorted(CASES))
def test_notice_reads_cleanly(env: tuple[Settings, Renderer], name: str) -> None:
    case = CASES[name]
    notice = render(*env, case.scene, case.audience, case.tenant)
    whole = text(notice)
    assert notice.subject and "\n" not in notice.subject
    assert "\n\n\n" not in whole
    for bad in ("{{", "{%", "Undefined", "  ", " .", ",.", "..", "Next Update:  ", "by  "):
        assert bad not in whole.replace("\n  ", "\n"), bad
    for line in whole.splitlines():
        assert not re.search(r":\s*$", line) or line in HEADINGS
        assert not re.search(r"\bNone\b", line) or re.match(
            r"(Your Action Required: None|Workaround: None (known|confirmed) yet)", line
        ), line
    assert re.search(r"\b1 (hours|minutes|alerts)\b", whole) is None


# ---------------------------------------------------------------- the seed's own example


def test_seed_technical_acknowledgement_follows_the_seed(env: tuple[Settings, Renderer]) -> None:
    notice = render(*env, CASES["seed_technical_acknowledgement"].scene, "technical")
    assert notice.subject == "INC-2026-0215: Database Connection Pool Exhaustion - Initial Response"
    body = notice.body
    assert body.startswith(
        "We're investigating a database incident: connection timeouts affecting applications using our "
        "shared MySQL infrastructure. Initial symptoms suggest connection pool exhaustion at the "
        "database tier."
    )
    for line in (
        "Affected Services: Shared MySQL (mysql-cluster-03.region-eu-west)",
        "First Detected: 14:32 UTC",
        "Current Status: Investigating root cause",
        f"Workaround: {SEED_WORKAROUND}",
        "Next Update: 15:32 UTC or sooner if status changes",
    ):
        assert line in body.splitlines()
    assert "silences" not in body  # the silence link is for the team, not for customers


def test_seed_business_acknowledgement_follows_the_seed(env: tuple[Settings, Renderer]) -> None:
    notice = render(*env, CASES["seed_business_acknowledgement"].scene, "business")
    assert notice.subject == "Service Update: Investigating Performance Issues Affecting Website databases"
    lines = notice.body.splitlines()
    assert lines[0] == (
        "We're aware some customers are experiencing slower website loading times and are working to "
        "resolve this immediately."
    )
    assert "What's Happening: Our technical team is addressing a database performance issue" in lines[2]
    assert "Expected Resolution: Within 2 hours" in lines
    assert "Your Action Required: None - we're handling this" in lines
    assert f"For urgent concerns, contact {URGENT_CONTACT}." in lines
    assert lines[-1] == "We'll update you with progress within the next hour, by 15:32 GMT."


# ---------------------------------------------------------------- wording that depends on facts


def test_urgent_contact_only_from_level_3(env: tuple[Settings, Renderer]) -> None:
    for level, shown in ((2, False), (3, True), (5, True)):
        scene = Scene(seed_incident(level=level), seed_alerts(), "acknowledgement", at(14, 32))
        body = render(*env, scene, "business", "bloom").body
        assert (URGENT_CONTACT in body) is shown, level


def test_human_text_leads_and_action_required_replaces_the_default(env: tuple[Settings, Renderer]) -> None:
    scene = Scene(
        seed_incident(action_required="Please pause scheduled imports until we confirm the fix."),
        seed_alerts(),
        "update",
        at(15, 32),
        event="human-1",
        messages={"business": "We've identified the cause and a fix is being tested now."},
    )
    body = render(*env, scene, "business", "bloom").body
    assert body.splitlines()[:3] == [
        "Hello Bloom Florists,",
        "",
        "We've identified the cause and a fix is being tested now.",
    ]
    assert "Your Action Required: Please pause scheduled imports until we confirm the fix." in body
    assert "we're handling this" not in body


def test_technical_workaround_prefers_the_incident_then_the_alert(env: tuple[Settings, Renderer]) -> None:
    scene = Scene(seed_incident(workaround="Point reads at the replica."), seed_alerts(), "update", at(15, 0))
    assert "Workaround: Point reads at the replica." in render(*env, scene, "technical").body
    bare = [alert("MySQLDown", "MySQL down", instance="db-1:3306")]
    scene = Scene(incident("MySQL down", ["mail"]), bare, "acknowledgement", at(15, 0))
    body = render(*env, scene, "technical").body
    assert "Workaround: None known yet; we'll share one here as soon as we have it." in body


def test_sla_figures_stay_out_of_active_incident_notices(env: tuple[Settings, Renderer]) -> None:
    for case in CASES.values():
        if case.scene.phase in ("acknowledgement", "update"):
            scene = Scene(**{**case.scene.__dict__, "extra": {"sla": SLA}})
            whole = text(render(*env, scene, case.audience, case.tenant)).lower()
            assert "credit" not in whole and "availability" not in whole and "99.78" not in whole, case.name


def test_resolution_root_cause_defaults_to_the_post_mortem_promise(env: tuple[Settings, Renderer]) -> None:
    body = render(*env, CASES["technical_resolution"].scene, "technical").body
    assert (
        "Root Cause: Under investigation. A post-mortem with the root cause and preventive measures will "
        "follow within 48 hours." in body
    )
    assert "Next Update" not in body


# ---------------------------------------------------------------- time zones


@pytest.mark.parametrize(
    ("day", "local", "zone"),
    [(24, "14:00", "IST"), (26, "13:00", "GMT")],
)
def test_next_update_in_the_tenants_zone_across_dst(
    env: tuple[Settings, Renderer], day: int, local: str, zone: str
) -> None:
    now = at(12, 0, day=day, month=10)
    inc = seed_incident(opened_at=now, eta=at(14, 0, day=day, month=10))
    scene = Scene(inc, seed_alerts(), "acknowledgement", now)
    business = render(*env, scene, "business", "bloom").body
    assert f"We'll update you with progress within the next hour, by {local} {zone}." in business
    assert f"Expected Resolution: By {int(local[:2]) + 1}:00 {zone}" in business
    technical = render(*env, scene, "technical", "acme").body
    assert "First Detected: 12:00 UTC" in technical
    assert "Next Update: 13:00 UTC or sooner if status changes" in technical
    assert zone not in technical


def test_business_resolution_window_spanning_the_clock_change(env: tuple[Settings, Renderer]) -> None:
    # Europe/Dublin goes from IST to GMT at 01:00 UTC on 25 October 2026.
    inc = seed_incident(opened_at=at(0, 30, day=25, month=10), resolved_at=at(1, 30, day=25, month=10))
    scene = Scene(inc, seed_alerts(at(1, 30, day=25, month=10)), "resolution", at(1, 30, day=25, month=10))
    body = render(*env, scene, "business", "bloom").body
    assert "It lasted 1 hour, from 01:30 IST to 01:30 GMT on 25 October." in body
    technical = render(*env, scene, "technical", "acme").body
    assert "during the incident (00:30 to 01:30 UTC on 25 October)" in technical


# ---------------------------------------------------------------- tenant privacy


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_tenants_notice_never_names_another_tenant(env: tuple[Settings, Renderer], name: str) -> None:
    case = CASES[name]
    if case.scene.phase in INTERNAL_PHASES:
        return
    tenants = {t["id"]: t["name"] for t in CATALOG["tenants"]}
    for own, own_name in tenants.items():
        for audience in ("technical", "business"):
            whole = text(render(*env, case.scene, audience, own))
            for other, other_name in tenants.items():
                if other != own:
                    assert other_name not in whole, (own, audience)
            if audience == "business" or case.scene.phase == "sla_followup":
                assert f"Hello {own_name}," in whole
    shared = text(render(*env, case.scene, case.audience))
    assert not any(n in shared for n in tenants.values()), "a shared notice greets no tenant"


# ---------------------------------------------------------------- the jargon guard

ODD = "qxzjkvw"
token = st.text(alphabet=ODD + "0123456789", min_size=6, max_size=12).filter(
    lambda v: sum(ch.isalpha() for ch in v) >= 3
)
port = st.integers(1024, 65535)
ipv4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
host = st.builds(lambda a, b: f"{a}-7.{b}.internal", token, token)
instance = st.one_of(
    st.builds("{}:{}".format, host, port),
    st.builds("{}:{}".format, ipv4, port),
    ipv4,
    host,
)
alertname = token.map(lambda t: "Qx" + t.capitalize())
extra_labels = st.dictionaries(st.text(alphabet=ODD + "_", min_size=6, max_size=10), token, max_size=4)
IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
HOST_PORT = re.compile(r"[A-Za-z][\w.-]*:\d{2,5}\b")


@st.composite
def jargon_scenes(draw: st.DrawFn) -> tuple[Scene, list[str], str]:
    """An incident whose alerts carry random hosts, IPs, names and labels everywhere they can."""
    name, inst, job, service = draw(alertname), draw(instance), draw(token), draw(token)
    extra = draw(extra_labels)
    ip = draw(ipv4)
    phase = draw(st.sampled_from(PHASES))
    kind = draw(st.sampled_from([*TYPES, "qxzkind"]))
    services = draw(
        st.lists(st.sampled_from([s["id"] for s in CATALOG["services"]]), max_size=2, unique=True)
    )
    leaks = [name, inst, job, service, ip, *extra, *extra.values()]
    says = " ".join(leaks)
    title = f"{name} on {inst}: {says}"
    resolved = phase in ("resolution", "postmortem", "sla_followup")
    end = at(16, 5) if resolved else None
    alerts = [
        alert(
            name,
            title,
            instance=inst,
            labels={"job": job, "service": service, "incident_type": kind, **extra},
            annotations={
                "description": f"{says} via {ip}:5432",
                "workaround": f"Fail over to {inst} or {ip}",
                "runbook_url": f"https://{job}.example.com/{name}",
            },
            links={"runbook": f"https://{job}.example.com/{name}", "source": f"http://{inst}/graph"},
            ends_at=end,
        )
    ]
    inc = incident(
        title,
        services,
        incident_type=kind,
        level=draw(st.integers(1, 5)),
        status=draw(st.sampled_from(["investigating", "identified", "monitoring"])),
        resolved_at=end,
        unknown_services=[service],
        workaround=f"Use {inst}",
        root_cause=f"{name} on {inst} ({ip})",
        preventive_measures=f"Tune {job} on {ip}",
        eta=draw(st.none() | st.just(at(17, 0))),
    )
    history = [
        entry(at(14, 32), "opened", f"Incident opened: {title}"),
        entry(at(14, 40), "alert_fired", f"{name} on {inst} firing"),
        entry(at(14, 50), "alert_resolved", f"{name} on {inst} resolved"),
    ]
    scene = Scene(
        inc,
        alerts,
        phase,
        at(16, 5) if resolved else at(15, 0),
        event=draw(st.sampled_from(EVENTS[phase])),
        timeline=history,
        changes=history[1:],
        messages={"technical": f"Restarted {job} on {inst}"},
        extra={"sla": SLA},
    )
    technical_names = [s["name"] for s in CATALOG["services"]]
    return scene, [*leaks, title, *([kind] if kind not in TYPES else []), *technical_names], phase


@hsettings(max_examples=100, deadline=None)
@given(drawn=jargon_scenes(), tenant=st.sampled_from([None, "bloom", "acme"]))
def test_business_notices_carry_no_jargon(
    env: tuple[Settings, Renderer], drawn: tuple[Scene, list[str], str], tenant: str | None
) -> None:
    scene, forbidden, _ = drawn
    notice = render(*env, scene, "business", tenant)
    assert not notice.data["template"].startswith("builtin"), "fell back to the built-in template"
    whole = text(notice)
    for value in forbidden:
        assert value not in whole, value
    assert IP.search(whole) is None
    assert HOST_PORT.search(whole) is None
    for label in ("alertname", "instance", "job", "incident_type", "service="):
        assert label not in whole


def _all_types(scene: Scene) -> list[Any]:
    return [Scene(**{**scene.__dict__, "incident": {**scene.incident, "incident_type": t}}) for t in TYPES]


def test_business_templates_of_every_type_and_phase_render(env: tuple[Settings, Renderer]) -> None:
    """Each business template renders for every type, shared and per tenant, without fallback."""
    for case in CASES.values():
        if case.audience != "business":
            continue
        for scene in _all_types(case.scene):
            for tenant in (None, "bloom"):
                notice = render(*env, scene, "business", tenant)
                assert notice.data["template"] != "builtin", (case.name, scene.incident["incident_type"])


# ---------------------------------------------------------------- links (publish.link_hosts)

URL = re.compile(r"https?://[^\s<>\"')\]]+")


@hsettings(max_examples=60, deadline=None)
@given(drawn=jargon_scenes(), audience=st.sampled_from(["technical", "business"]))
def test_customer_notices_link_only_to_allowed_hosts(
    env: tuple[Settings, Renderer], drawn: tuple[Scene, list[str], str], audience: str
) -> None:
    """Runbooks, dashboards and generatorURLs point inside: with no allowlist, only the status
    page's own links reach a customer, in any phase and from any field."""
    scene, _, _ = drawn
    scene = Scene(**{**scene.__dict__, "messages": {audience: "See http://grafana.internal:3000/d/x"}})
    whole = text(render(*env, scene, audience, "acme" if audience == "technical" else "bloom"))
    hosts = {urlsplit(url).hostname for url in URL.findall(whole)}
    assert hosts <= {"status.example.test"}, hosts


def test_links_to_allowed_hosts_stay_and_the_teams_own_notices_keep_theirs(
    env: tuple[Settings, Renderer],
) -> None:
    settings, renderer = env
    scene = Scene(seed_incident(), seed_alerts(), "acknowledgement", at(14, 32))
    runbook = "https://runbooks.example.com/mysql/pool"
    alerts = [{**a, "links": {**a.get("links", {}), "runbook": runbook}} for a in scene.alerts]
    scene = Scene(**{**scene.__dict__, "alerts": alerts})
    assert runbook not in text(render(settings, renderer, scene, "technical", "acme"))
    allowed = settings.model_copy(update={"publish": PublishSettings(link_hosts=[".example.com"])})
    assert f"Runbook: {runbook}" in text(render(allowed, renderer, scene, "technical", "acme"))


def test_scrub_links_keeps_allowed_hosts_and_their_subdomains_only() -> None:
    hosts = ["docs.example.com", ".example.org"]
    kept = "a https://docs.example.com/x b http://a.example.org/y"
    said = f"{kept} c https://evil.example.com/z d http://10.0.0.1:9090/"
    assert scrub_links(said, hosts) == f"{kept} c (internal link removed) d (internal link removed)"
