"""The catalog file rewritten in place: only the planned lines change, and nothing invalid is written."""

from __future__ import annotations

import difflib
from pathlib import Path

from adapter.catalog import Catalog, load_catalog
from adapter.segments.catalogfile import (
    apply_import,
    apply_segments,
    match_tenants,
    open_catalog_file,
    plan_import,
    plan_segments,
    write_checked,
)
from adapter.segments.exports import Account
from adapter.segments.indicators import Suggestion


def edits(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    """The changed runs of lines: (kind, old lines, new lines); every other line is the same bytes."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [
        (kind, old[i1:i2], new[j1:j2]) for kind, i1, i2, j1, j2 in matcher.get_opcodes() if kind != "equal"
    ]


def loaded(path: Path) -> Catalog:
    problems: list[str] = []
    catalog = load_catalog(path, problems)
    assert catalog is not None and not problems, problems
    return catalog


def test_segments_change_only_their_own_lines(catalog_file: Path) -> None:
    before = catalog_file.read_text()
    problems: list[str] = []
    opened = open_catalog_file(catalog_file, problems)
    assert opened is not None and not problems
    apply_segments(opened, {"acme": "business", "bloom": "technical", "nobody": "technical"})
    assert write_checked(opened, problems) and not problems
    assert edits(before, catalog_file.read_text()) == [
        ("replace", ["    segment: technical\n"], ["    segment: business\n"]),
        # bloom had no segment: it goes after the name, where the catalog writes it.
        ("insert", [], ["    segment: technical\n"]),
    ]
    after = catalog_file.read_text().splitlines()
    assert after[after.index("    name: Bloom Florists") + 1] == "    segment: technical"
    assert loaded(catalog_file).tenant("bloom").segment == "technical"  # type: ignore[union-attr]


def test_an_invalid_result_is_not_written(catalog_file: Path) -> None:
    before = catalog_file.read_bytes()
    problems: list[str] = []
    opened = open_catalog_file(catalog_file, problems)
    assert opened is not None
    apply_segments(opened, {"bloom": "purple"})  # type: ignore[dict-item]
    assert not write_checked(opened, problems)
    assert problems == [f"{catalog_file}: tenants[1].segment: Input should be 'technical' or 'business'"]
    assert catalog_file.read_bytes() == before
    assert [p.name for p in catalog_file.parent.iterdir()] == ["catalog.yaml"]


def test_a_layout_the_writer_cannot_keep_is_left_alone(catalog_file: Path) -> None:
    catalog_file.write_text(
        catalog_file.read_text().replace("  - id: bloom\n    name:", "  - id: bloom\n    name:  ")
    )
    problems: list[str] = []
    assert open_catalog_file(catalog_file, problems) is None
    (problem,) = problems
    assert problem.startswith(f"{catalog_file}: line ")
    assert "cannot rewrite the file keeping its layout ('name:   Bloom Florists' would be written" in problem


def suggestion(account: Account, segment: str | None) -> Suggestion:
    return Suggestion(account, segment, 0.9 if segment else 0.2, ())  # type: ignore[arg-type]


def test_the_plan_sorts_new_changed_unsegmented_and_unknown(catalog: Catalog) -> None:
    acme, bloom = Account(2, "acme", "Acme Ltd", ()), Account(3, "bloom", "Bloom Florists", ())
    stranger = Account(4, "zeta", "Zeta Shop", ())
    matched, by = match_tenants([acme, bloom, stranger], catalog)
    assert (matched, by) == ({acme: "acme", bloom: "bloom"}, "id")
    suggested = [suggestion(acme, "business"), suggestion(bloom, None), suggestion(stranger, "technical")]
    plan = plan_segments(suggested, matched, catalog)
    assert [(c.tenant, c.before, c.after) for c in plan.changed] == [("acme", "technical", "business")]
    assert (plan.new, plan.unsegmented, plan.not_in_catalog) == ([], ["bloom"], [stranger])
    plan = plan_segments([suggestion(acme, None), suggestion(bloom, "business")], matched, catalog)
    assert plan.kept == [("acme", "technical")]
    assert plan.segments == {"bloom": "business"}


def test_accounts_are_matched_by_name_when_no_id_names_a_tenant(catalog: Catalog) -> None:
    accounts = [
        Account(2, "90211", "ACME  ltd", ()),
        Account(3, "90212", "Bloom Florists", ()),
        Account(4, "", "X", ()),
    ]
    matched, by = match_tenants(accounts, catalog)
    assert by == "name"
    assert {account.name: tenant for account, tenant in matched.items()} == {
        "ACME  ltd": "acme",
        "Bloom Florists": "bloom",
    }


ZETA = {"id": "zeta", "name": "Zeta: Shop", "segment": "Business", "services": "checkout; search"}
ROWS = [
    (2, {"id": "acme", "name": "Acme Ltd", "tier": "Enterprise", "email": "noc@acme.example"}),
    (3, {"id": "bloom", "name": "Bloom Florists", "timezone": "Europe/London"}),
    (4, {**ZETA, "phone": "+33 1 55 55 55 55"}),
]


def test_import_adds_and_updates_with_its_diff(catalog_file: Path) -> None:
    catalog = loaded(catalog_file)
    problems: list[str] = []
    plan = plan_import(ROWS, catalog, "tenants.csv", problems)
    assert not problems
    assert plan.unchanged == ["bloom"]
    (update,) = plan.updates
    assert (update.tenant, update.row, update.changes) == (
        "acme",
        2,
        {"contacts.email": ("ops@acme.example", "noc@acme.example")},  # tier enterprise is unchanged
    )
    (add,) = plan.adds
    assert add.changes == {
        "name": (None, "Zeta: Shop"),
        "segment": (None, "business"),
        "services": (None, ["checkout", "search"]),
        "contacts.phone": (None, "+33 1 55 55 55 55"),
    }
    before = catalog_file.read_text()
    opened = open_catalog_file(catalog_file, problems)
    assert opened is not None
    apply_import(opened, plan)
    assert write_checked(opened, problems), problems
    assert edits(before, catalog_file.read_text()) == [
        (
            "replace",
            ["    contacts: {email: ops@acme.example}\n"],
            ["    contacts: {email: noc@acme.example}\n"],
        ),
        (
            "insert",
            [],
            [
                "  - id: zeta\n",
                "    name: 'Zeta: Shop'\n",
                "    segment: business\n",
                "    services: [checkout, search]\n",
                "    contacts: {phone: +33 1 55 55 55 55}\n",
            ],
        ),
    ]
    zeta = loaded(catalog_file).tenant("zeta")
    assert zeta is not None and zeta.contacts.phone == "+33 1 55 55 55 55"
    assert plan_import(ROWS, loaded(catalog_file), "tenants.csv", problems).edits == []


def test_import_problems_name_the_row_and_key(catalog: Catalog) -> None:
    rows = [
        (2, {"id": "acme", "timezone": "Mars/Olympus", "services": "checkout;nope"}),
        (3, {"name": "No id"}),
        (4, {"id": "new", "timezone": "UTC"}),
        (5, {"id": "acme", "name": "Acme again"}),
        (6, {"id": "odd", "name": "Odd", "segment": "engineers"}),
    ]
    problems: list[str] = []
    plan_import(rows, catalog, "tenants.csv", problems)
    assert problems == [
        "tenants.csv: row 2.services[1]: unknown service id 'nope'",
        "tenants.csv: row 2.timezone: unknown time zone 'Mars/Olympus'",
        "tenants.csv: row 3.id: missing: every tenant needs an id",
        "tenants.csv: row 4.name: Field required",
        "tenants.csv: row 5.id: 'acme' is used twice (also row 2)",
        "tenants.csv: row 6.segment: Input should be 'technical' or 'business'",
    ]
