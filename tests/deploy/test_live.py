"""The deploy artifacts against a running gateway: the chart's ConfigMap config served from a
folder laid out as the kubelet lays out a mounted ConfigMap; an update (the kubelet's symlink
swap) is hot-reloaded; every metric the Grafana dashboard queries is in the README's table and
in the gateway's /metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy.helmlite import Chart
from tests.deploy.tools import DEPLOY, ROOT

ADMIN = "Zk3q9PwX7mLr2VtB8nYc"
GATEWAY_KEY = "gk-abcdefghijklmnop"
DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "truckllm.json").read_text())
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class ConfigMapFolder:
    """A folder as the kubelet's atomic writer keeps a mounted ConfigMap: ``..<version>/`` holds
    the files, ``..data`` links to the current version, each key links through ``..data``; an
    update writes a new version and swaps ``..data`` with one rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.version = 0

    def write(self, files: dict[str, str]) -> None:
        """Publish a new version of the ConfigMap's data, as the kubelet does."""
        self.version += 1
        old = os.readlink(self.folder / "..data") if (self.folder / "..data").exists() else None
        version = self.folder / f"..2026_12_07_00_00_0{self.version}.000000001"
        version.mkdir(parents=True)
        for name, text in files.items():
            (version / name).write_text(text)
        os.symlink(version.name, self.folder / "..data_tmp")
        os.replace(self.folder / "..data_tmp", self.folder / "..data")
        for name in files:
            if not (self.folder / name).is_symlink():
                os.symlink(f"..data/{name}", self.folder / name)
        if old is not None:
            for child in (self.folder / old).iterdir():
                child.unlink()
            (self.folder / old).rmdir()


def chart_config(port: int, extra_models: dict[str, Any] | None = None) -> str:
    """The chart's default ConfigMap config, on a loopback port, with Prometheus metrics."""
    rendered = Chart(DEPLOY / "helm" / "truckllm").render()["configmap.yaml"]
    config = yaml.safe_load(yaml.safe_load(rendered)["data"]["truckllm.yaml"])
    config["server"]["listen"] = f"127.0.0.1:{port}"
    config["server"]["graceful_timeout"] = "5s"
    assert "prometheus" in config["loggers"]
    config["models"].update(extra_models or {})
    return str(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ConfigMapFolder]]:
    tmp = tmp_path_factory.mktemp("live")
    port = free_port()
    mounted = ConfigMapFolder(tmp / "etc-truckllm")
    mounted.write({"truckllm.yaml": chart_config(port)})
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(TRUCKLLM_ADMIN_TOKEN=ADMIN, TRUCKLLM_GATEWAY_KEY=GATEWAY_KEY)
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(mounted.folder / "truckllm.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/admin/v1/ready", timeout=1).is_success:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    try:
        yield url, mounted
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def chat(url: str, model: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_the_probes_answer_without_the_admin_token(gateway: tuple[str, ConfigMapFolder]) -> None:
    url, _ = gateway
    assert httpx.get(url + "/admin/v1/ready").status_code == 200
    assert httpx.get(url + "/admin/v1/health").status_code == 200
    assert httpx.get(url + "/metrics").status_code in (401, 403)


def test_a_configmap_update_is_hot_reloaded(gateway: tuple[str, ConfigMapFolder]) -> None:
    url, mounted = gateway
    assert chat(url, "demo").status_code == 200
    assert chat(url, "fresh").status_code == 404
    port = int(url.rsplit(":", 1)[1])
    mounted.write(
        {
            "truckllm.yaml": chart_config(
                port, {"fresh": {"deployments": [{"provider": "demo", "model": "new"}]}}
            )
        }
    )
    deadline = time.monotonic() + 20
    while chat(url, "fresh").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert chat(url, "fresh").status_code == 200
    assert chat(url, "demo").status_code == 200


def queried_metrics() -> set[str]:
    """Every truckllm_* series name the dashboard's queries and variables name."""
    text = json.dumps(DASHBOARD)
    return set(re.findall(r"\btruckllm_[a-z0-9_]+", text))


def base_name(series: str, histograms: set[str]) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in histograms:
            return series.removesuffix(suffix)
    return series


def readme_metrics() -> dict[str, set[str]]:
    """The README's metrics table: each metric's name and label names."""
    readme = (ROOT / "README.md").read_text()
    table: dict[str, set[str]] = {}
    for line in readme.splitlines():
        if not line.startswith("| `truckllm_"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        labels = {m for m in re.findall(r"(?:^|,\s*)([a-z_]+)", cells[2].split(" (")[0].split(":")[0])}
        for name in re.findall(r"`(truckllm_[a-z0-9_<>]+)`", cells[0]):
            table[name] = labels
    return table


def dashboard_problems(dashboard: dict[str, Any], table: dict[str, set[str]]) -> list[str]:
    """Queries naming a metric the README does not list, or a label that metric does not have."""
    found: list[str] = []
    histograms = {n for n in table if n.endswith("_seconds")}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            names = {base_name(s, histograms) for s in re.findall(r"\btruckllm_[a-z0-9_]+", expr)}
            if not names or not names <= set(table):
                found.append(f"unknown metric {sorted(names - set(table))} in {expr}")
                continue
            labels = set.union(*(table[n] for n in names)) | {"instance", "job", "le"}
            used = {x.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for x in group.split(",")}
            used |= set(re.findall(r"([a-z_]+)\s*[!=]~?\s*\"", expr))
            if not used <= labels:
                found.append(f"label {sorted(used - labels)} not on {sorted(names)} in {expr}")
    return found


def test_every_dashboard_metric_is_in_the_readme_with_the_labels_it_uses() -> None:
    assert len(queried_metrics()) >= 20
    assert dashboard_problems(DASHBOARD, readme_metrics()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("truckllm_requests_total{", "truckllm_request_total{", "unknown metric"),
        ("truckllm_ttft_seconds_bucket", "truckllm_ttft_seconds_buckets", "unknown metric"),
        ("sum by (status_class)", "sum by (status)", "label ['status']"),
        ('cache=\\"cached\\"', 'cached=\\"cached\\"', "label ['cached']"),
    ],
)
def test_the_dashboard_check_catches_wrong_names(old: str, new: str, expected: str) -> None:
    text = json.dumps(DASHBOARD)
    assert old in text
    found = dashboard_problems(json.loads(text.replace(old, new, 1)), readme_metrics())
    assert any(expected in p for p in found), found


def test_every_dashboard_metric_is_served_by_a_running_gateway(gateway: tuple[str, ConfigMapFolder]) -> None:
    url, _ = gateway
    assert chat(url, "demo").status_code == 200
    text = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
    typed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    histograms = {n for n, t in typed.items() if t == "histogram"}
    missing = {s for s in queried_metrics() if base_name(s, histograms) not in typed}
    assert not missing, missing


def test_the_dashboard_is_well_formed() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and DASHBOARD["uid"] == "truckllm-gateway"
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(
            t["expr"].count("(") == t["expr"].count(")") for t in panel["targets"]
        )
    cells = {
        (p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy)
        for p in DASHBOARD["panels"]
        for dx in range(p["gridPos"]["w"])
        for dy in range(p["gridPos"]["h"])
    }
    assert len(cells) == sum(p["gridPos"]["w"] * p["gridPos"]["h"] for p in DASHBOARD["panels"]), (
        "panels overlap"
    )
    assert {v["name"] for v in DASHBOARD["templating"]["list"]} == {"datasource", "instance", "alias"}
