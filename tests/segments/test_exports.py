"""Exports: the columns of Zendesk, Freshdesk and HubSpot exports recognised, --map, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.segments.exports import (
    ACCOUNT_COLUMNS,
    TICKET_COLUMNS,
    ExportError,
    open_export,
    parse_maps,
    read_accounts,
    read_detail_requests,
    read_tickets,
    require,
    unused_maps,
)
from tests.segments.conftest import write_csv

TICKET_EXPORTS = {
    "zendesk": (
        '"Id","Requester","Organization","Subject","Description","Tags","Status","Created at"\n'
        '"4711","Dana Byrne","Acme Ltd","502 from the LB","nginx says upstream timed out","vip","open",'
        '"2026-11-02 10:00"\n'
    ),
    "freshdesk": (
        "Ticket ID,Subject,Description,Status,Priority,Type,Tags,Contact ID,Company Name,Created time\n"
        "4711,502 from the LB,nginx says upstream timed out,Open,High,Incident,vip,90211,Acme Ltd,"
        "2026-11-02 10:00:00\n"
    ),
    "hubspot": (
        "Ticket ID,Ticket name,Ticket description,Pipeline,Ticket status,Associated Company,Create date\n"
        "4711,502 from the LB,nginx says upstream timed out,Support Pipeline,New,Acme Ltd,2026-11-02 10:00\n"
    ),
}

ACCOUNT_EXPORTS = {
    # Zendesk organizations: the catalog's ids are what the helpdesk calls external ids.
    "zendesk": "Id,Name,External id,Details,Notes\n360012,Acme Ltd,acme,,Asked for SSH access\n",
    "freshdesk": "Name,Description,Notes,Domains\nAcme Ltd,,Asked for SSH access,acme.example\n",
    "hubspot": "Record ID,Company name,Company Domain Name,API Access\n9301,Acme Ltd,acme.example,yes\n",
}


@pytest.mark.parametrize("vendor", TICKET_EXPORTS)
def test_ticket_exports_of_each_vendor_are_read_without_a_map(tmp_path: Path, vendor: str) -> None:
    problems: list[str] = []
    export = open_export(
        write_csv(tmp_path / "tickets.csv", TICKET_EXPORTS[vendor]), TICKET_COLUMNS, {}, problems
    )
    assert export is not None and not problems
    (ticket,) = read_tickets(export)
    # Freshdesk's export names both the contact and the company: the company is the account.
    assert (ticket.id, ticket.account) == ("4711", "Acme Ltd")
    assert ticket.text.startswith("502 from the LB\nnginx says upstream timed out")


@pytest.mark.parametrize("vendor", ACCOUNT_EXPORTS)
def test_account_exports_of_each_vendor_are_read_without_a_map(tmp_path: Path, vendor: str) -> None:
    problems: list[str] = []
    export = open_export(
        write_csv(tmp_path / "accounts.csv", ACCOUNT_EXPORTS[vendor]), ACCOUNT_COLUMNS, {}, problems
    )
    assert export is not None
    (account,) = read_accounts(export, problems)
    assert not problems
    assert account.name == "Acme Ltd"
    assert account.id == {"zendesk": "acme", "freshdesk": "", "hubspot": "9301"}[vendor]
    assert [(f.field, f.header) for f in account.onboarding] == {
        "zendesk": [("notes", "Notes")],
        "freshdesk": [("notes", "Notes")],
        "hubspot": [("api_access", "API Access")],
    }[vendor]


def test_map_names_a_column_the_tables_do_not_know_and_overrides_one_they_do(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "tickets.csv", "Ref,Org Name,Organization,Subject\n7,Acme Ltd,Sales team,Down\n"
    )
    problems: list[str] = []
    maps = parse_maps(["Org Name=account", "ref=ticket"], TICKET_COLUMNS, problems)
    export = open_export(path, TICKET_COLUMNS, maps, problems)
    assert export is not None and not problems
    assert export.header("account") == "Org Name"
    assert export.header("ticket") == "Ref"
    (ticket,) = read_tickets(export)
    assert (ticket.id, ticket.account) == ("7", "Acme Ltd")


def test_map_problems_name_the_option(tmp_path: Path) -> None:
    problems: list[str] = []
    maps = parse_maps(["Org Name", "Org Name=organisation", "Company=account"], TICKET_COLUMNS, problems)
    expected = "expected COLUMN=FIELD, FIELD one of account, description, subject, tags, ticket, type"
    assert problems == [f"--map Org Name: {expected}", f"--map Org Name=organisation: {expected}"]
    export = open_export(write_csv(tmp_path / "t.csv", "Id,Subject\n1,x\n"), TICKET_COLUMNS, maps, problems)
    assert export is not None
    unused_maps(maps, [export], problems)
    assert problems[-1] == f"--map: no column 'Company' for account in {export.path}"


def test_semicolons_and_excels_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_bytes("\ufeffTicket ID;Subject;Company Name\n1;Invoice, please;Bloom Florists\n".encode())
    export = open_export(path, TICKET_COLUMNS, [], [])
    assert export is not None and export.delimiter == ";"
    (ticket,) = read_tickets(export)
    assert (ticket.id, ticket.account, ticket.text.split("\n")[0]) == (
        "1",
        "Bloom Florists",
        "Invoice, please",
    )


def test_a_missing_column_is_named_with_what_would_be_recognised(tmp_path: Path) -> None:
    problems: list[str] = []
    export = open_export(
        write_csv(tmp_path / "t.csv", "Ticket ID,Subject\n1,x\n"), TICKET_COLUMNS, {}, problems
    )
    assert export is not None
    require(export, TICKET_COLUMNS, ("account",), problems)
    (problem,) = problems
    assert problem.startswith(f'{export.path}: (header): no column for account (recognised: "Organization", ')
    assert problem.endswith('"Requester"; or --map COLUMN=account)')


def test_an_account_id_used_twice_is_a_problem(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv", "Account ID,Company name\nacme,Acme Ltd\nbloom,Bloom\nacme,Acme again\n"
    )
    problems: list[str] = []
    export = open_export(path, ACCOUNT_COLUMNS, [], problems)
    assert export is not None
    assert [a.id for a in read_accounts(export, problems)] == ["acme", "bloom"]
    assert problems == [f"{path}: row 4.id: 'acme' is used twice (also row 2)"]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    good = b"".join(b"%d,fine,Acme\n" % n for n in range(2000))
    path.write_bytes(b"Ticket ID,Subject,Organization\n" + good + b"2,caf\xe9,Acme\n")
    export = open_export(path, TICKET_COLUMNS, [], [])
    assert export is not None
    with pytest.raises(ExportError, match=r"t\.csv: row \d+: cannot read it: 'utf-8' codec can't decode"):
        list(read_tickets(export))
    problems: list[str] = []
    path.write_bytes(b"Ticket ID,Subject,Organization\n1,caf\xe9,Acme\n")
    assert open_export(path, TICKET_COLUMNS, [], problems) is None
    assert problems[0].startswith(f"{path}: (file): cannot read: 'utf-8' codec can't decode byte 0xe9")


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    problems: list[str] = []
    assert open_export(tmp_path / "none.csv", TICKET_COLUMNS, [], problems) is None
    assert open_export(write_csv(tmp_path / "empty.csv", ""), TICKET_COLUMNS, [], problems) is None
    assert problems == [
        f"{tmp_path}/none.csv: (file): cannot read: No such file or directory",
        f"{tmp_path}/empty.csv: (file): no header row",
    ]


def test_detail_requests_of_a_communication_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    body = {
        "period": {"from": "2026-10-01", "to": "2026-11-01"},
        "detail_requests": [
            {"tenant": "bloom", "segment": "business", "count": 3},
            {"tenant": "acme", "segment": "technical", "count": 1},
            {"tenant": "bloom", "segment": "business", "count": 1},
        ],
    }
    path.write_text(json.dumps(body))
    problems: list[str] = []
    assert read_detail_requests(path, problems) == {"bloom": 4, "acme": 1}
    path.write_text(json.dumps({"detail_requests": [{"tenant": "bloom", "count": -1}]}))
    assert read_detail_requests(path, problems) is None
    assert problems == [f"{path}: detail_requests[0].count: Input should be greater than or equal to 0"]
