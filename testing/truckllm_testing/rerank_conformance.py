"""A conformance suite for rerank provider plugins: subclass it in a test module and run pytest.

The chat suite (:class:`~truckllm_testing.conformance.ProviderConformance`) does not apply to a
provider that serves only ``rerank``; this one does, through HTTP, against the plugin's fake
upstream (a :class:`~truckllm_testing.fakes.rerank.FakeRerank`)::

    from truckllm_testing.fakes.cohere import FakeCohere
    from truckllm_testing.rerank_conformance import RerankConformance

    class TestCohereRerankConformance(RerankConformance):
        provider_type = "cohere"
        fake_upstream = FakeCohere
        price = {"search_unit": 0.002}

Each check starts a gateway whose only provider is the plugin (two keys, the ``first`` strategy,
so that failover is visible) in front of a fresh fake and holds:

- the type registers with the hooks a provider needs, and every hook returns ``None`` for
  another type;
- an answer is the gateway's rerank shape: results best first as the upstream ranked them, the
  model rewritten upstream, documents sent as their texts (``{"text"}`` objects too), ``top_n``
  sent as the API's own member, the client's documents echoed when it asked and only then;
- usage is recorded (search units or tokens, as the API reports) and costs its price;
- 429 with ``Retry-After`` fails over and cools the key; 429 on every key is a 429 with
  ``Retry-After``; 401 takes the key out; 5xx fails over; 400 is final (one upstream call);
- a 2xx that is not a rerank answer (HTML, empty, truncated JSON, an array, an index out of
  range or given twice, a score that is not a number, more results than documents, 100 000
  levels of nesting) is a 502 to the client and a ``bad_response`` attempt, never a 500;
- an error echoing the provider key leaves no 8 characters of it in the client's answer or the
  record; an absurd ``Retry-After`` is bounded by an hour; absurd usage is never negative;
- the fake saw no contract violation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

from truckllm._internal.plugins import list_plugins, make_plugin_manager
from truckllm._internal.schemas.rerank import RerankRequest
from truckllm.hookspecs import HOOKSPEC_VERSION
from truckllm.types import ChatRequest, Provider, RequestRecord, UpstreamResponse
from truckllm_testing.conformance import (
    MAX_RETRY_AFTER,
    Answer,
    GatewayClient,
    RecordingPlugin,
    wait_for,
)
from truckllm_testing.fakes.base import Fault
from truckllm_testing.fakes.rerank import FakeRerank, RawAnswer, ranking
from truckllm_testing.server import GatewayServer

__all__ = ["ALIAS", "DOCUMENTS", "QUERY", "RerankConformance"]

ALIAS = "conformance-rerank"
"""The alias every check asks for."""
ADMIN_TOKEN = "rerank-conformance-admin-token"
QUERY = "which fruit is red"
"""The query of the checks."""
DOCUMENTS: list[Any] = [
    "the sky is blue",
    "a red apple is a fruit",
    {"text": "bananas are yellow fruit"},
    "red fruit: cherries and strawberries",
    "the sea is deep",
]
"""The documents of the checks (one given as an object)."""
_TEXTS = [d if isinstance(d, str) else d["text"] for d in DOCUMENTS]
_NOT_ANSWERS: dict[str, bytes] = {
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "empty": b"",
    "truncated_json": b'{"results": [{"index": 0, "relevance_score": 0.',
    "json_array": b"[1, 2, 3]",
    "no_results": b'{"id": "x", "meta": {}}',
    "index_out_of_range": b'{"results": [{"index": 99, "relevance_score": 0.5}], "data": [{"index": 99, '
    b'"relevance_score": 0.5}]}',
    "index_twice": json.dumps(
        {
            name: [{"index": 1, "relevance_score": 0.5}, {"index": 1, "relevance_score": 0.4}]
            for name in ("results", "data")
        }
    ).encode(),
    "score_not_a_number": b'{"results": [{"index": 1, "relevance_score": "high"}], "data": [{"index": 1, '
    b'"relevance_score": "high"}]}',
    "index_not_a_number": b'{"results": [{"index": true, "relevance_score": 0.5}], "data": [{"index": true, '
    b'"relevance_score": 0.5}]}',
    "too_many_results": json.dumps(
        {name: [{"index": i % 5, "relevance_score": 0.1} for i in range(6)] for name in ("results", "data")}
    ).encode(),
    "deep_json": b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}
_ABSURD_USAGE = (-1_000_000, 10**18, 1.5, -0.5, "12", None, True, {"n": 1})


class RerankConformance:
    """Checks every rerank provider plugin must pass; subclass as ``Test<Name>RerankConformance``."""

    provider_type: ClassVar[str] = ""
    """The provider type the plugin registers (required)."""
    fake_upstream: ClassVar[type[FakeRerank]] = FakeRerank
    """The fake speaking the plugin's upstream API."""
    provider_options: ClassVar[Mapping[str, Any] | None] = None
    """``providers.<name>.options``, if needed."""
    model: ClassVar[str] = "conformance-reranker"
    """The deployment's upstream model."""
    keys: ClassVar[tuple[str, str]] = ("rk-Zq8Wv3Lr7Tn2Xc5Kp9Hd4Mf", "rk-Gb1Jy0SaEu6Qw2Pn8Vt3Lx")
    """The provider's two keys (the fake accepts both)."""
    price: ClassVar[Mapping[str, float]] = {"input": 1.0}
    """The deployment's ``price:`` (what its usage is charged at)."""
    extra_plugins: ClassVar[tuple[object, ...]] = ()
    """Plugins to register besides the installed ones (a plugin without an entry point)."""
    autoload: ClassVar[bool | None] = None
    """Load installed plugins through their entry points (``None``: the server's default)."""

    # --- configuration ----------------------------------------------------------------------------

    def base_url(self, fake: FakeRerank) -> str:
        """The provider entry's ``base_url`` for ``fake``."""
        return fake.base_url

    def gateway_config(self, fake: FakeRerank) -> dict[str, Any]:
        """The whole gateway config for ``fake``."""
        entry: dict[str, Any] = {
            "type": self.provider_type,
            "base_url": self.base_url(fake),
            "keys": [{"name": f"key{i}", "value": value} for i, value in enumerate(self.keys, start=1)],
        }
        if self.provider_options is not None:
            entry["options"] = dict(self.provider_options)
        deployment = {"provider": "upstream", "model": self.model, "price": dict(self.price)}
        return {
            "admin": {"token": ADMIN_TOKEN},
            "routing": {
                "backoff": {"base": "1ms", "max": "5ms"},
                "try_timeout": "10s",
                "cooldown": {"failures": 5, "duration": "30s"},
            },
            "providers": {"upstream": entry},
            "models": {ALIAS: {"strategy": "first", "deployments": [deployment]}},
        }

    def body(self, **extra: Any) -> dict[str, Any]:
        """A rerank request for the suite's alias."""
        return {"model": ALIAS, "query": QUERY, "documents": DOCUMENTS, **extra}

    # --- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def upstream(self) -> Iterator[FakeRerank]:
        """The fake upstream; fails the test on contract violations."""
        if not self.provider_type:
            raise pytest.UsageError(f"{type(self).__name__}.provider_type is not set")
        fake = self.fake_upstream(keys=self.keys)
        with fake.running():
            yield fake
        assert fake.violations == [], f"the plugin sent requests the upstream rejects: {fake.violations}"

    @pytest.fixture
    def recorder(self) -> RecordingPlugin:
        """Keeps every request record."""
        return RecordingPlugin()

    @pytest.fixture
    def gateway(self, upstream: FakeRerank, recorder: RecordingPlugin) -> Iterator[GatewayServer]:
        """A gateway whose only provider is the plugin under test."""
        config = json.dumps(self.gateway_config(upstream), indent=1)
        with GatewayServer(
            config, extra_plugins=(*self.extra_plugins, recorder), autoload=self.autoload
        ) as gw:
            yield gw

    @pytest.fixture
    def client(self, gateway: GatewayServer) -> GatewayClient:
        """An HTTP client of ``gateway``."""
        return GatewayClient(gateway)

    # --- helpers ----------------------------------------------------------------------------------

    def rerank(self, client: GatewayClient, **extra: Any) -> Answer:
        """``POST /v1/rerank``."""
        return client.request("POST", "/v1/rerank", self.body(**extra))

    def records(self, recorder: RecordingPlugin, count: int) -> list[RequestRecord]:
        """The first ``count`` request records (emitted after the answer)."""
        wait_for(lambda: len(recorder.records) >= count, what=f"{count} request record(s)")
        return recorder.records[:count]

    def key_states(self, client: GatewayClient) -> dict[str, dict[str, Any]]:
        """The provider's keys as ``/admin/v1/providers`` shows them."""
        answer = client.request("GET", "/admin/v1/providers", token=ADMIN_TOKEN)
        assert answer.status == 200, answer.body
        (provider,) = [p for p in answer.json()["providers"] if p["name"] == "upstream"]
        return {k["name"]: k for k in provider["keys"]}

    def _request(self) -> ChatRequest:
        raw = json.dumps(self.body()).encode()
        import msgspec

        return ChatRequest(
            endpoint="rerank", body=raw, model=ALIAS, typed=msgspec.json.decode(raw, type=RerankRequest)
        )

    # --- registration -----------------------------------------------------------------------------

    def test_registers_its_provider_type_for_rerank(self) -> None:
        """The type is registered, serves ``rerank``, by a plugin with the provider hooks."""
        host = make_plugin_manager(extra=tuple(self.extra_plugins), autoload=self.autoload)
        spec = host.providers.get(self.provider_type)
        assert spec is not None, f"no plugin registers provider type {self.provider_type!r}: {host.failures}"
        assert "rerank" in spec.endpoints
        owner = host.owners[("providers", self.provider_type)]
        plugin = host.pm.get_plugin(owner)
        assert getattr(plugin, "TRUCKLLM_API", HOOKSPEC_VERSION) == HOOKSPEC_VERSION
        rows = [r for r in list_plugins(host) if (r["entry_point"] or "").split(" = ")[0] == owner]
        assert rows and rows[0]["status"] == "loaded"
        wanted = {"register_providers", "transform_request", "transform_response", "parse_usage"}
        assert wanted <= set(rows[0]["hooks"])

    def test_other_provider_types_are_not_its_own(self) -> None:
        """Every request-path hook returns ``None`` for a provider type it does not own."""
        host = make_plugin_manager(extra=tuple(self.extra_plugins), autoload=self.autoload)
        plugin = host.pm.get_plugin(host.owners[("providers", self.provider_type)])
        foreign = Provider(name="other", type=f"not-{self.provider_type}", base_url="http://127.0.0.1:9")
        request = self._request()
        response = UpstreamResponse(status=200, headers={}, body=b"{}")
        calls: dict[str, dict[str, Any]] = {
            "transform_request": {"provider": foreign, "model": "m", "request": request, "api_key": "k"},
            "transform_response": {
                "provider": foreign,
                "request": request,
                "response": response,
                "model": "m",
            },
            "transform_stream": {"provider": foreign, "request": request, "response": response, "model": "m"},
            "parse_usage": {"provider": foreign, "request": request, "body": b"{}"},
        }
        for name, kwargs in calls.items():
            for impl in getattr(host.pm.hook, name).get_hookimpls():
                if impl.plugin is plugin:
                    args = {k: kwargs[k] for k in impl.argnames}
                    assert impl.function(**args) is None, f"{name} answered for another provider type"

    # --- answers ----------------------------------------------------------------------------------

    def test_answer_is_the_gateway_shape_best_first(
        self, upstream: FakeRerank, client: GatewayClient
    ) -> None:
        """Every document ranked, best first as the upstream ranked them; model rewritten upstream;
        documents sent as texts; no document echoed unless asked."""
        answer = self.rerank(client)
        assert answer.status == 200, answer.body
        data = answer.json()
        assert isinstance(data["id"], str) and data["id"]
        assert data["model"] == self.model
        expected = ranking(QUERY, _TEXTS)
        assert [(r["index"], r["relevance_score"]) for r in data["results"]] == expected
        assert all("document" not in r for r in data["results"])
        (seen,) = upstream.requests
        assert seen.json["model"] == self.model
        assert seen.json["query"] == QUERY
        assert seen.json["documents"] == _TEXTS

    def test_top_n_is_sent_as_the_apis_own_member(self, upstream: FakeRerank, client: GatewayClient) -> None:
        """``top_n`` reaches the upstream under its own name and cuts the results."""
        answer = self.rerank(client, top_n=2)
        assert answer.status == 200, answer.body
        assert [r["index"] for r in answer.json()["results"]] == [i for i, _ in ranking(QUERY, _TEXTS, 2)]
        (seen,) = upstream.requests
        assert seen.json[upstream.top_field] == 2
        assert "top_n" not in seen.json or upstream.top_field == "top_n"

    def test_documents_are_echoed_when_asked(self, client: GatewayClient) -> None:
        """``return_documents: true``: each result carries the client's own text."""
        answer = self.rerank(client, return_documents=True, top_n=3)
        assert answer.status == 200, answer.body
        for result in answer.json()["results"]:
            assert result["document"] == {"text": _TEXTS[result["index"]]}

    def test_usage_is_recorded_and_priced(self, client: GatewayClient, recorder: RecordingPlugin) -> None:
        """The units the upstream reported are recorded and cost the deployment's price."""
        assert self.rerank(client).status == 200
        (record,) = self.records(recorder, 1)
        assert record.endpoint == "rerank" and record.status == 200
        assert record.usage is not None
        assert record.usage.search_units > 0 or record.usage.prompt_tokens > 0
        assert record.cost_usd > 0

    # --- failures ---------------------------------------------------------------------------------

    def test_rate_limit_fails_over_and_cools_the_key(
        self, upstream: FakeRerank, client: GatewayClient
    ) -> None:
        """A 429 with ``Retry-After`` on the first key: the second answers, the first cools down."""
        upstream.inject(Fault(status=429, retry_after=30, key=self.keys[0]))
        answer = self.rerank(client)
        assert answer.status == 200, answer.body
        assert [r.api_key for r in upstream.requests] == list(self.keys)
        assert self.key_states(client)["key1"]["state"] != "healthy"

    def test_rate_limit_everywhere_is_a_429_with_retry_after(
        self, upstream: FakeRerank, client: GatewayClient
    ) -> None:
        """Every key limited: the client gets 429 and a ``Retry-After``."""
        upstream.inject(Fault(status=429, retry_after=7, times=-1))
        answer = self.rerank(client)
        assert answer.status == 429, answer.body
        assert 0 < float(answer.headers["retry-after"]) <= MAX_RETRY_AFTER
        assert answer.json()["error"]["type"]

    def test_auth_error_takes_the_key_out(self, upstream: FakeRerank, client: GatewayClient) -> None:
        """A 401 on the first key: the second answers, and the next request goes there at once."""
        upstream.inject(Fault(status=401, key=self.keys[0], times=-1))
        assert self.rerank(client).status == 200
        assert self.rerank(client).status == 200
        assert [r.api_key for r in upstream.requests] == [self.keys[0], self.keys[1], self.keys[1]]

    def test_server_error_fails_over(self, upstream: FakeRerank, client: GatewayClient) -> None:
        """A 500 on the first key: another attempt answers (rerank is idempotent)."""
        upstream.inject(Fault(status=500, key=self.keys[0]))
        answer = self.rerank(client)
        assert answer.status == 200, answer.body
        assert len(upstream.requests) == 2

    def test_client_error_is_final(self, upstream: FakeRerank, client: GatewayClient) -> None:
        """A 400 (or 422) is the request's fault: one upstream call, the client gets a 4xx."""
        upstream.inject(Fault(status=400, kind="bad_request"))
        answer = self.rerank(client)
        assert 400 <= answer.status < 500 and answer.status != 429, answer.body
        assert len(upstream.requests) == 1
        assert answer.json()["error"]["message"]

    @pytest.mark.parametrize("act", sorted(_NOT_ANSWERS))
    def test_a_2xx_that_is_not_an_answer_is_a_502(
        self, act: str, upstream: FakeRerank, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """Garbage with a 200 is a ``bad_response`` attempt and a 502, never a 500 or garbage."""
        upstream.answer_raw(RawAnswer(_NOT_ANSWERS[act], times=-1))
        answer = self.rerank(client)
        assert answer.status == 502, (act, answer.status, answer.body[:300])
        assert answer.json()["error"]["type"] == "server_error"
        (record,) = self.records(recorder, 1)
        assert record.attempts and {a.error_kind for a in record.attempts} == {"bad_response"}

    @pytest.mark.parametrize("status", [400, 401, 429, 500])
    def test_an_error_echoing_the_key_never_leaks_it(
        self, status: int, upstream: FakeRerank, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """An error whose every member quotes the key: no 8 characters of it reach the client or
        the record."""
        key = self.keys[0]
        text = f"bad key {key} (prefix {key[:12]}, suffix {key[-12:]})"
        body = json.dumps({"message": text, "detail": text, "error": {"message": text}, "id": key}).encode()
        upstream.answer_raw(RawAnswer(body, status=status, headers={"x-echo": key}, times=-1))
        answer = self.rerank(client)
        (record,) = self.records(recorder, 1)
        seen = answer.body.decode("utf-8", "replace") + json.dumps(answer.headers) + repr(record)
        for start in range(len(key) - 7):
            assert key[start : start + 8] not in seen, (status, key[start : start + 8])

    @pytest.mark.parametrize("value", ["99999999999", "-5", "nan", "Fri, 31 Dec 9999 23:59:59 GMT", "1e400"])
    def test_an_absurd_retry_after_is_bounded(
        self, value: str, upstream: FakeRerank, client: GatewayClient
    ) -> None:
        """Whatever ``Retry-After`` says, the client's stays within an hour."""
        upstream.answer_raw(RawAnswer(b'{"message": "slow down", "detail": "slow down"}', status=429,
                                      headers={"retry-after": value}, times=-1))  # fmt: skip
        answer = self.rerank(client)
        assert answer.status == 429, answer.body
        retry = answer.headers.get("retry-after")
        assert retry is None or 0 <= float(retry) <= MAX_RETRY_AFTER

    @pytest.mark.parametrize("value", _ABSURD_USAGE, ids=repr)
    def test_absurd_usage_is_never_negative(
        self, value: Any, upstream: FakeRerank, client: GatewayClient, recorder: RecordingPlugin
    ) -> None:
        """Counts of -1 000 000, 10**18, 1.5, -0.5, ``"12"``, ``null``, ``true``, an object: the
        answer is served, and the recorded usage and cost are never negative (nor ``NaN``)."""
        results = [{"index": 1, "relevance_score": 0.9}]
        usage = {"total_tokens": value, "prompt_tokens": value}
        body = {
            "id": "0f0e0d0c-0b0a-0908-0706-050403020100",
            "results": results,
            "data": results,
            "usage": usage,
            "meta": {"billed_units": {"search_units": value}},
        }
        raw = json.dumps(body).encode()
        upstream.answer_raw(RawAnswer(raw, times=-1))
        answer = self.rerank(client)
        assert answer.status == 200, answer.body
        (record,) = self.records(recorder, 1)
        usage_seen = record.usage
        if usage_seen is not None:
            for name in ("prompt_tokens", "completion_tokens", "total_tokens", "search_units"):
                count = getattr(usage_seen, name)
                assert count >= 0, (name, count)
        assert record.cost_usd >= 0 and not math.isnan(record.cost_usd)
