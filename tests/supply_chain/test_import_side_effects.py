"""Importing a plugin only defines things: no network, no file written, no process, no thread.

Every module of every installed plugin (each ``truckllm`` entry point's package and all its
submodules, tests excepted) is imported in a fresh interpreter whose audit hook refuses, and
records, every network operation (a connection, a name lookup, a datagram, a bind other than the
loopback port-0 probe urllib3 makes at import to learn whether IPv6 works), every file opened for
writing or changed on disk, every process and thread started. The kernel is imported before the
hook is armed; what a plugin's import pulls in (its dependencies) is inside, except a package that
only the development environment has (in no runtime lock entry: serving never installs it), which
is noted and let through. A test also checks that the kernel imports no plugin module of its own
accord: plugins are imported only by the plugin manager, after ``plugins.allow``.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from truckllm._internal.allowlist import normalize
from truckllm._internal.first_party import FIRST_PARTY

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

SCRIPT = textwrap.dedent(
    r"""
    import importlib
    import importlib.metadata as md
    import json
    import os
    import pkgutil
    import sys
    import traceback

    import truckllm  # the kernel: imported before the hook is armed
    import truckllm.kit

    FORBIDDEN = {
        "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
        "socket.sendto", "socket.sendmsg",
        "subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty",
        "os.spawn", "os.startfile", "pty.spawn", "_thread.start_new_thread",
        "os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.symlink", "os.link", "os.truncate",
        "os.chmod", "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
        "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
        "sqlite3.connect", "webbrowser.open",
    }
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    armed = [False]
    current = [""]
    found = []
    tolerated = []
    DEV_ONLY = set(json.loads(os.environ.get("DEV_ONLY_PACKAGES", "[]")))

    def refused(event, args):
        if event == "socket.bind":
            # binding loopback port 0 and nothing more is a capability probe, no traffic (urllib3
            # probes IPv6 support so at import); any other address or port is refused
            address = args[1] if len(args) > 1 else None
            return not (isinstance(address, tuple) and address[0] in ("::1", "127.0.0.1") and address[1] == 0)
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, 0))[:3]
            if mode is not None:
                return any(c in str(mode) for c in "wax+")
            return bool((flags or 0) & WRITE_FLAGS)
        return event in FORBIDDEN

    def hook(event, args):
        if not armed[0] or not refused(event, args):
            return
        armed[0] = False  # formatting the record must not recurse
        try:
            frames = traceback.extract_stack()[:-1]
            stack = [f"{f.filename}:{f.lineno}" for f in frames][-6:]
            origins = sorted(
                {f.filename.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
                 for f in frames if "site-packages/" in f.filename}
            )
            record = {"module": current[0], "event": event, "args": repr(args)[:200], "stack": stack}
            if DEV_ONLY.intersection(origins):
                tolerated.append({**record, "origins": origins})
                return  # a package serving never installs: noted, let through
            found.append(record)
        finally:
            armed[0] = True
        raise PermissionError(f"import-time {event} refused by the test's audit hook")

    sys.addaudithook(hook)

    import _thread
    import threading

    _start = _thread.start_new_thread

    def start_new_thread(*args, **kwargs):  # Python 3.11 has no audit event for it
        hook("_thread.start_new_thread", args)
        return _start(*args, **kwargs)

    _thread.start_new_thread = threading._start_new_thread = start_new_thread
    packages = set()
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group == "truckllm":
                packages.add(ep.module.split(".")[0])

    imported, skipped = [], []

    def load(name):
        current[0] = name
        armed[0] = True
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            # an optional dependency not installed (e.g. presidio) is not a side effect
            skipped.append(f"{name}: {type(exc).__name__}: {exc}")
        except PermissionError:
            pass  # recorded by the hook
        except Exception as exc:
            found.append({"module": name, "event": "exception", "args": f"{type(exc).__name__}: {exc}"[:200]})
        finally:
            armed[0] = False
        return None

    def walk(name):
        # each module imported by load() (armed); pkgutil.walk_packages would import subpackages
        # itself, unarmed
        module = load(name)
        if module is None:
            return
        imported.append(name)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if info.name == "tests" or info.name.startswith(("test_", "conftest")):
                continue
            walk(f"{name}.{info.name}")

    for package in sorted(packages):
        walk(package)
    print(json.dumps({"imported": imported, "skipped": skipped, "found": found, "tolerated": tolerated}))
    """
)


def _dev_only_packages() -> list[str]:
    """Top-level import names of installed packages that serving never installs (in no runtime
    lock entry, not TruckLLM's own): only the development environment has them. E.g. trio
    (selenium's, a test dependency), which httpcore2 imports when it can and which looks libc up at
    import (ctypes.util.find_library: a subprocess and temp files)."""
    text = (ROOT / "requirements" / "runtime.txt").read_text()
    runtime = {normalize(m) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, re.M)} | FIRST_PARTY
    runtime |= {"pip", "setuptools"}  # in every venv
    return sorted(
        top
        for top, dists in md.packages_distributions().items()
        if all(normalize(d) not in runtime for d in dists)
    )


def test_importing_every_plugin_module_does_no_io() -> None:
    env = {**os.environ, "DEV_ONLY_PACKAGES": json.dumps(_dev_only_packages())}
    done = subprocess.run(
        [sys.executable, "-B", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for event in report["tolerated"]:  # shown with -s; never a package the runtime lock has
        print(f"dev-only import-time {event['event']} by {event['origins']} (importing {event['module']})")
    # the walk did reach the plugins: each standard kind is there, with submodules
    for package in (
        "truckllm_provider_openai",
        "truckllm_store_redis",
        "truckllm_logger_sql",
        "truckllm_console",
    ):
        assert package in report["imported"], report["imported"]
    assert len(report["imported"]) > 60
    assert report["found"] == [], json.dumps(report["found"], indent=2)


LEAKS = {
    "open": "open(__file__ + '.stolen', 'w')",
    "os.mkdir": "import os, tempfile; os.mkdir(tempfile.gettempdir() + '/leaky-plugin-dir-x')",
    "socket.connect": "import socket; socket.socket().connect(('127.0.0.1', 9))",
    "socket.getaddrinfo": "import socket; socket.getaddrinfo('localhost', 80)",
    "subprocess.Popen": "import subprocess; subprocess.Popen(['true'])",
    "_thread.start_new_thread": "import threading; threading.Thread(target=print).start()",
    "os.remove": "import os; os.remove('/nonexistent-leaky-file')",
}


@pytest.mark.parametrize("event", sorted(LEAKS))
def test_the_audit_hook_sees_each_kind_of_import_time_io(event: str) -> None:
    # a module doing it at import, loaded with the same hook: the test above can fail
    module = LEAKS[event] + "\n"
    bad = SCRIPT.replace(
        "for package in sorted(packages):",
        "import tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        f"(d / 'leaky_plugin.py').write_text({module!r})\n"
        "sys.path.insert(0, str(d))\n"
        "load('leaky_plugin')\n"
        "packages = set()\n"
        "for package in sorted(packages):",
    )
    done = subprocess.run(
        [sys.executable, "-B", "-c", bad], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])["found"]
    assert [(f["module"], f["event"]) for f in found] == [("leaky_plugin", event)]


def test_the_kernel_imports_no_plugin_by_itself() -> None:
    code = textwrap.dedent(
        """
        import sys
        import truckllm, truckllm.cli, truckllm.server, truckllm.kit, truckllm.types, truckllm.hookspecs
        import truckllm._internal.app, truckllm._internal.gateway, truckllm._internal.plugins
        import truckllm._internal.config.loader, truckllm._internal.admin.status
        plugins = sorted(m for m in sys.modules if m.startswith("truckllm_"))
        print(",".join(plugins))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
