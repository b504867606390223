"""Inbound dialects (``register_dialects``): a client API spoken at the gateway's front door.

- :class:`DialectRoute`: one HTTP route of a dialect (path, kernel endpoint, methods, name).
- :class:`InboundDialect`: what a dialect plugin registers (routes, credentials, parse, error
  bodies, answers and stream translation); :class:`ClientDialect` is its error-rendering part.
- :class:`FrameTranslator`: turns stream frames of one dialect into another's, chunk by chunk.
- Stored state (a dialect that remembers conversations): :class:`DialectState` (``ChatRequest.state``),
  :class:`ServedBy` (who answered), :class:`Affinity` (the account to go back to), and the
  ``local`` routes' :class:`LocalCall` / :class:`LocalAnswer`.
- :func:`bearer`: the token of an ``Authorization: Bearer <token>`` header, read the way the
  kernel reads it.

Decode a client's body with :mod:`truckllm.kit.safejson`.
"""

from truckllm._internal.auth import bearer as bearer
from truckllm._internal.dialect import ClientDialect as ClientDialect
from truckllm._internal.dialect import DialectRoute as DialectRoute
from truckllm._internal.dialect import FrameTranslator as FrameTranslator
from truckllm._internal.dialect import InboundDialect as InboundDialect
from truckllm._internal.dialect import LocalAnswer as LocalAnswer
from truckllm._internal.dialect import LocalCall as LocalCall
from truckllm.types import Affinity as Affinity
from truckllm.types import DialectState as DialectState
from truckllm.types import ServedBy as ServedBy

__all__ = [
    "Affinity",
    "ClientDialect",
    "DialectRoute",
    "DialectState",
    "FrameTranslator",
    "InboundDialect",
    "LocalAnswer",
    "LocalCall",
    "ServedBy",
    "bearer",
]
