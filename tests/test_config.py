"""load_settings and `dualtrack check-config`: env and file references, validation, error lines."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter import cli
from adapter.config import DEMO_SECRETS, ConfigError, Settings, is_loopback, load_settings, weak_secrets
from adapter.providers import check_settings
from tests.conftest import AM_TOKEN, API_TOKEN, SHIPPED_ENV, base_config, write_config
from tests.support.catalog import catalog_data

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "dualtrack.yaml"
# What the shipped config's secrets fall back to, and the variables that replace them.
SHIPPED_DEMO = [
    ("auth.alertmanager.bearer_tokens[0]", "AM_TOKEN"),
    ("auth.alertmanager.basic_auth[0].password", "AM_PASSWORD"),
    ("auth.events.routing_keys[0]", "EVENTS_ROUTING_KEY"),
    ("api.tokens[0].token", "DUALTRACK_API_TOKEN"),
    ("auth.session_secret", "DUALTRACK_SESSION_SECRET"),
    ("feedback.secret", "DUALTRACK_FEEDBACK_SECRET"),
    ("status_page.tenant_token_secret", "STATUS_PAGE_SECRET"),
]


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, check_settings)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


# --- the shipped configuration ---------------------------------------------------------------


def test_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHIPPED_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(SHIPPED)
    assert settings.config_path == str(SHIPPED)
    assert settings.server.bind == "127.0.0.1:9095"
    assert settings.storage.url == f"sqlite:///{ROOT / 'data' / 'dualtrack.db'}"
    assert settings.auth.alertmanager.bearer_tokens == ["dev-alertmanager-token"]
    assert settings.auth.alertmanager.basic_auth[0].username == "am"
    assert settings.auth.alertmanager.basic_auth[0].password == "dev-alertmanager-password"
    assert [(t.name, t.token, t.role) for t in settings.api.named()] == [("admin", "dev-api-token", "admin")]
    assert [(u.name, u.role) for u in settings.users] == [("admin", "admin")]
    assert settings.correlation.reopen_window == timedelta(minutes=30)
    assert settings.delivery.backoff_max == timedelta(minutes=5)
    assert settings.delivery.max_age == timedelta(hours=24)
    assert [r.level for r in settings.severity.rules] == [4, 3, 2, 1]
    assert [p.name for p in settings.providers] == ["status"]
    assert {s.id for s in settings.catalog.services} == {
        "mysql-shared",
        "checkout",
        "search",
        "edge-network",
        "object-storage",
    }
    assert [t.id for t in settings.catalog.tenants] == ["acme", "bloom", "nordlys", "devhaus"]


def test_shipped_config_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AM_TOKEN", "prod-am")
    monkeypatch.setenv("AM_PASSWORD", "prod-pw")
    monkeypatch.setenv("DUALTRACK_API_TOKEN", "prod-api")
    settings = load_settings(SHIPPED)
    assert settings.auth.alertmanager.bearer_tokens == ["prod-am"]
    assert settings.auth.alertmanager.basic_auth[0].password == "prod-pw"
    assert [t.token for t in settings.api.named()] == ["prod-api"]


def test_shipped_config_through_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SHIPPED_ENV:
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["check-config", "--config", str(SHIPPED)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{SHIPPED}: ok (1 providers, 5 services, 4 tenants)\n"
    # `make run` serves this on 127.0.0.1: its public demo secrets are named, as warnings.
    demo_user = (
        f'warning: {SHIPPED}: users[0].password_hash: the demo password "dualtrack": '
        "`serve` accepts it on loopback only"
    )
    assert sorted(err.splitlines()) == sorted(
        [
            *(
                f"warning: {SHIPPED}: {key}: a public demo value ({variable} is not set): "
                "`serve` accepts it on loopback only"
                for key, variable in SHIPPED_DEMO
            ),
            demo_user,
        ]
    )


def test_shipped_config_with_its_variables_set_has_no_weak_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHIPPED_ENV:
        monkeypatch.setenv(
            name, "0123456789abcdefABCDEF0123456789" if name == "EVENTS_ROUTING_KEY" else f"own-{name}"
        )
    # The demo user stays until its hash is replaced: only the variables are set here.
    assert [w.path for w in weak_secrets(load_settings(SHIPPED))] == ["users[0].password_hash"]


def test_every_public_default_is_a_demo_secret() -> None:
    """The one list knows every secret the shipped files default to or hold as placeholders."""
    defaults = set()
    for path in [*(ROOT / "config").glob("*.yaml"), ROOT / "deploy" / "compose.yaml"]:
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", text):
            if name not in ("URGENT_CONTACT", "POSTGRES_PASSWORD"):  # not secrets / not an endpoint's
                defaults.add(default)
    example = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "secret.example.yaml").read_text())
    placeholders = {v for k, v in example["stringData"].items() if k != "postgres-password"}
    assert defaults
    assert defaults | placeholders <= DEMO_SECRETS


# --- a valid temp config ---------------------------------------------------------------------


def test_base_config_loads(tmp_path: Path) -> None:
    path = write_config(config_dir(tmp_path), base_config())
    settings = load_settings(path)
    assert isinstance(settings, Settings)
    assert settings.config_path == str(path.resolve())
    assert settings.auth.alertmanager.bearer_tokens == [AM_TOKEN]
    assert settings.api.named()[0].token == API_TOKEN
    assert settings.catalog.service("checkout-api").id == "checkout"  # type: ignore[union-attr]
    # Defaults for sections left out.
    assert settings.correlation.reopen_window == timedelta(minutes=30)
    assert settings.correlation.service_labels == ["service", "job"]
    assert settings.severity.default_level == 2
    assert settings.delivery.lease == timedelta(seconds=60)
    assert settings.templates_dir is None


def test_empty_config_file_uses_defaults(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    folder.mkdir()
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog_data()))
    path = folder / "dualtrack.yaml"
    path.write_text("")
    settings = load_settings(path)
    assert [(p.name, p.type, p.audience) for p in settings.providers] == [("status", "builtin", "all")]
    assert settings.storage.url == f"sqlite:///{(folder / 'data' / 'dualtrack.db').resolve()}"


def test_durations_are_parsed(tmp_path: Path) -> None:
    config = base_config()
    config["correlation"] = {"reopen_window": "1h30m"}
    config["delivery"] = {"backoff_initial": "500ms", "max_age": "2d"}
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.correlation.reopen_window == timedelta(hours=1, minutes=30)
    assert settings.delivery.backoff_initial == timedelta(milliseconds=500)
    assert settings.delivery.max_age == timedelta(days=2)


def test_provider_audiences(tmp_path: Path) -> None:
    config = base_config()
    config["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all"},
        {"name": "tech-hook", "type": "webhook", "audience": "technical", "url": "https://hooks.example/t"},
        {"name": "biz-hook", "type": "webhook", "audience": "business", "url": "https://hooks.example/b"},
    ]
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.provider("status").audiences == ("technical", "business")
    assert settings.provider("tech-hook").audiences == ("technical",)
    assert settings.provider("biz-hook").audiences == ("business",)
    assert settings.provider("tech-hook").options() == {"url": "https://hooks.example/t"}
    with pytest.raises(KeyError):
        settings.provider("nope")


def test_levels_take_a_social_list_beside_each_audiences_cadence(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "chat", "type": "apprise", "urls": "json://127.0.0.1:9/chat"})
    config["policy"] = {"levels": {"2": {"business": {"hold_for": "5m"}}, 5: {"social": ["chat", "status"]}}}
    policy = load_settings(write_config(config_dir(tmp_path), config), check_settings).policy
    assert policy.audience(2, "business").hold_for == timedelta(minutes=5)
    assert policy.audience(2, "business").update_every == timedelta(hours=3)  # the default kept
    assert policy.audience(5, "business").hold_for == timedelta(0)
    assert policy.social(5) == ["chat", "status"]
    assert [policy.social(level) for level in (1, 2, 3, 4)] == [[], [], [], []]


def test_social_names_configured_shared_providers(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append(
        {"name": "mail", "type": "smtp", "host": "mx", "sender": "s@example.com", "per_tenant": True}
    )
    config["policy"] = {"levels": {5: {"social": ["status", "x", "mail"]}, 3: {"social": ["y"]}}}
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [
        f"{path}: policy.levels.3.social[0]: no provider named 'y'",
        f"{path}: policy.levels.5.social[1]: no provider named 'x'",
        f"{path}: policy.levels.5.social[2]: 'mail' delivers per tenant; social channels are shared",
    ]


# --- ${VAR} expansion --------------------------------------------------------------------------


def test_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TEST_TOKEN", "from-env")
    monkeypatch.setenv("DT_TEST_HOST", "status.example.org")
    config = base_config()
    config["auth"]["alertmanager"]["bearer_tokens"] = ["${DT_TEST_TOKEN}"]
    config["server"]["public_url"] = "https://${DT_TEST_HOST}/status"
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.auth.alertmanager.bearer_tokens == ["from-env"]
    assert settings.server.public_url == "https://status.example.org/status"


def test_env_expansion_of_non_string_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TEST_WORKERS", "7")
    config = base_config()
    config["server"]["workers"] = "${DT_TEST_WORKERS}"
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.server.workers == 7


def test_env_default_used_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DT_TEST_UNSET", raising=False)
    config = base_config()
    config["api"]["tokens"] = ["${DT_TEST_UNSET:-fallback-token}"]
    config["correlation"] = {"reopen_window": "${DT_TEST_UNSET:-45m}"}
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.api.tokens == ["fallback-token"]
    assert settings.correlation.reopen_window == timedelta(minutes=45)


def test_env_default_ignored_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TEST_SET", "real")
    config = base_config()
    config["api"]["tokens"] = ["${DT_TEST_SET:-fallback}"]
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.api.tokens == ["real"]


def test_env_default_used_when_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TEST_EMPTY", "")
    config = base_config()
    config["api"]["tokens"] = ["${DT_TEST_EMPTY:-fallback}"]
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.api.tokens == ["fallback"]


def test_unset_env_is_error_naming_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DT_TEST_MISSING", raising=False)
    config = base_config()
    config["auth"]["alertmanager"]["bearer_tokens"] = ["${DT_TEST_MISSING}"]
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert (
        f"{path}: auth.alertmanager.bearer_tokens[0]: environment variable DT_TEST_MISSING is not set"
        in problems
    )


def test_unset_env_nested_in_list_of_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DT_TEST_MISSING_PW", raising=False)
    config = base_config()
    config["auth"]["alertmanager"]["basic_auth"] = [
        {"username": "a", "password": "ok"},
        {"username": "b", "password": "pre-${DT_TEST_MISSING_PW}"},
    ]
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    key = "auth.alertmanager.basic_auth[1].password"
    assert problems == [f"{path}: {key}: environment variable DT_TEST_MISSING_PW is not set"]


def test_every_unset_env_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DT_TEST_A", "DT_TEST_B"):
        monkeypatch.delenv(name, raising=False)
    config = base_config()
    config["api"]["tokens"] = ["${DT_TEST_A}"]
    config["server"]["public_url"] = "https://${DT_TEST_B}"
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert f"{path}: api.tokens[0]: environment variable DT_TEST_A is not set" in problems
    assert f"{path}: server.public_url: environment variable DT_TEST_B is not set" in problems


def test_env_expanded_in_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_TEST_CONTACT", "oncall@acme.example")
    catalog = catalog_data()
    catalog["tenants"][0]["contacts"] = {"email": "${DT_TEST_CONTACT}"}
    settings = load_settings(write_config(config_dir(tmp_path), base_config(), catalog))
    assert settings.catalog.tenant("acme").contacts.email == "oncall@acme.example"  # type: ignore[union-attr]


# --- *_file secrets --------------------------------------------------------------------------


def test_file_reference_relative_to_config_folder(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    config = base_config()
    config["auth"]["alertmanager"]["basic_auth"] = [{"username": "am", "password_file": "secrets/am-pw"}]
    config["api"] = {"tokens": ["a"]}
    path = write_config(folder, config)
    (folder / "secrets").mkdir()
    (folder / "secrets" / "am-pw").write_text("  s3cret-from-file\n")
    settings = load_settings(path)
    assert settings.auth.alertmanager.basic_auth[0].password == "s3cret-from-file"


def test_file_reference_absolute_and_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "elsewhere" / "hook-secret"
    secret.parent.mkdir()
    secret.write_text("hmac-key\n")
    monkeypatch.setenv("DT_TEST_SECRET_PATH", str(secret))
    config = base_config()
    config["providers"].append(
        {
            "name": "hook",
            "type": "webhook",
            "url": "https://hooks.example/x",
            "secret_file": "${DT_TEST_SECRET_PATH}",
        }
    )
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.provider("hook").options()["secret"] == "hmac-key"
    assert "secret_file" not in settings.provider("hook").options()


def test_missing_secret_file_names_key(tmp_path: Path) -> None:
    config = base_config()
    config["auth"]["alertmanager"]["basic_auth"] = [{"username": "am", "password_file": "nope.txt"}]
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    key = "auth.alertmanager.basic_auth[0].password_file"
    assert f"{path}: {key}: cannot read nope.txt: No such file or directory" in problems


# --- validation errors name file and key path --------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    config = base_config()
    config["colour"] = "blue"
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: colour: unknown key (misspelled?)"]


def test_unknown_nested_key(tmp_path: Path) -> None:
    config = base_config()
    config["auth"]["alertmanager"]["basic_auth"][0]["role"] = "admin"
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: auth.alertmanager.basic_auth[0].role: unknown key (misspelled?)"]


def test_unknown_provider_option(tmp_path: Path) -> None:
    config = base_config()
    config["providers"][0]["colour"] = "red"
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: providers[0].colour: unknown key (misspelled?)"]


@pytest.mark.parametrize("value", ["abc", "10", "1x", "h1", ""])
def test_bad_duration(tmp_path: Path, value: str) -> None:
    config = base_config()
    config["correlation"] = {"reopen_window": value}
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: correlation.reopen_window: ")
    assert "duration such as 30s" in problems[0]


@pytest.mark.parametrize(("value", "expected"), [(None, timedelta(hours=48)), ("72h", timedelta(hours=72))])
def test_pagerduty_dedupe_window(tmp_path: Path, value: str | None, expected: timedelta) -> None:
    config = base_config()
    if value is not None:
        config["pagerduty"] = {"dedupe_window": value}
    assert load_settings(write_config(config_dir(tmp_path), config)).pagerduty.dedupe_window == expected


def test_pagerduty_dedupe_window_must_be_positive(tmp_path: Path) -> None:
    config = base_config()
    config["pagerduty"] = {"dedupe_window": "0s"}
    path = write_config(config_dir(tmp_path), config)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: pagerduty.dedupe_window: ")


def test_bad_audience(tmp_path: Path) -> None:
    config = base_config()
    config["providers"][0]["audience"] = "everyone"
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: providers[0].audience: ")
    assert "'technical', 'business' or 'all'" in problems[0]


def test_unknown_provider_type(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "bird", "type": "carrier-pigeon"})
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [
        f"{path}: providers[1].type: unknown provider type 'carrier-pigeon' "
        f"(known: {', '.join(sorted(__import__('adapter.providers').providers.REGISTRY))})"
    ]


def test_webhook_without_url(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "hook", "type": "webhook", "audience": "technical"})
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: providers[1].url: required unless per_tenant is true"]


def test_webhook_with_bad_url(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "hook", "type": "webhook", "url": "not a url"})
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: providers[1].url: ")


@pytest.mark.parametrize("name", ["", "has space", "slash/name"])
def test_bad_provider_name(tmp_path: Path, name: str) -> None:
    config = base_config()
    config["providers"][0]["name"] = name
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: providers[0].name: ")


def test_duplicate_provider_names(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "status", "type": "builtin", "audience": "technical"})
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: ")
    assert problems[0].endswith("provider name 'status' is used twice")


def test_duplicate_provider_names_key_path(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "status", "type": "builtin"})
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: providers[1].name: provider name 'status' is used twice"]


@pytest.mark.parametrize("bind", ["9095", "localhost", ":9095", "host:http"])
def test_bad_bind(tmp_path: Path, bind: str) -> None:
    config = base_config()
    config["server"]["bind"] = bind
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: server.bind: expected HOST:PORT, e.g. 127.0.0.1:9095"]


def test_bad_severity_rule(tmp_path: Path) -> None:
    config = base_config()
    config["severity"] = {
        "rules": [
            {"matchers": ['severity="critical"'], "level": 4},
            {"matchers": ["severity critical"], "level": 9},
        ]
    }
    path = write_config(config_dir(tmp_path), config)
    problems = problems_of(path)
    assert len(problems) == 2
    assert any(p.startswith(f"{path}: severity.rules[1].matchers: ") for p in problems)
    assert any(p.startswith(f"{path}: severity.rules[1].level: ") for p in problems)


def test_custom_severity_rules_loaded(tmp_path: Path) -> None:
    config = base_config()
    config["severity"] = {"rules": [{"matchers": ['team=~"db|dba"', 'env="prod"'], "level": 5}]}
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert len(settings.severity.rules) == 1
    assert settings.severity.rules[0].matchers == ['team=~"db|dba"', 'env="prod"']


# --- storage URL and templates folder ----------------------------------------------------------


def test_relative_sqlite_path_resolves_against_config_folder(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    settings = load_settings(write_config(folder, base_config()))
    assert settings.storage.url == f"sqlite:///{(folder / 'dualtrack.db').resolve()}"


def test_relative_sqlite_path_with_parent(tmp_path: Path) -> None:
    config = base_config()
    config["storage"]["url"] = "sqlite:///../data/x.db"
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.storage.url == f"sqlite:///{(tmp_path / 'data' / 'x.db').resolve()}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/dualtrack/db.sqlite",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql+psycopg://dualtrack:pw@db.example:5432/dualtrack",
    ],
)
def test_other_storage_urls_unchanged(tmp_path: Path, url: str) -> None:
    config = base_config()
    config["storage"]["url"] = url
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert settings.storage.url == url


def test_templates_dir_resolved(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    (tmp_path / "templates").mkdir()
    config = base_config()
    config["templates_dir"] = "../templates"
    settings = load_settings(write_config(folder, config))
    assert Path(settings.templates_dir).resolve() == (tmp_path / "templates").resolve()  # type: ignore[arg-type]


def test_templates_dir_missing(tmp_path: Path) -> None:
    config = base_config()
    config["templates_dir"] = "nowhere"
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [f"{path}: templates_dir: {path.parent / 'nowhere'} is not a folder"]


# --- unreadable or malformed files -------------------------------------------------------------


def test_invalid_yaml_reports_file_and_line(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    folder.mkdir()
    path = folder / "dualtrack.yaml"
    path.write_text("server:\n  bind: 127.0.0.1:9095\n  public_url: a: b\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: line 3: invalid YAML: ")
    assert "mapping values are not allowed" in problems[0]  # libyaml: "in this context"


def test_yaml_not_a_mapping(tmp_path: Path) -> None:
    folder = config_dir(tmp_path)
    folder.mkdir()
    path = folder / "dualtrack.yaml"
    path.write_text("- server\n- storage\n")
    assert problems_of(path) == [f"{path}: (top level): expected a mapping"]


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert problems_of(path) == [f"{path}: (file): cannot read: No such file or directory"]


def test_missing_catalog_file(tmp_path: Path) -> None:
    config = base_config()
    config["catalog"] = "other-catalog.yaml"
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [
        f"{path.parent / 'other-catalog.yaml'}: (file): cannot read: No such file or directory"
    ]


def test_invalid_catalog_yaml(tmp_path: Path) -> None:
    path = write_config(config_dir(tmp_path), base_config())
    catalog_path = path.parent / "catalog.yaml"
    catalog_path.write_text("services:\n  - id: a\n    name: [oops\n")
    problems = problems_of(path)
    assert len(problems) == 1
    assert re.match(rf"{re.escape(str(catalog_path))}: line \d+: invalid YAML: ", problems[0])


# --- catalog errors through load_settings -------------------------------------------------------


def catalog_problems(tmp_path: Path, catalog: dict[str, Any]) -> tuple[list[str], Path]:
    path = write_config(config_dir(tmp_path), base_config(), catalog)
    return problems_of(path), path.parent / "catalog.yaml"


def test_catalog_unknown_service_in_tenant(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["tenants"][0]["services"] = ["mysql-shared", "x"]
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: tenants[0].services[1]: unknown service id 'x'"]
    assert problems[0].endswith("catalog.yaml: tenants[0].services[1]: unknown service id 'x'")


def test_catalog_lists_every_unknown_service(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["tenants"][0]["services"] = ["x"]
    catalog["tenants"][1]["services"] = ["checkout", "y"]
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [
        f"{catalog_path}: tenants[0].services[0]: unknown service id 'x'",
        f"{catalog_path}: tenants[1].services[1]: unknown service id 'y'",
    ]


def test_catalog_bad_time_zone(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["tenants"][1]["timezone"] = "Mars/Olympus"
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: tenants[1].timezone: unknown time zone 'Mars/Olympus'"]


def test_catalog_duplicate_service_id(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["services"].append({"id": "search", "name": "Other", "business_name": "Other"})
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: services[6].id: 'search' is used twice"]


def test_catalog_duplicate_tenant_id(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["tenants"].append({"id": "acme", "name": "Acme again"})
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: tenants[2].id: 'acme' is used twice"]


def test_catalog_component_for_unknown_provider(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["services"][1]["components"] = {"status": "checkout", "statuspage": "cmp_123"}
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: services[1].components.statuspage: no provider named 'statuspage'"]


def test_catalog_component_for_known_provider(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["services"][1]["components"] = {"status": "checkout"}
    settings = load_settings(write_config(config_dir(tmp_path), base_config(), catalog))
    assert settings.catalog.service("checkout").components == {"status": "checkout"}  # type: ignore[union-attr]


def test_catalog_unknown_key(tmp_path: Path) -> None:
    catalog = catalog_data()
    catalog["tenants"][0]["colour"] = "red"
    problems, catalog_path = catalog_problems(tmp_path, catalog)
    assert problems == [f"{catalog_path}: tenants[0].colour: unknown key (misspelled?)"]


def test_problems_from_config_and_providers_and_catalog_together(tmp_path: Path) -> None:
    config = base_config()
    config["providers"].append({"name": "hook", "type": "webhook"})
    catalog = catalog_data()
    catalog["tenants"][0]["timezone"] = "Nowhere/Land"
    path = write_config(config_dir(tmp_path), config, catalog)
    problems = problems_of(path)
    assert problems == [
        f"{path}: providers[1].url: required unless per_tenant is true",
        f"{path.parent / 'catalog.yaml'}: tenants[0].timezone: unknown time zone 'Nowhere/Land'",
    ]


# --- dualtrack check-config --------------------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(config_dir(tmp_path), base_config())
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (1 providers, 6 services, 2 tenants)\n"
    assert err == ""


def test_check_config_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = base_config()
    config["correlation"] = {"reopen_window": "soon"}
    path = write_config(config_dir(tmp_path), config)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: correlation.reopen_window: 'soon' is not a duration such as 30s, 15m or 2h"
    ]


def test_check_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DT_TEST_NOT_SET", raising=False)
    config = base_config()
    config["server"]["colour"] = "blue"
    config["correlation"] = {"reopen_window": "abc"}
    config["providers"][0]["audience"] = "everyone"
    config["api"]["tokens"] = ["${DT_TEST_NOT_SET}"]
    path = write_config(config_dir(tmp_path), config)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    expected_keys = [
        "api.tokens[0]",
        "server.colour",
        "correlation.reopen_window",
        "providers[0].audience",
    ]
    for key in expected_keys:
        assert any(line.startswith(f"{path}: {key}: ") for line in lines), (key, lines)
    assert f"{path}: api.tokens[0]: environment variable DT_TEST_NOT_SET is not set" in lines
    # One problem per line, each in `file: key.path: message` form.
    for line in lines:
        assert re.fullmatch(rf"{re.escape(str(path))}: [A-Za-z_][\w.\[\]]*: .+", line), line


def test_check_config_and_reload_check_each_providers_own_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], client: Any, settings: Settings
) -> None:
    # Checked by the provider registry (config.py does not know the types): both entry points ask it.
    config = base_config()
    config["providers"] += [
        {"name": "hook", "type": "webhook", "audience": "technical"},
        {"name": "sp", "type": "statuspage", "page_id": "p1", "api_key": "k"},
        {"name": "mail", "type": "smtp", "host": "mx", "sender": "status@example.com", "to": ["nobody"]},
    ]
    expected = [
        "providers[1].url: required unless per_tenant is true",
        "providers[2].audience: a Statuspage page serves one audience: technical or business",
        "providers[3].to: not an e-mail address: 'nobody'",
    ]
    path = write_config(config_dir(tmp_path), config)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"{path}: {line}" for line in expected]

    Path(settings.config_path).write_text(yaml.safe_dump(config))
    response = client.post("/-/reload", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 400
    assert [d["message"] for d in response.get_json()["error"]["details"]] == [
        f"{settings.config_path}: {line}" for line in expected
    ]


def test_check_config_catalog_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = catalog_data()
    catalog["tenants"][0]["services"] = ["mysql-shared", "x"]
    path = write_config(config_dir(tmp_path), base_config(), catalog)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{path.parent / 'catalog.yaml'}: tenants[0].services[1]: unknown service id 'x'"
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert cli.main(["check-config", "--config", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err.splitlines() == [f"{path}: (file): cannot read: No such file or directory"]


def test_check_config_uses_env_default_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(config_dir(tmp_path), base_config())
    monkeypatch.setenv("DUALTRACK_CONFIG", str(path))
    assert cli.main(["check-config"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}: ok ")


# --- demo and empty secrets -----------------------------------------------------------------------


def test_weak_secrets_name_every_demo_or_empty_secret(tmp_path: Path) -> None:
    config = base_config()
    config["auth"]["alertmanager"]["bearer_tokens"] = [AM_TOKEN, "dev-alertmanager-token"]
    config["auth"]["alertmanager"]["basic_auth"][0]["password"] = "  "
    config["auth"]["pagerduty"] = {"allow_unsigned": True}
    config["api"]["tokens"] = ["REPLACE-ME-api-token"]
    config["status_page"] = {"tenant_token_secret": "dev-status-page-secret-change-me"}
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert [(w.path, w.problem) for w in weak_secrets(settings)] == [
        ("auth.alertmanager.bearer_tokens[1]", "a public demo value"),
        ("auth.alertmanager.basic_auth[0].password", "empty"),
        (
            "auth.pagerduty.allow_unsigned",
            "PagerDuty webhooks are accepted without a signature; anyone who can reach "
            "/webhooks/pagerduty can post incidents",
        ),
        ("api.tokens[0]", "a public demo value"),
        ("status_page.tenant_token_secret", "a public demo value"),
    ]


def test_own_secrets_and_a_signed_pagerduty_are_not_weak(tmp_path: Path) -> None:
    config = base_config()
    config["auth"]["pagerduty"] = {"signing_secrets": ["pd-secret"], "allow_unsigned": True}
    settings = load_settings(write_config(config_dir(tmp_path), config))
    assert weak_secrets(settings) == []


@pytest.mark.parametrize(
    ("bind", "code", "line"),
    [
        (
            "[::1]:9095",
            0,
            "warning: {path}: api.tokens[0].token: a public demo value: `serve` accepts it on loopback only",
        ),
        (
            "0.0.0.0:9095",
            1,
            "{path}: api.tokens[0].token: a public demo value: `serve` refuses it with "
            "server.bind 0.0.0.0:9095, "
            "which is not loopback",
        ),
    ],
)
def test_check_config_on_demo_secrets_warns_on_loopback_and_refuses_beyond(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bind: str, code: int, line: str
) -> None:
    config = base_config()
    config["server"]["bind"] = bind
    config["api"]["tokens"] = [{"name": "admin", "token": "dev-api-token", "role": "admin"}]
    path = write_config(config_dir(tmp_path), config)
    assert cli.main(["check-config", "--config", str(path)]) == code
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok ") if code == 0 else out == ""
    assert err.splitlines() == [line.format(path=path)]


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:9095", True),
        ("127.8.9.10:80", True),
        ("localhost:9095", True),
        ("[::1]:9095", True),
        ("unix:/run/dualtrack.sock", True),
        ("0.0.0.0:9095", False),
        ("[::]:9095", False),
        ("10.0.0.5:9095", False),
        ("status.example.com:9095", False),
        ("127.0.0.1", True),
    ],
)
def test_is_loopback(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_one_check_lists_every_problem_of_both_files(tmp_path):
    """Schema, durations, time zones, provider types and a provider's own keys, misspelled keys,
    and the catalog's problems: all in one run."""
    config = base_config()
    config["polcy"] = {}
    config["correlation"] = {"reopen_window": "soon"}
    config["providers"] = [
        {"name": "status", "type": "builtin", "audience": "all"},
        {"name": "chat", "type": "slack", "audience": "all"},
        {"name": "hook", "type": "webhook", "audience": "technical"},
        {
            "name": "mail",
            "type": "smtp",
            "timezone": "Mars/Base",
            "host": "mx",
            "sender": "a@b.c",
            "to": ["x@y.z"],
        },
    ]
    catalog = catalog_data()
    catalog["tenants"][0]["timezone"] = "Nowhere/City"
    path = write_config(tmp_path, config, catalog)
    keys = [line.split(": ")[1] for line in problems_of(path)]
    assert sorted(keys) == sorted(
        [
            "polcy",
            "correlation.reopen_window",
            "providers[1].type",
            "providers[2].url",
            "providers[3].timezone",
            "tenants[0].timezone",
        ]
    )


