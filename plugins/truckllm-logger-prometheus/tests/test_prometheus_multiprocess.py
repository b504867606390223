"""Multiprocess mode: two worker processes write to one PROMETHEUS_MULTIPROC_DIR; a scrape sums them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from truckllm_logger_prometheus import PrometheusLogger

WORKER = """
import asyncio, sys
from truckllm import hookimpl
from truckllm._internal.gateway import Gateway
from truckllm.types import AttemptRecord, ProviderSpec, RequestRecord, Usage
from truckllm_logger_prometheus import PrometheusLogger

count, in_flight, dropped, stop = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "stop"


class Providers:
    @hookimpl
    def register_providers(self, register):
        register(ProviderSpec(type="openai", default_base_url="http://127.0.0.1:9"))


CONFIG = "providers: {openai: {type: openai, keys: [{name: k, value: sk-1}]}}\\n" + (
    "models: {gpt-4o: {deployments: [{provider: openai, model: gpt-4o}]}}\\n"
    "orgs: {acme: {}}\\nteams: {eng: {org: acme}}\\n"
)
gateway = Gateway(config_text=CONFIG, env={}, extra_plugins=(Providers(),), autoload=False)
gateway.in_flight = in_flight
gateway.background.dropped = dropped
gateway.background.plugin_errors[("logger-x", "emit_log")] = 1
app = gateway.view


async def main() -> None:
    metrics = PrometheusLogger()
    assert metrics.multiprocess_dir
    await metrics.startup(app)
    for n in range(count):
        metrics.emit_log(
            RequestRecord(
                request_id=str(n), started_at=0.0, endpoint="chat", dialect="openai", alias="gpt-4o",
                gateway_key=None, stream=False, status=200, latency_ms=100.0, upstream_ms=90.0,
                provider="openai", usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
                cost_usd=0.5, team="eng" if n % 2 == 0 else None, org="acme" if n % 2 == 0 else None,
                attempts=(
                    AttemptRecord(provider="openai", provider_key="k", deployment="gpt-4o#0",
                                  model="gpt-4o", status=200, latency_ms=90.0, alias="gpt-4o"),
                ),
            )
        )
    metrics.render_metrics()  # a scrape served by this worker publishes its live state too
    rebuilt = PrometheusLogger()  # a reload rebuilt the logger: it must not count twice
    await rebuilt.startup(app)
    await metrics.shutdown(app)  # not draining: the replaced one keeps the live gauges
    rebuilt.render_metrics()
    if stop:
        gateway.draining = True
        await rebuilt.shutdown(app)


asyncio.run(main())
"""


def test_two_processes_are_summed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, "3", "2", "5", "stop"], env=env),
        subprocess.Popen([sys.executable, "-c", WORKER, "4", "7", "6", "run"], env=env),
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    assert any(tmp_path.iterdir())

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = PrometheusLogger()
    assert metrics.multiprocess_dir == str(tmp_path)
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render_metrics().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    route = {"alias": "gpt-4o", "provider": "openai"}
    requests = {**route, "status_class": "2xx", "dialect": "openai", "stream": "false"}
    assert value("truckllm_requests_total", **requests) == 7
    assert value("truckllm_tokens_total", kind="prompt", **route) == 70
    assert value("truckllm_tokens_total", kind="completion", **route) == 35
    assert value("truckllm_cost_usd_total", **route) == pytest.approx(3.5)
    assert value("truckllm_attempts_total", outcome="success", **route) == 7
    # team and org counters are summed too: records 0 and 2 of each worker are eng, the others none
    assert value("truckllm_team_requests_total", team="eng") == 4
    assert value("truckllm_team_requests_total", team="none") == 3
    assert value("truckllm_team_cost_usd_total", team="eng") == pytest.approx(2.0)
    assert value("truckllm_org_requests_total", org="acme") == 4
    assert value("truckllm_org_cost_usd_total", org="none") == pytest.approx(1.5)
    assert value("truckllm_request_duration_seconds_count", **route) == 7
    assert value("truckllm_request_duration_seconds_sum", **route) == pytest.approx(0.7)
    assert value("truckllm_overhead_seconds_count", **route) == 7
    # counters read from each worker's gateway are summed, dead workers' counts included
    assert value("truckllm_background_dropped_total") == 11
    assert value("truckllm_plugin_errors_total", plugin="logger-x", hook="emit_log") == 2
    # live gauges: the worker that stopped took its in-flight figure with it, the other kept its
    # own through a logger rebuild
    assert value("truckllm_in_flight") == 7
    assert value("truckllm_config_version") == 1
