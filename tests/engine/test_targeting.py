"""Audience targeting, per-tenant delivery, tiers and levels, escalation, SLA follow-ups."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapter.sources import alertmanager
from adapter.store import incidents as repo
from adapter.store import outbox
from tests.conftest import base_config
from tests.payloads import am_alert, am_body
from tests.support.catalog import catalog_data
from tests.support.people import ONCALL
from tests.support.scripted import Reply, ScriptedServer


def world_catalog():
    """The shared catalog with contacts for per-tenant delivery, and nordlys: business, Oslo, an SLA."""
    catalog = catalog_data()
    acme, bloom = catalog["tenants"]
    acme["contacts"]["webhook"] = "http://127.0.0.1:9/acme"
    bloom["contacts"] = {"email": "owner@bloom.example"}
    catalog["tenants"].append(
        {
            "id": "nordlys",
            "name": "Nordlys Media AS",
            "segment": "business",
            "tier": "enterprise",
            "timezone": "Europe/Oslo",
            "services": ["search", "mysql-shared"],
            "contacts": {"webhook": "http://127.0.0.1:9/nordlys", "phone": "+47 555 01 234"},
            "sla": {"availability": 99.9},
        }
    )
    return catalog


@pytest.fixture
def make_world(world):
    return lambda providers, policy=None, catalog=None: world(providers, catalog or world_catalog(), policy)


def fire(svc, service, severity="critical", fingerprint="1000000000000001", status="firing", **kw):
    labels = {"alertname": "Down", "service": service, "severity": severity, "instance": "db-7.prod:3306"}
    alert = am_alert(fingerprint, labels, status=status, **kw)
    result = svc.engine.ingest(alertmanager.parse(am_body([alert], group_key=f"g-{service}")))
    svc.expander.drain()  # the per-tenant notices, written after the webhook's transaction
    return result


def notices(svc, ref="INC-2026-0001"):
    with svc.store.read() as conn:
        incident = repo.get_incident_by_ref(conn, ref)
        return outbox.notices_of(conn, [incident.id]) if incident else []


def streams(svc, ref="INC-2026-0001", phase="acknowledgement"):
    return sorted((n.provider, n.audience, n.tenant) for n in notices(svc, ref) if n.phase == phase)


TECH = {"name": "tech", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/t"}
BIZ = {"name": "biz", "type": "webhook", "audience": "business", "url": "http://127.0.0.1:9/b"}


def test_providers_hear_only_of_incidents_affecting_their_audience(make_world):
    svc = make_world([TECH, BIZ, {**TECH, "name": "tech-all", "only_when_affected": False}])
    fire(svc, "search")  # bloom and nordlys: business tenants only
    assert streams(svc) == [("biz", "business", None), ("tech-all", "technical", None)]


def test_unknown_services_go_nowhere_in_triage_and_to_technical_providers_once_published(make_world):
    svc = make_world([TECH, BIZ, {"name": "status", "type": "builtin", "audience": "all"}])
    fire(svc, "billing")
    assert streams(svc) == []  # in triage
    with svc.store.read() as conn:
        (incident,) = repo.list_incidents(conn)
    svc.humans.patch(incident.ref, None, None, None, None, True, ONCALL)
    assert streams(svc) == [("status", "technical", None), ("tech", "technical", None)]


def test_an_incident_published_as_it_is_stays_published_when_it_comes_back(make_world):
    svc = make_world([TECH])
    fire(svc, "billing")
    with svc.store.read() as conn:
        (incident,) = repo.list_incidents(conn)
    svc.humans.patch(incident.ref, None, None, None, None, True, ONCALL)
    fire(svc, "billing", status="resolved")
    fire(svc, "billing", fingerprint="2000000000000002")  # again, inside the reopen window
    with svc.store.read() as conn:
        (incident,) = repo.list_incidents(conn)
    assert incident.reopen_count == 1 and incident.status == "investigating"
    assert [n.phase for n in notices(svc)] == ["acknowledgement", "resolution", "update"]


def test_per_tenant_provider_sends_each_tenant_its_own_version(make_world):
    direct = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}
    svc = make_world([direct])
    fire(svc, "mysql-shared")  # acme (technical) and nordlys (business); critical infra: level 5
    rows = [n for n in notices(svc) if n.phase == "acknowledgement"]
    assert sorted((n.tenant, n.audience) for n in rows) == [
        ("acme", "technical"),
        ("nordlys", "business"),
    ]
    for row in rows:
        assert row.data["tenants"] == [row.tenant]
        others = {"acme": "Acme Ltd", "nordlys": "Nordlys Media AS", "bloom": "Bloom Florists"}
        others.pop(row.tenant)
        for name in others.values():
            assert name not in row.subject + row.body
    nordlys = next(n for n in rows if n.tenant == "nordlys")
    assert nordlys.data["timezone"] == "Europe/Oslo"
    assert "CET" in nordlys.body or "CEST" in nordlys.body
    assert "db-7.prod" not in nordlys.body


def test_tiers_and_min_level_limit_per_tenant_delivery(make_world):
    enterprise_l5 = {
        "name": "enterprise",
        "type": "webhook",
        "audience": "all",
        "per_tenant": True,
        "tiers": ["enterprise"],
        "min_level": 5,
    }
    svc = make_world([enterprise_l5])
    fire(svc, "checkout")  # level 4: below min_level
    assert streams(svc) == []
    fire(svc, "mysql-shared", fingerprint="2000000000000001")  # level 5; bloom is not affected
    assert streams(svc, "INC-2026-0002") == [
        ("enterprise", "business", "nordlys"),
        ("enterprise", "technical", "acme"),
    ]


def test_tenant_without_the_contact_is_skipped(make_world):
    direct = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}
    svc = make_world([direct])
    fire(svc, "checkout")  # acme (has a webhook) and bloom (has none)
    assert streams(svc) == [("direct", "technical", "acme")]


def test_per_tenant_webhook_posts_to_the_tenant_contact(make_world, clock):
    with ScriptedServer(Reply(200)) as server:
        catalog = world_catalog()
        catalog["tenants"][0]["contacts"]["webhook"] = server.url + "/acme-hook"
        direct = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True, "secret": "k"}
        svc = make_world([direct], catalog=catalog)
        fire(svc, "checkout")
        while svc.dispatcher.run_once():
            pass
    (request,) = server.requests
    assert request.path == "/acme-hook"
    payload = json.loads(request.body)
    assert payload["tenant"] == "acme" and payload["tenants"] == ["acme"]


def test_level_5_sends_an_executive_notice_to_internal_providers(make_world):
    team = {"name": "team", "type": "webhook", "audience": "technical", "url": "http://127.0.0.1:9/x"}
    svc = make_world([TECH, team], policy={"internal_providers": ["team"]})
    fire(svc, "mysql-shared")
    assert streams(svc, phase="executive") == [("team", "technical", None)]
    fire(svc, "checkout", fingerprint="3000000000000001")  # level 4: no executive notice
    assert streams(svc, "INC-2026-0002", phase="executive") == []


CHAT = {"name": "chat", "type": "apprise", "audience": "technical", "urls": "json://127.0.0.1:9/chat"}
SOCIAL_L5 = {"levels": {5: {"business": {"hold_for": "10m"}, "social": ["chat"]}}}


def states(svc, ref="INC-2026-0001", phase="acknowledgement"):
    return {(n.provider, n.audience): n.state for n in notices(svc, ref) if n.phase == phase}


def test_level_5_social_channels_get_the_business_version_at_once(make_world):
    svc = make_world([TECH, BIZ, CHAT], policy=SOCIAL_L5)
    fire(svc, "mysql-shared")  # level 5: acme (technical) and nordlys (business)
    # The business track is held at level 5 here; the social channel is not, though it serves
    # the technical audience otherwise.
    assert states(svc) == {
        ("biz", "business"): "held",
        ("chat", "business"): "pending",
        ("chat", "technical"): "pending",
        ("tech", "technical"): "pending",
    }
    chat = next(n for n in notices(svc) if (n.provider, n.audience) == ("chat", "business"))
    assert chat.body and "db-7.prod" not in chat.body
    assert chat.data["status_url"] == "http://status.example.test/status"


def test_social_channels_hear_only_of_incidents_at_their_level(make_world):
    svc = make_world([TECH, CHAT], policy=SOCIAL_L5)
    fire(svc, "checkout")  # level 4
    assert states(svc) == {("chat", "technical"): "pending", ("tech", "technical"): "pending"}
    with svc.store.read() as conn:
        (incident,) = repo.list_incidents(conn)
    svc.humans.patch(incident.ref, 5, None, None, None, False, ONCALL)
    # Raised to 5: the social channel's first business notice, at once.
    assert states(svc)[("chat", "business")] == "pending"


def test_a_held_notice_of_a_social_channel_goes_out_when_the_incident_reaches_its_level(make_world):
    svc = make_world([{**CHAT, "audience": "business"}], policy=SOCIAL_L5)
    fire(svc, "search", severity="warning")  # level 2: business notices held 10 minutes
    assert states(svc) == {("chat", "business"): "held"}
    with svc.store.read() as conn:
        (incident,) = repo.list_incidents(conn)
    svc.humans.patch(incident.ref, 5, None, None, None, False, ONCALL)
    assert states(svc) == {("chat", "business"): "pending"}  # though level 5 holds business too


def test_executive_and_authoring_requests_reach_chat_providers(make_world):
    team = {**CHAT, "name": "team-chat"}
    policy = {"internal_providers": ["team-chat"], "senior_authoring": {"providers": ["team-chat"]}}
    svc = make_world([TECH, team], policy=policy)
    fire(svc, "mysql-shared")
    assert streams(svc, phase="executive") == [("team-chat", "technical", None)]
    assert streams(svc, phase="authoring_request") == [("team-chat", "technical", None)]


def test_per_tenant_chat_goes_to_tenants_with_a_chat_contact(make_world):
    catalog = world_catalog()
    catalog["tenants"][2]["contacts"]["chat"] = "mmost://chat.nordlys.example/hook-token"
    direct = {"name": "direct-chat", "type": "apprise", "audience": "all", "per_tenant": True}
    svc = make_world([direct], catalog=catalog)
    fire(svc, "mysql-shared")  # acme (no chat contact) and nordlys
    (notice,) = notices(svc)
    assert notice.tenant == "nordlys"
    assert notice.data["contact"]["chat"] == "mmost://chat.nordlys.example/hook-token"


def test_per_tenant_provider_config_errors_name_the_key(make_settings):
    from adapter.config import ConfigError

    config = base_config()
    config["providers"] = [
        {"name": "hook", "type": "webhook", "audience": "all"},
        {"name": "page", "type": "builtin", "per_tenant": True},
    ]
    with pytest.raises(ConfigError) as info:
        make_settings(config)
    problems = [p.split(": ", 1)[1] for p in info.value.problems]
    assert problems == [
        "providers[0].url: required unless per_tenant is true",
        "providers[1].per_tenant: builtin providers cannot deliver per tenant",
    ]


def test_sla_followup_after_resolution_for_tenants_with_a_target(make_world, clock):
    direct = {"name": "direct", "type": "webhook", "audience": "all", "per_tenant": True}
    svc = make_world([direct], policy={"sla_followup": {"enabled": True, "delay": "2h"}})
    t0 = clock.now()
    fire(svc, "mysql-shared", starts_at=t0)
    clock.advance(timedelta(minutes=90))
    fire(svc, "mysql-shared", status="resolved", starts_at=t0, ends_at=clock.now())
    # Never inside active-incident notices.
    assert not [n for n in notices(svc) if "99.9" in n.body]
    clock.advance(timedelta(hours=1))
    svc.scheduler.run_once()
    assert streams(svc, phase="sla_followup") == []
    clock.advance(timedelta(hours=1, minutes=1))
    svc.scheduler.run_once()
    svc.scheduler.run_once()
    followups = [n for n in notices(svc) if n.phase == "sla_followup"]
    assert [(n.tenant, n.audience) for n in followups] == [("nordlys", "business")]
    body = followups[0].body
    # 90 minutes down in November (30 days): 99.792% against a 99.9% target.
    assert "99.79" in body and "99.9" in body
    assert "Acme" not in body


def test_per_tenant_email_reaches_each_tenant_in_its_own_version(make_world):
    from tests.support.smtp_server import SmtpServer

    with SmtpServer() as server:
        mail = {
            "name": "mail",
            "type": "smtp",
            "audience": "all",
            "per_tenant": True,
            "host": "127.0.0.1",
            "port": server.port,
            "security": "none",
            "sender": "Status <status@example.com>",
        }
        svc = make_world([mail])
        fire(svc, "checkout")  # acme (technical, e-mail) and bloom (business, e-mail)
        while svc.dispatcher.run_once():
            pass
        received = server.received
    by_recipient = {tuple(r.rcpt_tos): r.message for r in received}
    assert set(by_recipient) == {("ops@acme.example",), ("owner@bloom.example",)}
    acme, bloom = by_recipient[("ops@acme.example",)], by_recipient[("owner@bloom.example",)]
    assert acme["Subject"].startswith("INC-2026-0001:")  # the technical version
    assert "INC-2026-0001:" not in bloom["Subject"]  # the business version
    assert "Acme" not in bloom.get_body(preferencelist=("plain",)).get_content()
    assert "db-7.prod" not in bloom.get_body(preferencelist=("plain",)).get_content()
    # The HTML alternative is the same notice, rendered by the dispatcher.
    from adapter.rendering import render_html

    plain = bloom.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n").rstrip("\n")
    markup = bloom.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    assert markup == render_html(plain, bloom["Subject"])
