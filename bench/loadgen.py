"""An HTTP/1.1 load generator on raw asyncio sockets (uvloop): open loop, closed loop, held streams.

Open loop (:func:`open_loop`) sends request *i* at ``start + i / rate`` whatever happened to the
requests before it, on a pool of keep-alive connections that grows on demand (up to
``max_conns``; past that, requests wait in a queue). Latency is measured from the *intended* send
time, so a slow server cannot hide its queueing by slowing the generator down (no coordinated
omission); how late the generator itself sent each request is kept too (``send_lag``).

Closed loop (:func:`closed_loop`) keeps ``concurrency`` connections busy back to back: the
throughput figure, and the latency at concurrency 1.

:func:`hold_streams` opens many streams at a fixed pace and holds them to their end.

Streams: the body is de-chunked and split into SSE events as it arrives; each event's arrival time
is kept with the ``t<ns>`` stamp the benchmark upstream writes into each content event
(``time.monotonic_ns()``, comparable across processes), which gives time to first token and each
event's transit time. An event whose first stamp is not newer than the last one counted repeats
text already counted (the Responses API's ``output_text.done`` and ``response.completed`` carry
the whole text) and is not a content event. Every address must be loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

__all__ = [
    "HoldResult",
    "LoadClient",
    "RunResult",
    "Sample",
    "Target",
    "closed_loop",
    "hold_streams",
    "open_loop",
    "request_once",
]

now = time.monotonic
_SEP = re.compile(rb"\r?\n\r?\n")
_STAMP = re.compile(rb"\bt(\d{6,}) ")


def check_loopback(host: str) -> None:
    """Refuse any address outside 127.0.0.0/8 and ::1: the benchmark never leaves the machine."""
    if host == "localhost":
        return
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the benchmark only sends traffic to loopback, not to {host}")


@dataclass(slots=True)
class Target:
    """One kind of request: where it goes and what it sends."""

    name: str
    port: int
    path: str
    body: bytes
    stream: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    host: str = "127.0.0.1"

    def payload(self) -> bytes:
        """The request's bytes (keep-alive, ``content-length`` body)."""
        head = [
            f"POST {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            "content-type: application/json",
            f"accept: {'text/event-stream' if self.stream else 'application/json'}",
            f"content-length: {len(self.body)}",
        ]
        head += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(slots=True)
class Sample:
    """One request's timeline (``time.monotonic()`` seconds) and outcome."""

    intended: float
    target: int = 0
    sent: float = 0.0
    first: float = 0.0  # response headers
    end: float = 0.0
    status: int = 0
    error: str | None = None
    ttft: float = 0.0  # arrival of the first stamped (content) event
    events: list[tuple[float, float]] | None = None  # (arrival, stamp) per stamped event

    @property
    def ok(self) -> bool:
        """A 200 answer read to its end."""
        return self.error is None and self.status == 200


