"""The dualtrack command: preview prints both versions side by side and stores nothing; serve
refuses demo secrets beyond loopback and a database it cannot use, with one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from adapter.cli import main, side_by_side
from tests.conftest import FIXTURES, SHIPPED_ENV, base_config
from tests.support.server import DUALTRACK, WORKER_READY, Process, free_port, wait_until

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "dualtrack.yaml"


def test_preview_prints_technical_and_business_side_by_side(settings, capsys):
    code = main(
        ["preview", "--config", settings.config_path, str(FIXTURES / "alertmanager/alertmanager-firing.json")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("INC-2026-0001  level 4  web  services: checkout  tenants: acme, bloom")
    assert "== provider status" in out
    lines = [line for line in out.splitlines() if " | " in line]
    # The built-in page would publish both with the incident.
    assert lines[0].startswith("[technical, acknowledgement, delivered]")
    assert "[business, acknowledgement, delivered]" in lines[0]
    assert any("Checkout API 5xx ratio above 5%" in line.split(" | ")[0] for line in lines)
    assert not any("10.0.0.1" in line.split(" | ", 1)[1] for line in lines)


def test_preview_of_an_invalid_payload_names_the_field(settings, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "4", "groupKey": "x", "status": "firing", "alerts": [{}]}))
    assert main(["preview", "--config", settings.config_path, str(bad)]) == 1
    assert "alerts.0.fingerprint" in capsys.readouterr().err


def test_preview_of_a_resolved_only_payload_opens_nothing(settings, capsys):
    path = FIXTURES / "alertmanager/alertmanager-resolved.json"
    assert main(["preview", "--config", settings.config_path, str(path)]) == 0
    assert "nothing would open" in capsys.readouterr().out


def test_side_by_side_wraps_and_pads():
    text = side_by_side("a\n" + "x" * 25, "b", width=10)
    assert text.splitlines() == ["a          | b", "xxxxxxxxxx |", "xxxxxxxxxx |", "xxxxx      |"]


def test_preview_renders_notices_that_would_be_held(settings, capsys, tmp_path):
    body = json.loads((FIXTURES / "alertmanager/alertmanager-firing.json").read_text())
    for alert in body["alerts"]:
        alert["labels"]["severity"] = "warning"  # level 2: the business version is held at first
    payload = tmp_path / "warning.json"
    payload.write_text(json.dumps(body))
    assert main(["preview", "--config", settings.config_path, str(payload)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " | " in line]
    assert "[business, acknowledgement, held]" in lines[0]
    business = "\n".join(line.split(" | ", 1)[1] for line in lines[1:])
    assert "Online checkout" in business


# --- dualtrack serve: what it refuses before it listens ----------------------------------------


def run_serve(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`dualtrack serve` expected to refuse: it must exit on its own, long before the timeout."""
    full_env = {k: v for k, v in os.environ.items() if k not in SHIPPED_ENV}
    return subprocess.run(
        [str(DUALTRACK), "serve", *args],
        env={**full_env, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_demo_secrets_beyond_loopback():
    port = free_port()
    result = run_serve("--config", str(SHIPPED), "--bind", f"0.0.0.0:{port}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{SHIPPED}: refusing to listen on 0.0.0.0:{port}, which is not loopback, with public demo or "
        "missing secrets: auth.alertmanager.bearer_tokens[0] (AM_TOKEN), "
        "auth.alertmanager.basic_auth[0].password (AM_PASSWORD), auth.events.routing_keys[0] "
        "(EVENTS_ROUTING_KEY), api.tokens[0].token (DUALTRACK_API_TOKEN), auth.session_secret "
        "(DUALTRACK_SESSION_SECRET), feedback.secret (DUALTRACK_FEEDBACK_SECRET), "
        "users[0].password_hash, status_page.tenant_token_secret "
        "(STATUS_PAGE_SECRET); set them (`dualtrack check-config` says more), or listen on 127.0.0.1"
    ]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_serve_on_loopback_with_demo_secrets_starts_and_says_so(tmp_path):
    """`make run`: the shipped config, on 127.0.0.1, with no secret set."""
    folder = tmp_path / "config"
    folder.mkdir()
    for name in ("dualtrack.yaml", "catalog.yaml"):
        shutil.copy(SHIPPED.parent / name, folder / name)
    port = free_port()
    argv = [
        str(DUALTRACK),
        "serve",
        "--config",
        str(folder / "dualtrack.yaml"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    process = Process("dualtrack", [*argv, "--workers", "1"], tmp_path / "logs", cwd=tmp_path)
    process.start(env={name: "" for name in SHIPPED_ENV})
    assert process.proc is not None
    master = process.proc.pid
    try:
        wait_until(
            lambda: process.running and WORKER_READY in process.stderr_path.read_text(),
            message=lambda: "dualtrack serve\n" + process.logs(),
        )
        assert requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=10).status_code == 200
        (warning,) = [line for line in process.stderr_path.read_text().splitlines() if "demo" in line]
        assert warning.endswith(
            f"WARNING dualtrack.serve [{master}] listening on 127.0.0.1:{port} (loopback only) "
            "with public demo or missing secrets: auth.alertmanager.bearer_tokens[0] (AM_TOKEN), "
            "auth.alertmanager.basic_auth[0].password (AM_PASSWORD), auth.events.routing_keys[0] "
            "(EVENTS_ROUTING_KEY), api.tokens[0].token (DUALTRACK_API_TOKEN), auth.session_secret "
            "(DUALTRACK_SESSION_SECRET), feedback.secret (DUALTRACK_FEEDBACK_SECRET), "
            "users[0].password_hash, status_page.tenant_token_secret "
            "(STATUS_PAGE_SECRET)"
        )
    finally:
        process.stop()
    assert (tmp_path / "data" / "dualtrack.db").exists()


def test_serve_refuses_a_file_that_is_not_a_database(make_settings, tmp_path):
    settings = make_settings()
    database = Path(settings.config_path).parent / "dualtrack.db"
    database.write_bytes(b"not a database, " * 512)
    result = run_serve("--config", settings.config_path, "--bind", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"dualtrack: cannot use the database: {database}: the database is corrupted (quick_check: file is "
        "not a database); restore it from a backup, or move it away to start with an empty one"
    ]
    assert database.read_bytes() == b"not a database, " * 512


def test_serve_with_postgresql_unreachable_prints_one_line(make_settings):
    port = free_port()
    config = base_config()
    config["storage"]["url"] = f"postgresql+psycopg://dualtrack:pw-not-shown@127.0.0.1:{port}/dualtrack"
    settings = make_settings(config)
    result = run_serve("--config", settings.config_path, "--bind", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"dualtrack: cannot use the database: PostgreSQL at 127.0.0.1:{port}, database dualtrack: "
    )
    assert "Connection refused" in line
    assert "pw-not-shown" not in result.stderr


def test_migrate_with_postgresql_unreachable_prints_one_line(make_settings, capsys):
    port = free_port()
    config = base_config()
    config["storage"]["url"] = f"postgresql+psycopg://dualtrack:pw-not-shown@127.0.0.1:{port}/dualtrack"
    settings = make_settings(config)
    assert main(["migrate", "--config", settings.config_path]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(
        f"dualtrack: cannot use the database: PostgreSQL at 127.0.0.1:{port}, database dualtrack: "
    )
    assert "pw-not-shown" not in err


def test_preview_gives_the_ref_the_configured_database_would_and_leaves_it_as_it_was(settings, capsys):
    from adapter.store import Store
    from adapter.store import incidents as repo

    store = Store(settings.storage.url)
    try:
        store.migrate()
        with store.transaction() as conn:
            for _ in range(9):  # INC-2026-0001 to 0009 taken
                repo.next_ref(conn, 2026)
        path = FIXTURES / "alertmanager/alertmanager-firing.json"
        assert main(["preview", "--config", settings.config_path, str(path)]) == 0
        captured = capsys.readouterr()
        assert captured.out.startswith("INC-2026-0010  level 4")
        assert "empty database" not in captured.err
        with store.transaction() as conn:
            assert repo.next_ref(conn, 2026) == "INC-2026-0010"  # the preview took nothing
            assert repo.list_incidents(conn) == []
    finally:
        store.dispose()


def test_preview_without_a_database_says_it_used_an_empty_one(settings, capsys):
    path = FIXTURES / "alertmanager/alertmanager-firing.json"
    assert main(["preview", "--config", settings.config_path, str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("INC-2026-0001")
    assert "against an empty database" in captured.err


def test_tenants_urls_prints_each_tenants_own_page(make_settings, capsys):
    import hashlib
    import hmac

    config = base_config()
    config["status_page"] = {"tenant_token_secret": "s" * 32}
    settings = make_settings(config)
    assert main(["tenants", "urls", "--config", settings.config_path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [t.id for t in settings.catalog.tenants]
    token = hmac.new(b"s" * 32, b"acme", hashlib.sha256).hexdigest()[:32]
    assert f"acme\thttp://status.example.test/status/t/{token}" in lines


def test_check_config_renders_every_template_and_names_each_that_fails(make_settings, tmp_path, capsys):
    custom = tmp_path / "config" / "custom-templates"
    (custom / "technical").mkdir(parents=True)
    (custom / "business").mkdir()
    (custom / "technical" / "update.md.j2").write_text("{{ incident.ref }}: update\n{% if %}\n")
    (custom / "business" / "resolution.md.j2").write_text("Resolved\n\n{{ incident.level // 0 }}\n")
    config = base_config()
    config["templates_dir"] = "custom-templates"
    settings = make_settings(config)
    assert main(["check-config", "--config", settings.config_path]) == 1
    err = capsys.readouterr().err
    assert "technical/update.md.j2: TemplateSyntaxError" in err
    assert "business/resolution.md.j2: web business resolution: ZeroDivisionError" in err
    # One run names both, and every incident type that meets the broken one.
    assert "database business resolution" in err


def test_check_config_samples_print_both_versions_side_by_side(settings, capsys):
    assert main(["check-config", "--config", settings.config_path, "--samples"]) == 0
    out = capsys.readouterr().out
    assert "== web acknowledgement\n" in out
    assert "== web sla_followup (a tenant of each segment)" in out
    first = out.split("== web acknowledgement\n", 1)[1].splitlines()[0]
    assert first.startswith("INC-0000-0000: Sample web incident - Initial Response")
    assert "| Service Update: Investigating Errors Affecting" in first


def test_users_hash_prints_an_argon2_hash_of_the_password(monkeypatch, capsys):
    import io

    from argon2 import PasswordHasher

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["users", "hash", "--stdin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, "correct horse battery")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "hash", "--stdin"]) == 1
    assert "at least 8 characters" in capsys.readouterr().err


def test_users_hash_prompts_twice(monkeypatch, capsys):
    answers = iter(["one password", "another one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["users", "hash"]) == 1
    assert "the passwords differ" in capsys.readouterr().err
