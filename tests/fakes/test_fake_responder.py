"""The fakes' responder hook, and AgentResponder: a scripted model that plays a coding agent's.

``FakeUpstream.responder`` answers the generation requests no scripted reply matched; unset, the
fakes keep their default answer.  AgentResponder reads each dialect's tools and tool results.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from truckllm_testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, Received, Reply, ToolCall
from truckllm_testing.fakes.agent import AgentResponder, dialect_of, smallest

OPENAI = {"authorization": "Bearer k1"}
ANTHROPIC = {"x-api-key": "k1", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "k1"}
BASH_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "string"},
        "timeout": {"type": "number"},
        "description": {"type": "string"},
    },
    "required": ["command"],
}
CODEX_SHELL_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}},
        "workdir": {"type": "string"},
        "timeout_ms": {"type": "number"},
    },
    "required": ["command"],
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any) -> Any:
    async with http.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def chat(*messages: dict[str, Any], tools: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": list(messages)}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "Bash", "parameters": BASH_SCHEMA}}]
    return body


def received(path: str, body: Any) -> Received:
    return Received("POST", path, {}, {}, json.dumps(body).encode(), json=body)


# --------------------------------------------------------------------------- the hook


async def test_without_a_responder_the_default_answer_is_kept(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAI(keys=["k1"]) as fake:
        assert fake.responder is None
        answer = await post(
            http, fake.base_url + "/chat/completions", OPENAI, chat({"role": "user", "content": "hi"})
        )
    assert answer["choices"][0]["message"]["content"] == "echo: hi"


async def test_the_responder_answers_what_no_scripted_reply_matched(http: aiohttp.ClientSession) -> None:
    seen: list[Received] = []

    def responder(request: Received) -> Reply | None:
        seen.append(request)
        return Reply(tool_calls=[ToolCall("Bash", {"command": "ls"})])

    async with FakeOpenAI(keys=["k1"]) as fake:
        fake.responder = responder
        fake.script(Reply(text="scripted first"))
        first = await post(
            http, fake.base_url + "/chat/completions", OPENAI, chat({"role": "user", "content": "a"})
        )
        second = await post(
            http, fake.base_url + "/chat/completions", OPENAI, chat({"role": "user", "content": "b"})
        )
    assert first["choices"][0]["message"]["content"] == "scripted first"
    (call,) = second["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "Bash" and json.loads(call["function"]["arguments"]) == {
        "command": "ls"
    }
    assert second["choices"][0]["finish_reason"] == "tool_calls"
    # asked once, for the request the script did not answer, with its parsed body
    assert [r.json["messages"][0]["content"] for r in seen] == ["b"]
    assert fake.requests[1].reply == Reply(tool_calls=[ToolCall("Bash", {"command": "ls"})])


async def test_a_responder_returning_none_leaves_the_default_answer(http: aiohttp.ClientSession) -> None:
    async with FakeAnthropic(keys=["k1"]) as fake:
        fake.responder = lambda request: None
        answer = await post(
            http,
            fake.origin + "/v1/messages",
            ANTHROPIC,
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "hey"}],
            },
        )
    assert answer["content"] == [{"type": "text", "text": "echo: hey"}]


# --------------------------------------------------------------------------- AgentResponder over the wire


async def test_agent_round_trip_on_openai_chat(http: aiohttp.ClientSession) -> None:
    agent = AgentResponder(number=0x1234ABCD)
    user = {"role": "user", "content": "print the token"}
    async with FakeOpenAI(keys=["k1"]) as fake:
        fake.responder = agent
        first = await post(http, fake.base_url + "/chat/completions", OPENAI, chat(user))
        (call,) = first["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "Bash"
        assert json.loads(call["function"]["arguments"]) == {
            "command": "printf 'truck-%d\\n' 0x1234abcd",
            "description": "Print the truck token",
        }
        output = {"role": "tool", "tool_call_id": call["id"], "content": "truck-305441741\n"}
        second = await post(
            http,
            fake.base_url + "/chat/completions",
            OPENAI,
            chat(user, first["choices"][0]["message"], output),
        )
        assert fake.violations == []
    assert second["choices"][0]["message"]["content"] == "The command printed truck-305441741."
    assert [t.action for t in agent.turns] == ["call", "answer"]
    assert agent.results == ["truck-305441741\n"]


async def test_agent_round_trip_on_anthropic(http: aiohttp.ClientSession) -> None:
    agent = AgentResponder()
    tools = [{"name": "Bash", "input_schema": BASH_SCHEMA}]
    user = {"role": "user", "content": "print the token"}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "tools": tools}
    async with FakeAnthropic(keys=["k1"]) as fake:
        fake.responder = agent
        first = await post(http, fake.origin + "/v1/messages", ANTHROPIC, {**body, "messages": [user]})
        (use,) = [b for b in first["content"] if b["type"] == "tool_use"]
        assert use["name"] == "Bash" and use["input"]["command"] == agent.command
        result = {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": use["id"],
                    "content": [{"type": "text", "text": agent.token}],
                }
            ],
        }
        messages = [user, {"role": "assistant", "content": first["content"]}, result]
        second = await post(http, fake.origin + "/v1/messages", ANTHROPIC, {**body, "messages": messages})
        assert fake.violations == []
    assert second["content"] == [{"type": "text", "text": f"The command printed {agent.token}."}]


async def test_agent_round_trip_on_gemini(http: aiohttp.ClientSession) -> None:
    agent = AgentResponder()
    schema = {
        "type": "object",
        "properties": {"command": {"type": "string"}, "dir_path": {"type": "string"}},
        "required": ["command"],
    }
    tools = [
        {
            "functionDeclarations": [
                {"name": "read_file", "parametersJsonSchema": {"type": "object"}},
                {"name": "run_shell_command", "parametersJsonSchema": schema},
            ]
        }
    ]
    user = {"role": "user", "parts": [{"text": "print the token"}]}
    async with FakeGemini(keys=["k1"]) as fake:
        fake.responder = agent
        url = fake.base_url + "/models/gemini-2.5-flash:generateContent"
        first = await post(http, url, GEMINI, {"contents": [user], "tools": tools})
        parts = first["candidates"][0]["content"]["parts"]
        (call,) = [p["functionCall"] for p in parts if "functionCall" in p]
        assert call == {"name": "run_shell_command", "args": {"command": agent.command}}
        reply = {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "run_shell_command",
                        "response": {"output": f"Output: {agent.token}"},
                    }
                }
            ],
        }
        second = await post(
            http,
            url,
            GEMINI,
            {"contents": [user, first["candidates"][0]["content"], reply], "tools": tools},
        )
        assert fake.violations == []
    assert second["candidates"][0]["content"]["parts"][0]["text"] == f"The command printed {agent.token}."


# --------------------------------------------------------------------------- AgentResponder, request by request


def test_codex_shell_gets_an_argv_and_responses_items_are_read() -> None:
    agent = AgentResponder()
    tools = [
        {"type": "function", "name": "update_plan", "parameters": {"type": "object"}},
        {"type": "function", "name": "shell", "parameters": CODEX_SHELL_SCHEMA},
    ]
    first = agent(received("/v1/responses", {"model": "m", "input": "print it", "tools": tools}))
    assert first == Reply(tool_calls=[ToolCall("shell", {"command": ["bash", "-lc", agent.command]})])
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "print it"}]},
        {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": f"{agent.token}\n"},
    ]
    second = agent(received("/v1/responses", {"model": "m", "input": items, "tools": tools}))
    assert second == Reply(text=f"The command printed {agent.token}.")


def test_exec_command_takes_cmd() -> None:
    agent = AgentResponder()
    schema = {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
        "required": ["cmd"],
    }
    tools = [{"type": "function", "name": "exec_command", "parameters": schema}]
    reply = agent(received("/v1/responses", {"model": "m", "input": "x", "tools": tools}))
    assert reply == Reply(tool_calls=[ToolCall("exec_command", {"cmd": agent.command})])


def test_side_requests_get_text_or_the_smallest_json() -> None:
    agent = AgentResponder()
    plain = agent(received("/v1/messages", {"messages": [{"role": "user", "content": "title this"}]}))
    assert plain == Reply(text="OK")
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "next_speaker": {"type": "string", "enum": ["user", "model"]},
        },
        "required": ["reasoning", "next_speaker"],
    }
    body = {
        "contents": [],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    side = agent(received("/v1beta/models/m:generateContent", body))
    assert side is not None and json.loads(side.text or "") == {"reasoning": "", "next_speaker": "user"}
    assert [t.action for t in agent.turns] == ["side", "side"]
    # not a generation request: the fake's own default
    assert agent(received("/v1/embeddings", {"input": "x"})) is None


def test_a_result_without_the_token_is_quoted_as_is() -> None:
    agent = AgentResponder()
    body = chat(
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "c", "content": "permission denied"},
    )
    assert agent(received("/v1/chat/completions", body)) == Reply(
        text="The command printed permission denied."
    )


def test_smallest_values() -> None:
    assert smallest({"type": "array"}) == []
    assert smallest({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == 0
    assert smallest({"type": ["null", "boolean"]}) is False
    assert smallest({"properties": {"a": {"type": "STRING"}}}) == {"a": ""}


def test_dialects_by_path() -> None:
    assert dialect_of("/v1/chat/completions") == "openai"
    assert dialect_of("/v1/responses") == "responses"
    assert dialect_of("/v1/messages") == "anthropic"
    assert dialect_of("/v1beta/models/gemini-2.5-pro:streamGenerateContent") == "gemini"
    assert dialect_of("/v1/messages/count_tokens") is None


def test_the_command_prints_the_token_and_does_not_contain_it() -> None:
    agent = AgentResponder()
    assert agent.token not in agent.command and "$" not in agent.command
    out = subprocess.run(["sh", "-c", agent.command], capture_output=True, text=True, check=True).stdout
    assert out == agent.token + "\n"


async def test_agent_round_trip_on_openai_responses(http: aiohttp.ClientSession) -> None:
    agent = AgentResponder()
    tools = [
        {
            "type": "function",
            "name": "exec_command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        }
    ]
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "print the token"}]}
    async with FakeOpenAI(keys=["k1"]) as fake:
        fake.responder = agent
        url = fake.base_url + "/responses"
        first = await post(
            http, url, OPENAI, {"model": "gpt-5", "input": [user], "tools": tools, "store": False}
        )
        (call,) = first["output"]
        assert call["type"] == "function_call" and call["name"] == "exec_command"
        assert json.loads(call["arguments"]) == {"cmd": agent.command}
        output = {
            "type": "function_call_output",
            "call_id": call["call_id"],
            "output": f"Output:\n{agent.token}\n",
        }
        body = {"model": "gpt-5", "input": [user, call, output], "tools": tools, "store": False}
        second = await post(http, url, OPENAI, body)
        assert fake.violations == []
    (message,) = second["output"]
    assert message["content"][0]["text"] == f"The command printed {agent.token}."
