"""One named test per Gemini-related pitfall of PROVIDERS.md §5 (items 1-20).

Items that concern only Anthropic or OpenAI upstreams (for example item 14's forced-tool trick) are
covered here for their Gemini half. The golden files hold the full shapes; these tests pin the
specific behaviour each pitfall is about.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from truckllm_provider_gemini.ids import decode_call_id

from truckllm.errors import UnsupportedRequest
from truckllm_testing.fakes import FakeGemini

USER = {"role": "user", "content": "What is the weather in Paris?"}
HEAD = {"modelVersion": "gemini-2.5-flash", "responseId": "r1"}


def call_event(*parts: dict[str, Any], finish: str | None = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **HEAD}


def stream_chunks(gx: Any, events: list[Any], **request: Any) -> list[Any]:
    body = {"model": "alias", "stream": True, "messages": [USER], **request}
    out, failure, _ = gx.run_stream(gx.request(body), gx.sse(events))
    assert failure is None, failure
    return list(gx.frames(out))


def deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if isinstance(c, dict) and c["choices"]]


def finishes(chunks: list[Any]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"]
        for c in chunks
        if isinstance(c, dict) and c["choices"] and c["choices"][0]["finish_reason"]
    ]


def test_pitfall_01_function_calls_arrive_whole(gx: Any) -> None:
    """Gemini sends each call whole: one tool-call delta with complete, parseable arguments."""
    args = {"city": "Paris", "nested": {"list": [1, 2, {"deep": True}]}, "text": 'quote " and \\'}
    chunks = stream_chunks(gx, [call_event({"functionCall": {"name": "get_weather", "args": args}})])
    calls = [d["tool_calls"] for d in deltas(chunks) if "tool_calls" in d]
    assert len(calls) == 1 and len(calls[0]) == 1
    call = calls[0][0]
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == args


def test_pitfall_02_tools_without_arguments_are_empty_objects(gx: Any) -> None:
    """A call without args answers '{}'; '' arguments in history are sent as args {}."""
    chunks = stream_chunks(gx, [call_event({"functionCall": {"name": "get_time"}})])
    (call,) = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d]
    assert call["function"]["arguments"] == "{}"
    answer = gx.respond_json(
        gx.request({"model": "a", "messages": [USER]}), call_event({"functionCall": {"name": "f"}})
    )
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"
    body = gx.translate(
        {
            "model": "a",
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
        }
    )
    assert body["contents"][1]["parts"][0]["functionCall"] == {"name": "f", "args": {}}


def test_pitfall_03_stop_with_function_call_is_tool_calls(gx: Any) -> None:
    """STOP plus a functionCall part is finish_reason tool_calls, streamed and not."""
    event = call_event({"text": "Checking."}, {"functionCall": {"name": "get_weather", "args": {}}})
    answer = gx.respond_json(gx.request({"model": "a", "messages": [USER]}), event)
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert finishes(stream_chunks(gx, [event])) == ["tool_calls"]
    # the call and the STOP in different events
    split = [call_event({"functionCall": {"name": "f", "args": {}}}, finish=None), call_event(finish="STOP")]
    assert finishes(stream_chunks(gx, split)) == ["tool_calls"]
    # MAX_TOKENS stays length even with a call
    cut = call_event({"functionCall": {"name": "f", "args": {}}}, finish="MAX_TOKENS")
    assert finishes(stream_chunks(gx, [cut])) == ["length"]


def test_pitfall_04_call_ids_synthesized_and_names_looked_up(gx: Any) -> None:
    """Ids are synthesized (call_...), unique per call; tool answers get their name from the call;
    a Gemini-given id is echoed in functionCall.id and functionResponse.id."""
    event = call_event(
        {"functionCall": {"name": "a", "args": {}}},
        {"functionCall": {"name": "b", "args": {}}},
        {"functionCall": {"id": "gem-7", "name": "c", "args": {}}},
    )
    calls = gx.respond_json(gx.request({"model": "a", "messages": [USER]}), event)["choices"][0]["message"][
        "tool_calls"
    ]
    ids = [c["id"] for c in calls]
    assert ids[0].startswith("call_") and ids[1].startswith("call_") and ids[0] != ids[1]
    assert ids[2] == "gid_gem-7"
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for i in ids)
    history = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": c["function"]["name"] + "!"} for c in calls),
    ]
    body = gx.translate({"model": "a", "messages": history})
    model_parts = body["contents"][1]["parts"]
    assert model_parts[2]["functionCall"] == {"id": "gem-7", "name": "c", "args": {}}
    assert "id" not in model_parts[0]["functionCall"]
    answers = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert [a["name"] for a in answers] == ["a", "b", "c"]
    assert [a["response"] for a in answers] == [{"output": "a!"}, {"output": "b!"}, {"output": "c!"}]
    assert answers[2]["id"] == "gem-7" and "id" not in answers[0]


def test_pitfall_05_parallel_results_in_one_content(gx: Any) -> None:
    """All answers to one model turn go in ONE user content, in call order, with no sibling text;
    the fake's validator (N calls ↔ N responses) agrees."""
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}}
        for i in range(3)
    ]
    messages = [
        USER,
        {"role": "assistant", "content": "I will call three tools.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {"role": "tool", "tool_call_id": "c0", "content": "zero"},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "user", "content": "Now summarize."},
    ]
    body = gx.translate({"model": "a", "messages": messages})
    answer_turn = body["contents"][2]
    assert answer_turn["role"] == "user"
    assert [p["functionResponse"]["name"] for p in answer_turn["parts"]] == ["f0", "f1", "f2"]
    assert all(set(p) == {"functionResponse"} for p in answer_turn["parts"])
    assert body["contents"][3] == {"role": "user", "parts": [{"text": "Now summarize."}]}
    assert FakeGemini()._validate_generate(body, "GenerateContentRequest") == []


def test_pitfall_06_same_role_merged_without_filler(gx: Any) -> None:
    """Adjacent same-role messages merge into one content; nothing blank is inserted."""
    body = gx.translate(
        {
            "model": "a",
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "five"},
            ],
        }
    )
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [{"text": "one"}, {"text": "two"}]
    assert all(p.get("text") for c in body["contents"] for p in c["parts"])


