"""A credential that expires during a run of many requests is refreshed by the kernel in the
background, with zero failed requests: the fake's tokens live 4 seconds, the fake refuses every
expired one with Vertex's 401, and 2,000 requests (both provider types, streamed and not, eight
clients at once) run across several token lifetimes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from truckllm_testing.fakes.vertex import EXPIRED, UNKNOWN, FakeVertex
from truckllm_testing.server import GatewayServer

PROJECT = "test-project"
LIFETIME = 4.0  # tokens are refreshed every second or so: 3 s of slack for a loaded CI machine
REQUESTS = 2000


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(keys=["sa-1"], project=PROJECT, token_lifetime=LIFETIME)
    with server.running():
        yield server


def config(fake: FakeVertex) -> str:
    key = [{"name": "sa1", "value": fake.service_account_json("sa-1")}]
    entry = {"base_url": fake.base_url, "options": {"project": PROJECT}, "keys": key}
    return json.dumps(
        {
            "routing": {"retries": 0, "cooldown": {"failures": 1000}},
            "providers": {"g": {"type": "vertex", **entry}, "c": {"type": "vertex-anthropic", **entry}},
            "models": {
                "gemini": {"deployments": [{"provider": "g", "model": "gemini-2.5-flash"}]},
                "claude": {"deployments": [{"provider": "c", "model": "claude-haiku-4-5@20251001"}]},
            },
        }
    )


@pytest.mark.slow
def test_tokens_expire_during_the_run_and_no_request_fails(fake: FakeVertex) -> None:
    with (
        GatewayServer(config(fake)) as gw,
        openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=30) as sdk,
    ):

        def one(n: int) -> str:
            alias = "gemini" if n % 2 else "claude"
            messages: Any = [{"role": "user", "content": f"request {n}"}]
            if n % 3 == 0:
                text = ""
                for chunk in sdk.chat.completions.create(model=alias, messages=messages, stream=True):
                    text += "".join(c.delta.content or "" for c in chunk.choices)
                return text
            answer = sdk.chat.completions.create(model=alias, messages=messages)
            return answer.choices[0].message.content or ""

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(REQUESTS)))
        elapsed = time.monotonic() - started
        while elapsed < 3 * LIFETIME:  # a fast machine: keep going until tokens have rotated
            answers.append(one(len(answers)))
            elapsed = time.monotonic() - started

    assert answers == [f"echo: request {n}" for n in range(len(answers))]  # no request failed
    calls = [r for r in fake.requests if "/publishers/" in r.path]
    assert len(calls) == len(answers)
    assert {r.api_key for r in calls} == {"sa-1"}, "a request went out with an expired or unknown token"
    assert not any(r.api_key in (EXPIRED, UNKNOWN) for r in calls)
    assert {r.status for r in calls} == {200}
    used = {r.headers["authorization"] for r in calls}
    assert len(used) >= 2, "the run outlived a token but never used a second one"
    assert len(fake.issued) >= elapsed / LIFETIME, "tokens were not refreshed before they expired"
    assert fake.refused_grants == []


def test_a_revoked_token_fails_over_and_its_key_gets_a_fresh_one_at_once() -> None:
    """A token Vertex stops taking an hour before its expiry: the request it was sent with fails
    over to the other key, the key fetches a fresh token at once (not in an hour) and serves with
    it; the key is not disabled."""
    server = FakeVertex(keys=["sa-1", "sa-2"], project=PROJECT, token_lifetime=3600)
    with server.running():
        keys = [
            {"name": n, "value": server.service_account_json(n.replace("sa", "sa-"))} for n in ("sa1", "sa2")
        ]
        text = json.dumps(
            {
                "providers": {
                    "g": {
                        "type": "vertex",
                        "base_url": server.base_url,
                        "options": {"project": PROJECT},
                        "keys": keys,
                    }
                },
                "models": {
                    "gemini": {
                        "strategy": "round-robin",
                        "deployments": [{"provider": "g", "model": "gemini-2.5-flash"}],
                    }
                },
            }
        )
        with (
            GatewayServer(text) as gw,
            openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=30) as sdk,
        ):
            first = {t.account: t.token for t in server.issued}
            server.revoke(first["sa-1"])
            answers: list[str | None] = []
            deadline = time.monotonic() + 30  # a wait for the fresh token's first use, not a timing
            while time.monotonic() < deadline:
                n = len(answers)
                messages: Any = [{"role": "user", "content": f"request {n}"}]
                answers.append(
                    sdk.chat.completions.create(model="gemini", messages=messages).choices[0].message.content
                )
                fresh = [t.token for t in server.issued if t.account == "sa-1"][1:]
                if fresh and any(
                    r.headers.get("authorization") == f"Bearer {fresh[0]}" and r.status == 200
                    for r in server.requests
                ):
                    break
            assert gw.gateway is not None
            disabled = gw.gateway.health.key("g", "sa1").disabled
    assert answers == [f"echo: request {n}" for n in range(len(answers))]  # no request failed
    refused = [r for r in server.requests if r.status == 401]
    assert [r.headers["authorization"] for r in refused] == [f"Bearer {first['sa-1']}"]  # once
    assert [t.account for t in server.issued].count("sa-1") == 2  # one fresh token, fetched at once
    assert fresh, "the key never served with its fresh token"
    assert disabled == ""
