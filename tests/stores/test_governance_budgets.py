"""Issue 19's "done when": concurrent requests spread over two real gateway processes on one Redis,
against overlapping budgets of a gateway key, its team, its organisation, an end user and a tag,
never let any level spend more than its budget plus one request's worst-case reservation.

Hypothesis draws the budgets and every request's key, end user, tag and cost. The gateway is
``truckllm serve`` with ``workers: 2`` (two processes) and the redis store (a key prefix of this
test's own, deleted after), started once: each example writes a config whose keys, teams, org,
users and tag have names of their own (fresh budgets in the store), and waits until both workers
serve it (they re-read a changed config file every second). The mock provider answers each request with a known number of
completion tokens (the words of its prompt, at most ``max_tokens``), priced at $1 a completion
token: a request costs $1-$10 and reserves $10 (``max_tokens`` at that price) at each level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.serving import free_port, redis_prefix, serving

pytestmark = pytest.mark.redis

ADMIN = {"authorization": "Bearer adm"}
MAX_TOKENS = 10
WORST = float(MAX_TOKENS)  # USD: every completion token at $1
REQUESTS = 40
KEYS = ("a", "b", "c")  # a and b in team t1, c in team t2; both teams in org o (names + the example's suffix)
USERS = (None, "ann", "bob")
TAGS = (None, "g")

CONFIG = """
server: {{listen: "127.0.0.1:{port}", workers: 2}}
admin: {{token: adm}}
store: {{type: redis, addr: "127.0.0.1:6379", prefix: "{prefix}", flush_interval: 100ms, timeout: 2s}}
providers:
  demo: {{type: mock}}
models:
  demo: {{deployments: [{{provider: demo, model: echo, price: {{input: 0, output: 1000000}}}}]}}
orgs:
  o{n}: {{budgets: [{{usd: {org}, period: day}}]}}
teams:
  t1{n}: {{org: o{n}, budgets: [{{usd: {team}, period: day}}]}}
  t2{n}: {{org: o{n}}}
tags:
  budgets: {{g{n}: {{usd: {tag}, period: day}}}}
keys:
  - {{name: a{n}, value: key-a{n}-0123456789, team: t1{n}, budget: {{usd: {key}, period: day}},
      user_budget: {{usd: {user}, period: day}}}}
  - {{name: b{n}, value: key-b{n}-0123456789, team: t1{n}, user_budget: {{usd: {user}, period: day}}}}
  - {{name: c{n}, value: key-c{n}-0123456789, team: t2{n}, user_budget: {{usd: {user}, period: day}}}}
"""


class Cluster:
    """The running ``truckllm serve``, its config file and the number of the current example."""

    def __init__(self, url: str, path: Path, port: int, prefix: str) -> None:
        self.url = url
        self.path = path
        self.port = port
        self.prefix = prefix
        self.example = 0

    def configure(self, **budgets: int) -> str:
        """Write the next example's config; return its suffix once both workers serve it."""
        self.example += 1
        n = f"x{self.example}"
        self.path.write_text(CONFIG.format(port=self.port, prefix=self.prefix, n=n, **budgets))
        self.wait_for(n)
        return n

    def wait_for(self, n: str) -> None:
        """Until both workers know the key ``a<n>`` (a request for no model: 404, nothing spent)."""
        seen: set[str] = set()
        deadline = time.monotonic() + 90
        while seen != {"0", "1"}:
            assert time.monotonic() < deadline, f"workers serving the new config: {seen}"
            try:
                with httpx.Client() as client:  # a connection each: either worker may answer
                    answer = client.post(
                        self.url + "/v1/chat/completions",
                        headers={"authorization": f"Bearer key-a{n}-0123456789"},
                        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
                    )
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if answer.status_code == 404:
                seen.add(answer.headers.get("x-truckllm-worker", ""))
            else:
                time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = Path(tmp_path_factory.mktemp("governance"))
    port = free_port()
    with redis_prefix() as prefix:
        text = CONFIG.format(port=port, prefix=prefix, n="x0", org=1, team=1, tag=1, key=1, user=1)
        with serving(tmp, text, port) as url:
            running = Cluster(url, tmp / "serve.yaml", port, prefix)
            running.wait_for("x0")
            yield running


