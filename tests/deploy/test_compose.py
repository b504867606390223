"""The Compose deployment: gateway replicas behind nginx, Redis, PostgreSQL for the request log,
Prometheus scraping every replica with the admin token, Grafana with the dashboard; the
gateway's config validates; nginx and Prometheus accept their files (where installed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy.tools import DEPLOY, ROOT, seconds, tool, validate_config

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
GATEWAY = SERVICES["gateway"]
CONFIG_PATH = GATEWAY["environment"]["TRUCKLLM_CONFIG"]
DUMMY = {
    "TRUCKLLM_ADMIN_TOKEN": "Zk3q9PwX7mLr2VtB8nYc",
    "TRUCKLLM_GATEWAY_KEY": "gk-abcdefghijklmnop",
    "REDIS_PASSWORD": "redis-pw",
    "OPENAI_API_KEY": "unset",
    "TRUCKLLM_LOG_DB": "postgresql://truckllm:pw@postgres:5432/truckllm",
}


def host_path(container_path: str, service: dict[str, Any]) -> Path:
    """The file on this machine that a service sees at ``container_path`` (through its bind mounts)."""
    volumes: list[str] = service.get("volumes", [])
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if source.startswith(".") and (
            container_path == target or container_path.startswith(target.rstrip("/") + "/")
        ):
            return (COMPOSE_DIR / source / container_path[len(target) :].lstrip("/")).resolve()
    raise AssertionError(f"{container_path} is not bind-mounted")


def gateway_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(host_path(CONFIG_PATH, GATEWAY).read_text())
    return loaded


def test_every_service_is_there_and_the_gateway_is_built_from_the_repository() -> None:
    assert {"gateway", "lb", "redis", "postgres", "prometheus", "grafana"} <= set(SERVICES)
    assert (COMPOSE_DIR / GATEWAY["build"]["context"]).resolve() == ROOT
    assert GATEWAY["build"]["dockerfile"] == "deploy/Dockerfile"


def test_several_gateway_replicas_by_default() -> None:
    replicas = GATEWAY["deploy"]["replicas"]
    match = re.fullmatch(r"\$\{GATEWAY_REPLICAS:-(\d+)\}", str(replicas))
    assert match is not None and int(match.group(1)) >= 2


def test_the_gateway_gets_longer_to_stop_than_it_drains() -> None:
    graceful = seconds(gateway_config()["server"]["graceful_timeout"])
    assert GATEWAY["stop_signal"] == "SIGTERM"
    assert seconds(GATEWAY["stop_grace_period"]) > graceful


def test_the_config_is_a_mounted_folder_so_edits_are_hot_reloaded() -> None:
    folder = CONFIG_PATH.rsplit("/", 1)[0]
    assert any(v.split(":")[1] == folder for v in GATEWAY["volumes"]), (
        "mount the folder, not the file (a bind-mounted file pins the old inode)"
    )


def test_the_gateway_config_validates_and_uses_redis_postgres_and_prometheus() -> None:
    result = validate_config(host_path(CONFIG_PATH, GATEWAY), DUMMY)
    assert result.returncode == 0, result.stdout + result.stderr
    config = gateway_config()
    assert config["store"]["type"] == "redis" and config["store"]["addr"] == "redis:6379"
    loggers = {next(iter(x)) if isinstance(x, dict) else x: x for x in config["loggers"]}
    assert "prometheus" in loggers and loggers["sql"] == {"sql": {"url": "${TRUCKLLM_LOG_DB}"}}
    assert "@postgres:5432/" in GATEWAY["environment"]["TRUCKLLM_LOG_DB"]
    assert config["server"]["listen"].endswith(":8080")


SECRETISH = re.compile(r"TOKEN|KEY|PASSWORD|SECRET|AUTH|^TRUCKLLM_LOG_DB$")
REQUIRED = re.compile(r"TOKEN|PASSWORD|AUTH|GATEWAY_KEY")


def test_no_secret_is_written_in_the_compose_files() -> None:
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRETISH.search(variable):
                assert isinstance(value, str) and "${" in value, f"{name}.{variable} holds a literal secret"
            if REQUIRED.search(variable):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (
                    f"{name}.{variable}: ${{VAR:?why}} (required)"
                )
    example = (COMPOSE_DIR / "env.example").read_text()
    assert all(
        line.endswith("=") or "REPLICAS" in line or "PORT" in line
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert (COMPOSE_DIR / ".gitignore").read_text().split() == [".env"]


def test_nginx_balances_over_every_replica_and_streams_unbuffered() -> None:
    conf = (COMPOSE_DIR / "nginx.conf").read_text()
    assert re.search(r"upstream truckllm \{\s*server gateway:8080\b", conf)
    assert "proxy_pass http://truckllm;" in conf and "proxy_buffering off;" in conf
    assert "listen 8080;" in conf and SERVICES["lb"]["ports"] == ["${TRUCKLLM_PORT:-8080}:8080"]
    assert host_path("/etc/nginx/nginx.conf", SERVICES["lb"]) == COMPOSE_DIR / "nginx.conf"


def test_nginx_accepts_its_config(tmp_path: Path) -> None:
    nginx = tool("nginx")
    conf = (COMPOSE_DIR / "nginx.conf").read_text()
    conf = conf.replace("server gateway:8080", "server 127.0.0.1:8080").replace(
        "/tmp/nginx.pid", str(tmp_path / "nginx.pid")
    )
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def prometheus_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    return loaded


def test_prometheus_scrapes_every_replica_with_the_admin_token() -> None:
    assert (
        host_path("/etc/prometheus/prometheus.yml", SERVICES["prometheus"]) == COMPOSE_DIR / "prometheus.yml"
    )
    (job,) = prometheus_config()["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [
        {"names": ["gateway"], "type": "A", "port": 8080, "refresh_interval": "15s"}
    ]
    credentials = job["authorization"]["credentials_file"]
    secret = credentials.removeprefix("/run/secrets/")
    assert secret in SERVICES["prometheus"]["secrets"]
    assert COMPOSE["secrets"][secret] == {"environment": "TRUCKLLM_ADMIN_TOKEN"}


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = tool("promtool")
    (tmp_path / "token").write_text("x")
    text = (
        (COMPOSE_DIR / "prometheus.yml")
        .read_text()
        .replace("/run/secrets/admin_token", str(tmp_path / "token"))
    )
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    grafana = SERVICES["grafana"]
    provisioning = host_path("/etc/grafana/provisioning", grafana)
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "truckllm.yaml").read_text())["providers"]
    assert (
        host_path(provider["options"]["path"] + "/truckllm.json", grafana)
        == DEPLOY / "grafana" / "truckllm.json"
    )
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("name", ["redis", "postgres"])
def test_the_gateway_waits_for_healthy_state_services(name: str) -> None:
    assert GATEWAY["depends_on"][name] == {"condition": "service_healthy"}
    assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"


def test_yamllint_finds_nothing_in_deploy() -> None:
    result = subprocess.run(
        [tool("yamllint"), "-c", str(DEPLOY / ".yamllint.yaml"), "--strict", str(DEPLOY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
