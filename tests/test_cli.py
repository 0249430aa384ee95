"""The dualtrack command: preview prints both versions side by side and stores nothing."""

from __future__ import annotations

import json

from adapter.cli import main, side_by_side
from tests.conftest import FIXTURES


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
