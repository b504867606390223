"""Where the text is in a request, an answer or a stream event of any dialect, and writing it back.

A guardrail reads plain texts (:class:`~truckllm.types.GuardText`); the kernel finds them in the
decoded JSON body, remembers each one's place (a path of keys and indexes), and on ``modify``
writes each replacement back at the same place. What each dialect's bodies look like is one
table per dialect name (:data:`REQUEST`, :data:`ANSWER`, :data:`EVENT`); a dialect it does not
know (a third-party dialect plugin) falls back to :func:`generic`: every string whose nearest key
is one of :data:`GENERIC_KEYS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANSWER",
    "EVENT",
    "GENERIC_KEYS",
    "REQUEST",
    "Found",
    "Path",
    "answer_texts",
    "event_texts",
    "generic",
    "request_texts",
    "request_tools",
    "rewrite",
]

Path = tuple[str | int, ...]
"""Where a value is in a decoded JSON body: keys of objects and indexes of arrays."""

GENERIC_KEYS = frozenset(
    {"content", "text", "input", "instructions", "prompt", "output", "system", "arguments"}
)
"""The keys under which the generic fallback finds text."""


@dataclass(frozen=True, slots=True)
class Found:
    """One text and its place.

    :ivar role: ``system``, ``user``, ``assistant``, ``tool`` or ``other``.
    :ivar path: where it is in the body.
    :ivar text: the text.
    :ivar channel: in a stream event: which running text it continues (a choice, a content block,
        an output part); texts of one channel concatenate across events.
    :ivar full: in a stream event: the channel's whole text so far, repeated (Responses'
        ``*.done`` and ``response.completed`` events), not a new piece of it.
    """

    role: str
    path: Path
    text: str
    channel: tuple[Any, ...] = ()
    full: bool = False


Walker = Callable[[Any], Iterator[Found]]


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _items(node: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(node) if isinstance(node, list) else iter(())


def _strings(node: Any, path: Path, role: str, channel: tuple[Any, ...] = ()) -> Iterator[Found]:
    """Every string value under ``node`` (tool arguments given as objects)."""
    if isinstance(node, str):
        yield Found(role, path, node, channel)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key), role, channel)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i), role, channel)


def _text_or_parts(node: Any, path: Path, role: str, keys: tuple[str, ...] = ("text",)) -> Iterator[Found]:
    """A string, or a list of parts each with its text under one of ``keys``."""
    if isinstance(node, str):
        yield Found(role, path, node)
        return
    for i, part in _items(node):
        if isinstance(part, str):
            yield Found(role, (*path, i), part)
            continue
        for key in keys:
            text = _get(part, key)
            if isinstance(text, str):
                yield Found(role, (*path, i, key), text)


_OPENAI_ROLES = {"developer": "system", "function": "tool"}


def _openai_role(role: Any) -> str:
    if not isinstance(role, str):
        return "other"
    return _OPENAI_ROLES.get(role, role if role in ("system", "user", "assistant", "tool") else "other")


def _openai_request(body: Any) -> Iterator[Found]:
    for i, message in _items(_get(body, "messages")):
        role = _openai_role(_get(message, "role"))
        yield from _text_or_parts(_get(message, "content"), ("messages", i, "content"), role)
        for j, call in _items(_get(message, "tool_calls")):
            arguments = _get(_get(call, "function"), "arguments")
            if isinstance(arguments, str):
                yield Found("tool", ("messages", i, "tool_calls", j, "function", "arguments"), arguments)
    yield from _text_or_parts(_get(body, "prompt"), ("prompt",), "user", ())
    yield from _text_or_parts(_get(body, "input"), ("input",), "user", ())


def _openai_answer(body: Any) -> Iterator[Found]:
    for i, choice in _items(_get(body, "choices")):
        message = _get(choice, "message")
        yield from _text_or_parts(_get(message, "content"), ("choices", i, "message", "content"), "assistant")
        for j, call in _items(_get(message, "tool_calls")):
            arguments = _get(_get(call, "function"), "arguments")
            if isinstance(arguments, str):
                path: Path = ("choices", i, "message", "tool_calls", j, "function", "arguments")
                yield Found("tool", path, arguments)
        text = _get(choice, "text")
        if isinstance(text, str):
            yield Found("assistant", ("choices", i, "text"), text)


def _openai_event(event: Any) -> Iterator[Found]:
    for i, choice in _items(_get(event, "choices")):
        index = _get(choice, "index")
        index = index if isinstance(index, int) else i
        delta = _get(choice, "delta")
        content = _get(delta, "content")
        if isinstance(content, str):
            yield Found("assistant", ("choices", i, "delta", "content"), content, (index, "content"))
        for j, call in _items(_get(delta, "tool_calls")):
            arguments = _get(_get(call, "function"), "arguments")
            if isinstance(arguments, str):
                tool = _get(call, "index")
                path: Path = ("choices", i, "delta", "tool_calls", j, "function", "arguments")
                yield Found("tool", path, arguments, (index, "tool", tool if isinstance(tool, int) else j))
        text = _get(choice, "text")
        if isinstance(text, str):
            yield Found("assistant", ("choices", i, "text"), text, (index, "text"))


def _anthropic_blocks(node: Any, path: Path, role: str) -> Iterator[Found]:
    if isinstance(node, str):
        yield Found(role, path, node)
        return
    for i, block in _items(node):
        kind = _get(block, "type")
        if kind == "tool_result":
            yield from _anthropic_blocks(_get(block, "content"), (*path, i, "content"), "tool")
        elif kind == "tool_use":
            yield from _strings(_get(block, "input"), (*path, i, "input"), "tool")
        else:
            text = _get(block, "text")
            if isinstance(text, str):
                yield Found(role, (*path, i, "text"), text)


def _anthropic_request(body: Any) -> Iterator[Found]:
    yield from _anthropic_blocks(_get(body, "system"), ("system",), "system")
    for i, message in _items(_get(body, "messages")):
        role = _get(message, "role")
        yield from _anthropic_blocks(
            _get(message, "content"), ("messages", i, "content"), role if role == "assistant" else "user"
        )


def _anthropic_answer(body: Any) -> Iterator[Found]:
    yield from _anthropic_blocks(_get(body, "content"), ("content",), "assistant")


def _anthropic_event(event: Any) -> Iterator[Found]:
    index = _get(event, "index")
    delta = _get(event, "delta")
    for key in ("text", "partial_json", "thinking"):
        text = _get(delta, key)
        if isinstance(text, str):
            yield Found("tool" if key == "partial_json" else "assistant", ("delta", key), text, (index,))
    block = _get(event, "content_block")
    text = _get(block, "text")
    if isinstance(text, str):
        yield Found("assistant", ("content_block", "text"), text, (index,))


def _gemini_parts(node: Any, path: Path, role: str, channel: tuple[Any, ...] = ()) -> Iterator[Found]:
    for i, part in _items(_get(node, "parts")):
        text = _get(part, "text")
        if isinstance(text, str):
            yield Found(role, (*path, "parts", i, "text"), text, channel)
        for key in ("functionCall", "functionResponse"):
            value = _get(part, key)
            field = "args" if key == "functionCall" else "response"
            if isinstance(value, dict):
                where = (*path, "parts", i, key, field)
                yield from _strings(value.get(field), where, "tool", (*channel, key, i) if channel else ())


def _gemini_request(body: Any) -> Iterator[Found]:
    yield from _gemini_parts(_get(body, "systemInstruction"), ("systemInstruction",), "system")
    for i, content in _items(_get(body, "contents")):
        role = "assistant" if _get(content, "role") == "model" else "user"
        yield from _gemini_parts(content, ("contents", i), role)
    yield from _gemini_parts(_get(body, "content"), ("content",), "user")  # embedContent
    for i, request in _items(_get(body, "requests")):  # batchEmbedContents
        yield from _gemini_parts(_get(request, "content"), ("requests", i, "content"), "user")


def _gemini_answer(body: Any) -> Iterator[Found]:
    for i, candidate in _items(_get(body, "candidates")):
        index = _get(candidate, "index")
        channel = (index if isinstance(index, int) else i,)
        yield from _gemini_parts(
            _get(candidate, "content"), ("candidates", i, "content"), "assistant", channel
        )


def _responses_content(
    node: Any, path: Path, role: str, channel: tuple[Any, ...], full: bool
) -> Iterator[Found]:
    """One output or input item's text: its ``content[].text``, ``output`` or ``arguments``."""
    content = _get(node, "content")
    if isinstance(content, str):
        yield Found(role, (*path, "content"), content, (*channel, 0), full)
    for j, part in _items(content):
        text = _get(part, "text")
        if isinstance(text, str):
            yield Found(role, (*path, "content", j, "text"), text, (*channel, j), full)
    for i, part in _items(_get(node, "summary")):
        text = _get(part, "text")
        if isinstance(text, str):
            yield Found(role, (*path, "summary", i, "text"), text, (*channel, "summary", i), full)
    arguments = _get(node, "arguments")
    if isinstance(arguments, str):
        yield Found("tool", (*path, "arguments"), arguments, (*channel, "arguments"), full)
    output = _get(node, "output")
    if isinstance(output, str):
        yield Found("tool", (*path, "output"), output, (*channel, "output"), full)
    elif isinstance(output, list):
        yield from (f for f in _text_or_parts(output, (*path, "output"), "tool"))


