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


def test_the_expected_manifests_are_there():
    kinds = sorted(r["kind"] for r in all_resources())
    expected = ["ConfigMap", "Deployment", "Namespace", "PodDisruptionBudget", "Secret", "Service"]
    assert kinds == expected
    assert {r["metadata"].get("namespace") for r in all_resources() if r["kind"] != "Namespace"} == {
        "dualtrack"
    }


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


def test_deployment_runs_two_replicas_of_dualtrack_serve():
    spec = deployment()["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= pod_labels().items()
    main_container = container()
    assert main_container["image"] == "dualtrack:latest"
    assert main_container["command"] + main_container["args"] == [
        "dualtrack",
        "serve",
        "--config",
        "/etc/dualtrack/dualtrack.yaml",
    ]
    assert [p["containerPort"] for p in main_container["ports"]] == [9095]


def test_probes_hit_ready_and_healthy_on_the_served_port():
    main_container = container()
    readiness = main_container["readinessProbe"]["httpGet"]
    liveness = main_container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/-/ready"
    assert liveness["path"] == "/-/healthy"
    assert port_number(readiness["port"]) == port_number(liveness["port"]) == 9095
    startup = main_container.get("startupProbe")
    if startup:
        assert startup["httpGet"]["path"] == "/-/healthy"
        assert port_number(startup["httpGet"]["port"]) == 9095


def test_pod_runs_as_uid_10001_non_root_with_a_read_only_root():
    pod = pod_spec()["securityContext"]
    own = container()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert own["runAsNonRoot"] is True
    assert pod["runAsUser"] == own["runAsUser"] == 10001
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]


def test_resources_have_requests_and_limits():
    resources = container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_config_comes_from_the_configmap_and_scratch_space_is_empty_dir():
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    config = volumes[mounts["/etc/dualtrack"]]
    assert config["configMap"]["name"] == resource("ConfigMap")["metadata"]["name"]
    assert {item["key"] for item in config["configMap"]["items"]} == {"dualtrack.yaml", "catalog.yaml"}
    assert "emptyDir" in volumes[mounts["/var/lib/dualtrack"]]
    # A read-only root needs somewhere for gunicorn's heartbeats and the metrics shards.
    assert "emptyDir" in volumes[mounts["/tmp"]]


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


def test_example_secret_holds_placeholders_only():
    example = resource("Secret", "dualtrack")
    assert all("REPLACE" in value.upper() for value in example["stringData"].values())
    assert "placeholder" in (K8S / "secret.example.yaml").read_text().lower()


def test_service_selects_the_pods_on_port_9095():
    service = resource("Service", "dualtrack")
    assert service["spec"]["selector"].items() <= pod_labels().items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9095
    assert port_number(port["targetPort"]) == 9095


def test_pod_disruption_budget_keeps_one_pod_and_selects_the_pods():
    pdb = resource("PodDisruptionBudget", "dualtrack")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels().items()


def test_configmap_config_passes_check_config(tmp_path, monkeypatch, capsys):
    data = resource("ConfigMap")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    assert "ok (1 providers" in check_config(tmp_path / "dualtrack.yaml", capsys)

    settings = load_settings(tmp_path / "dualtrack.yaml")
    assert settings.server.bind == "0.0.0.0:9095"
    assert (
        settings.storage.url == "postgresql+psycopg://dualtrack:k8s-postgres-password@postgres:5432/dualtrack"
    )
    assert settings.auth.alertmanager.bearer_tokens == ["k8s-am-token"]
    assert yaml.safe_load(data["dualtrack.yaml"])["storage"]["url"] == (
        "postgresql+psycopg://dualtrack:${POSTGRES_PASSWORD}@postgres:5432/dualtrack"
    )


def test_configmap_config_refuses_to_start_without_its_secrets(tmp_path, monkeypatch, capsys):
    for name, text in resource("ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    assert main(["check-config", "--config", str(tmp_path / "dualtrack.yaml")]) == 1
    err = capsys.readouterr().err
    assert all(f"environment variable {name} is not set" in err for name in SECRET_ENV)


# Compose -------------------------------------------------------------------------------------------


def test_compose_has_two_dualtrack_replicas_postgres_prometheus_and_alertmanager():
    services = compose()["services"]
    replicas = dualtrack_services()
    assert len(replicas) == 2
    for service in replicas.values():
        build = service["build"]
        assert (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == (
            ROOT / "Dockerfile"
        )
        assert service["command"] == ["serve", "--config", "/etc/dualtrack/dualtrack.yaml"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    published = [p.split(":")[-2] for s in replicas.values() for p in s["ports"]]
    assert len(set(published)) == 2


def test_every_compose_service_has_a_healthcheck():
    for name, service in compose()["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_postgres_keeps_its_data_in_a_named_volume_and_replicas_wait_for_it():
    data = compose()
    (volume,) = data["services"]["postgres"]["volumes"]
    name, target = volume.split(":")[:2]
    assert name in data["volumes"]
    assert target == "/var/lib/postgresql/data"
    for service in dualtrack_services().values():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


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

    settings = load_settings(config)
    assert settings.server.bind == "0.0.0.0:9095"
    assert settings.storage.url.startswith("postgresql+psycopg://dualtrack:")
    assert settings.storage.url.endswith("@postgres:5432/dualtrack")
    postgres_env = compose()["services"]["postgres"]["environment"]
    assert compose_default(postgres_env["POSTGRES_PASSWORD"]) == env["POSTGRES_PASSWORD"]
    assert postgres_env["POSTGRES_USER"] == postgres_env["POSTGRES_DB"] == "dualtrack"


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


def test_prometheus_has_a_firing_demo_rule_and_sends_to_alertmanager():
    prometheus = compose()["services"]["prometheus"]
    mounts = bind_mounts(prometheus)
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    (alerting,) = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]
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
    assert demo[0]["labels"] == {"service": "checkout", "severity": "critical"}
    assert all(r.get("alert") and r.get("expr") for r in rules)
    # The demo alert's service is in the catalog the stack mounts.
    catalog = yaml.safe_load((DEPLOY / "compose" / "catalog.yaml").read_text())
    assert "checkout" in {s["id"] for s in catalog["services"]}


# The container image's own config ------------------------------------------------------------------


# What check-config refuses in the container configs given public values, in order.
CONTAINER_SECRET_KEYS = [
    "auth.alertmanager.bearer_tokens[0]",
    "auth.events.routing_keys[0]",
    "api.tokens[0]",
    "status_page.tenant_token_secret",
]


def refused_keys(err: str) -> list[str]:
    """The key path of each `file: key.path: message` line."""
    return [line.split(": ")[1] for line in err.splitlines()]


def test_the_image_serves_config_docker_yaml():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY config/docker.yaml /etc/dualtrack/dualtrack.yaml" in dockerfile
    assert 'CMD ["serve", "--config", "/etc/dualtrack/dualtrack.yaml"]' in dockerfile


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
    assert load_settings(DOCKER_CONFIG).server.bind == "0.0.0.0:9095"


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
