"""The service-to-customer map: lookups by id and alias, tenants per service, segments, zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from adapter.catalog import Catalog, Tenant, load_catalog
from tests.support.catalog import catalog_data

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "catalog.yaml"


@pytest.fixture
def shipped() -> Catalog:
    problems: list[str] = []
    loaded = load_catalog(SHIPPED, problems)
    assert problems == []
    assert loaded is not None
    return loaded


def test_service_by_id(catalog: Catalog) -> None:
    service = catalog.service("mysql-shared")
    assert service is not None
    assert service.id == "mysql-shared"
    assert service.business_name == "Website databases"
    assert service.incident_type == "database"
    assert service.critical_infrastructure is True


def test_service_by_alias(catalog: Catalog) -> None:
    service = catalog.service("checkout-api")
    assert service is not None
    assert service.id == "checkout"


def test_unknown_service_is_none(catalog: Catalog) -> None:
    assert catalog.service("nope") is None
    assert catalog.service("") is None
    # Lookups are exact, not case-folded or by name.
    assert catalog.service("Checkout") is None
    assert catalog.service("Online checkout") is None


def test_service_defaults() -> None:
    catalog = Catalog.model_validate({"services": [{"id": "s", "name": "S", "business_name": "Thing"}]})
    service = catalog.service("s")
    assert service is not None
    assert service.incident_type == "general"
    assert service.critical_infrastructure is False
    assert service.aliases == []
    assert service.components == {}


def test_id_wins_over_another_services_alias() -> None:
    catalog = Catalog.model_validate(
        {
            "services": [
                {"id": "a", "name": "A", "business_name": "A", "aliases": ["b", "shared"]},
                {"id": "b", "name": "B", "business_name": "B", "aliases": ["shared"]},
            ]
        }
    )
    assert catalog.service("b").id == "b"  # type: ignore[union-attr]
    # Two services claiming one alias: the first one listed keeps it.
    assert catalog.service("shared").id == "a"  # type: ignore[union-attr]


def test_shipped_aliases(shipped: Catalog) -> None:
    assert shipped.service("mysql").id == "mysql-shared"  # type: ignore[union-attr]
    assert shipped.service("mysqld-exporter").id == "mysql-shared"  # type: ignore[union-attr]
    assert shipped.service("checkout-api").id == "checkout"  # type: ignore[union-attr]


def test_tenant_lookup(catalog: Catalog) -> None:
    tenant = catalog.tenant("acme")
    assert tenant is not None
    assert tenant.name == "Acme Ltd"
    assert tenant.tier == "enterprise"
    assert tenant.contacts.email == "ops@acme.example"
    assert catalog.tenant("nope") is None


def test_tenants_for_one_service(catalog: Catalog) -> None:
    assert [t.id for t in catalog.tenants_for(["mysql-shared"])] == ["acme"]
    assert [t.id for t in catalog.tenants_for(["search"])] == ["bloom"]
    assert [t.id for t in catalog.tenants_for(["checkout"])] == ["acme", "bloom"]


def test_tenants_for_several_services_lists_each_tenant_once(catalog: Catalog) -> None:
    tenants = catalog.tenants_for(["checkout", "mysql-shared", "search"])
    assert [t.id for t in tenants] == ["acme", "bloom"]


def test_tenants_for_nothing_or_unknown(catalog: Catalog) -> None:
    assert catalog.tenants_for([]) == []
    assert catalog.tenants_for(["nope"]) == []
    # tenants_for takes ids, not aliases.
    assert catalog.tenants_for(["checkout-api"]) == []


def test_tenants_for_on_shipped_catalog(shipped: Catalog) -> None:
    assert [t.id for t in shipped.tenants_for(["edge-network"])] == ["acme", "nordlys"]
    assert [t.id for t in shipped.tenants_for(["object-storage"])] == ["nordlys", "devhaus"]
    assert [t.id for t in shipped.tenants_for(["mysql-shared"])] == ["acme", "bloom"]


def test_segments(catalog: Catalog) -> None:
    assert catalog.tenant("acme").segment == "technical"  # type: ignore[union-attr]
    # The seed's FAQ: an unsegmented account gets the business version.
    assert "segment" not in catalog_data()["tenants"][1]
    assert catalog.tenant("bloom").segment == "business"  # type: ignore[union-attr]


def test_shipped_segments(shipped: Catalog) -> None:
    segments = {t.id: t.segment for t in shipped.tenants}
    assert segments == {
        "acme": "technical",
        "bloom": "business",
        "nordlys": "business",
        "devhaus": "technical",
    }


def test_unknown_segment_rejected() -> None:
    with pytest.raises(ValidationError, match="segment"):
        Tenant.model_validate({"id": "t", "name": "T", "segment": "executive"})


def test_tenant_zone(catalog: Catalog) -> None:
    acme = catalog.tenant("acme")
    assert acme is not None
    assert acme.zone == ZoneInfo("Europe/Dublin")
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC).astimezone(acme.zone)
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC).astimezone(acme.zone)
    assert winter.utcoffset() == timedelta(0)
    assert summer.utcoffset() == timedelta(hours=1)
    assert summer.hour == 13


def test_tenant_zone_defaults_to_utc() -> None:
    tenant = Tenant.model_validate({"id": "t", "name": "T"})
    assert tenant.timezone == "UTC"
    assert tenant.zone == ZoneInfo("UTC")
    assert tenant.tier == "standard"
    assert tenant.services == []


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Atlantis", "utc+1", ""])
def test_unknown_zone_rejected(zone: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Tenant.model_validate({"id": "t", "name": "T", "timezone": zone})


def test_contacts_allow_extra_channels() -> None:
    tenant = Tenant.model_validate(
        {"id": "t", "name": "T", "contacts": {"email": "a@b.example", "slack": "#ops"}}
    )
    assert tenant.contacts.email == "a@b.example"
    assert tenant.contacts.model_extra == {"slack": "#ops"}


def test_catalog_is_frozen(catalog: Catalog) -> None:
    with pytest.raises(ValidationError):
        catalog.services[0].id = "other"  # type: ignore[misc]


def _load(tmp_path: Path, data: Any) -> tuple[Catalog | None, list[str], Path]:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    problems: list[str] = []
    return load_catalog(path, problems), problems, path


def test_load_catalog_valid(tmp_path: Path) -> None:
    loaded, problems, _ = _load(tmp_path, catalog_data())
    assert problems == []
    assert loaded == Catalog.model_validate(catalog_data())


def test_load_catalog_empty_file_is_empty_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("")
    problems: list[str] = []
    loaded = load_catalog(path, problems)
    assert problems == []
    assert loaded == Catalog()


def test_load_catalog_unknown_service(tmp_path: Path) -> None:
    data = catalog_data()
    data["tenants"][0]["services"] = ["mysql-shared", "x"]
    loaded, problems, path = _load(tmp_path, data)
    assert loaded is None
    assert problems == [f"{path}: tenants[0].services[1]: unknown service id 'x'"]


def test_load_catalog_bad_field_names_key_path(tmp_path: Path) -> None:
    data = catalog_data()
    data["services"][2]["critical_infrastructure"] = "sometimes"
    data["tenants"][1]["timezone"] = "Nowhere/Land"
    loaded, problems, path = _load(tmp_path, data)
    assert loaded is None
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}: services[2].critical_infrastructure: ")
    assert problems[1] == f"{path}: tenants[1].timezone: unknown time zone 'Nowhere/Land'"


def test_load_catalog_missing_file(tmp_path: Path) -> None:
    problems: list[str] = []
    assert load_catalog(tmp_path / "absent.yaml", problems) is None
    assert problems == [f"{tmp_path / 'absent.yaml'}: (file): cannot read: No such file or directory"]


def test_indexed_lookups_answer_as_a_scan_of_the_catalog_would() -> None:
    import random

    rnd = random.Random(7)
    services = [f"svc-{n}" for n in range(12)]
    catalog = Catalog(
        services=[{"id": s, "name": s, "business_name": s} for s in services],
        tenants=[
            {"id": f"t{n}", "name": f"T{n}", "services": rnd.sample(services, rnd.randint(0, 4))}
            for n in range(300)
        ],
    )
    for _ in range(200):
        wanted = rnd.sample([*services, "unknown"], rnd.randint(0, 4))
        scanned = [t for t in catalog.tenants if set(wanted) & set(t.services)]
        assert catalog.tenants_for(wanted) == scanned
    assert all(catalog.tenant(t.id) is t for t in catalog.tenants)
    assert catalog.tenant("nobody") is None