def _responses_request(body: Any) -> Iterator[Found]:
    instructions = _get(body, "instructions")
    if isinstance(instructions, str):
        yield Found("system", ("instructions",), instructions)
    items = _get(body, "input")
    if isinstance(items, str):
        yield Found("user", ("input",), items)
    for i, item in _items(items):
        role = _openai_role(_get(item, "role") or "user")
        yield from _responses_content(item, ("input", i), role, (), False)


def _responses_answer(body: Any, full: bool = False, path: Path = ()) -> Iterator[Found]:
    for i, item in _items(_get(body, "output")):
        yield from _responses_content(item, (*path, "output", i), "assistant", (i,), full)
    text = _get(body, "output_text")
    if isinstance(text, str):
        yield Found("assistant", (*path, "output_text"), text, ("output_text",), full)


def _responses_event(event: Any) -> Iterator[Found]:
    kind = _get(event, "type")
    out = _get(event, "output_index")
    part = _get(event, "content_index")
    if not isinstance(kind, str):
        return
    if kind.endswith(".delta"):
        delta = _get(event, "delta")
        if isinstance(delta, str):
            if "function_call_arguments" in kind:
                yield Found("tool", ("delta",), delta, (out, "arguments"))
            elif "summary" in kind:
                yield Found("assistant", ("delta",), delta, (out, "summary", _get(event, "summary_index")))
            else:
                yield Found("assistant", ("delta",), delta, (out, part))
        return
    if kind in ("response.output_text.done", "response.refusal.done"):
        for key in ("text", "refusal"):
            text = _get(event, key)
            if isinstance(text, str):
                yield Found("assistant", (key,), text, (out, part), True)
    elif kind == "response.function_call_arguments.done":
        text = _get(event, "arguments")
        if isinstance(text, str):
            yield Found("tool", ("arguments",), text, (out, "arguments"), True)
    elif kind in ("response.content_part.added", "response.content_part.done"):
        text = _get(_get(event, "part"), "text")
        if isinstance(text, str):
            yield Found("assistant", ("part", "text"), text, (out, part), True)
    elif kind.startswith("response.reasoning_summary_part."):
        text = _get(_get(event, "part"), "text")
        if isinstance(text, str):
            channel = (out, "summary", _get(event, "summary_index"))
            yield Found("assistant", ("part", "text"), text, channel, True)
    elif kind == "response.reasoning_summary_text.done":
        text = _get(event, "text")
        if isinstance(text, str):
            yield Found("assistant", ("text",), text, (out, "summary", _get(event, "summary_index")), True)
    elif kind in ("response.output_item.added", "response.output_item.done"):
        yield from _responses_content(_get(event, "item"), ("item",), "assistant", (out,), True)
    else:  # response.created / in_progress / completed / incomplete / failed: the whole response
        response = _get(event, "response")
        if isinstance(response, dict):
            yield from _responses_answer(response, True, ("response",))


