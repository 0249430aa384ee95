"""The service-to-customer map: services, tenants, segments, and lookups between them."""

from __future__ import annotations

from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapter.configfile import format_validation_error, read_yaml

Segment = Literal["technical", "business"]


@cache
def _zones() -> frozenset[str]:
    """The IANA zone names this machine knows (reading them takes ~30 ms: once per process)."""
    return frozenset(available_timezones()) | {"UTC"}


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    business_name: str = Field(min_length=1)
    incident_type: str = "general"
    critical_infrastructure: bool = False
    # Other label values (e.g. a Prometheus job name) that mean this service.
    aliases: list[str] = []
    # provider name → that provider's component id for this service.
    components: dict[str, str] = {}


class Contacts(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    email: str | None = None
    webhook: str | None = None
    phone: str | None = None


class Tenant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    # The seed's FAQ: unsegmented accounts get the business version.
    segment: Segment = "business"
    tier: str = "standard"
    timezone: str = "UTC"
    services: list[str] = []
    contacts: Contacts = Contacts()
    sla: dict[str, float] = {}
    # The tenant's own status page token (/status/t/<token>); else derived from a secret.
    status_token: str | None = Field(default=None, min_length=16, pattern=r"^[A-Za-z0-9_-]+$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError(f"unknown time zone {value!r}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    services: list[Service] = []
    tenants: list[Tenant] = []
    # PagerDuty service id or name → catalog service id.
    pagerduty: dict[str, str] = {}

    @cached_property
    def _by_key(self) -> dict[str, Service]:
        keys: dict[str, Service] = {}
        for service in self.services:
            for alias in service.aliases:
                keys.setdefault(alias, service)
        for service in self.services:
            keys[service.id] = service
        return keys

    def service(self, key: str) -> Service | None:
        """The service with this id or alias."""
        return self._by_key.get(key)

    # A hosting company's catalog holds thousands of tenants, looked up for every notice.
    @cached_property
    def _tenants_by_id(self) -> dict[str, Tenant]:
        return {tenant.id: tenant for tenant in self.tenants}

    @cached_property
    def _tenants_by_service(self) -> dict[str, dict[int, Tenant]]:
        """Service id → its tenants, by their position in the catalog."""
        index: dict[str, dict[int, Tenant]] = {}
        for position, tenant in enumerate(self.tenants):
            for service_id in tenant.services:
                index.setdefault(service_id, {})[position] = tenant
        return index

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants_by_id.get(tenant_id)

    def tenants_for(self, service_ids: list[str]) -> list[Tenant]:
        """Tenants of any of these services, in catalog order."""
        found: dict[int, Tenant] = {}
        for service_id in service_ids:
            found.update(self._tenants_by_service.get(service_id, {}))
        return [found[position] for position in sorted(found)]


def reference_problems(data: dict[str, Any]) -> list[str]:
    """Cross-reference problems as `key.path: message`, all of them. On the file's data as read,
    so that a catalog that fails validation still has its references checked in the same run."""

    def entries(key: str) -> list[dict[str, Any]]:
        value = data.get(key)
        return [e if isinstance(e, dict) else {} for e in value] if isinstance(value, list) else []

    found: list[str] = []

    def unique_ids(key: str) -> set[str]:
        seen: set[str] = set()
        for index, entry in enumerate(entries(key)):
            if entry.get("id") in seen:
                found.append(f"{key}[{index}].id: {entry['id']!r} is used twice")
            if isinstance(entry.get("id"), str):
                seen.add(entry["id"])
        return seen

    service_ids = unique_ids("services")
    unique_ids("tenants")
    for index, tenant in enumerate(entries("tenants")):
        services = tenant.get("services")
        for pos, service_id in enumerate(services if isinstance(services, list) else []):
            if isinstance(service_id, str) and service_id not in service_ids:
                found.append(f"tenants[{index}].services[{pos}]: unknown service id {service_id!r}")
    pagerduty = data.get("pagerduty")
    for key, service_id in (pagerduty if isinstance(pagerduty, dict) else {}).items():
        if isinstance(service_id, str) and service_id not in service_ids:
            found.append(f"pagerduty.{key}: unknown service id {service_id!r}")
    return found


def load_catalog(path: Path, problems: list[str]) -> Catalog | None:
    """Read the catalog file; append `file: key.path: message` lines to problems on error."""
    data = read_yaml(path, problems)
    if data is None:
        return None
    catalog: Catalog | None = None
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        problems.extend(format_validation_error(str(path), exc))
    cross = reference_problems(data)
    problems.extend(f"{path}: {line}" for line in cross)
    return None if cross else catalog
