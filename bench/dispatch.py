"""``python -m bench.dispatch``: a request-path hook through pluggy and through the kernel's dispatcher.

The hook is ``parse_usage`` for an ``openai`` provider (the openai plugin answers), with the
installed plugins plus 0, 12 and 30 throwaway provider plugins that decline it (as every other
provider plugin does), registered last so that pluggy asks them first, as it would ask plugins
installed after the built-ins. Prints microseconds per call: the plugin's function called
directly, pluggy's hook call, :meth:`truckllm._internal.dispatch.Dispatcher.call`. Medians of 9 runs.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable, Sequence

from truckllm import hookimpl
from truckllm._internal.plugins import PluginHost, make_plugin_manager
from truckllm.types import Provider, Usage

__all__ = ["main", "measure"]

BODY = b'{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'


class _Declining:
    """A provider plugin of another type: ``parse_usage`` says ``None`` for ``openai``."""

    def __init__(self, index: int) -> None:
        self.__name__ = f"provider-declining-{index}"
        self.type = f"declining-{index}"

    @hookimpl
    def parse_usage(self, provider: Provider, body: bytes) -> Usage | None:
        if provider.type != self.type:
            return None
        return Usage()


def _per_call(fn: Callable[[], object], number: int) -> float:
    return statistics.median(timeit.repeat(fn, number=number, repeat=9)) / number * 1e6


def measure(declining: int, number: int = 50000) -> tuple[int, float, float, float]:
    """``(implementations, direct µs, pluggy µs, dispatcher µs)`` with ``declining`` extra plugins."""
    host: PluginHost = make_plugin_manager(extra=[_Declining(i) for i in range(declining)])
    provider = Provider(name="up", type="openai", base_url="http://127.0.0.1:9/v1")
    impls = host.pm.hook.parse_usage.get_hookimpls()
    (owner,) = [i for i in impls if i.plugin_name == host.owners[("providers", "openai")]]
    kwargs = {"provider": provider, "request": None, "body": BODY}
    args = [kwargs[name] for name in owner.argnames]
    assert host.dispatch.call("parse_usage", "openai", **kwargs) is not None
    return (
        len(impls),
        _per_call(lambda: owner.function(*args), number),
        _per_call(lambda: host.pm.hook.parse_usage(**kwargs), number),
        _per_call(lambda: host.dispatch.call("parse_usage", "openai", **kwargs), number),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__)
    parser.add_argument("--number", type=int, default=50000, help="calls per run")
    options = parser.parse_args(argv)
    print("implementations  direct µs  pluggy µs  dispatcher µs")
    for declining in (0, 12, 30):
        impls, direct, pluggy, dispatcher = measure(declining, options.number)
        print(f"{impls:15d}  {direct:9.2f}  {pluggy:9.2f}  {dispatcher:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
