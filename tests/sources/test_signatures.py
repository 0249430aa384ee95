"""PagerDuty V3 `X-PagerDuty-Signature` checks against the worked example in fixtures/README.md."""

from __future__ import annotations

import json

import pytest

from adapter.sources.signatures import pagerduty_signature_valid, sign_pagerduty
from tests.conftest import fixture_bytes

NEW_SECRET = "example-new-secret-9f8e7d6c"
OLD_SECRET = "example-old-secret-1a2b3c4d"
NEW_SIG = "v1=f1227b803d4e866874fd108ec0edf6e275242fea4688526f8acaa0d0e8d1cc5b"
OLD_SIG = "v1=baf1550fd48f9cf84202a2483097255bbfd6908701b851f270c2997e9de18b1c"
ROTATION = f"{NEW_SIG},{OLD_SIG}"


@pytest.fixture
def raw() -> bytes:
    data = fixture_bytes("pagerduty/pagerduty-v3-signature-example.body.json")
    assert len(data) == 229 and not data.endswith(b"\n")
    return data


def test_sign_reproduces_the_worked_example(raw: bytes) -> None:
    assert sign_pagerduty(NEW_SECRET, raw) == NEW_SIG
    assert sign_pagerduty(OLD_SECRET, raw) == OLD_SIG


@pytest.mark.parametrize(("secret", "header"), [(NEW_SECRET, NEW_SIG), (OLD_SECRET, OLD_SIG)])
def test_each_secret_accepts_its_own_signature(raw: bytes, secret: str, header: str) -> None:
    assert pagerduty_signature_valid(raw, header, [secret])


@pytest.mark.parametrize(("secret", "header"), [(NEW_SECRET, OLD_SIG), (OLD_SECRET, NEW_SIG)])
def test_a_secret_rejects_the_other_signature(raw: bytes, secret: str, header: str) -> None:
    assert not pagerduty_signature_valid(raw, header, [secret])


@pytest.mark.parametrize(
    "secrets",
    [[NEW_SECRET], [OLD_SECRET], [NEW_SECRET, OLD_SECRET], [OLD_SECRET, NEW_SECRET], ["other", OLD_SECRET]],
)
def test_rotation_header_accepted_by_either_secret(raw: bytes, secrets: list[str]) -> None:
    assert pagerduty_signature_valid(raw, ROTATION, secrets)
    assert pagerduty_signature_valid(raw, f"{OLD_SIG},{NEW_SIG}", secrets)


def test_several_configured_secrets_against_one_signature(raw: bytes) -> None:
    assert pagerduty_signature_valid(raw, OLD_SIG, [NEW_SECRET, OLD_SECRET])
    assert pagerduty_signature_valid(raw, NEW_SIG, [NEW_SECRET, OLD_SECRET])


def test_one_changed_byte_is_rejected(raw: bytes) -> None:
    changed = raw.replace(b"Pagey", b"Pagez")
    assert len(changed) == len(raw) and changed != raw
    assert not pagerduty_signature_valid(changed, ROTATION, [NEW_SECRET, OLD_SECRET])


def test_extra_trailing_newline_is_rejected(raw: bytes) -> None:
    assert not pagerduty_signature_valid(raw + b"\n", ROTATION, [NEW_SECRET, OLD_SECRET])


def test_reserialized_json_is_rejected(raw: bytes) -> None:
    pretty = json.dumps(json.loads(raw), indent=2).encode()
    assert not pagerduty_signature_valid(pretty, ROTATION, [NEW_SECRET, OLD_SECRET])


@pytest.mark.parametrize("header", [None, "", " ", ",", "v1=", "v1"])
def test_missing_or_empty_header(raw: bytes, header: str | None) -> None:
    assert not pagerduty_signature_valid(raw, header, [NEW_SECRET, OLD_SECRET])


@pytest.mark.parametrize("secrets", [[], [""]])
def test_no_secrets_rejects(raw: bytes, secrets: list[str]) -> None:
    assert not pagerduty_signature_valid(raw, NEW_SIG, secrets)


def test_empty_secret_is_never_used(raw: bytes) -> None:
    forged = sign_pagerduty("", raw)
    assert not pagerduty_signature_valid(raw, forged, ["", OLD_SECRET])


@pytest.mark.parametrize(
    "header",
    [
        f" {NEW_SIG} , {OLD_SIG} ",
        f"{OLD_SIG}, {NEW_SIG}",
        f"{NEW_SIG}\t",
        f"  {NEW_SIG}",
    ],
)
def test_spaces_around_entries_are_trimmed(raw: bytes, header: str) -> None:
    assert pagerduty_signature_valid(raw, header, [NEW_SECRET])


@pytest.mark.parametrize(
    "header",
    [
        f"v0=deadbeef,{NEW_SIG}",
        f"{NEW_SIG},v2=0123abcd",
        f"t=1700000000,{NEW_SIG},sha256=00",
    ],
)
def test_unknown_version_prefixes_are_ignored(raw: bytes, header: str) -> None:
    assert pagerduty_signature_valid(raw, header, [NEW_SECRET])


@pytest.mark.parametrize(
    "header",
    [
        NEW_SIG.replace("v1=", "v2="),  # the right hex under another version is not accepted
        NEW_SIG.replace("v1=", "V1="),
        NEW_SIG.removeprefix("v1="),  # bare hex
        NEW_SIG[:-1],  # truncated
        NEW_SIG + "0",  # extended
        "v1=" + "0" * 64,
        "v1=ünïcödé",
    ],
)
def test_other_forms_are_rejected(raw: bytes, header: str) -> None:
    assert not pagerduty_signature_valid(raw, header, [NEW_SECRET, OLD_SECRET])
