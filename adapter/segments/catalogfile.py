"""The catalog file edited in place (comments, order and layout kept), and the plans that edit it."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from adapter.catalog import Catalog, Segment, Tenant, load_catalog
from adapter.configfile import format_validation_error, problem_line
from adapter.segments.exports import Account
from adapter.segments.indicators import Suggestion

# A tenant's keys in the order the catalog writes them; a key added to a tenant goes after the
# last of these that it already has.
TENANT_KEYS = ("id", "name", "segment", "tier", "timezone", "services", "contacts", "sla", "status_token")
CONTACT_KEYS = ("email", "phone", "webhook")


class CatalogFile:
    """A catalog file's YAML as a round-trip document, written back with its own indentation."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.yaml = YAML()
        self.yaml.preserve_quotes = True
        self.yaml.width = 4096  # never fold a long line that was one line
        self.doc: CommentedMap
        self.doc, indent, dash = load_yaml_guess_indent(text, yaml=self.yaml)
        # A file without block sequences gives no guess: the shipped catalog's layout then.
        indent, dash = (indent or 4), (dash if indent else 2)
        self.yaml.indent(mapping=max(indent - dash, 2), sequence=indent, offset=dash)

    def dumps(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.doc, out)
        return out.getvalue()

    def tenants(self) -> CommentedSeq:
        if self.doc.get("tenants") is None:
            self.doc.insert(
                _position(self.doc, "tenants", ("services", "tenants")), "tenants", CommentedSeq()
            )
        tenants: CommentedSeq = self.doc["tenants"]
        return tenants

    def tenants_by_id(self) -> dict[str, CommentedMap]:
        return {t["id"]: t for t in self.tenants() if isinstance(t, CommentedMap) and "id" in t}


def open_catalog_file(path: Path, problems: list[str]) -> CatalogFile | None:
    """The file for editing, if writing it back unedited gives the same lines: otherwise an edit
    would change more than its own lines, and the file is left to be edited by hand."""
    try:
        catalog_file = CatalogFile(path, path.read_text())
    except OSError as exc:
        problems.append(f"{path}: (file): cannot read: {exc.strerror}")
        return None
    except YAMLError as exc:
        problems.append(f"{path}: (file): invalid YAML: {exc}")
        return None
    before, after = catalog_file.text.splitlines(), catalog_file.dumps().splitlines()
    if before == after:
        return catalog_file
    number, line, written = next(
        (n, b.strip(), a.strip())
        for n, (b, a) in enumerate(zip_longest(before, after, fillvalue=""), 1)
        if b != a
    )
    problems.append(
        f"{path}: line {number}: cannot rewrite the file keeping its layout ({line!r} would be written "
        f"{written!r}); edit it by hand"
    )
    return None


def write_checked(catalog_file: CatalogFile, problems: list[str]) -> bool:
    """Write the edited file if the result loads as check-config loads a catalog; else problems."""
    path = catalog_file.path
    # Beside the catalog, so that relative `*_file` references read the same files and the
    # replace is atomic.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(catalog_file.dumps())
        found: list[str] = []
        if load_catalog(temporary, found) is None or found:
            problems.extend(line.replace(str(temporary), str(path)) for line in found)
            return False
        shutil.copymode(path, temporary)
        temporary.replace(path)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _position(mapping: CommentedMap, key: str, order: tuple[str, ...]) -> int:
    """After the last key of the mapping that `order` puts before `key`; last if `order` lacks it."""
    if key not in order:
        return len(mapping)
    keys = list(mapping)
    return max((keys.index(k) + 1 for k in order[: order.index(key)] if k in mapping), default=0)


def set_key(mapping: CommentedMap, key: str, value: Any, order: tuple[str, ...] = TENANT_KEYS) -> None:
    """Set a key, in place if the mapping has it, else at its place in `order`."""
    if key in mapping:
        mapping[key] = value
    else:
        mapping.insert(_position(mapping, key, order), key, value)


def match_tenants(accounts: list[Account], catalog: Catalog) -> tuple[dict[Account, str], str]:
    """Each account's catalog tenant id: by id when the export's ids name any tenant, else by name."""
    by_id = {account: account.id for account in accounts if catalog.tenant(account.id)}
    if by_id:
        return by_id, "id"
    names = {_name_key(tenant.name): tenant.id for tenant in catalog.tenants}
    by_name = {
        account: names[_name_key(account.name)] for account in accounts if _name_key(account.name) in names
    }
    return by_name, "name"


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def explicit_segment(tenant: Tenant) -> Segment | None:
    """The segment the catalog gives the tenant, or None when it gives none (business by default)."""
    return tenant.segment if "segment" in tenant.model_fields_set else None


@dataclass(frozen=True)
class SegmentChange:
    tenant: str
    before: Segment | None
    after: Segment
    confidence: float