def test_pitfall_07_empty_content_dropped(gx: Any) -> None:
    """Empty text parts and empty messages are dropped (an assistant '' with tool calls keeps only
    the calls); an empty tool result is a valid empty string under 'output'."""
    body = gx.translate(
        {
            "model": "a",
            "messages": [
                USER,
                {"role": "user", "content": [{"type": "text", "text": ""}]},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": ""},
                {"role": "assistant", "content": ""},
            ],
        }
    )
    for content in body["contents"]:
        assert content["parts"]
        for part in content["parts"]:
            assert part.get("text", "x") != ""
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "f", "args": {}}}]
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"output": ""}
    assert FakeGemini()._validate_generate(body, "GenerateContentRequest") == []


def test_pitfall_08_system_messages_hoisted(gx: Any) -> None:
    """Every system/developer message joins systemInstruction in order (blank-line separated);
    with system_instruction: false the text goes into the first user turn instead."""
    messages = [
        {"role": "developer", "content": "First."},
        USER,
        {"role": "assistant", "content": "Sunny."},
        {"role": "system", "content": [{"type": "text", "text": "Second."}]},
        {"role": "user", "content": "Tomorrow?"},
    ]
    body = gx.translate({"model": "a", "messages": messages})
    assert body["systemInstruction"] == {"parts": [{"text": "First.\n\nSecond."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    old = gx.translate({"model": "a", "messages": messages}, system_instruction=False)
    assert "systemInstruction" not in old
    assert old["contents"][0]["parts"][0] == {"text": "First.\n\nSecond."}


def test_pitfall_09_stream_usage_only_when_asked(gx: Any) -> None:
    """The usage chunk is sent only with include_usage, but usage is always recorded."""
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        },
    ]
    for include in (False, True):
        body = {"model": "alias", "stream": True, "messages": [USER]}
        if include:
            body["stream_options"] = {"include_usage": True}
        out, failure, translator = gx.run_stream(gx.request(body), gx.sse(events))
        assert failure is None
        chunks = gx.frames(out)
        usage_chunks = [c for c in chunks if isinstance(c, dict) and c["choices"] == []]
        assert len(usage_chunks) == (1 if include else 0)
        assert all(("usage" in c) == include for c in chunks if isinstance(c, dict))
        assert translator.usage.total_tokens == 4


def test_pitfall_10_cumulative_usage_not_summed(gx: Any) -> None:
    """usageMetadata are running totals: the last wins; candidates exclude thoughts (added back)."""
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "a"}]}}],
            "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10},
        },
        {
            "candidates": [{"content": {"parts": [{"text": "b"}]}}],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 2,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 17,
            },
        },
        {
            "candidates": [{"content": {"parts": [{"text": "c"}]}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 10,
                "cachedContentTokenCount": 4,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 18,
            },
        },
    ]
    _, failure, translator = gx.run_stream(
        gx.request({"model": "a", "stream": True, "messages": [USER]}), gx.sse(events)
    )
    assert failure is None
    usage = translator.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 8, 18)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 5)


