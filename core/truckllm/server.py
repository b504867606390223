"""The ASGI entry point for running the gateway under your own server:
``hypercorn 'truckllm.server:app_factory()'`` (an operator's entry point, not plugin API)."""

from truckllm._internal.server import app_factory

__all__ = ["app_factory"]