budgets = st.integers(min_value=10, max_value=80)
request = st.tuples(
    st.sampled_from(KEYS),
    st.sampled_from(USERS),
    st.sampled_from(TAGS),
    st.integers(min_value=0, max_value=MAX_TOKENS - 1),  # words of the prompt: the cost is words + 1
)


async def _send(url: str, key: str, user: str | None, tag: str | None, words: int) -> tuple[int, str]:
    body: dict[str, Any] = {
        "model": "demo",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": " ".join(["w"] * words)}],
    }
    if user is not None:
        body["user"] = user
    headers = {"authorization": f"Bearer key-{key}-0123456789", "x-mock-fault": "latency=0.3"}
    if tag is not None:
        headers["x-truckllm-tags"] = tag
    async with (
        aiohttp.ClientSession() as session,
        session.post(  # a connection each: either worker
            url + "/v1/chat/completions", headers=headers, json=body
        ) as response,
    ):
        await response.read()
        return response.status, response.headers.get("x-truckllm-worker", "")


async def _burst(url: str, plan: list[tuple[str, str | None, str | None, int]]) -> list[tuple[int, str]]:
    return await asyncio.gather(*(_send(url, *one) for one in plan))


def _usage(url: str, group_by: str) -> dict[tuple[str, ...], float]:
    answer = httpx.get(url + "/admin/v1/usage", params={"group_by": group_by}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    names = group_by.split(",")
    return {tuple(row["group"][n] for n in names): row["cost_usd"] for row in answer.json()["rows"]}


def _settled(url: str, n: str, expected: float) -> dict[tuple[str, ...], float]:
    """The spend per key once both workers flushed this example's usage (what the served
    requests cost)."""
    deadline = time.monotonic() + 20
    while True:
        by_key = _usage(url, "key")
        spent = sum(cost for (name,), cost in by_key.items() if name.endswith(n))
        if spent == pytest.approx(expected) or time.monotonic() > deadline:
            assert spent == pytest.approx(expected)
            return by_key
        time.sleep(0.05)


@pytest.mark.timeout(300)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=budgets,
    team=budgets,
    org=budgets,
    user=budgets,
    tag=budgets,
    plan=st.lists(request, min_size=REQUESTS, max_size=REQUESTS),
)
def test_no_level_overspends_across_two_processes(
    cluster: Cluster,
    key: int,
    team: int,
    org: int,
    user: int,
    tag: int,
    plan: list[tuple[str, str | None, str | None, int]],
) -> None:
    n = cluster.configure(key=key, team=team, org=org, user=user, tag=tag)
    named = [(k + n, u, t + n if t else None, words) for k, u, t, words in plan]
    answers = asyncio.run(_burst(cluster.url, named))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert {worker for _, worker in answers} == {"0", "1"}  # both processes served
    served = sum(1 for s in statuses if s == 200)
    expected = sum(words + 1 for (*_, words), status in zip(plan, statuses, strict=True) if status == 200)
    by_key = _settled(cluster.url, n, expected)
    by_team = _usage(cluster.url, "team")
    by_org = _usage(cluster.url, "org")
    by_tag = _usage(cluster.url, "tag")
    by_user = _usage(cluster.url, "key,user")
    limits = {
        ("key a", by_key.get(("a" + n,), 0.0)): key,
        ("team t1", by_team.get(("t1" + n,), 0.0)): team,
        ("org o", by_org.get(("o" + n,), 0.0)): org,
        ("tag g", by_tag.get(("g" + n,), 0.0)): tag,
    }
    for k in KEYS:
        for u in ("ann", "bob"):
            limits[(f"user {k}/{u}", by_user.get((k + n, u), 0.0))] = user
    for (level, spent), limit in limits.items():
        assert spent <= limit + WORST, f"{level} spent ${spent} of a ${limit} budget"
    assert served >= 1
