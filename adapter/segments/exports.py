"""CSV exports of CRMs and helpdesks, their columns recognised by name, read into typed records."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapter.catalog import Segment
from adapter.configfile import format_validation_error, problem_line

# Each field's column names, in order of preference, as the vendors' exports spell them. Sources:
# Zendesk's ticket fields and its CSV export of tickets and organizations ("Id", "Subject",
# "Description", "Requester", "Organization", "Tags"; organizations: "Id", "External id", "Name",
# "Details", "Notes"; support.zendesk.com, "Exporting data to a JSON, CSV, or XML file"); Freshdesk's
# API v2 ticket fields (id, subject, description, type, tags, company, requester) and the labels of
# its ticket list export ("Ticket ID", "Company Name", "Contact ID", as issue 20 quotes them: no copy
# of that export's page could be found); HubSpot's tickets API (the subject property is shown as
# "Ticket name", content as "Ticket description") and its company and contact exports ("Record ID",
# "Company name", "Associated Company", "Time Zone", "Phone Number"). `--map COLUMN=FIELD` names any
# other column.
ACCOUNT_NAMES = (
    "Company name",
    "Account name",
    "Organization name",
    "Organization",
    "Company",
    "Customer",
    "Name",
)
ACCOUNT_IDS = (
    "Tenant ID",
    "Account ID",
    "Customer ID",
    "External id",
    "Company ID",
    "Organization ID",
    "Record ID",
    "Id",
)
ACCOUNT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "id": ACCOUNT_IDS,
    "name": ACCOUNT_NAMES,
    "api_access": ("API Access", "API access requested", "API key requested", "API"),
    "ssh_keys": ("SSH Keys", "SSH key", "SSH access", "SSH keys requested", "SSH public key"),
    "notes": ("Onboarding notes", "Notes", "Details", "Description"),
}
TENANT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "id": ACCOUNT_IDS,
    "name": ACCOUNT_NAMES,
    "segment": ("Segment", "Communication preference", "Audience"),
    "tier": ("Tier", "Support tier", "Service tier"),
    "timezone": ("Timezone", "Time Zone", "TZ"),
    "services": ("Services", "Products"),
    "email": ("Email", "Contact email", "E-mail", "Notification email"),
    "phone": ("Phone", "Phone Number", "Contact phone"),
    "webhook": ("Webhook", "Webhook URL"),
}
TICKET_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "ticket": ("Ticket ID", "Ticket number", "Id", "Record ID"),
    "account": (
        "Organization",
        "Organization name",
        "Company Name",
        "Associated Company",
        "Company",
        "Account",
        "Account name",
        "Account ID",
        "Company ID",
        "Organization ID",
        "Contact ID",
        "Requester",
    ),
    "subject": ("Subject", "Ticket name", "Title", "Summary"),
    "description": ("Description", "Ticket description", "Description text", "Content", "Body"),
    "tags": ("Tags", "Labels"),
    "type": ("Type", "Ticket type", "Category"),
}
# A ticket's thread can be longer than the csv module's default field limit of 128 KiB.
FIELD_LIMIT = 16 * 1024 * 1024


class ExportError(Exception):
    """A row that cannot be read, as `file: row N: message`."""


def header_key(name: str) -> str:
    """A column name as compared: case, underscores and runs of spaces do not count."""
    return " ".join(name.replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class Export:
    """A CSV export whose header has been read: which column holds each field."""

    path: Path
    delimiter: str
    # field → (column index, the header as the export spells it)
    columns: Mapping[str, tuple[int, str]]

    def header(self, field: str) -> str:
        return self.columns[field][1]

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Each data row as (its row number in a spreadsheet, the header being row 1, {field: value})."""
        csv.field_size_limit(FIELD_LIMIT)
        indexes = [(field, index) for field, (index, _) in self.columns.items()]
        number = 1
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file, delimiter=self.delimiter)
                next(reader, None)
                for number, row in enumerate(reader, start=2):
                    if row:
                        yield number, {f: row[i].strip() if i < len(row) else "" for f, i in indexes}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ExportError(f"{self.path}: row {number + 1}: cannot read it: {exc}") from exc


def parse_maps(items: list[str], fields: Collection[str], problems: list[str]) -> list[tuple[str, str]]:
    """`--map COLUMN=FIELD` options as (column, field); one column may be a field of each export."""
    found: list[tuple[str, str]] = []
    for item in items:
        column, sep, field = item.rpartition("=")
        if not sep or not column.strip() or field.strip() not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"--map {item}: expected COLUMN=FIELD, FIELD one of {known}")
            continue
        found.append((column.strip(), field.strip()))
    return found


