"""TruckLLM: an LLM gateway built as a pluggy plugin host.

Plugins write ``from truckllm import hookimpl``; the hook specifications are in
:mod:`truckllm.hookspecs` and the value types in :mod:`truckllm.types`.
"""

from truckllm.hookspecs import HOOKSPEC_VERSION, hookimpl

__all__ = ["HOOKSPEC_VERSION", "__version__", "hookimpl"]

__version__ = "0.1.0"
