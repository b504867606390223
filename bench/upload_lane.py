"""The upload lane: a large multipart upload through a gateway, and the gateway's memory.

``python -m bench.upload_lane --mb 200`` starts the fake OpenAI upstream of the test kit (it reads
a multipart body as it arrives and keeps only each file's hash and size) and a one-worker
``truckllm serve`` pointing at it, then sends ``POST /v1/audio/transcriptions`` with a file of
``--mb`` megabytes, generated on the fly by the client (so the client holds none of it either).
After a warm-up upload it resets the gateway process's peak resident set (``VmHWM``, through
``/proc/<pid>/clear_refs``; where that is refused the peak since start is used, an upper bound),
reads its ``VmRSS``, sends the upload and reads ``VmHWM`` again: the growth is that peak minus the
RSS before. It checks what the upstream received (size and SHA-256) and that no spooled file is
left. The goal (issue 20): the peak grows by less than 20 MB whatever the upload's size.

Also the ``upload`` lane of ``python -m bench`` (:func:`run_lane`, ``--upload-mb``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx

from truckllm_testing.fakes import FakeOpenAI

__all__ = ["GOAL_MB", "main", "measure", "run_lane"]

GOAL_MB = 20.0
"""The most the gateway's peak RSS may grow during the upload."""
_KEY = "sk-bench-upload-aaaaaaaaaaaa"
_CHUNK = 1024 * 1024


def _status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory figure in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (Linux 4.0+); whether it was."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _free_port() -> int:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _body(size: int, boundary: str, digest: hashlib._Hash) -> Iterator[bytes]:
    """The form, ``size`` bytes of file generated chunk by chunk (hashed into ``digest``)."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    block = hashlib.sha256(b"bench").digest() * (_CHUNK // 32)
    left = size
    while left > 0:
        chunk = block[: min(_CHUNK, left)]
        digest.update(chunk)
        left -= len(chunk)
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def _length(size: int, boundary: str) -> int:
    return sum(len(part) for part in _body(0, boundary, hashlib.sha256())) + size


def measure(megabytes: int, workdir: Path) -> dict[str, object]:
    """Run one upload of ``megabytes`` MB; the figures."""
    size = megabytes * 1024 * 1024
    spool = workdir / "spool"
    spool.mkdir()
    with FakeOpenAI(keys=(_KEY,)).running() as upstream:
        port = _free_port()
        config = workdir / "gateway.yaml"
        config.write_text(
            f"""
server:
  listen: 127.0.0.1:{port}
  upload_dir: {spool}
  request_timeout: 600s
  limits: {{max_upload_bytes: {size + 10 * 1024 * 1024}}}
providers:
  oa: {{type: openai, base_url: {upstream.base_url}, keys: [{{name: k, value: {_KEY}}}]}}
models:
  whisper: {{deployments: [{{provider: oa, model: whisper-1}}]}}
"""
        )
        log = (workdir / "gateway.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "truckllm.cli", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/admin/v1/ready", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            warm = httpx.post(
                url + "/v1/audio/transcriptions",
                files={"file": ("w.wav", b"w" * 100_000, "audio/wav")},
                data={"model": "whisper"},
                timeout=60,
            )
            warm.raise_for_status()
            time.sleep(0.5)
            hwm_start = _status(proc.pid, "VmHWM")
            peak_reset = _reset_peak(proc.pid)
            rss_before = _status(proc.pid, "VmRSS")
            hwm_before = _status(proc.pid, "VmHWM")
            boundary = "bench-" + os.urandom(8).hex()
            digest = hashlib.sha256()
            started = time.monotonic()
            response = httpx.post(
                url + "/v1/audio/transcriptions",
                content=_body(size, boundary, digest),
                headers={
                    "content-type": f"multipart/form-data; boundary={boundary}",
                    "content-length": str(_length(size, boundary)),
                },
                timeout=600,
            )
            seconds = time.monotonic() - started
            response.raise_for_status()
            hwm_after = _status(proc.pid, "VmHWM")
            received = upstream.requests[-1].json["files"][0]
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    growth = (hwm_after - max(rss_before, 0)) / 1e6
    return {
        "upload_mb": megabytes,
        "seconds": round(seconds, 2),
        "mb_per_s": round(size / 1e6 / seconds, 1),
        "hwm_since_start_mb": round(hwm_start / 1e6, 1),
        "peak_reset": peak_reset,
        "rss_before_mb": round(rss_before / 1e6, 1),
        "hwm_before_mb": round(hwm_before / 1e6, 1),
        "hwm_after_mb": round(hwm_after / 1e6, 1),
        "peak_growth_mb": round(growth, 1),
        "goal_mb": GOAL_MB,
        "ok": growth < GOAL_MB,
        "upstream_bytes_exact": received["size"] == size and received["sha256"] == digest.hexdigest(),
        "spool_left": sorted(p.name for p in spool.iterdir()),
    }


async def run_lane(megabytes: int = 200, say: Callable[[str], object] = print) -> dict[str, object]:
    """The ``upload`` lane of ``python -m bench``: one :func:`measure` (in a thread) in a
    temporary folder; its figures, said in one line."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="truckllm-bench-upload-") as workdir:
        figures = await asyncio.to_thread(measure, megabytes, Path(workdir))
    say(
        f"  {megabytes} MiB upload in {figures['seconds']} s ({figures['mb_per_s']} MB/s): gateway peak RSS "
        f"+{figures['peak_growth_mb']} MB (goal < {GOAL_MB:g}; RSS before {figures['rss_before_mb']} MB), "
        f"upstream bytes exact: {figures['upstream_bytes_exact']}, "
        f"spool left: {figures['spool_left'] or 'none'}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.upload_lane [--mb 200]``: print the figures as JSON; exit 1 past the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mb", type=int, default=200, help="the file's size in MB (MiB)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="truckllm-bench-upload-") as workdir:
        figures = measure(args.mb, Path(workdir))
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] and figures["upstream_bytes_exact"] and not figures["spool_left"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
