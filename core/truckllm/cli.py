"""The ``truckllm`` command: an operator's entry point (not plugin API; the kit is ``truckllm.kit``)."""

from truckllm._internal.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
