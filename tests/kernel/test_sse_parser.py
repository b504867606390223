"""The SSE parser: the events of a stream do not depend on how its bytes were split into reads.

The parser reads the whole events it has in hand a block at a time and the rest line by line;
both must give the same events, with the same ``frame`` bytes, for any split of the same stream.
"""

from __future__ import annotations

import os
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from truckllm.kit.sse import SSEEvent, SSEParser

EXAMPLES = int(os.environ.get("TRUCKLLM_PROPERTY_EXAMPLES", "300"))

PIECES = [
    b"data: ",
    b"data:",
    b"data",
    b"event: ",
    b"event:",
    b"id: 7",
    b"retry: 5",
    b": keep-alive",
    b":",
    b"x",
    b'{"a": 1}',
    b"[DONE]",
    b"\n",
    b"\n\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b" ",
    b"foo: bar",
    b"\xef\xbb\xbf",
    b"\xff",
    b"event: ping\ndata: p\n\n",
    b'data: {"z": 2}\n\n',
    b"event: e\r\ndata: q\r\n\r\n",
    b"data: w\r\n\r\n",
    b"data: m\ndata: n\n\n",
]
"""Field lines, comments, line ends of every kind, text that is not SSE, and whole events."""

streams = st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join)


def parse(chunks: list[bytes]) -> tuple[list[SSEEvent], bool]:
    """The events of ``chunks`` fed one after the other, then closed; whether part was pending."""
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    pending = parser.pending
    return [*events, *parser.close()], pending


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (positions, any order, repeats allowed)."""
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(streams, st.lists(st.integers(min_value=0), max_size=8))
def test_any_split_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    """Fed whole, fed in arbitrary pieces, or fed a byte at a time: the same events."""
    whole = parse([data])
    assert parse(split(data, cuts)) == whole
    assert parse([data[i : i + 1] for i in range(len(data))]) == whole


def test_the_usual_events_by_block_and_by_line() -> None:
    """Anthropic-style named events and OpenAI-style data events, LF and CRLF, are the same
    events whether they arrive whole or split inside a line."""
    stream = (
        b"event: message_start\ndata: {}\n\n"
        b": ping\n\n"
        b'data: {"a":1}\n\n'
        b"id: 3\ndata: two\ndata: lines\n\n"
        b"data: [DONE]\r\n\r\n"
    )
    expected = [
        SSEEvent("message_start", b"{}", False, b"event: message_start\ndata: {}\n\n"),
        SSEEvent(None, b'{"a":1}', False, b'data: {"a":1}\n\n'),
        SSEEvent(None, b"two\nlines", False, b"id: 3\ndata: two\ndata: lines\n\n"),
        SSEEvent(None, b"[DONE]", False, b"data: [DONE]\r\n\r\n"),
    ]
    assert parse([stream]) == (expected, False)
    assert parse([stream[:40], stream[40:]]) == (expected, False)


def test_text_that_is_not_sse_is_a_raw_event_as_soon_as_a_field_follows() -> None:
    """A line that is no SSE field (an error object from a proxy) is its own ``raw`` event,
    returned by the read that brought the field line after it, before any blank line."""
    parser = SSEParser()
    assert parser.feed(b'data: a\n\n{"error": 1}\ndata: b\n') == [
        SSEEvent(None, b"a", False, b"data: a\n\n"),
        SSEEvent(None, b'{"error": 1}', True, b'{"error": 1}\n'),
    ]
    assert parser.pending
    assert parser.feed(b"\n") == [SSEEvent(None, b"b", False, b"data: b\n\n")]
    assert not parser.pending


def test_a_cr_at_the_end_of_a_read_waits_for_its_lf() -> None:
    """A read ending in CR may end in half a CRLF: the line is not read until the next byte."""
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent(None, b"a", False, b"data: a\r\n\r\n")]