def test_pitfall_11_length_parameters(gx: Any) -> None:
    """max_completion_tokens wins over max_tokens; either maps to maxOutputTokens; 0 is refused."""
    assert gx.translate({"model": "a", "messages": [USER], "max_tokens": 9})["generationConfig"] == {
        "maxOutputTokens": 9
    }
    both = gx.translate({"model": "a", "messages": [USER], "max_tokens": 9, "max_completion_tokens": 99})
    assert both["generationConfig"] == {"maxOutputTokens": 99}
    assert "generationConfig" not in gx.translate({"model": "a", "messages": [USER]})
    with pytest.raises(UnsupportedRequest) as info:
        gx.translate({"model": "a", "messages": [USER], "max_completion_tokens": 0})
    assert info.value.param == "max_completion_tokens"


def test_pitfall_12_sampling_unset_versus_zero(gx: Any) -> None:
    """Unset fields are not sent; 0 is sent as 0; OpenAI's 0-2 temperature is Gemini's range too."""
    zero = gx.translate(
        {"model": "a", "messages": [USER], "temperature": 0, "top_p": 0, "presence_penalty": 0, "seed": 0}
    )
    assert zero["generationConfig"] == {"temperature": 0, "topP": 0, "presencePenalty": 0, "seed": 0}
    high = gx.translate({"model": "a", "messages": [USER], "temperature": 2})
    assert high["generationConfig"] == {"temperature": 2}