class _Conn(asyncio.Protocol):
    """One keep-alive connection with an incremental response parser."""

    __slots__ = (
        "_cbuf",
        "_chunk_left",
        "_etail",
        "_remaining",
        "_state",
        "buf",
        "client",
        "keep_alive",
        "sample",
        "transport",
    )

    def __init__(self, client: LoadClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.sample: Sample | None = None
        self.buf = b""
        self._state = 0  # 0 head, 1 content-length body, 2 chunked body, 3 body to close
        self._remaining = 0
        self._cbuf = b""
        self._chunk_left = -1  # -1: expecting a size line
        self._etail = b""
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        sample = self.sample
        if sample is not None:
            self.sample = None
            if self._state == 3 and sample.first:  # body delimited by the close
                sample.end = now()
            else:
                sample.error = f"connection lost: {exc}" if exc else "connection closed by server"
                sample.end = now()
            self.client._finished(self, sample, alive=False)
        else:
            self.client._lost(self)

    def start(self, sample: Sample, payload: bytes) -> None:
        """Send one request on this (idle) connection."""
        assert self.transport is not None
        self.sample = sample
        self.buf = b""
        self._state = 0
        self._cbuf = b""
        self._chunk_left = -1
        self._etail = b""
        sample.sent = now()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        sample = self.sample
        if sample is None:
            return
        t = now()
        if self._state == 0:
            buf = self.buf + data if self.buf else data
            idx = buf.find(b"\r\n\r\n")
            if idx < 0:
                self.buf = buf
                return
            head = buf[:idx].lower()
            rest = buf[idx + 4 :]
            self.buf = b""
            sample.first = t
            try:
                sample.status = int(head[9:12])
            except ValueError:
                sample.status = 0
            self.keep_alive = b"\r\nconnection: close" not in head
            pos = head.find(b"\r\ncontent-length:")
            if pos >= 0:
                end = head.find(b"\r\n", pos + 2)
                self._remaining = int(head[pos + 17 : end if end >= 0 else len(head)])
                self._state = 1
            elif b"\r\ntransfer-encoding: chunked" in head:
                self._state = 2
            else:
                self._state = 3
            data = rest
        if self._state == 1:
            if sample.events is not None and data:
                self._events(data, t, sample)
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._complete(sample, t)
        elif self._state == 2:
            self._chunked(data, t, sample)
        elif sample.events is not None and data:
            self._events(data, t, sample)

    def _chunked(self, data: bytes, t: float, sample: Sample) -> None:
        # _chunk_left: -1 size line, -2 after the last chunk, -4 CRLF after data, > 0 data bytes left
        buf = self._cbuf + data if self._cbuf else data
        pos = 0
        size = len(buf)
        events = sample.events is not None
        state = self._chunk_left
        while True:
            if state == -1:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                n = int(buf[pos:nl].split(b";", 1)[0], 16)
                pos = nl + 2
                state = n if n > 0 else -2
            elif state == -2:
                if size - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n" and buf.find(b"\r\n\r\n", pos) < 0:
                    break  # trailers not complete yet
                self._cbuf = b""
                self._chunk_left = -1
                self._complete(sample, t)
                return
            elif state == -4:
                if size - pos < 2:
                    break
                pos += 2
                state = -1
            else:
                if pos >= size:
                    break
                take = min(state, size - pos)
                if events:
                    self._events(buf[pos : pos + take], t, sample)
                pos += take
                state -= take
                if state == 0:
                    state = -4
        self._chunk_left = state
        self._cbuf = buf[pos:]

    def _events(self, payload: bytes, t: float, sample: Sample) -> None:
        text = self._etail + payload if self._etail else payload
        parts = _SEP.split(text)
        self._etail = parts.pop()
        events = sample.events
        assert events is not None
        for part in parts:
            match = _STAMP.search(part)
            if match is not None:
                stamp = int(match.group(1)) * 1e-9
                if events and stamp <= events[-1][1]:
                    continue  # a closing event repeating the text (Responses' *.done): not new content
                if not sample.ttft:
                    sample.ttft = t
                events.append((t, stamp))

    def _complete(self, sample: Sample, t: float) -> None:
        sample.end = t
        self.sample = None
        self._state = 0
        alive = self.keep_alive
        if not alive and self.transport is not None:
            self.transport.close()
        self.client._finished(self, sample, alive=alive)


class LoadClient:
    """A pool of keep-alive connections to one ``host:port``; requests beyond the pool wait."""

    def __init__(
        self,
        host: str,
        port: int,
        max_conns: int,
        on_done: Callable[[Sample], None] | None = None,
    ) -> None:
        check_loopback(host)
        self.host = host
        self.port = port
        self.max_conns = max_conns
        self.on_done = on_done
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.connecting = 0
        self.queue: deque[tuple[Sample, bytes]] = deque()
        self.in_flight = 0
        self.done: list[Sample] = []
        self.connect_errors = 0
        self._drained: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def preconnect(self, count: int) -> None:
        """Open ``count`` idle connections ahead of a timed run."""
        loop = asyncio.get_running_loop()
        for _ in range(min(count, self.max_conns)):
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
            self.conns.add(conn)
            self.idle.append(conn)

    def submit(self, sample: Sample, payload: bytes) -> None:
        """Send now on an idle connection, or open one, or queue."""
        self.in_flight += 1
        if self.idle:
            self.idle.pop().start(sample, payload)
            return
        self.queue.append((sample, payload))
        if len(self.conns) + self.connecting < self.max_conns:
            self.connecting += 1
            task = asyncio.ensure_future(self._connect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError as exc:
            self.connecting -= 1
            self.connect_errors += 1
            if self.queue:
                sample, _ = self.queue.popleft()
                sample.error = f"connect: {exc}"
                sample.end = now()
                self._record(sample)
            return
        self.connecting -= 1
        self.conns.add(conn)
        self._free(conn)

    def _free(self, conn: _Conn) -> None:
        if self.queue:
            sample, payload = self.queue.popleft()
            conn.start(sample, payload)
        else:
            self.idle.append(conn)

    def _finished(self, conn: _Conn, sample: Sample, alive: bool) -> None:
        if alive:
            self._free(conn)
        else:
            self.conns.discard(conn)
            if self.queue and len(self.conns) + self.connecting < self.max_conns:
                self.connecting += 1
                task = asyncio.ensure_future(self._connect())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._record(sample)

    def _lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def _record(self, sample: Sample) -> None:
        self.in_flight -= 1
        self.done.append(sample)
        if self.on_done is not None:
            self.on_done(sample)
        if self.in_flight == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self, within: float) -> int:
        """Wait until nothing is in flight (at most ``within`` s); return what is still in flight."""
        if self.in_flight:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._drained), within)
        return self.in_flight

    def close(self) -> list[Sample]:
        """Close every connection; return the requests still in flight, left as they were."""
        cut = []
        for conn in list(self.conns):
            if conn.sample is not None:
                cut.append(conn.sample)
                conn.sample = None
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
        self.conns.clear()
        self.idle.clear()
        return cut


