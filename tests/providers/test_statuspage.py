"""Statuspage provider against the fake API: lifecycle, component restore, errors, no duplicates."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message
from adapter.providers.statuspage import SKIPPED, Statuspage, StatuspageOptions
from tests.support.catalog import catalog_data
from tests.support.fake_statuspage import FakeStatuspage
from tests.support.people import ONCALL

KEY = "sp-test-key"


@pytest.fixture
def fake():
    components = {"cmpdb": "degraded_performance", "cmpweb": "operational", "cmpsearch": "operational"}
    with FakeStatuspage(keys=(KEY,), components=components, rate=None) as server:
        yield server


def make_provider(server: FakeStatuspage, **options: Any) -> Statuspage:
    settings = ProviderSettings(
        name="sp",
        type="statuspage",
        audience="business",
        page_id=server.page_id,
        api_key=options.pop("api_key", KEY),
        api_url=server.url,
        **options,
    )
    return Statuspage(settings)


@pytest.fixture
def provider(fake):
    provider = make_provider(fake)
    yield provider
    provider.close()


def message(**changes: Any) -> Message:
    base = Message(
        notice_id=1,
        incident_ref="INC-2026-0001",
        phase="acknowledgement",
        audience="business",
        subject="Online checkout: errors for some customers",
        body="We are investigating errors during checkout.",
        level=3,
        status="investigating",
        services=["checkout", "mysql-shared"],
        tenants=["bloom"],
        data={"components": ["cmpdb", "cmpweb"]},
    )
    return dataclasses.replace(base, **changes)


def sent(fake: FakeStatuspage) -> list[tuple[str, str]]:
    return [(r.method, r.path.removeprefix(f"/pages/{fake.page_id}")) for r in fake.requests]


# -- success -----------------------------------------------------------------------------------------


def test_create_update_resolve_restores_the_statuses_components_had_before(fake, provider):
    ref = provider.send(message())
    incident = fake.page.incidents[ref]
    assert incident["name"] == "Online checkout: errors for some customers"
    assert (incident["status"], incident["impact_override"]) == ("investigating", "major")
    assert incident["incident_updates"][0]["body"] == "We are investigating errors during checkout."
    assert fake.status_of("cmpdb") == fake.status_of("cmpweb") == "partial_outage"
    create = next(r for r in fake.requests if r.method == "POST")
    assert create.body["incident"]["component_ids"] == ["cmpdb", "cmpweb"]
    assert create.body["incident"]["components"] == {"cmpdb": "partial_outage", "cmpweb": "partial_outage"}
    assert create.body["incident"]["deliver_notifications"] is True
    # Lookup first (no duplicate after a lost answer), then the statuses before the change, then create.
    assert sent(fake) == [
        ("GET", "/incidents/unresolved"),
        ("GET", "/components"),
        ("POST", "/incidents"),
    ]

    fake.requests.clear()
    update = message(
        notice_id=2, phase="update", status="identified", level=4, provider_ref=ref, body="Found it."
    )
    assert provider.send(update) == ref
    assert (incident["status"], incident["impact"]) == ("identified", "major")
    assert fake.status_of("cmpdb") == fake.status_of("cmpweb") == "major_outage"
    assert incident["incident_updates"][0]["body"] == "Found it."
    assert [m for m, _ in sent(fake)] == ["GET", "PATCH"]

    fake.requests.clear()
    resolution = message(notice_id=3, phase="resolution", status="resolved", provider_ref=ref, body="Fixed.")
    assert provider.send(resolution) == ref
    assert incident["status"] == "resolved"
    # Back to what they were, not blindly operational.
    assert fake.status_of("cmpdb") == "degraded_performance"
    assert fake.status_of("cmpweb") == "operational"
    assert [m for m, _ in sent(fake)] == ["GET", "PATCH"]
    assert len(fake.page.incidents) == 1
    assert all(r.status < 400 for r in fake.requests)


def test_metadata_names_the_stream_and_keeps_the_statuses_before(fake, provider):
    ref = provider.send(message(notice_id=41))
    metadata = fake.page.incidents[ref]["metadata"]
    assert all(isinstance(value, dict) for value in metadata.values())  # the API's rule
    assert metadata == {
        "dualtrack": {
            "ref": "INC-2026-0001",
            "audience": "business",
            "stream": "sp/business/-",
            "notice": "41",
            "before": {"cmpdb": "degraded_performance", "cmpweb": "operational"},
            "set": {"cmpdb": "partial_outage", "cmpweb": "partial_outage"},
        }
    }


def test_name_and_body_are_cut_to_the_api_limits(fake, provider):
    ref = provider.send(message(subject="x" * 300, body="y" * 30_000))
    incident = fake.page.incidents[ref]
    assert len(incident["name"]) == 255 and incident["name"].endswith("…")
    body = incident["incident_updates"][0]["body"]
    assert len(body) == 25_000 and body.endswith("…")
    short = provider.send(message(notice_id=2, incident_ref="INC-2", subject="z" * 255))
    assert fake.page.incidents[short]["name"] == "z" * 255


@pytest.mark.parametrize(
    ("level", "impact", "status"),
    [
        (1, "minor", "degraded_performance"),
        (2, "minor", "partial_outage"),
        (3, "major", "partial_outage"),
        (4, "major", "major_outage"),
        (5, "critical", "major_outage"),
    ],
)
def test_default_impact_table(fake, provider, level, impact, status):
    ref = provider.send(message(level=level, data={"components": ["cmpweb"]}))
    assert fake.page.incidents[ref]["impact_override"] == impact
    assert fake.status_of("cmpweb") == status


def test_impact_table_is_configurable_level_by_level(fake):
    provider = make_provider(fake, impact={"5": {"impact": "major", "component_status": "partial_outage"}})
    try:
        assert provider.impact(5).impact == "major"
        assert provider.impact(4).component_status == "major_outage"  # default kept
        ref = provider.send(message(level=5, data={"components": ["cmpweb"]}))
        assert fake.page.incidents[ref]["impact_override"] == "major"
        assert fake.status_of("cmpweb") == "partial_outage"
    finally:
        provider.close()
    with pytest.raises(ValueError, match="level must be 1 to 5"):
        StatuspageOptions.model_validate({"page_id": "p", "api_key": "k", "impact": {6: DEFAULT_ROW}})
    with pytest.raises(ValueError, match="component_status"):
        StatuspageOptions.model_validate(
            {"page_id": "p", "api_key": "k", "impact": {1: {"impact": "minor", "component_status": "down"}}}
        )


DEFAULT_ROW = {"impact": "minor", "component_status": "degraded_performance"}


def test_options_rate_key_and_checks():
    options = StatuspageOptions.model_validate({"page_id": "p1", "api_key": "secret-key"})
    assert options.api_url == "https://api.statuspage.io/v1"
    assert options.deliver_notifications is True
    assert "secret-key" not in repr(options)
    settings = ProviderSettings(name="sp", type="statuspage", audience="business", page_id="p1", api_key="k")
    provider = Statuspage(settings)
    try:
        assert provider.rate_limit == (1.0, 1) and provider.coalesce is True
        key = provider.rate_key()
        assert key.startswith("statuspage:") and len(key) == len("statuspage:") + 16
        # Same key, same budget, whatever the provider's name.
        other = Statuspage(settings.model_copy(update={"name": "sp2"}))
        assert other.rate_key() == key
        other.close()
    finally:
        provider.close()
    both = ProviderSettings(name="sp", type="statuspage", audience="all", page_id="p1", api_key="k")
    assert [k for k, _ in Statuspage.check(both, Statuspage.Options.model_validate(both.options()))] == [
        "audience"
    ]
    per_tenant = settings.model_copy(update={"per_tenant": True})
    assert Statuspage.check(per_tenant, options)[0][0] == "per_tenant"
    with pytest.raises(ValueError, match="http"):
        StatuspageOptions.model_validate({"page_id": "p", "api_key": "k", "api_url": "ftp://x"})


def test_deliver_notifications_false_is_sent(fake):
    provider = make_provider(fake, deliver_notifications=False)
    try:
        provider.send(message())
    finally:
        provider.close()
    create = next(r for r in fake.requests if r.method == "POST")
    assert create.body["incident"]["deliver_notifications"] is False


# -- failures ------------------------------------------------------------------------------------------


def test_bad_key_is_permanent_and_never_shows_the_key(fake):
    provider = make_provider(fake, api_key="wrong-key-123")
    try:
        with pytest.raises(DeliveryError) as caught:
            provider.send(message())
    finally:
        provider.close()
    assert caught.value.permanent
    assert "HTTP 401" in str(caught.value) and "Could not authenticate" in str(caught.value)
    assert "wrong-key-123" not in str(caught.value)


def test_validation_error_is_permanent_with_the_fields_named(fake, provider):
    fake.fail_next(422, {"error": {"name": ["is too long"], "components": ["are invalid"]}}, method="POST")
    with pytest.raises(DeliveryError) as caught:
        provider.send(message())
    assert caught.value.permanent
    assert "HTTP 422" in str(caught.value) and "name: is too long; components: are invalid" in str(
        caught.value
    )
    assert fake.page.incidents == {}


def test_message_style_error_body_is_shown(fake, provider):
    fake.fail_next(400, {"message": "Status is not valid"}, method="POST")
    with pytest.raises(DeliveryError, match="Status is not valid") as caught:
        provider.send(message())
    assert caught.value.permanent


def test_server_errors_are_retryable_and_the_retry_creates_one_incident(fake, provider):
    fake.fail_next(503, {"error": "Service Unavailable"}, {"Retry-After": "7"}, method="POST")
    with pytest.raises(DeliveryError) as caught:
        provider.send(message())
    assert not caught.value.permanent and caught.value.retry_after == 7
    assert "Service Unavailable" in str(caught.value)
    ref = provider.send(message())
    assert list(fake.page.incidents) == [ref]


def test_timeout_then_retry_finds_the_incident_instead_of_creating_another(fake):
    provider = make_provider(fake, timeout=timedelta(seconds=0.3))
    try:
        fake.drop_next_create(delay=2.0)
        with pytest.raises(DeliveryError, match="timed out") as caught:
            provider.send(message(notice_id=7))
        assert not caught.value.permanent
        assert len(fake.page.incidents) == 1  # stored; only the answer was lost
        ref = provider.send(message(notice_id=7))
    finally:
        provider.close()
    assert list(fake.page.incidents) == [ref]
    assert [r.method for r in fake.requests].count("POST") == 1
    assert fake.requests[-1].path.endswith("/incidents/unresolved")


def test_lookup_matches_ref_audience_and_stream_only(fake, provider):
    theirs = provider.send(message(audience="technical"))
    other_ref = provider.send(message(incident_ref="INC-2026-0002"))
    ours = provider.send(message(notice_id=3))
    assert len({theirs, other_ref, ours}) == 3
    assert len(fake.page.incidents) == 3


def test_a_later_notice_without_a_recorded_ref_updates_the_incident_an_earlier_one_created(fake, provider):
    # As when a coalesced batch's first notice created the incident moments ago.
    ref = provider.send(message(notice_id=1))
    assert provider.send(message(notice_id=3, phase="update", status="monitoring", body="Watching.")) == ref
    assert fake.page.incidents[ref]["status"] == "monitoring"
    assert provider.send(message(notice_id=4, phase="resolution", status="resolved")) == ref
    assert fake.page.incidents[ref]["status"] == "resolved"
    assert len(fake.page.incidents) == 1
    assert fake.status_of("cmpdb") == "degraded_performance"


# -- components shared with other incidents ------------------------------------------------------------


def test_components_held_by_another_open_dualtrack_incident_are_not_restored(fake, provider):
    web = {"components": ["cmpweb"]}
    first = provider.send(message(incident_ref="INC-A", data=web, level=2))
    second = provider.send(message(incident_ref="INC-B", data=web, level=5))
    assert fake.status_of("cmpweb") == "major_outage"
    # The second incident knows the status before dualtrack, not the first incident's outage.
    assert fake.page.incidents[second]["metadata"]["dualtrack"]["before"] == {"cmpweb": "operational"}
    provider.send(message(incident_ref="INC-A", phase="resolution", status="resolved", provider_ref=first))
    assert fake.page.incidents[first]["status"] == "resolved"
    assert fake.status_of("cmpweb") == "major_outage"  # INC-B still holds it
    provider.send(message(incident_ref="INC-B", phase="resolution", status="resolved", provider_ref=second))
    assert fake.status_of("cmpweb") == "operational"


def test_an_incident_dualtrack_did_not_create_is_never_touched(fake, provider):
    manual = fake.add_incident("Planned DB work", {"cmpdb": "under_maintenance"}, {"jira": {"key": "OPS-1"}})
    fake.requests.clear()
    # Its id as if it were ours: refused without a single write.
    for phase, status in (("update", "identified"), ("resolution", "resolved"), ("postmortem", "resolved")):
        with pytest.raises(DeliveryError, match="not created by dualtrack") as caught:
            provider.send(message(phase=phase, status=status, provider_ref=manual))
        assert caught.value.permanent
    assert fake.writes() == []
    assert fake.page.incidents[manual]["status"] == "investigating"
    # Ours on the same component: the lookup ignores the manual one, and our resolution leaves
    # the component to the manual incident that still holds it.
    ours = provider.send(message())
    assert ours != manual
    provider.send(message(phase="resolution", status="resolved", provider_ref=ours))
    assert fake.status_of("cmpdb") == "partial_outage"
    assert fake.status_of("cmpweb") == "operational"
    assert fake.page.incidents[manual]["status"] == "investigating"
    assert fake.page.incidents[manual]["metadata"] == {"jira": {"key": "OPS-1"}}
    assert not [r for r in fake.writes() if manual in r.path]


def test_a_component_someone_changed_since_is_left_as_they_set_it(fake, provider):
    ref = provider.send(message(data={"components": ["cmpweb"]}))
    fake.page.components["cmpweb"]["status"] = "under_maintenance"  # by hand, in the web UI
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    assert fake.status_of("cmpweb") == "under_maintenance"


def test_an_update_adding_a_component_records_its_status_before(fake, provider):
    ref = provider.send(message(data={"components": ["cmpweb"]}))
    fake.page.components["cmpsearch"]["status"] = "degraded_performance"
    provider.send(message(phase="update", provider_ref=ref, data={"components": ["cmpweb", "cmpsearch"]}))
    assert fake.status_of("cmpsearch") == "partial_outage"
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    assert fake.status_of("cmpsearch") == "degraded_performance"
    assert fake.status_of("cmpweb") == "operational"


def test_a_reopened_incident_is_reopened_at_statuspage(fake, provider):
    ref = provider.send(message(data={"components": ["cmpweb"]}))
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    provider.send(message(phase="update", status="investigating", provider_ref=ref, level=4))
    assert fake.page.incidents[ref]["status"] == "investigating"
    assert fake.status_of("cmpweb") == "major_outage"
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    assert fake.status_of("cmpweb") == "operational"


def test_a_repeated_resolution_sends_nothing(fake, provider):
    ref = provider.send(message())
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    fake.requests.clear()
    assert provider.send(message(phase="resolution", status="resolved", provider_ref=ref)) == ref
    assert fake.writes() == []


# -- other phases -----------------------------------------------------------------------------------


def test_postmortem_is_saved_and_published(fake, provider):
    ref = provider.send(message())
    provider.send(message(phase="resolution", status="resolved", provider_ref=ref))
    fake.requests.clear()
    post = message(phase="postmortem", status="resolved", provider_ref=ref, body="## What happened\n...")
    assert provider.send(post) == ref
    incident = fake.page.incidents[ref]
    assert incident["postmortem_body"] == "## What happened\n..."
    assert incident["postmortem_notified_subscribers"] is True
    assert sent(fake)[1:] == [
        ("PUT", f"/incidents/{ref}/postmortem"),
        ("PUT", f"/incidents/{ref}/postmortem/publish"),
    ]
    fake.requests.clear()
    provider.send(post)  # a repeat after a lost answer
    assert fake.writes() == []


def test_a_resolution_coalesced_into_the_postmortem_is_applied_first(fake, provider):
    ref = provider.send(message())
    provider.send(message(phase="postmortem", status="resolved", provider_ref=ref, body="PM"))
    incident = fake.page.incidents[ref]
    assert incident["status"] == "resolved" and incident["postmortem_body"] == "PM"
    assert fake.status_of("cmpdb") == "degraded_performance"


def test_other_phases_send_nothing(fake, provider):
    ref = provider.send(message())
    fake.requests.clear()
    for phase in ("executive", "postmortem_reminder"):
        assert provider.send(message(phase=phase, provider_ref=ref)) == ref
    assert fake.requests == []
    skipped = provider.send(message(phase="sla_followup", status="resolved"))
    assert skipped.startswith(SKIPPED) and fake.requests == []
    # A skip is never taken for an incident id: the stream's next notice creates the incident.
    assert (
        provider.send(message(notice_id=9, incident_ref="INC-9", provider_ref=skipped)) in fake.page.incidents
    )


def test_a_resolution_coalesced_into_an_sla_followup_is_applied(fake, provider):
    ref = provider.send(message())
    assert provider.send(message(phase="sla_followup", status="resolved", provider_ref=ref)) == ref
    assert fake.page.incidents[ref]["status"] == "resolved"
    assert fake.status_of("cmpdb") == "degraded_performance"


# -- through the dispatcher ---------------------------------------------------------------------------


@pytest.fixture
def paced_fake(clock):
    components = {"cmpweb": "degraded_performance", "cmpsearch": "operational"}
    # 1 request/s per key, on the clock the dispatcher paces its requests on (420 beyond).
    with FakeStatuspage(keys=(KEY,), components=components, clock=clock) as server:
        yield server


@pytest.fixture
def world(open_store, make_settings, clock, paced_fake, monkeypatch):
    from adapter import providers
    from adapter.app import create_app
    from adapter.metrics import Metrics
    from tests.conftest import base_config

    monkeypatch.setitem(providers.REGISTRY, "statuspage", Statuspage)
    config = base_config()
    config["providers"] = [
        {
            "name": "sp",
            "type": "statuspage",
            "audience": "business",
            "page_id": paced_fake.page_id,
            "api_key": KEY,
            "api_url": paced_fake.url,
        }
    ]
    catalog = catalog_data()
    ids = {"checkout": "cmpweb", "search": "cmpsearch"}
    for service in catalog["services"]:
        if service["id"] in ids:
            service["components"] = {"sp": ids[service["id"]]}
    settings = make_settings(config, catalog)
    store = open_store(settings.storage.url)
    app = create_app(settings, clock=clock, store=store, metrics=Metrics())
    services = app.extensions["dualtrack"]
    yield services
    services.dispatcher.stop(timeout=1)
    store.dispose()


def sp_notices(svc) -> list:
    from adapter.store import incidents as repo
    from adapter.store import outbox

    with svc.store.read() as conn:
        rows = outbox.notices_of(conn, [i.id for i in repo.list_incidents(conn)])
    return [r for r in rows if r.provider == "sp"]


def incident_refs(svc) -> list[str]:
    from adapter.store import incidents as repo

    with svc.store.read() as conn:
        return [i.ref for i in repo.list_incidents(conn)]


def ingest(svc, body: dict) -> None:
    from adapter.sources import alertmanager

    svc.engine.ingest(alertmanager.parse(body))


def test_dispatcher_coalesces_a_stream_into_create_and_one_patch_and_keeps_the_resolution(world, paced_fake):
    from adapter.engine.humans import HumanUpdate
    from tests.conftest import fixture_json

    ingest(world, fixture_json("alertmanager/alertmanager-firing.json"))
    ref = incident_refs(world)[0]
    world.humans.update(ref, HumanUpdate(status="identified", business="We found the cause."), ONCALL)
    ingest(world, fixture_json("alertmanager/alertmanager-mixed.json"))
    ingest(world, fixture_json("alertmanager/alertmanager-resolved.json"))
    assert [n.phase for n in sp_notices(world)] == ["acknowledgement", "update", "resolution"]

    world.dispatcher.run_once()

    rows = sp_notices(world)
    assert {r.state for r in rows} == {"delivered"}
    writes = [(r.method, r.body["incident"]["status"]) for r in paced_fake.writes()]
    assert writes == [("POST", "investigating"), ("PATCH", "resolved")]
    (incident,) = paced_fake.page.incidents.values()
    assert incident["status"] == "resolved"
    assert incident["metadata"]["dualtrack"]["ref"] == ref
    assert paced_fake.status_of("cmpweb") == "degraded_performance"  # as it was before
    assert rows[0].provider_ref == rows[2].provider_ref == incident["id"]
    assert paced_fake.rate_limited == 0


def test_dispatcher_paces_a_burst_to_1_request_per_second(world, paced_fake, clock):
    from tests.payloads import am_alert, am_body

    for n, service in enumerate(("checkout", "search")):
        labels = {"alertname": f"Errors{n}", "service": service, "severity": "critical"}
        ingest(world, am_body([am_alert(f"f{n:015d}", labels)], f'{{}}:{{alertname="Errors{n}"}}'))
    assert len(sp_notices(world)) == 2

    started = clock.now()
    world.dispatcher.run_once()

    assert {r.state for r in sp_notices(world)} == {"delivered"}
    assert len(paced_fake.page.incidents) == 2
    assert len(paced_fake.requests) == 6
    assert paced_fake.rate_limited == 0
    # On the dispatcher's clock, which its waits for a token moved: one request a second.
    gaps = [b.at - a.at for a, b in zip(paced_fake.requests, paced_fake.requests[1:], strict=False)]
    assert gaps == [1.0] * 5
    assert clock.now() - started == timedelta(seconds=5)
