"""The local routes: GET / DELETE a stored response, cancel, input_items pages (no upstream)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from truckllm_dialect_responses.errors import error_body
from truckllm_dialect_responses.local import (
    ROUTE_CANCEL,
    ROUTE_INPUT_ITEMS,
    ROUTE_RESPONSE,
    input_items_page,
    serve_local,
)
from truckllm_dialect_responses.state import remember

from truckllm.errors import GatewayError
from truckllm.kit.dialect import LocalCall

RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "output": []}
ITEMS: list[dict[str, Any]] = [
    {"id": f"msg_{n}", "type": "message", "role": "user", "content": [{"type": "input_text", "text": str(n)}]}
    for n in range(5)
]


async def _no_upstream(request: Any) -> Any:
    raise AssertionError(f"a local answer must not forward {request.endpoint}")


def _call(
    state: Any, method: str = "GET", query: dict[str, str] | None = None, rid: str = "resp_1"
) -> LocalCall:
    return LocalCall(
        method=method,
        path_params={"response_id": rid},
        query=query or {},
        headers={},
        body=b"",
        state=state,
        forward=_no_upstream,
    )


@pytest.fixture
def stored(kit: Any) -> Any:
    shared: dict[Any, bytes] = {}
    state = kit.FakeState(shared)
    state.served_by = kit.served()
    remember(state, "resp_1", json.dumps(RESPONSE).encode(), ITEMS, "openai")
    return state


async def test_get_answers_the_response_as_it_was_returned(stored: Any, kit: Any) -> None:
    answer = await serve_local(ROUTE_RESPONSE, _call(stored))
    assert answer.status == 200 and json.loads(answer.body) == RESPONSE


async def test_another_key_and_unknown_ids_get_404_in_openai_shape(stored: Any, kit: Any) -> None:
    other = kit.FakeState(stored.shared, key="other")
    for state, rid in ((other, "resp_1"), (stored, "resp_nope")):
        for route, method in (
            (ROUTE_RESPONSE, "GET"),
            (ROUTE_RESPONSE, "DELETE"),
            (ROUTE_INPUT_ITEMS, "GET"),
        ):
            with pytest.raises(GatewayError) as info:
                await serve_local(route, _call(state, method, rid=rid))
            assert info.value.status == 404 and rid in info.value.message
            body = json.loads(error_body(info.value))
            assert body["error"]["type"] == "invalid_request_error"
    assert (await stored.get("resp:resp_1")) is not None  # the other key deleted nothing


async def test_delete_then_get_is_404(stored: Any, kit: Any) -> None:
    deleted = await serve_local(ROUTE_RESPONSE, _call(stored, "DELETE"))
    assert json.loads(deleted.body) == {"id": "resp_1", "object": "response", "deleted": True}
    with pytest.raises(GatewayError) as info:
        await serve_local(ROUTE_RESPONSE, _call(stored))
    assert info.value.status == 404


async def test_cancel_is_400_for_a_stored_response_404_for_none(stored: Any, kit: Any) -> None:
    with pytest.raises(GatewayError) as info:
        await serve_local(ROUTE_CANCEL, _call(stored, "POST"))
    assert info.value.status == 400
    with pytest.raises(GatewayError) as missing:
        await serve_local(ROUTE_CANCEL, _call(stored, "POST", rid="resp_x"))
    assert missing.value.status == 404


def test_input_items_default_is_newest_first_twenty() -> None:
    items = [{"id": f"msg_{n}"} for n in range(25)]
    page = input_items_page(items, {})
    assert [i["id"] for i in page["data"]] == [f"msg_{n}" for n in range(24, 4, -1)]
    assert page["object"] == "list" and page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == ("msg_24", "msg_5")


def test_input_items_pages_with_after_until_the_end() -> None:
    seen: list[str] = []
    query = {"limit": "2", "order": "asc"}
    while True:
        page = input_items_page(ITEMS, query)
        seen += [i["id"] for i in page["data"]]
        if not page["has_more"]:
            break
        query = {**query, "after": page["last_id"]}
    assert seen == [i["id"] for i in ITEMS]
    assert input_items_page(ITEMS, {"after": "msg_0"})["data"] == []  # desc: nothing older than the oldest
    empty = input_items_page([], {})
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"after": "msg_unknown"}, "after"),
    ],
)
def test_input_items_bad_query_is_400_naming_it(query: dict[str, str], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        input_items_page(ITEMS, query)
    assert info.value.status == 400 and info.value.param == param


async def test_input_items_route_ignores_include(stored: Any, kit: Any) -> None:
    answer = await serve_local(
        ROUTE_INPUT_ITEMS,
        _call(stored, query={"include": "message.input_image.image_url", "order": "asc", "limit": "3"}),
    )
    page = msgspec.json.decode(answer.body)
    assert [i["id"] for i in page["data"]] == ["msg_0", "msg_1", "msg_2"] and page["has_more"] is True
