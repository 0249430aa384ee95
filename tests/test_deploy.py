"""Deployment files: Kubernetes manifests pass schema validation and the compose stack is wired up."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from adapter.cli import main
from adapter.config import DEMO_SECRETS, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
# The oldest Kubernetes still commonly run; kubernetes-validate ships schemas from 1.25 on.
K8S_VERSION = "1.30.0"

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
COMPOSE_DEFAULT = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}$")
# `${NAME:?message}`: compose stops with the message when NAME is not set.
COMPOSE_REQUIRED = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
DOCKER_CONFIG = ROOT / "config" / "docker.yaml"
# The secrets the container image's config needs (see the Dockerfile).
DOCKER_SECRETS = ("AM_TOKEN", "DUALTRACK_API_TOKEN", "STATUS_PAGE_SECRET", "EVENTS_ROUTING_KEY")
SECRET_ENV = {
    "AM_TOKEN": "k8s-am-token",
    "DUALTRACK_API_TOKEN": "k8s-api-token",
    "STATUS_PAGE_SECRET": "k8s-status-page-secret",
    "EVENTS_ROUTING_KEY": "k8sroutingkey0123456789abcdef012",
    "POSTGRES_PASSWORD": "k8s-postgres-password",
}


def manifest_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_resources() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in documents(path)]


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in all_resources() if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return resource("Deployment", "dualtrack")


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = deployment()["spec"]["template"]["metadata"]["labels"]
    return labels


def port_number(port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container()["ports"] if p["name"] == port]
    return int(match)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_default(value: str) -> str:
    """`${NAME:-default}` -> default (what compose uses when the variable is not set)."""
    match = COMPOSE_DEFAULT.match(value)
    return match.group(2) if match else value


def compose_env(environment: dict[str, str]) -> dict[str, str]:
    """What the environment holds in a container: compose's default, or ours for a required one."""
    return {
        name: SECRET_ENV[name] if COMPOSE_REQUIRED.match(value) else compose_default(value)
        for name, value in environment.items()
    }


def dualtrack_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("dualtrack") or "build" in service
    }


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (relative to deploy/)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == "", err
    return out


# Kubernetes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path):
    docs = documents(path)
    assert docs, f"{path.name} holds no resource"
    for doc in docs:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == "1.30"