def _nearest(node: Any, path: Path, key: str | None, role: str) -> Iterator[Found]:
    if isinstance(node, str):
        if key in GENERIC_KEYS:
            yield Found(role, path, node)
    elif isinstance(node, dict):
        own = node.get("role")
        role = _openai_role(own) if isinstance(own, str) else role
        for k, value in node.items():
            sub_role = "system" if k in ("system", "instructions") else role
            yield from _nearest(value, (*path, k), k, sub_role)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nearest(value, (*path, i), key, role)


def generic(body: Any) -> Iterator[Found]:
    """Every string whose nearest key is one of :data:`GENERIC_KEYS` (a list's items count as
    under its key), with the role of the nearest enclosing ``role`` member (else ``other``)."""
    return _nearest(body, (), None, "other")


def _generic_event(event: Any) -> Iterator[Found]:
    for found in generic(event):
        yield Found(found.role, found.path, found.text, found.path)


REQUEST: dict[str, Walker] = {
    "openai": _openai_request,
    "anthropic": _anthropic_request,
    "gemini": _gemini_request,
    "responses": _responses_request,
}
"""Per dialect: the texts of a request body."""
ANSWER: dict[str, Walker] = {
    "openai": _openai_answer,
    "anthropic": _anthropic_answer,
    "gemini": _gemini_answer,
    "responses": _responses_answer,
}
"""Per dialect: the texts of a whole answer body."""
EVENT: dict[str, Walker] = {
    "openai": _openai_event,
    "anthropic": _anthropic_event,
    "gemini": _gemini_answer,
    "responses": _responses_event,
}
"""Per dialect: the texts of one stream event (a ``data:`` payload)."""


