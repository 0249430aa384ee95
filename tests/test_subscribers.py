"""Subscriber sync: each tenant's e-mail on its segment's Statuspage page, by component; others untouched."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from adapter.providers.statuspage import Statuspage
from adapter.providers.statuspage.subscribers import subscribed_components
from adapter.subscribers import Add, Change, Removal, apply, plan, sync
from tests.conftest import base_config
from tests.support.catalog import catalog_data
from tests.support.fake_statuspage import FakeStatuspage

KEY = "sp-test-key"
TECH_KEY = "sp-tech-key"


def subscriber_catalog():
    """The shared catalog with components on both pages, and tenants with and without an address."""
    catalog = catalog_data()
    components = {
        "mysql-shared": {"sp-tech": "tdb"},
        "checkout": {"sp-biz": "bweb", "sp-tech": "tweb"},
        "search": {"sp-biz": "bsearch"},
    }
    for service in catalog["services"]:
        service["components"] = components.get(service["id"], {})
    catalog["tenants"][1]["contacts"] = {"email": "Hello@Bloom.example"}
    catalog["tenants"] += [
        {"id": "corn", "name": "Corn", "services": ["checkout"], "contacts": {"email": "it@corn.example"}},
        {"id": "dill", "name": "Dill", "services": ["search"]},  # no e-mail
        {
            "id": "elm",
            "name": "Elm",
            "segment": "technical",
            "services": ["mysql-shared"],
            "contacts": {"email": "elm@elm.example"},
        },
        {"id": "fig", "name": "Fig", "services": ["mysql-shared"], "contacts": {"email": "fig@fig.example"}},
    ]
    return catalog


@pytest.fixture
def fake():
    with FakeStatuspage(keys=(KEY,), page_id="biz", components={"bweb": "operational"}, rate=None) as server:
        server.add_component("bsearch")
        server.add_page("tech", {"tdb": "operational", "tweb": "operational"})
        yield server


def provider_config(server: FakeStatuspage) -> list[dict]:
    common = {"type": "statuspage", "api_key": KEY, "api_url": server.url}
    return [
        {"name": "sp-biz", "audience": "business", "page_id": "biz", **common},
        {"name": "sp-tech", "audience": "technical", "page_id": "tech", **common},
    ]


@pytest.fixture
def settings(make_settings, fake, monkeypatch):
    from adapter import providers

    monkeypatch.setitem(providers.REGISTRY, "statuspage", Statuspage)
    config = base_config()
    config["providers"] = provider_config(fake)
    return make_settings(config, subscriber_catalog())


@pytest.fixture
def clients(settings):
    made = {p.name: Statuspage(p) for p in settings.providers}
    yield made
    for client in made.values():
        client.close()


def emails(server: FakeStatuspage, page: str) -> dict[str, list[str]]:
    return {s["email"]: sorted(s["components"] or ["(all)"]) for s in server.pages[page].subscribers.values()}


def test_plan_adds_changes_and_removes_only_catalog_addresses(fake, settings, clients):
    bloom = fake.add_subscriber("hello@bloom.example", ["bweb"], page_id="biz")
    acme = fake.add_subscriber("ops@acme.example", ["bweb"], page_id="biz")  # technical tenant
    fake.add_subscriber("fan@example.org", ["bweb"], page_id="biz")  # not dualtrack's
    fake.add_subscriber("elm@elm.example", None, page_id="biz")  # the whole page, no component there
    result = plan(settings, settings.provider("sp-biz"), clients["sp-biz"])
    assert result.adds == [Add("sp-biz", "it@corn.example", ("bweb",), ("corn",))]
    assert result.changes == [Change("sp-biz", bloom, "Hello@Bloom.example", ("bweb",), ("bsearch", "bweb"))]
    elm = next(s["id"] for s in fake.pages["biz"].subscribers.values() if s["email"] == "elm@elm.example")
    assert sorted(result.removals, key=lambda r: r.email) == [
        Removal("sp-biz", elm, "elm@elm.example"),
        Removal("sp-biz", acme, "ops@acme.example"),
    ]
    assert result.notes == ["tenant fig: none of its services has a component on sp-biz"]
    tech = plan(settings, settings.provider("sp-tech"), clients["sp-tech"])
    assert tech.adds == [
        Add("sp-tech", "elm@elm.example", ("tdb",), ("elm",)),
        Add("sp-tech", "ops@acme.example", ("tdb", "tweb"), ("acme",)),
    ]
    assert (tech.changes, tech.removals) == ([], [])


def test_apply_reconciles_and_a_second_plan_is_empty(fake, settings, clients):
    fake.add_subscriber("hello@bloom.example", ["bweb"], page_id="biz")
    fake.add_subscriber("ops@acme.example", ["bweb"], page_id="biz")
    fake.add_subscriber("fan@example.org", ["bweb"], page_id="biz")
    seen = []
    for name, client in clients.items():
        errors = apply(
            plan(settings, settings.provider(name), client), client, lambda d, t: seen.append((d, t))
        )
        assert errors == []
    assert emails(fake, "biz") == {
        "hello@bloom.example": ["bsearch", "bweb"],
        "it@corn.example": ["bweb"],
        "fan@example.org": ["bweb"],
    }
    assert emails(fake, "tech") == {"ops@acme.example": ["tdb", "tweb"], "elm@elm.example": ["tdb"]}
    assert seen == [(1, 3), (2, 3), (3, 3), (1, 2), (2, 2)]
    posts = [r.body for r in fake.requests if r.method == "POST"]
    assert all(p["subscriber"]["skip_confirmation_notification"] is True for p in posts)
    for name, client in clients.items():
        again = plan(settings, settings.provider(name), client)
        assert again.steps == 0


def test_subscribers_are_read_page_by_page(fake, settings, clients):
    for n in range(130):
        fake.add_subscriber(f"a{n:03d}@other.example", ["bweb"], page_id="biz")
    fake.add_subscriber("zz-unused@x.example", page_id="biz")
    fake.add_subscriber("it@corn.example", ["bweb"], page_id="biz")  # sorts onto the second page
    result = plan(settings, settings.provider("sp-biz"), clients["sp-biz"])
    assert [a.email for a in result.adds] == ["Hello@Bloom.example"]
    pages = [(r.query["page"], r.query["limit"]) for r in fake.requests if r.path.endswith("/subscribers")]
    assert pages == [("0", "100"), ("1", "100")]


def test_unconfirmed_subscribers_count_as_subscribed(fake, settings, clients):
    fake.add_subscriber("it@corn.example", ["bweb"], state="unconfirmed", page_id="biz")
    result = plan(settings, settings.provider("sp-biz"), clients["sp-biz"])
    assert "it@corn.example" not in [a.email for a in result.adds]


def test_components_field_in_either_shape():
    assert subscribed_components({"components": ["b", "a"]}) == ("a", "b")
    assert subscribed_components({"components": '["b","a"]'}) == ("a", "b")
    assert subscribed_components({"components": "a, b"}) == ("a", "b")
    assert subscribed_components({"components": [{"id": "a"}]}) == ("a",)
    assert subscribed_components({}) == ()


def test_sync_dry_run_prints_the_plan_and_changes_nothing(fake, settings, clock):
    fake.add_subscriber("ops@acme.example", ["bweb"], page_id="biz")
    out = io.StringIO()
    assert sync(settings, dry_run=True, out=out, progress=False, clock=clock) == 0
    text = out.getvalue()
    assert "sp-biz (business page biz): 2 to add, 0 to change, 1 to remove" in text
    assert "  + Hello@Bloom.example  components bsearch,bweb  (tenants bloom)" in text
    assert "  - ops@acme.example" in text
    assert "sp-tech (technical page tech): 2 to add" in text
    assert "dry run: nothing changed" in text
    assert [r.method for r in fake.requests] == ["GET", "GET"]
    assert emails(fake, "biz") == {"ops@acme.example": ["bweb"]}


def test_sync_applies_with_a_progress_bar_at_1_request_per_second(make_settings, monkeypatch, clock):
    from adapter import providers

    monkeypatch.setitem(providers.REGISTRY, "statuspage", Statuspage)
    # 1 request/s per key (420 beyond), judged on the clock sync paces its requests on.
    components = {"bweb": "operational"}
    with FakeStatuspage(keys=(KEY,), page_id="biz", components=components, clock=clock) as server:
        server.add_component("bsearch")
        server.add_page("tech", {"tdb": "operational", "tweb": "operational"})
        server.add_subscriber("hello@bloom.example", ["bweb", "bsearch"], page_id="biz")
        config = base_config()
        config["providers"] = provider_config(server)
        settings = make_settings(config, subscriber_catalog())
        out = io.StringIO()
        started = clock.now()
        assert sync(settings, dry_run=False, out=out, progress=True, clock=clock) == 0
    text = out.getvalue()
    assert f"\r[{'#' * 30}] 1/1\n" in text and f"\r[{'#' * 15}{'.' * 15}] 1/2" in text
    assert "sp-biz: 1/1 done" in text and "sp-tech: 2/2 done" in text
    assert emails(server, "biz")["it@corn.example"] == ["bweb"]
    # Paced by the database bucket: five requests, four waits of a second on the clock.
    assert len(server.requests) == 5 and server.rate_limited == 0
    assert [b.at - a.at for a, b in zip(server.requests, server.requests[1:], strict=False)] == [1.0] * 4
    assert clock.now() - started == timedelta(seconds=4)


def test_sync_reports_failures_and_carries_on(fake, settings, clock):
    fake.fail_next(500, {"error": "Boom"}, method="POST")
    out = io.StringIO()
    assert sync(settings, dry_run=False, out=out, progress=False, clock=clock) == 1
    text = out.getvalue()
    assert "error: add Hello@Bloom.example" in text and "Boom" in text
    assert "sp-biz: 1/2 done" in text
    assert set(emails(fake, "tech")) == {"ops@acme.example", "elm@elm.example"}


def test_sync_without_statuspage_providers(make_settings):
    out = io.StringIO()
    assert sync(make_settings(), dry_run=True, out=out, progress=False) == 0
    assert "no statuspage providers" in out.getvalue()


def test_sync_reports_a_page_it_cannot_read(fake, settings, clock):
    fake.keys.clear()
    out = io.StringIO()
    assert sync(settings, dry_run=True, out=out, progress=False, clock=clock) == 1
    assert "sp-biz: cannot read subscribers" in out.getvalue() and "Could not authenticate" in out.getvalue()
    assert KEY not in out.getvalue()


def test_cli_subscribers_sync_dry_run(fake, make_settings, capsys):
    from adapter.cli import main

    # A key per page, so each page has its own budget: the command (on the system's clock) reads
    # one list per page and never waits for a token.
    fake.keys.add(TECH_KEY)
    config = base_config()
    config["providers"] = provider_config(fake)
    config["providers"][1]["api_key"] = TECH_KEY
    settings = make_settings(config, subscriber_catalog())
    assert main(["subscribers", "sync", "--dry-run", "--config", settings.config_path]) == 0
    out = capsys.readouterr().out
    assert "sp-biz (business page biz)" in out and "dry run: nothing changed" in out
    assert [r.method for r in fake.requests] == ["GET", "GET"]
