"""A scripted model for real coding agents: it asks for one shell command, then quotes its output.

Set an :class:`AgentResponder` as a fake's :attr:`~truckllm_testing.fakes.base.FakeUpstream.responder`
and point a coding agent (Claude Code, Gemini CLI, Codex, an Agents SDK agent) at the gateway::

    agent = AgentResponder()
    fake.responder = agent
    ...  # run the agent
    assert agent.token in final_text and agent.token in "".join(agent.results)

For every generation request no scripted reply matched, the responder reads the request in the
fake's wire format (OpenAI chat, OpenAI Responses, Anthropic Messages or Gemini):

- the request asks for JSON (a side question: Gemini CLI's next-speaker check): the smallest
  value its schema allows;
- a shell-like tool is offered (:data:`SHELL_TOOLS`) and the conversation has no tool result yet:
  call it with :attr:`AgentResponder.command`, its arguments shaped as the tool's schema wants
  (a string, or an argv list for Codex's ``shell``);
- a tool result is present: answer text quoting the first ``truck-<digits>`` found in it (or the
  start of the result when there is none);
- anything else (title generation, quota checks, summaries): ``OK``.

The command prints :attr:`AgentResponder.token` from a hexadecimal number
(``printf 'truck-%d\\n' 0x5f5e100``), so the token appears nowhere in the request the agent
received: text that carries it proves the command ran and its output came back.  The command has
no ``$``, pipe or quote-within-quote, which the agents' own command checks would refuse.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import Received, Reply, ToolCall

__all__ = ["SHELL_TOOLS", "AgentResponder", "Turn", "dialect_of", "smallest"]

SHELL_TOOLS: tuple[str, ...] = (
    "Bash",
    "run_shell_command",
    "shell",
    "shell_command",
    "exec_command",
    "run_shell",
    "bash",
)
"""Names of the shell tools the agents offer, in order of preference."""

_TOKEN = re.compile(r"truck-\d+")


@dataclass
class Turn:
    """What the responder did with one request."""

    path: str
    """The request's URL path."""
    model: str | None
    """The model the request named."""
    action: str
    """``call`` (asked for the shell tool), ``answer`` (quoted a tool result) or ``side`` (anything else)."""
    tool: str | None = None
    """The tool called (``call``)."""
    result: str | None = None
    """The tool result read (``answer``)."""


@dataclass
class _Request:
    """The parts of a request the responder reads, whatever its dialect."""

    tools: dict[str, Any] = field(default_factory=dict)
    """Function tools offered: name -> JSON schema of the arguments."""
    results: list[str] = field(default_factory=list)
    """Tool results in the conversation, as text."""
    schema: Any = None
    """The response JSON schema asked for, ``{}`` for plain JSON mode, ``None`` for text."""


def dialect_of(path: str) -> str | None:
    """The wire format of a generation request, from its URL path (``None``: not one)."""
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith(":generateContent") or path.endswith(":streamGenerateContent"):
        return "gemini"
    return None


class AgentResponder:
    """Plays a coding agent's model: one shell call, then an answer quoting its output.

    :param number: the number the command prints (random when not given).
    :param shells: tool names it may call, in order of preference.
    """

    def __init__(self, number: int | None = None, shells: Sequence[str] = SHELL_TOOLS) -> None:
        number = number if number is not None else 10**8 + secrets.randbelow(9 * 10**8)
        self.command = f"printf 'truck-%d\\n' {number:#x}"
        """The shell command asked for: it prints ``number``, written in hexadecimal, in decimal."""
        self.token = f"truck-{number}"
        """What the command prints; nothing sent to the agent contains it before the command runs."""
        self.shells = tuple(shells)
        """Tool names it may call."""
        self.turns: list[Turn] = []
        """What it did with each request, in order."""
        self._lock = threading.Lock()

    @property
    def results(self) -> list[str]:
        """Every tool result it read (one per ``answer`` turn)."""
        return [t.result for t in self.turns if t.result is not None]

    def __call__(self, received: Received) -> Reply | None:
        """The reply to ``received``, or ``None`` when it is not a generation request."""
        dialect = dialect_of(received.path)
        if dialect is None or not isinstance(received.json, dict):
            return None
        request = _READERS[dialect](received.json)
        shell = next((name for name in self.shells if name in request.tools), None)
        if request.schema is not None:
            self._note(Turn(received.path, received.model, "side"))
            return Reply(text=json.dumps(smallest(request.schema)))
        if request.results:
            result = request.results[-1]
            found = _TOKEN.search(result)
            quoted = found.group(0) if found else result.strip()[:300]
            self._note(Turn(received.path, received.model, "answer", result=result))
            return Reply(text=f"The command printed {quoted}.")
        if shell is not None:
            self._note(Turn(received.path, received.model, "call", tool=shell))
            return Reply(tool_calls=[ToolCall(shell, self.arguments(request.tools[shell]))])
        self._note(Turn(received.path, received.model, "side"))
        return Reply(text="OK")

    def arguments(self, schema: Any) -> dict[str, Any]:
        """Arguments for a shell tool with this JSON schema: the command where it belongs
        (``command``/``cmd``, a string or an argv list), every other required string filled."""
        props: Mapping[str, Any] = schema.get("properties", {}) if isinstance(schema, dict) else {}
        required = schema.get("required", []) if isinstance(schema, dict) else []
        key = next((k for k in ("command", "cmd") if k in props), "command")
        wanted = props.get(key, {})
        argv = isinstance(wanted, dict) and _type(wanted) == "array"
        args: dict[str, Any] = {key: ["bash", "-lc", self.command] if argv else self.command}
        for name in (*required, "description"):
            spec = props.get(name)
            if name not in args and isinstance(spec, dict) and _type(spec) == "string":
                args[name] = "Print the truck token"
        return args

    def _note(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn)