@dataclass
class RunResult:
    """The measured samples of one run and what the generator saw."""

    samples: list[Sample]
    duration: float
    offered_rate: float | None = None
    concurrency: int | None = None
    unfinished: int = 0
    connections: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> list[Sample]:
        """Samples that got a 200 and a whole body."""
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        """Samples that failed (status, connection, timeout), unfinished ones included."""
        return sum(1 for s in self.samples if not s.ok) + self.unfinished


def _payloads(targets: Sequence[Target]) -> list[bytes]:
    for target in targets:
        check_loopback(target.host)
    return [t.payload() for t in targets]


async def open_loop(
    targets: Sequence[Target],
    rate: float,
    duration: float,
    warmup: float = 1.0,
    max_conns: int = 256,
    preconnect: int = 8,
    drain_timeout: float = 10.0,
    record_events: bool = False,
) -> RunResult:
    """Send at a fixed ``rate`` (requests/s) for ``warmup + duration`` s, cycling over ``targets``.

    Only requests whose intended time falls after the warm-up are kept.
    """
    payloads = _payloads(targets)
    first = targets[0]
    client = LoadClient(first.host, first.port, max_conns)
    await client.preconnect(preconnect)
    period = 1.0 / rate
    total = int(rate * (warmup + duration))
    start = now() + 0.01
    measure_from = start + warmup
    n = len(payloads)
    i = 0
    while i < total:
        delay = start + i * period - now()
        if delay > 0:
            await asyncio.sleep(delay)
        t = now()
        while i < total:
            due = start + i * period
            if due > t:
                break
            k = i % n
            sample = Sample(intended=due, target=k)
            if record_events and targets[k].stream:
                sample.events = []
            client.submit(sample, payloads[k])
            i += 1
    unfinished = await client.drain(drain_timeout)
    connections = len(client.conns)
    client.close()
    samples = [s for s in client.done if s.intended >= measure_from]
    return RunResult(
        samples=samples,
        duration=duration,
        offered_rate=rate,
        unfinished=unfinished,
        connections=connections,
    )


