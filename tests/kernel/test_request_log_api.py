"""``/admin/v1/requests``, ``/admin/v1/requests/{id}``, ``/admin/v1/requests/stats``: the kernel's
side of the request log. Every query parameter a client can send is checked before it reaches the
log plugin (a table, and hypothesis over arbitrary values); the log's own failures are a 503, a
cursor it did not make a 400, no log at all a 404 naming the plugin to enable. Records carry their
bodies only where the key or the alias opts in, scrubbed, then cut.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx2 as httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm import hookimpl
from truckllm._internal.bodies import BodyCapture, cut_utf8
from truckllm._internal.scrub import MIN_FRAGMENT, Scrubber
from truckllm.kit.request_log import (
    LogPage,
    LogQuery,
    Series,
    SeriesPoint,
    SeriesQuery,
    TopRow,
    status_filter,
)
from truckllm.types import RequestRecord
from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.server import GatewayServer

TOKEN = "admin-token-for-the-log"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
PROVIDER_KEY = "sk-test-provider-key-0123456789abcdef"


class FakeLog:
    """A logger keeping records in memory and answering the RequestLog protocol."""

    instances: ClassVar[list[FakeLog]] = []

    class Options(msgspec.Struct, forbid_unknown_fields=True):
        fail: bool = False

    def __init__(self, options: FakeLog.Options) -> None:
        self.fail = options.fail
        self.records: list[RequestRecord] = []
        self.queries: list[object] = []
        self.event = threading.Event()
        FakeLog.instances.append(self)

    @hookimpl
    def emit_log(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.event.set()

    async def search(self, query: LogQuery) -> LogPage:
        self.queries.append(query)
        if self.fail:
            raise RuntimeError("database on fire: password=hunter2")
        if query.cursor not in (None, "c1"):
            raise ValueError("not mine")
        rows = [msgspec.structs.replace(r, bodies=None) for r in reversed(self.records)]
        return LogPage(
            records=tuple(rows[: query.limit]), next_cursor="c1" if len(rows) > query.limit else None
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        self.queries.append(request_id)
        return next((r for r in self.records if r.request_id == request_id), None)

    async def series(self, query: SeriesQuery) -> Series:
        self.queries.append(query)
        point = SeriesPoint(at=query.since, requests=len(self.records))
        return Series(
            step=query.step, points=(point,), totals=point, top_aliases=(TopRow(name="m", requests=1),)
        )


class LogPlugin:
    __name__ = "fake-log"

    @hookimpl
    def register_loggers(self, register: Callable[[str, type], None]) -> None:
        register("fakelog", FakeLog)


def config(
    base_url: str, *, fail: bool = False, key_bodies: bool = False, alias_bodies: bool = False, limit: int = 0
) -> str:
    server = f"server: {{log_bodies_max_bytes: {limit}}}\n" if limit else ""
    return f"""\
admin: {{token: {TOKEN}}}
{server}loggers: [{{fakelog: {{fail: {str(fail).lower()}}}}}]
keys:
  - {{name: plain, value: tllm-plain-client-key-000000}}
  - {{name: keeper, value: tllm-keeper-client-key-00000, log_bodies: {str(key_bodies).lower()}}}
providers:
  oa:
    type: openai
    base_url: {base_url}
    keys: [{{name: k1, value: {PROVIDER_KEY}}}]
models:
  m:
    log_bodies: {str(alias_bodies).lower()}
    deployments: [{{provider: oa, model: gpt-4o}}]
  other:
    deployments: [{{provider: oa, model: gpt-4o}}]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    upstream = FakeOpenAI(keys=(PROVIDER_KEY,))
    with upstream.running():
        yield upstream


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[GatewayServer]:
    FakeLog.instances.clear()
    with GatewayServer(config(fake.base_url), extra_plugins=(LogPlugin(),)) as server:
        yield server


def log_of(gw: GatewayServer) -> FakeLog:
    return next(i for _, i in gw.gateway.loggers if isinstance(i, FakeLog))  # type: ignore[union-attr]


def chat(
    gw: GatewayServer, key: str, model: str = "m", content: str = "hi", stream: bool = False
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body)


def wait_records(log: FakeLog, count: int) -> list[RequestRecord]:
    deadline = time.monotonic() + 10
    while len(log.records) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(log.records) >= count
    return log.records