def test_catalog_references_are_checked_even_when_the_catalog_fails_validation(tmp_path):
    catalog = catalog_data()
    catalog["tenants"][0]["timezone"] = "Nowhere/City"
    catalog["tenants"][1]["services"] = ["checkout", "chekout"]
    path = write_config(tmp_path, base_config(), catalog)
    problems = problems_of(path)
    assert any("tenants[0].timezone: unknown time zone 'Nowhere/City'" in p for p in problems)
    assert any("tenants[1].services[1]: unknown service id 'chekout'" in p for p in problems)


def test_policy_provider_lists_name_configured_providers(tmp_path: Path) -> None:
    config = base_config()
    config["policy"] = {
        "internal_providers": ["status", "team"],
        "senior_authoring": {"min_level": 4, "providers": ["seniors"]},
    }
    path = write_config(config_dir(tmp_path), config)
    assert problems_of(path) == [
        f"{path}: policy.internal_providers[1]: no provider named 'team'",
        f"{path}: policy.senior_authoring.providers[0]: no provider named 'seniors'",
    ]


def test_check_config_renders_the_authoring_request_template(tmp_path: Path) -> None:
    from adapter.app import make_renderer
    from adapter.engine.samples import render_samples

    settings = load_settings(write_config(config_dir(tmp_path), base_config()))
    samples = [s for s in render_samples(settings, make_renderer(settings), datetime.now(UTC)) if s.text]
    requests = [s for s in samples if s.phase == "authoring_request"]
    assert requests and all(s.template == "technical/authoring_request.md.j2" for s in requests)
    assert "Desk: http://status.example.test/desk/incidents/INC-0000-0000" in requests[0].text