def open_export(
    path: Path, table: Mapping[str, tuple[str, ...]], maps: list[tuple[str, str]], problems: list[str]
) -> Export | None:
    """Read the header and recognise its columns: `--map` first, then the names of `table`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: (file): cannot read: {getattr(exc, 'strerror', None) or exc}")
        return None
    # Spreadsheets save CSV with the list separator of their locale: `;` in much of Europe.
    delimiter = max(",;\t", key=first.count)
    headers = next(csv.reader([first], delimiter=delimiter), [])
    if not any(headers):
        problems.append(f"{path}: (file): no header row")
        return None
    keys = [header_key(header) for header in headers]
    mapped_keys = {header_key(column): field for column, field in maps if field in table}
    columns: dict[str, tuple[int, str]] = {}
    for index, key in enumerate(keys):
        mapped = mapped_keys.get(key)
        if mapped is not None and mapped in table and mapped not in columns:
            columns[mapped] = (index, headers[index])
    used = {index for index, _ in columns.values()}
    for field, names in table.items():
        wanted = {header_key(name): rank for rank, name in enumerate(names)}
        candidates = [(wanted[key], i) for i, key in enumerate(keys) if key in wanted and i not in used]
        if field not in columns and candidates:
            _, index = min(candidates)
            columns[field] = (index, headers[index])
            used.add(index)
    return Export(path, delimiter, columns)


def require(
    export: Export, table: Mapping[str, tuple[str, ...]], fields: tuple[str, ...], problems: list[str]
) -> None:
    """A problem unless the export has a column for at least one of `fields`."""
    if any(field in export.columns for field in fields):
        return
    known = ", ".join(f'"{name}"' for field in fields for name in table[field])
    wanted = " or ".join(fields)
    problems.append(
        f"{export.path}: (header): no column for {wanted} (recognised: {known}; or --map COLUMN={fields[0]})"
    )


def unused_maps(maps: list[tuple[str, str]], exports: list[Export], problems: list[str]) -> None:
    """A problem for each `--map` column that no export has: a misspelling, most likely."""
    found = {header_key(header) for export in exports for _, header in export.columns.values()}
    for column, field in maps:
        if header_key(column) not in found:
            names = ", ".join(str(export.path) for export in exports)
            problems.append(f"--map: no column {column!r} for {field} in {names}")


@dataclass(frozen=True, slots=True)
class AccountField:
    """An onboarding field of an account that holds a value: the field, its header and the value."""

    field: str
    header: str
    value: str


@dataclass(frozen=True, slots=True)
class Account:
    row: int
    id: str
    name: str
    onboarding: tuple[AccountField, ...]

    @property
    def label(self) -> str:
        """How the account is named to a person: its id, else its name."""
        return self.id or self.name


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    account: str
    # Subject, description, tags and type in one text, for the indicators.
    text: str


def read_accounts(export: Export, problems: list[str]) -> list[Account]:
    """The accounts of an export; a problem for each id used twice."""
    accounts: list[Account] = []
    first_row: dict[str, int] = {}
    onboarding = [f for f in ("api_access", "ssh_keys", "notes") if f in export.columns]
    for row, values in export.rows():
        account_id, name = values.get("id", ""), values.get("name", "")
        if not account_id and not name:
            continue
        if account_id and account_id in first_row:
            again = f"{account_id!r} is used twice (also row {first_row[account_id]})"
            problems.append(problem_line(str(export.path), f"row {row}", "id", again))
            continue
        first_row.setdefault(account_id, row)
        fields = tuple(AccountField(f, export.header(f), values[f]) for f in onboarding if values[f])
        accounts.append(Account(row, account_id, name, fields))
    return accounts


def read_tickets(export: Export) -> Iterator[Ticket]:
    """The tickets of an export, one row at a time."""
    for row, values in export.rows():
        text = "\n".join(values.get(f, "") for f in ("subject", "description", "tags", "type"))
        yield Ticket(values.get("ticket") or f"row {row}", values.get("account", ""), text)


class DetailRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant: str = Field(min_length=1)
    segment: Segment | None = None
    count: int = Field(ge=0)


class CommunicationReport(BaseModel):
    """What `GET /api/v1/reports/communication` answers; only its technical-detail requests count here."""

    model_config = ConfigDict(extra="ignore")

    detail_requests: list[DetailRequest]


def read_detail_requests(path: Path, problems: list[str]) -> dict[str, int] | None:
    """Tenant id → how many times it asked for technical details, from a communication report."""
    try:
        report = CommunicationReport.model_validate(json.loads(path.read_bytes()))
    except OSError as exc:
        problems.append(f"{path}: (file): cannot read: {exc.strerror}")
        return None
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems.extend(format_validation_error(str(path), exc))
        else:
            problems.append(f"{path}: (file): invalid JSON: {exc}")
        return None
    counts: dict[str, int] = {}
    for request in report.detail_requests:
        counts[request.tenant] = counts.get(request.tenant, 0) + request.count
    return counts