def test_search_get_and_stats_answer_from_the_log(gw: GatewayServer) -> None:
    log = log_of(gw)
    before = len(log.records)
    assert chat(gw, "tllm-plain-client-key-000000").status_code == 200
    records = wait_records(log, before + 1)
    page = httpx.get(
        gw.url + "/admin/v1/requests", headers=ADMIN, params={"limit": "1", "status": "2xx", "alias": "m"}
    )
    assert page.status_code == 200
    body = page.json()
    assert body["object"] == "list" and len(body["data"]) == 1
    assert body["data"][0]["request_id"] == records[-1].request_id
    query = log.queries[-1]
    assert isinstance(query, LogQuery) and query.limit == 1 and query.status == "2xx" and query.alias == "m"
    one = httpx.get(gw.url + f"/admin/v1/requests/{records[-1].request_id}", headers=ADMIN)
    assert one.status_code == 200 and one.json()["alias"] == "m" and one.json()["bodies"] is None
    missing = httpx.get(gw.url + "/admin/v1/requests/nope", headers=ADMIN)
    assert missing.status_code == 404
    stats = httpx.get(
        gw.url + "/admin/v1/requests/stats",
        headers=ADMIN,
        params={"step": "hour", "since": "2026-01-01T00:00:00"},
    )
    assert stats.status_code == 200 and stats.json()["step"] == "hour"
    series_query = log.queries[-1]
    assert (
        isinstance(series_query, SeriesQuery) and series_query.since == 1767225600.0
    )  # ISO without zone: UTC
    bad_cursor = httpx.get(gw.url + "/admin/v1/requests", headers=ADMIN, params={"cursor": "forged"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["param"] == "cursor"
    assert httpx.get(gw.url + "/admin/v1/requests").status_code == 401


BAD_PARAMS = [
    ("since", "yesterday"),
    ("since", "nan"),
    ("since", "inf"),
    ("since", "-1"),
    ("since", "1e300"),
    ("until", "2026-13-01"),
    ("limit", "0"),
    ("limit", "501"),
    ("limit", "-5"),
    ("limit", "ten"),
    ("status", "200x"),
    ("status", "99"),
    ("status", "600"),
    ("status", "1xx"),
    ("alias", "a" * 257),
    ("key", "x\x00y"),
]


@pytest.mark.parametrize(("name", "value"), BAD_PARAMS)
def test_bad_search_parameters_are_400_naming_the_parameter(gw: GatewayServer, name: str, value: str) -> None:
    answer = httpx.get(gw.url + "/admin/v1/requests", headers=ADMIN, params={name: value})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == name


@pytest.mark.parametrize(
    "params",
    [
        {"step": "week"},
        {"step": "minute", "since": "0", "until": "2000000000"},
        {"top": "101"},
        {"since": "10", "until": "5"},
    ],
)
def test_bad_stats_parameters_are_400(gw: GatewayServer, params: dict[str, str]) -> None:
    answer = httpx.get(gw.url + "/admin/v1/requests/stats", headers=ADMIN, params=params)
    assert answer.status_code == 400, answer.text


@given(
    st.dictionaries(
        st.sampled_from(["since", "until", "limit", "status", "key", "cursor", "step", "top"]),
        st.text(max_size=40),
        max_size=4,
    )
)
@settings(max_examples=60, deadline=None)
def test_arbitrary_parameters_never_reach_the_log_malformed(
    gw: GatewayServer, params: dict[str, str]
) -> None:
    for path in ("/admin/v1/requests", "/admin/v1/requests/stats"):
        answer = httpx.get(gw.url + path, headers=ADMIN, params=params)
        assert answer.status_code in (200, 400), answer.text
        if answer.status_code == 400:
            assert answer.json()["error"]["param"]


def test_status_filter_reads_codes_and_classes() -> None:
    assert status_filter("429") == (429, None)
    assert status_filter(" 5XX ") == (None, "5xx")
    for bad in ("", "42", "4290", "abc", "6xx", "99"):
        with pytest.raises(ValueError):
            status_filter(bad)


def test_without_a_request_log_the_endpoints_say_how_to_get_one(fake: FakeOpenAI) -> None:
    text = config(fake.base_url).replace("loggers: [{fakelog: {fail: false}}]\n", "")
    with GatewayServer(text) as server:
        for path in ("/admin/v1/requests", "/admin/v1/requests/x", "/admin/v1/requests/stats"):
            answer = httpx.get(server.url + path, headers=ADMIN)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "no_request_log"
            assert "sql" in answer.json()["error"]["message"]


def test_a_failing_log_is_a_503_that_leaks_nothing(fake: FakeOpenAI) -> None:
    with GatewayServer(config(fake.base_url, fail=True), extra_plugins=(LogPlugin(),)) as server:
        answer = httpx.get(server.url + "/admin/v1/requests", headers=ADMIN)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert "hunter2" not in answer.text and "fire" not in answer.text


def test_status_is_the_live_snapshot(gw: GatewayServer) -> None:
    answer = httpx.get(gw.url + "/admin/v1/status", headers=ADMIN)
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] >= 1 and body["in_flight"] == 0 and body["draining"] is False
    assert [(k["provider"], k["name"], k["state"]) for k in body["keys"]] == [("oa", "k1", "ok")]
    assert abs(body["time"] - time.time()) < 60
    assert PROVIDER_KEY not in answer.text and "tllm-plain" not in answer.text


# --- bodies ---------------------------------------------------------------------------------------


def test_bodies_only_where_the_key_or_the_alias_keeps_them(fake: FakeOpenAI) -> None:
    with GatewayServer(config(fake.base_url, key_bodies=True), extra_plugins=(LogPlugin(),)) as server:
        log = log_of(server)
        assert chat(server, "tllm-plain-client-key-000000", content="not kept").status_code == 200
        assert chat(server, "tllm-keeper-client-key-00000", content="kept whole").status_code == 200
        assert (
            chat(server, "tllm-keeper-client-key-00000", content="kept streamed", stream=True).status_code
            == 200
        )
        plain, whole, streamed = wait_records(log, 3)[:3]
    assert plain.bodies is None
    assert whole.bodies is not None and '"kept whole"' in whole.bodies.request
    assert '"chat.completion"' in whole.bodies.response and not whole.bodies.response_truncated
    assert streamed.bodies is not None and "data: [DONE]" in streamed.bodies.response
    assert (
        "tllm-keeper" not in whole.bodies.request + whole.bodies.response
    )  # credentials are headers, not bodies
    with GatewayServer(config(fake.base_url, alias_bodies=True), extra_plugins=(LogPlugin(),)) as server:
        log = log_of(server)
        assert chat(server, "tllm-plain-client-key-000000", model="m").status_code == 200
        assert chat(server, "tllm-plain-client-key-000000", model="other").status_code == 200
        on_alias, off_alias = wait_records(log, 2)[:2]
    assert on_alias.bodies is not None and off_alias.bodies is None


def test_a_secret_in_a_body_is_scrubbed_before_the_cut(fake: FakeOpenAI) -> None:
    """A prompt quoting the provider key (or an upstream echoing it) is recorded without it, even
    when the key straddles the size limit."""
    limit = 1024
    for offset in (0, limit - 10, limit - 1, limit + 5):
        content = "x" * max(0, offset - 40) + PROVIDER_KEY + "y" * 2000
        with GatewayServer(
            config(fake.base_url, key_bodies=True, limit=limit), extra_plugins=(LogPlugin(),)
        ) as server:
            log = log_of(server)
            assert chat(server, "tllm-keeper-client-key-00000", content=content).status_code == 200
            (record,) = wait_records(log, 1)[:1]
        bodies = record.bodies
        assert bodies is not None and bodies.request_truncated
        assert len(bodies.request.encode()) <= limit
        for text in (bodies.request, bodies.response):
            for i in range(len(PROVIDER_KEY) - MIN_FRAGMENT + 1):
                assert PROVIDER_KEY[i : i + MIN_FRAGMENT] not in text, offset


@given(
    st.text(max_size=300),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=16, max_value=200),
    st.lists(st.integers(min_value=1, max_value=50), max_size=8),
)
@settings(max_examples=200, deadline=None)
def test_capture_scrubs_whole_then_cuts(filler: str, where: int, limit: int, pieces: list[int]) -> None:
    secret = "sk-live-SECRETVALUE0123456789"
    text = filler[:where] + secret + filler[where:]
    raw = text.encode()
    capture = BodyCapture(limit, request=raw, margin=64)
    start = 0
    for size in [*pieces, len(raw)]:  # the answer arrives in frames of any size
        capture.add(raw[start : start + size])
        start += size
    bodies = capture.bodies(Scrubber([secret]))
    for value, cut in (
        (bodies.request, bodies.request_truncated),
        (bodies.response, bodies.response_truncated),
    ):
        assert len(value.encode("utf-8", "surrogatepass")) <= limit
        assert cut == (len(raw) > limit) or cut  # cut whenever the original was longer
        for i in range(len(secret) - MIN_FRAGMENT + 1):
            assert secret[i : i + MIN_FRAGMENT] not in value


@given(st.text(max_size=200), st.integers(min_value=0, max_value=300))
def test_cut_utf8_never_splits_a_character(text: str, limit: int) -> None:
    cut, was_cut = cut_utf8(text, limit)
    assert len(cut.encode("utf-8", "surrogatepass")) <= limit
    assert text.startswith(cut)
    assert was_cut == (len(text.encode("utf-8", "surrogatepass")) > limit)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300", "yesterday"])
def test_usage_reads_since_and_until_like_the_request_log(gw: GatewayServer, value: str) -> None:
    """One reader of ``since``/``until`` for every admin endpoint: /admin/v1/usage took ``nan``."""
    for name in ("since", "until"):
        answer = httpx.get(gw.url + "/admin/v1/usage", headers=ADMIN, params={name: value})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == name