def test_pitfall_13_json_schema_dialect(gx: Any) -> None:
    """$schema, additionalProperties, propertyNames, const, type arrays and $ref are rewritten,
    and the fake (which rejects each of them) accepts the result."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "Tag": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "additionalProperties": False,
            }
        },
        "properties": {
            "kind": {"const": "search"},
            "limit": {"type": ["integer", "null"], "minimum": 1},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "meta": {
                "type": "object",
                "propertyNames": {"pattern": "^[a-z]+$"},
                "additionalProperties": {"type": "string"},
            },
            "level": {"enum": [1, 2, 3]},
        },
        "required": ["kind"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "search", "parameters": schema}}
    body = gx.translate({"model": "a", "messages": [USER], "tools": [tool]})
    params = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params["properties"]["kind"] == {"type": "STRING", "format": "enum", "enum": ["search"]}
    assert params["properties"]["limit"] == {"type": "INTEGER", "nullable": True, "minimum": 1}
    assert params["properties"]["tags"]["items"]["properties"] == {"name": {"type": "STRING"}}
    assert params["properties"]["level"]["enum"] == ["1", "2", "3"]
    text = json.dumps(params)
    for word in ("$schema", "$ref", "$defs", "additionalProperties", "propertyNames", "const"):
        assert word not in text
    assert FakeGemini()._validate_generate(body, "GenerateContentRequest") == []
    raw = gx.translate({"model": "a", "messages": [USER], "tools": [tool]}, schema_mode="json_schema")
    assert raw["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == schema


def test_pitfall_14_json_mode_needs_only_the_mime_type(gx: Any) -> None:
    """json_object → responseMimeType alone (no synthetic tool); json_schema adds the schema."""
    body = gx.translate({"model": "a", "messages": [USER], "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    assert "tools" not in body
    text = gx.translate({"model": "a", "messages": [USER], "response_format": {"type": "text"}})
    assert "generationConfig" not in text


def test_pitfall_15_thought_signature_round_trips(gx: Any) -> None:
    """The signature Gemini put on a functionCall part comes back on that part next turn."""
    signature = base64.b64encode(b"\x0a\x24fake-signature-bytes\xff\xfe").decode()
    event = call_event(
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": signature}
    )
    for stream in (False, True):
        if stream:
            (call,) = [d["tool_calls"][0] for d in deltas(stream_chunks(gx, [event])) if "tool_calls" in d]
            call.pop("index")
        else:
            call = gx.respond_json(gx.request({"model": "a", "messages": [USER]}), event)["choices"][0][
                "message"
            ]["tool_calls"][0]
        assert decode_call_id(call["id"]).signature == signature
        body = gx.translate(
            {
                "model": "a",
                "messages": [
                    USER,
                    {"role": "assistant", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": call["id"], "content": "21C"},
                ],
            }
        )
        part = body["contents"][1]["parts"][0]
        assert part["thoughtSignature"] == signature
        assert part["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
        gemini3 = FakeGemini(require_thought_signature=True)
        assert gemini3._validate_generate(body, "GenerateContentRequest") == []


def test_pitfall_16_errors_after_200_are_not_swallowed(gx: Any) -> None:
    """A raw {"error":...} (or an event with an error) after the 200 raises, and no finish_reason
    or [DONE] is emitted; a stream cut before its finish reason raises too."""
    raw_error = b'{\n  "error": {\n    "code": 503,\n    "message": "overloaded",\n    "status": "UNAVAILABLE"\n  }\n}\n'
    text = {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], **HEAD}
    request = gx.request({"model": "a", "stream": True, "messages": [USER]})
    for tail in (raw_error, gx.sse([{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]), b""):
        out, failure, _ = gx.run_stream(request, gx.sse([text]) + tail)
        assert failure is not None
        assert b'finish_reason":"' not in out and b"[DONE]" not in out
    out, failure, _ = gx.run_stream(request, gx.sse([text]) + raw_error)
    assert failure is not None and failure.error.kind == "overloaded"


def test_pitfall_17_sse_framing(gx: Any) -> None:
    """CRLF events split at every byte, comments, no [DONE]: the same frames every time."""
    events = [
        ": keep-alive\r\n\r\n",
        {"candidates": [{"content": {"parts": [{"text": "é"}]}}], **HEAD},
        {"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}], **HEAD},
    ]
    raw = gx.sse(events)
    request = gx.request({"model": "a", "stream": True, "messages": [USER]})
    whole, failure, _ = gx.run_stream(request, raw)
    assert failure is None
    byte_by_byte, failure, _ = gx.run_stream(request, raw, range(1, len(raw)))
    assert failure is None
    assert gx.normalize(gx.frames(byte_by_byte)) == gx.normalize(gx.frames(whole))
    assert [d.get("content") for d in deltas(gx.frames(whole))] == ["", "é", "!", None]


def test_pitfall_18_blocked_prompt_and_candidates_without_parts(gx: Any) -> None:
    """No candidates + blockReason, or a candidate without parts: a choice with content null."""
    request = gx.request({"model": "a", "messages": [USER]})
    blocked = gx.respond_json(request, {"promptFeedback": {"blockReason": "SAFETY"}})
    assert blocked["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "refusal": None},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    for reason, expected in (
        ("SAFETY", "content_filter"),
        ("MAX_TOKENS", "length"),
        ("PROHIBITED_CONTENT", "content_filter"),
    ):
        for candidate in (
            {"finishReason": reason},
            {"content": {"role": "model"}, "finishReason": reason},
            {"content": {"parts": []}, "finishReason": reason},
        ):
            choice = gx.respond_json(request, {"candidates": [candidate]})["choices"][0]
            assert choice["message"]["content"] is None and choice["finish_reason"] == expected
    chunks = stream_chunks(gx, [{"promptFeedback": {"blockReason": "OTHER"}, **HEAD}])
    assert finishes(chunks) == ["content_filter"]


def test_pitfall_19_media_conversion(gx: Any) -> None:
    """Data URIs lose their prefix and keep their media type; URLs the gateway would have to
    download are refused; URL-safe base64 is re-encoded as standard base64."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\xfb\xff").decode()
    urlsafe = base64.urlsafe_b64encode(b"\x89PNG\r\n\x1a\n\xfb\xff").decode().rstrip("=")
    for data in (png, urlsafe):
        body = gx.translate(
            {
                "model": "a",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
                        ],
                    }
                ],
            }
        )
        assert body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": png}}]
    for url in ("https://example.com/cat.png", "http://example.com/cat.png", "ftp://x/y.png"):
        with pytest.raises(UnsupportedRequest) as info:
            gx.translate(
                {
                    "model": "a",
                    "messages": [
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
                    ],
                }
            )
        assert info.value.param == "messages[0].content[0].image_url.url"
    for url in ("data:;base64,AAAA", "data:image/png;base64,@@@", "data:image/png;base64"):
        with pytest.raises(UnsupportedRequest):
            gx.translate(
                {
                    "model": "a",
                    "messages": [
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
                    ],
                }
            )


def test_pitfall_20_error_semantics_and_limits(gx: Any) -> None:
    """Bad key → auth; retryDelay → retry_after; stop ≤ 5; batch ≤ 100; no token-array input."""
    request = gx.request({"model": "a", "messages": [USER]})
    bad_key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    error = gx.respond(request, bad_key, 400).error
    assert (error.kind, error.code) == ("auth", "invalid_api_key")
    limited = {
        "error": {
            "code": 429,
            "message": "slow down",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}],
        }
    }
    error = gx.respond(request, limited, 429).error
    assert (error.kind, error.status, error.retry_after) == ("rate_limit", 429, 12.5)
    with pytest.raises(UnsupportedRequest):
        gx.translate({"model": "a", "input": [f"t{i}" for i in range(101)]}, "embeddings")
    assert (
        len(gx.translate({"model": "a", "input": [f"t{i}" for i in range(100)]}, "embeddings")["requests"])
        == 100
    )
    with pytest.raises(UnsupportedRequest):
        gx.translate({"model": "a", "input": [1, 2, 3]}, "embeddings")
    four = gx.translate({"model": "a", "messages": [USER], "stop": ["a", "b", "c", "d"]})
    assert four["generationConfig"]["stopSequences"] == ["a", "b", "c", "d"]
