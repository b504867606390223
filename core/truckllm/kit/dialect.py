"""Inbound dialects (``register_dialects``): a client API spoken at the gateway's front door.

- :class:`DialectRoute`: one HTTP route of a dialect (path, kernel endpoint, methods, name).
- :class:`InboundDialect`: what a dialect plugin registers (routes, credentials, parse, error
  bodies, answers and stream translation); :class:`ClientDialect` is its error-rendering part.
- :class:`FrameTranslator`: turns stream frames of one dialect into another's, chunk by chunk.
- :func:`bearer`: the token of an ``Authorization: Bearer <token>`` header, read the way the
  kernel reads it.

Decode a client's body with :mod:`truckllm.kit.safejson`.
"""

from truckllm._internal.auth import bearer as bearer
from truckllm._internal.dialect import ClientDialect as ClientDialect
from truckllm._internal.dialect import DialectRoute as DialectRoute
from truckllm._internal.dialect import FrameTranslator as FrameTranslator
from truckllm._internal.dialect import InboundDialect as InboundDialect

__all__ = ["ClientDialect", "DialectRoute", "FrameTranslator", "InboundDialect", "bearer"]
