"""`dualtrack segment suggest` and `dualtrack catalog import` as a person runs them: output and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adapter.cli import main
from tests.segments.conftest import EXPORT, write_csv

ACCOUNTS, TICKETS = str(EXPORT / "accounts.csv"), str(EXPORT / "tickets.csv")


def suggest(catalog: Path, *extra: str) -> int:
    return main(
        [
            "segment",
            "suggest",
            "--accounts",
            ACCOUNTS,
            "--tickets",
            TICKETS,
            "--catalog",
            str(catalog),
            *extra,
        ]
    )


def test_the_table_and_the_catalog_diff(catalog_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = catalog_file.read_bytes()
    assert suggest(catalog_file) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["tenant", "segment", "confidence", "reasons"]
    acme = lines[1].split()
    assert acme[:3] == ["acme", "technical", "0.96"]
    assert f"{catalog_file} (accounts matched to tenants by id): 1 new segment(s), 0 changed" in out
    assert "  + bloom: segment business (confidence 1.00)" in lines
    assert (
        "  ? iris-cloud-299 (Iris Cloud & Co): not in the catalog (`dualtrack catalog import` adds tenants)"
        in lines
    )
    assert sum(line.startswith("  ? ") for line in lines) == 298
    assert err == f"1 tenant(s) to change; --apply writes them to {catalog_file}\n"
    assert catalog_file.read_bytes() == before
    assert "scoring" not in err  # no progress bar: the output is no terminal


def test_json_has_exactly_the_documented_shape(
    catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert suggest(catalog_file, "--format", "json") == 0
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert len(results) == 300
    for result in results:
        assert set(result) == {"tenant", "segment", "confidence", "reasons"}
        assert result["segment"] in ("technical", "business", None)
        assert isinstance(result["confidence"], float) and 0 <= result["confidence"] <= 1
        assert len(result["reasons"]) <= 3
        for reason in result["reasons"]:
            assert set(reason) == {"indicator", "evidence"} and all(
                isinstance(v, str) for v in reason.values()
            )
    assert results[1] == {
        "tenant": "bloom",
        "segment": "business",
        "confidence": 1.0,
        "reasons": [
            {
                "indicator": "website_functionality",
                "evidence": 'ticket 10689 "the site"; ticket 11083 "our site"; ticket 11393 "Booking page"',
            },
            {
                "indicator": "billing_and_account",
                "evidence": 'ticket 10888 "account owner"; ticket 11083 "refunds"; '
                'ticket 12321 "direct debit"',
            },
            {
                "indicator": "business_impact",
                "evidence": 'ticket 11083 "Our members are complaining"; '
                'ticket 11393 "can\'t book appointments"',
            },
        ],
    }
    assert "  + bloom: segment business (confidence 1.00)" in err  # the diff beside JSON goes to stderr


def test_apply_writes_the_segments_and_then_has_nothing_to_do(
    catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_file.write_text(catalog_file.read_text().replace("segment: technical", "segment: business"))
    assert suggest(catalog_file, "--apply") == 0
    out, err = capsys.readouterr()
    assert "  ~ acme: segment business -> technical (confidence 0.96)" in out
    assert err == f"{catalog_file}: 2 tenant(s) changed\n"
    text = catalog_file.read_text()
    assert "    segment: technical\n" in text and "    name: Bloom Florists\n    segment: business\n" in text
    assert text.startswith("# The one catalog of the test suite.")
    assert suggest(catalog_file, "--apply") == 0
    assert capsys.readouterr().err == "nothing to change in the catalog\n"


def test_map_and_matching_by_name(
    tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = write_csv(tmp_path / "a.csv", "Org Name,SSH\nAcme Ltd,requested\nBloom Florists,\n")
    tickets = write_csv(
        tmp_path / "t.csv",
        "Ref,Org Name,Subject\n"
        "1,Bloom Florists,Please resend the invoice\n"
        "2,Bloom Florists,Our website is down and we are losing sales\n"
        "3,Acme Ltd,ENOSPC on deploy\n",
    )
    argv = [
        "segment",
        "suggest",
        "--accounts",
        str(accounts),
        "--tickets",
        str(tickets),
        "--catalog",
        str(catalog_file),
    ]
    maps = [
        "--map",
        "Org Name=account",
        "--map",
        "Org Name=name",
        "--map",
        "SSH=ssh_keys",
        "--map",
        "Ref=ticket",
    ]
    assert main([*argv, *maps, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [(r["tenant"], r["segment"]) for r in json.loads(out)] == [
        ("acme", "technical"),
        ("bloom", "business"),
    ]
    assert "(accounts matched to tenants by name)" in err
    assert json.loads(out)[0]["reasons"][0] == {
        "indicator": "onboarding_access",
        "evidence": 'account field "SSH": "requested"',
    }


def test_detail_requests_count_as_a_technical_sign(
    tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    asked = [{"tenant": "bloom", "segment": "business", "count": 4}, {"tenant": "gone", "count": 2}]
    report.write_text(json.dumps({"detail_requests": asked}))
    assert suggest(catalog_file, "--format", "json", "--detail-requests", str(report)) == 0
    out, err = capsys.readouterr()
    bloom = json.loads(out)[1]
    assert bloom["confidence"] < 1.0
    assert f"{report}: not in the export, ignored: gone\n" in err


def test_a_progress_bar_on_a_terminal(
    catalog_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert suggest(catalog_file, "--format", "json") == 0
    assert "scoring: " in capsys.readouterr().err


def test_exit_code_1_with_one_line_per_problem(
    tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = write_csv(tmp_path / "accounts.csv", "Plan,Notes\nPro,x\n")
    argv = ["--accounts", str(accounts), "--tickets", "/nonexistent/t.csv", "--catalog", str(catalog_file)]
    assert main(["segment", "suggest", *argv]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0] == "/nonexistent/t.csv: (file): cannot read: No such file or directory"
    assert lines[1].startswith(f'{accounts}: (header): no column for id or name (recognised: "Tenant ID", ')


def test_other_refusals(tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert suggest(catalog_file, "--map", "Org Name") == 1
    assert capsys.readouterr().err.startswith("--map Org Name: expected COLUMN=FIELD")
    catalog_file.write_text(
        catalog_file.read_text().replace("timezone: Europe/Dublin", "timezone: Mars/Base")
    )
    assert suggest(catalog_file) == 1
    assert capsys.readouterr().err == f"{catalog_file}: tenants[0].timezone: unknown time zone 'Mars/Base'\n"
    with pytest.raises(SystemExit) as usage:
        main(["segment", "suggest", "--accounts", ACCOUNTS])
    assert usage.value.code == 2


TENANTS = """
Record ID,Company name,Segment,Time Zone,Services,Email
acme,Acme Ltd,Technical,Europe/Dublin,mysql-shared;checkout,ops@acme.example
zeta,Zeta Shop,Business,Europe/Paris,checkout,owner@zeta.example
"""


def test_catalog_import_prints_the_diff_and_applies_it(
    tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenants = write_csv(tmp_path / "tenants.csv", TENANTS)
    before = catalog_file.read_bytes()
    assert main(["catalog", "import", str(tenants), "--catalog", str(catalog_file)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{tenants} -> {catalog_file}: 1 to add, 0 to update, 1 unchanged (2 tenants in the catalog)",
        "  + zeta (row 3): name Zeta Shop, segment business, timezone Europe/Paris, services [checkout], "
        "contacts.email owner@zeta.example",
    ]
    assert err == f"1 tenant(s) to change; --apply writes them to {catalog_file}\n"
    assert catalog_file.read_bytes() == before
    assert main(["catalog", "import", str(tenants), "--catalog", str(catalog_file), "--apply"]) == 0
    assert capsys.readouterr().err == f"{catalog_file}: 1 tenant(s) changed\n"
    assert catalog_file.read_text().startswith(before.decode())  # appended: every earlier byte kept
    assert suggest(catalog_file) == 0  # the catalog it wrote is one the other command reads


def test_catalog_import_refuses_a_bad_export(
    tmp_path: Path, catalog_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenants = write_csv(
        tmp_path / "tenants.csv", TENANTS.replace("Europe/Paris", "Europe/Pariss") + "zeta,Z,,,,\n"
    )
    before = catalog_file.read_bytes()
    assert main(["catalog", "import", str(tenants), "--catalog", str(catalog_file), "--apply"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{tenants}: row 3.timezone: unknown time zone 'Europe/Pariss'",
        f"{tenants}: row 4.id: 'zeta' is used twice (also row 3)",
    ]
    assert catalog_file.read_bytes() == before
    assert (
        main(["catalog", "import", str(tenants), "--catalog", str(catalog_file), "--map", "Tenant=id"]) == 1
    )
    assert capsys.readouterr().err == f"--map: no column 'Tenant' for id in {tenants}\n"