@dataclass
class SegmentPlan:
    new: list[SegmentChange] = field(default_factory=list)
    changed: list[SegmentChange] = field(default_factory=list)
    # Tenants without a segment and without enough evidence: they keep getting the business version.
    unsegmented: list[str] = field(default_factory=list)
    # Tenants whose segment stays because the evidence does not settle one.
    kept: list[tuple[str, Segment]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_in_catalog: list[Account] = field(default_factory=list)

    @property
    def segments(self) -> dict[str, Segment]:
        return {change.tenant: change.after for change in self.new + self.changed}


def plan_segments(
    suggested: list[Suggestion], matched: Mapping[Account, str], catalog: Catalog
) -> SegmentPlan:
    """What the suggestions would change in the catalog."""
    plan = SegmentPlan()
    for suggestion in suggested:
        account, segment = suggestion.account, suggestion.segment
        tenant_id = matched.get(account)
        tenant = catalog.tenant(tenant_id) if tenant_id else None
        if tenant is None:
            plan.not_in_catalog.append(account)
            continue
        before = explicit_segment(tenant)
        if segment is None:
            if before is None:
                plan.unsegmented.append(tenant.id)
            else:
                plan.kept.append((tenant.id, before))
        elif segment == before:
            plan.unchanged.append(tenant.id)
        else:
            change = SegmentChange(tenant.id, before, segment, suggestion.confidence)
            (plan.new if before is None else plan.changed).append(change)
    return plan


def apply_segments(catalog_file: CatalogFile, segments: Mapping[str, Segment]) -> None:
    tenants = catalog_file.tenants_by_id()
    for tenant_id, segment in segments.items():
        if tenant_id in tenants:
            set_key(tenants[tenant_id], "segment", segment)


@dataclass(frozen=True)
class TenantEdit:
    """One row of an import: a new tenant's keys, or an existing tenant's changed keys."""

    tenant: str
    row: int
    new: bool
    # key path (`tier`, `contacts.email`) → (before, after), before None for a key the tenant lacks:
    # what the diff shows and what is written.
    changes: dict[str, tuple[Any, Any]]


@dataclass
class ImportPlan:
    edits: list[TenantEdit] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def adds(self) -> list[TenantEdit]:
        return [edit for edit in self.edits if edit.new]

    @property
    def updates(self) -> list[TenantEdit]:
        return [edit for edit in self.edits if not edit.new]


def tenant_values(fields: Mapping[str, str]) -> dict[str, Any]:
    """A CRM row's non-empty fields in the catalog's form: services as a list, contacts nested."""
    values: dict[str, Any] = {}
    for key in ("id", "name", "segment", "tier", "timezone"):
        if fields.get(key):
            # CRMs capitalise picklist values; dualtrack compares segments and tiers as written.
            values[key] = fields[key].lower() if key in ("segment", "tier") else fields[key]
    if fields.get("services"):
        # CRMs export a multi-select as "a;b" (HubSpot) or "a, b".
        values["services"] = [s for s in (p.strip() for p in re.split(r"[;,|\n]", fields["services"])) if s]
    contacts = {key: fields[key] for key in CONTACT_KEYS if fields.get(key)}
    if contacts:
        values["contacts"] = contacts
    return values


def plan_import(
    rows: list[tuple[int, dict[str, str]]], catalog: Catalog, source: str, problems: list[str]
) -> ImportPlan:
    """What importing these rows would change; every row's problems as `file: row N.key: message`."""
    plan = ImportPlan()
    first_row: dict[str, int] = {}
    service_ids = {service.id for service in catalog.services}
    for row, fields in rows:
        where = f"row {row}"
        values = tenant_values(fields)
        tenant_id = values.get("id")
        if not tenant_id:
            problems.append(problem_line(source, where, "id", "missing: every tenant needs an id"))
            continue
        if tenant_id in first_row:
            problems.append(
                problem_line(
                    source, where, "id", f"{tenant_id!r} is used twice (also row {first_row[tenant_id]})"
                )
            )
            continue
        first_row[tenant_id] = row
        for position, service_id in enumerate(values.get("services", [])):
            if service_id not in service_ids:
                problems.append(
                    problem_line(source, where, f"services[{position}]", f"unknown service id {service_id!r}")
                )
        existing = catalog.tenant(tenant_id)
        before = existing.model_dump(mode="json", exclude_unset=True) if existing else {}
        merged = {
            **before,
            **values,
            "contacts": {**before.get("contacts", {}), **values.get("contacts", {})},
        }
        try:
            Tenant.model_validate(merged)
        except ValidationError as exc:
            problems.extend(format_validation_error(source, exc, prefix=where))
            continue
        changes = _changes(before, values)
        if changes:
            plan.edits.append(TenantEdit(tenant_id, row, existing is None, changes))
        else:
            plan.unchanged.append(tenant_id)
    return plan


def _changes(before: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for key, value in values.items():
        if key == "contacts":
            contacts = before.get("contacts", {})
            changes.update(
                {f"contacts.{k}": (contacts.get(k), v) for k, v in value.items() if contacts.get(k) != v}
            )
        elif key != "id" and before.get(key) != value:
            changes[key] = (before.get(key), value)
    return changes


def apply_import(catalog_file: CatalogFile, plan: ImportPlan) -> None:
    tenants = catalog_file.tenants_by_id()
    for edit in plan.edits:
        tenant = tenants.get(edit.tenant)
        if tenant is None:
            tenant = CommentedMap(id=edit.tenant)
            catalog_file.tenants().append(tenant)
        for path, (_, after) in edit.changes.items():
            key, _, contact = path.partition(".")
            if contact:
                if tenant.get("contacts") is None:
                    set_key(tenant, "contacts", _flow(CommentedMap()))
                set_key(tenant["contacts"], contact, after, CONTACT_KEYS)
            else:
                set_key(tenant, key, _flow(CommentedSeq(after)) if key == "services" else after)


def _flow(node: Any) -> Any:
    """Lists and contacts on one line, as the shipped catalog writes them."""
    node.fa.set_flow_style()
    return node