def request_texts(dialect: str, body: Any) -> list[Found]:
    """The texts of a request body in ``dialect``, in order."""
    return list(REQUEST.get(dialect, generic)(body))


def answer_texts(dialect: str, body: Any) -> list[Found]:
    """The texts of a whole answer body in ``dialect``, in order."""
    return list(ANSWER.get(dialect, generic)(body))


def event_texts(dialect: str, event: Any) -> list[Found]:
    """The texts of one stream event in ``dialect``, each with its channel."""
    return list(EVENT.get(dialect, _generic_event)(event))


def request_tools(dialect: str, body: Any) -> tuple[str, ...]:
    """The names of the tools a request offers (OpenAI, Responses, Anthropic and Gemini forms)."""
    names: list[str] = []
    for tool in _get(body, "tools") or () if isinstance(_get(body, "tools"), list) else ():
        for name in (
            _get(_get(tool, "function"), "name"),
            _get(tool, "name"),
            *(_get(d, "name") for d in _get(tool, "functionDeclarations") or () if isinstance(d, dict)),
        ):
            if isinstance(name, str):
                names.append(name)
    for function in _get(body, "functions") or () if isinstance(_get(body, "functions"), list) else ():
        name = _get(function, "name")
        if isinstance(name, str):
            names.append(name)
    return tuple(names)


def rewrite(body: Any, found: Sequence[Found], texts: Sequence[str]) -> Any:
    """Write ``texts[i]`` at ``found[i].path`` in ``body`` (in place); returns ``body``.

    A path that is not there (or whose parent is not a container) is skipped; the root itself is
    replaced when a path is empty.
    """
    for place, text in zip(found, texts, strict=True):
        if not place.path:
            body = text
            continue
        node = body
        for step in place.path[:-1]:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        last = place.path[-1]
        in_dict = isinstance(node, dict) and isinstance(last, str) and last in node
        in_list = isinstance(node, list) and isinstance(last, int) and -len(node) <= last < len(node)
        if in_dict or in_list:
            node[last] = text
    return body