def test_strict_validation_rejects_a_misspelt_field():
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"port": 9095}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_secrets_come_from_the_dualtrack_secret_and_cover_every_config_variable():
    env = {e["name"]: e for e in container()["env"]}
    from_secret = {
        name: e["valueFrom"]["secretKeyRef"]
        for name, e in env.items()
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(SECRET_ENV) <= from_secret.keys()
    assert {ref["name"] for ref in from_secret.values()} == {"dualtrack"}
    # Every key the Deployment reads is in the example Secret, so copying it gives a complete one.
    example = resource("Secret", "dualtrack")
    assert {ref["key"] for ref in from_secret.values()} == set(example["stringData"])
    # Every ${VAR} the config needs (no default) is set by the Deployment.
    text = resource("ConfigMap")["data"]["dualtrack.yaml"]
    required = {m.group(1) for m in ENV_REF.finditer(text) if ":-" not in m.group(0)}
    assert required
    assert required <= env.keys()


def test_configmap_config_passes_check_config(tmp_path, monkeypatch, capsys):
    data = resource("ConfigMap")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    assert "ok (1 providers" in check_config(tmp_path / "dualtrack.yaml", capsys)

    # The secrets reach the settings from the environment.
    settings = load_settings(tmp_path / "dualtrack.yaml")
    assert settings.auth.alertmanager.bearer_tokens == ["k8s-am-token"]
    assert "k8s-postgres-password" in settings.storage.url


def test_configmap_config_refuses_to_start_without_its_secrets(tmp_path, monkeypatch, capsys):
    for name, text in resource("ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    assert main(["check-config", "--config", str(tmp_path / "dualtrack.yaml")]) == 1
    err = capsys.readouterr().err
    assert all(f"environment variable {name} is not set" in err for name in SECRET_ENV)


# Compose -------------------------------------------------------------------------------------------


def test_compose_mounts_exist():
    for name, service in compose()["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_compose_dualtrack_config_passes_check_config(monkeypatch, capsys):
    replicas = list(dualtrack_services().values())
    assert replicas[0]["environment"] == replicas[1]["environment"]
    env = compose_env(replicas[0]["environment"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mounts = bind_mounts(replicas[0])
    config = mounts["/etc/dualtrack/dualtrack.yaml"]
    assert mounts["/etc/dualtrack/catalog.yaml"] == config.parent / "catalog.yaml"
    check_config(config, capsys)

    # dualtrack logs in to the stack's PostgreSQL as the user, database and password it creates.
    storage = make_url(load_settings(config).storage.url)
    postgres_env = compose_env(compose()["services"]["postgres"]["environment"])
    assert storage.password == postgres_env["POSTGRES_PASSWORD"]
    assert (
        storage.username == postgres_env["POSTGRES_USER"] and storage.database == postgres_env["POSTGRES_DB"]
    )


def test_compose_secrets_have_no_public_default():
    """dualtrack listens on 0.0.0.0 in its container: compose must stop rather than default them."""
    for service in dualtrack_services().values():
        environment = service["environment"]
        required = {name for name, value in environment.items() if COMPOSE_REQUIRED.match(value)}
        assert required == set(SECRET_ENV) - {"POSTGRES_PASSWORD"}
        for name, value in environment.items():
            assert compose_default(value) not in DEMO_SECRETS, name


def alertmanager_config() -> dict[str, Any]:
    path = bind_mounts(compose()["services"]["alertmanager"])["/etc/alertmanager/alertmanager.yml"]
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_alertmanager_posts_to_dualtrack_with_a_bearer_token(monkeypatch):
    config = alertmanager_config()
    receivers = {r["name"]: r for r in config["receivers"]}
    webhooks = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert webhooks
    replicas = dualtrack_services()
    names = set(replicas)
    for service in replicas.values():
        names.update(service.get("networks", {}).get("default", {}).get("aliases", []))
    for hook in webhooks:
        url = urlsplit(hook["url"])
        assert url.hostname in names
        assert url.port == 9095
        assert url.path == "/webhooks/alertmanager"
        assert hook["send_resolved"] is True
        assert not url.query and not url.password, "no credentials in the webhook URL"
        auth = hook["http_config"]["authorization"]
        assert auth["type"] == "Bearer"
        assert auth.get("credentials_file") or auth.get("credentials")
    # Alertmanager sends the token dualtrack accepts (both from AM_TOKEN, which must be set).
    alertmanager = compose()["services"]["alertmanager"]
    for environment in (alertmanager["environment"], next(iter(replicas.values()))["environment"]):
        required = COMPOSE_REQUIRED.match(environment["AM_TOKEN"])
        assert required and required.group(1) == "AM_TOKEN"
    credentials_file = webhooks[0]["http_config"]["authorization"].get("credentials_file")
    if credentials_file:
        startup = " ".join(alertmanager["entrypoint"] + alertmanager["command"])
        assert f"> {credentials_file}" in startup
        assert "$$AM_TOKEN" in startup


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool (prometheus-alertmanager) is not installed"
)
def test_amtool_accepts_the_alertmanager_config():
    path = bind_mounts(compose()["services"]["alertmanager"])["/etc/alertmanager/alertmanager.yml"]
    result = subprocess.run(
        ["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_replicas_and_fires_a_demo_alert_for_a_catalog_service():
    prometheus = compose()["services"]["prometheus"]
    mounts = bind_mounts(prometheus)
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    scraped = {t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]}
    assert {f"{name}:9095" for name in dualtrack_services()} <= scraped

    rules_dir = mounts["/etc/prometheus/rules"]
    (pattern,) = config["rule_files"]
    assert pattern.startswith("/etc/prometheus/rules/")
    rule_files = sorted(rules_dir.glob(pattern.removeprefix("/etc/prometheus/rules/")))
    assert rule_files
    rules = [
        rule
        for path in rule_files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    demo = [r for r in rules if r["expr"].strip() == "vector(1) > 0"]
    assert demo, "no always-firing demo rule"
    # The demo alert's service is in the catalog the stack mounts.
    catalog = yaml.safe_load((DEPLOY / "compose" / "catalog.yaml").read_text())
    assert demo[0]["labels"]["service"] in {s["id"] for s in catalog["services"]}


# The container image's own config ------------------------------------------------------------------


# What check-config refuses in the container configs given public values, in order.
CONTAINER_SECRET_KEYS = [
    "auth.alertmanager.bearer_tokens[0]",
    "auth.events.routing_keys[0]",
    "api.tokens[0].token",
    "status_page.tenant_token_secret",
]


def refused_keys(err: str) -> list[str]:
    """The key path of each `file: key.path: message` line."""
    return [line.split(": ")[1] for line in err.splitlines()]


def test_docker_config_needs_every_secret_from_the_environment(monkeypatch, capsys):
    for name in DOCKER_SECRETS:
        monkeypatch.delenv(name, raising=False)
    assert main(["check-config", "--config", str(DOCKER_CONFIG)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert sorted(re.findall(r"environment variable (\w+) is not set", err)) == sorted(DOCKER_SECRETS)


def test_docker_config_with_its_secrets_passes_check_config(monkeypatch, capsys):
    for name in DOCKER_SECRETS:
        monkeypatch.setenv(name, SECRET_ENV[name])
    assert "ok (1 providers" in check_config(DOCKER_CONFIG, capsys)


def test_docker_config_refuses_the_public_demo_values(monkeypatch, capsys):
    demo = {
        "AM_TOKEN": "dev-alertmanager-token",
        "DUALTRACK_API_TOKEN": "dev-api-token",
        "STATUS_PAGE_SECRET": "dev-status-page-secret-change-me",
        "EVENTS_ROUTING_KEY": "devroutingkey0123456789abcdef012",
    }
    for name, value in demo.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", "--config", str(DOCKER_CONFIG)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert refused_keys(err) == CONTAINER_SECRET_KEYS
    assert all(line.endswith("server.bind 0.0.0.0:9095, which is not loopback") for line in err.splitlines())


def test_kubernetes_example_secret_is_refused_as_it_is(tmp_path, monkeypatch, capsys):
    """Applying secret.example.yaml unchanged must not give a working deployment."""
    for name, text in resource("ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    example = resource("Secret", "dualtrack")["stringData"]
    for variable in container()["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            monkeypatch.setenv(variable["name"], example[ref["key"]])
    assert main(["check-config", "--config", str(tmp_path / "dualtrack.yaml")]) == 1
    assert refused_keys(capsys.readouterr().err) == CONTAINER_SECRET_KEYS
