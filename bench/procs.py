"""The benchmark's processes: the fake upstream, the gateway, nginx; CPU pinning; RSS and CPU time.

Every process is started in its own session (so that Ctrl-C in the terminal reaches only the
benchmark, which then stops them in order), with ``PR_SET_PDEATHSIG`` (so that they die with the
benchmark even if it is killed), pinned to its CPUs with ``sched_setaffinity`` before ``exec``
(so that every worker a process forks inherits the pinning). :meth:`Procs.close` sends SIGTERM to
each process group, waits, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Layout",
    "Proc",
    "Procs",
    "cpu_seconds",
    "free_port",
    "machine_info",
    "nginx_binary",
    "raise_nofile",
    "rss_bytes",
    "system_cpu",
    "tree_pids",
]

_PR_SET_PDEATHSIG = 1
NOFILE = 65536
"""Open files every benchmark process asks for: 10,000 held streams cost the gateway two sockets
each (client and upstream side), and the load generator and the upstream one each."""
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Layout:
    """Which CPUs each role runs on (``None``: not pinned)."""

    gateway: frozenset[int] | None
    """One-worker gateway."""
    workers: frozenset[int] | None
    """A gateway with several workers (the one-worker CPU first among them)."""
    upstream: frozenset[int] | None
    loadgen: frozenset[int] | None
    note: str

    @staticmethod
    def choose(pin: bool, workers: int = 1) -> Layout:
        """Gateway on the first CPU(s), upstream and load generator on the others.

        With 2 or 3 CPUs: the gateway on CPU 0 (several workers share it), the upstream and the load
        generator on the rest. With 4 or more: ``workers`` CPUs for the gateway (at most all but
        two), one for the upstream, the rest for the load generator.
        """
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(cpus) < 2:
            why = "pinning disabled" if not pin else f"only {len(cpus)} CPU(s) available"
            return Layout(None, None, None, None, f"not pinned ({why})")
        if len(cpus) < 4:
            gw, rest = frozenset(cpus[:1]), frozenset(cpus[1:])
            note = f"gateway on CPU {_fmt(gw)}; upstream and load generator share CPU {_fmt(rest)}"
            if workers > 1:
                note += f"; {workers} gateway workers share CPU {_fmt(gw)}"
            return Layout(gw, gw, rest, rest, note)
        n = max(1, min(workers, len(cpus) - 2))
        gw = frozenset(cpus[:n])
        up = frozenset(cpus[n : n + 1])
        gen = frozenset(cpus[n + 1 :])
        note = (
            f"gateway on CPU {cpus[0]} ({workers} workers: CPU {_fmt(gw)}); upstream on CPU {_fmt(up)}; "
            f"load generator on CPU {_fmt(gen)}"
        )
        return Layout(frozenset(cpus[:1]), gw, up, gen, note)


def _fmt(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def raise_nofile(want: int = NOFILE) -> int:
    """Raise this process's open-file limit to ``want`` (the hard limit too, when privileged; else up
    to the hard limit); return the soft limit now in force. Children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        unlimited = hard == resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard if unlimited else max(hard, want)))
    except (ValueError, OSError):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _preexec(cpus: frozenset[int] | None, nice: int) -> Callable[[], None]:
    def setup() -> None:
        raise_nofile()
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)
            # each process leads a session of its own, hence (with sched_autogroup) a scheduling
            # group of its own, which the scheduler weighs against other sessions by the group's
            # nice, not the process's
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(f"{nice}\n")

    return setup


@dataclass
class Proc:
    """One started process (the leader of its own process group)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The leader's pid."""
        return self.popen.pid

    def alive(self) -> bool:
        """Still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of its output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Procs:
    """Starts processes and stops all of them, in reverse order, on :meth:`close`."""

    workdir: Path
    nice: int = 0
    started: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpus: frozenset[int] | None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Proc:
        """Start ``argv`` in its own session, pinned to ``cpus``; output goes to ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_preexec(cpus, self.nice),
            )
        finally:
            handle.close()
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 5.0) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL it."""
        if proc in self.started:
            self.started.remove(proc)
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout)
        # the group may still hold workers even when the leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(2.0)

    def close(self) -> None:
        """Stop everything still running, newest first."""
        for proc in reversed(list(self.started)):
            self.stop(proc)


# --------------------------------------------------------------------------- /proc readings


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and its descendants, in bytes (0 when gone)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def system_cpu() -> float:
    """CPU seconds the whole machine spent busy since boot (all CPUs)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICK


def nginx_binary() -> str | None:
    """The nginx executable, if installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def machine_info() -> dict[str, object]:
    """CPU model, CPU count, memory, kernel, Python and library versions."""
    info: dict[str, object] = {"python": sys.version.split()[0], "platform": sys.platform}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    info["cpus"] = os.cpu_count()
    with contextlib.suppress(AttributeError):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    info["kernel"] = os.uname().release
    from importlib import metadata

    versions = {}
    for dist in ("truckllm", "hypercorn", "uvloop", "aiohttp", "msgspec", "starlette", "pluggy", "h11"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    info["versions"] = versions
    return info


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until true or ``timeout`` s passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