async def closed_loop(
    targets: Sequence[Target],
    concurrency: int,
    duration: float,
    warmup: float = 0.5,
    record_events: bool = False,
) -> RunResult:
    """Keep ``concurrency`` requests in flight for ``warmup + duration`` s; latency is from the send."""
    payloads = _payloads(targets)
    first = targets[0]
    n = len(payloads)
    counter = [0]
    client: LoadClient

    def next_request(_: Sample | None = None) -> None:
        if now() >= stop_at:
            return
        k = counter[0] % n
        counter[0] += 1
        sample = Sample(intended=now(), target=k)
        if record_events and targets[k].stream:
            sample.events = []
        client.submit(sample, payloads[k])

    client = LoadClient(first.host, first.port, concurrency, on_done=next_request)
    await client.preconnect(concurrency)
    begin = now()
    measure_from = begin + warmup
    stop_at = measure_from + duration
    for _ in range(concurrency):
        next_request()
    await asyncio.sleep(max(0.0, stop_at - now()))
    unfinished = await client.drain(30.0)
    client.close()
    samples = [s for s in client.done if s.sent >= measure_from and s.end <= stop_at]
    return RunResult(samples=samples, duration=duration, concurrency=concurrency, unfinished=unfinished)


@dataclass
class HoldResult:
    """What :func:`hold_streams` saw."""

    samples: list[Sample]
    opened_after: float | None  # seconds until every stream was open, None if they never all were
    held_min: int  # fewest open streams during the hold
    held_peak: int
    failed_before_close: int
    timeline: list[tuple[float, int]]


async def hold_streams(
    target: Target,
    count: int,
    ramp_rate: float,
    hold: float,
    ramp_timeout: float,
    on_tick: Callable[[int], None] | None = None,
    tick: float = 0.5,
) -> HoldResult:
    """Open ``count`` streams at ``ramp_rate`` per second, each on its own connection; once all are
    open (or ``ramp_timeout`` s passed), hold them ``hold`` s, then close every connection.

    ``target``'s streams must outlast all that. Every ``tick`` s the number of open streams
    (response headers received, not ended) is recorded and passed to ``on_tick``. Streams still
    open at the close count as held, not failed.
    """
    check_loopback(target.host)
    payload = target.payload()
    client = LoadClient(target.host, target.port, count)
    timeline: list[tuple[float, int]] = []
    start = now()
    period = 1.0 / ramp_rate
    i = 0
    next_tick = start
    opened_after: float | None = None
    hold_until = start + ramp_timeout + hold
    held_min, held_peak = count, 0
    while True:
        t = now()
        while i < count and start + i * period <= t:
            client.submit(Sample(intended=start + i * period, events=[]), payload)
            i += 1
        if t >= next_tick:
            open_now = sum(1 for c in client.conns if c.sample is not None and c.sample.first)
            timeline.append((round(t - start, 3), open_now))
            held_peak = max(held_peak, open_now)
            if on_tick is not None:
                on_tick(open_now)
            if opened_after is None and open_now >= count:
                opened_after = t - start
                hold_until = t + hold
            elif opened_after is not None:
                held_min = min(held_min, open_now)
            next_tick += tick
        if t >= hold_until:
            break
        wake = next_tick if i >= count else min(next_tick, start + i * period)
        await asyncio.sleep(max(0.0, wake - now()))
    if opened_after is None:
        held_min = timeline[-1][1] if timeline else 0
    done = list(client.done)
    failed = sum(1 for s in done if not s.ok)
    cut = client.close()
    return HoldResult(
        samples=done + cut,
        opened_after=opened_after,
        held_min=held_min,
        held_peak=held_peak,
        failed_before_close=failed,
        timeline=timeline,
    )


async def request_once(host: str, port: int, method: str, path: str, within: float = 2.0) -> int:
    """One request on a fresh connection; the status, or 0 when nothing answered."""
    check_loopback(host)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (TimeoutError, OSError):
        return 0
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), within)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (TimeoutError, OSError, ValueError, IndexError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
