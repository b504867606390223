"""The MCP gateway's figures: tool calls by server, tool and outcome, their latency, and each
upstream server's state, as Prometheus text (``render_metrics``) and as component figures
(``GatewayView.snapshot().loggers``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from truckllm_mcp.upstream import Upstream

__all__ = ["OUTCOMES", "CallMetrics", "prometheus_text"]

OUTCOMES = (
    "ok",
    "tool_error",
    "denied",
    "unknown_tool",
    "rate_limited",
    "unavailable",
    "upstream_error",
    "too_large",
    "blocked",
)
"""How a tool call ended: the ``outcome`` label."""

_LABEL = re.compile(r'[\\"\n]')


def _label(value: str) -> str:
    return _LABEL.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": "\\n"}[m.group()], value)


@dataclass
class CallMetrics:
    """Counters of tool calls (labels: server, tool, outcome) and their latency per server."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    timed: Counter[str] = field(default_factory=Counter)

    def observe(self, server: str, tool: str, outcome: str, seconds: float | None) -> None:
        """One tool call ended (``seconds`` is ``None`` when it never reached the server)."""
        self.calls[(server, tool, outcome)] += 1
        if seconds is not None:
            self.seconds[server] = self.seconds.get(server, 0.0) + seconds
            self.timed[server] += 1

    def figures(self, upstreams: Mapping[str, Upstream]) -> dict[str, float]:
        """Totals for the gateway snapshot (``truckllm_logger_mcp_<figure>``)."""
        by_outcome: Counter[str] = Counter()
        for (_, _, outcome), count in self.calls.items():
            by_outcome[outcome] += count
        figures = {f"tool_calls_{o}": float(by_outcome[o]) for o in OUTCOMES}
        figures["servers_up"] = float(sum(1 for u in upstreams.values() if u.state == "up"))
        figures["servers_down"] = float(sum(1 for u in upstreams.values() if u.state != "up"))
        figures["tools"] = float(sum(len(u.listing.tools) for u in upstreams.values()))
        return figures


def _lines(name: str, help_text: str, kind: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out.extend(f"{name}{labels} {value:g}" for labels, value in samples)
    return out


def prometheus_text(metrics: CallMetrics, upstreams: Mapping[str, Upstream]) -> bytes:
    """Every MCP figure in the Prometheus text format (metric names ``truckllm_mcp_*``)."""
    servers = sorted(upstreams)
    lines: list[str] = []
    lines += _lines(
        "truckllm_mcp_server_up",
        "1 when the upstream MCP server is connected and listed, else 0.",
        "gauge",
        ((f'{{server="{_label(s)}"}}', 1.0 if upstreams[s].state == "up" else 0.0) for s in servers),
    )
    lines += _lines(
        "truckllm_mcp_server_tools",
        "Tools the upstream MCP server offers through the gateway (0 while it is down).",
        "gauge",
        ((f'{{server="{_label(s)}"}}', float(len(upstreams[s].listing.tools))) for s in servers),
    )
    lines += _lines(
        "truckllm_mcp_server_failures_total",
        "Times the upstream MCP server was found down (refused, timed out, crashed, broke the protocol).",
        "counter",
        ((f'{{server="{_label(s)}"}}', float(upstreams[s].failures)) for s in servers),
    )
    lines += _lines(
        "truckllm_mcp_server_list_changed_total",
        "list_changed notifications or events from the upstream MCP server (each lists it again at once).",
        "counter",
        ((f'{{server="{_label(s)}"}}', float(upstreams[s].list_changes)) for s in servers),
    )
    lines += _lines(
        "truckllm_mcp_tool_calls_total",
        "Tool calls through the MCP gateway by server, tool and outcome.",
        "counter",
        (
            (f'{{server="{_label(s)}",tool="{_label(t)}",outcome="{o}"}}', float(n))
            for (s, t, o), n in sorted(metrics.calls.items())
        ),
    )
    lines += _lines(
        "truckllm_mcp_tool_call_seconds",
        "Time spent in upstream tool calls, per server (sum and count).",
        "summary",
        [
            *((f'_sum{{server="{_label(s)}"}}', metrics.seconds[s]) for s in sorted(metrics.seconds)),
            *((f'_count{{server="{_label(s)}"}}', float(metrics.timed[s])) for s in sorted(metrics.timed)),
        ],
    )
    return ("\n".join(lines) + "\n").encode()  # a summary's samples: ``<name>_sum{...}``