def _type(schema: Mapping[str, Any]) -> str | None:
    """A schema's type, upper- or lower-case (Gemini writes ``STRING``); the first of a list."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind.lower() if isinstance(kind, str) else None


def smallest(schema: Any) -> Any:
    """The smallest value a JSON schema accepts, good enough for an agent's side question."""
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    for combo in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(combo), list) and schema[combo]:
            return smallest(schema[combo][0])
    kind = _type(schema)
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: smallest(props.get(name)) for name in schema.get("required", list(props))}
    return {"array": [], "string": "", "integer": 0, "number": 0, "boolean": False, "null": None}.get(
        kind or "", {}
    )


# --------------------------------------------------------------------------- readers


def _text(content: Any) -> str:
    """The text of a tool result in any dialect: a string, text parts, or JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content"):
            if isinstance(content.get(key), str | list):
                return _text(content[key])
        return json.dumps(content)
    return "" if content is None else json.dumps(content)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _openai(body: dict[str, Any]) -> _Request:
    request = _Request()
    for tool in _dicts(body.get("tools")):
        function = tool.get("function")
        if tool.get("type") == "function" and isinstance(function, dict) and "name" in function:
            request.tools[function["name"]] = function.get("parameters") or {}
    for message in _dicts(body.get("messages")):
        if message.get("role") == "tool":
            request.results.append(_text(message.get("content")))
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        request.schema = (fmt.get("json_schema") or {}).get("schema") or {}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        request.schema = {}
    return request


def _responses(body: dict[str, Any]) -> _Request:
    request = _Request()
    for tool in _dicts(body.get("tools")):
        if tool.get("type") == "function" and "name" in tool:
            request.tools[tool["name"]] = tool.get("parameters") or {}
    for item in _dicts(body.get("input")):
        if item.get("type") in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            request.results.append(_text(item.get("output")))
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        request.schema = fmt.get("schema") or {}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        request.schema = {}
    return request


def _anthropic(body: dict[str, Any]) -> _Request:
    request = _Request()
    for tool in _dicts(body.get("tools")):
        if "input_schema" in tool and "name" in tool:
            request.tools[tool["name"]] = tool["input_schema"]
    for message in _dicts(body.get("messages")):
        for block in _dicts(message.get("content")):
            if block.get("type") == "tool_result":
                request.results.append(_text(block.get("content")))
    fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        request.schema = fmt.get("schema") or {}
    return request


def _gemini(body: dict[str, Any]) -> _Request:
    request = _Request()
    for tool in _dicts(body.get("tools")):
        for decl in _dicts(tool.get("functionDeclarations") or tool.get("function_declarations")):
            if "name" in decl:
                request.tools[decl["name"]] = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
    for content in _dicts(body.get("contents")):
        for part in _dicts(content.get("parts")):
            response = part.get("functionResponse") or part.get("function_response")
            if isinstance(response, dict):
                request.results.append(_text(response.get("response")))
    config = body.get("generationConfig")
    if isinstance(config, dict) and config.get("responseMimeType") == "application/json":
        request.schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    return request


_READERS = {"openai": _openai, "responses": _responses, "anthropic": _anthropic, "gemini": _gemini}
