"""What the ``startup`` and ``shutdown`` hooks see of the running gateway: live state, no secret.

- :class:`GatewayView`: the read-only window handed to ``startup(app)`` / ``shutdown(app)``:
  ``snapshot()`` (a typed :class:`~truckllm.types.GatewaySnapshot`: key states, in flight,
  queues, plugin errors, retry-budget denials, the config version and reloads, other loggers'
  figures), the running aliases and providers.
- :class:`RuntimeView`: the running config as plugins may see it (its version, aliases and
  providers; never a key value).
"""

from truckllm._internal.view import GatewayView as GatewayView
from truckllm._internal.view import RuntimeView as RuntimeView

__all__ = ["GatewayView", "RuntimeView"]
