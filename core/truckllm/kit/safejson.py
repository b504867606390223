"""Decoding JSON that came from outside the gateway: bounded nesting, no repeated keys.

Every front door decodes a client's body this way, so a dialect plugin does too:

- :func:`decode_json`: decode a body (as a type, or with a decoder) and check it;
  :func:`check_json`: check a body already known to be valid JSON.
- :class:`JSONBodyError`: the 400 either raises (``reason`` ``too_deep`` or ``duplicate_key``),
  a :class:`~truckllm.errors.GatewayError` that each dialect renders in its own format.
- :data:`MAX_DEPTH`: the deepest nesting a body may have (``128``; ``[]`` is 1 level).
"""

from truckllm._internal.safejson import MAX_DEPTH as MAX_DEPTH
from truckllm._internal.safejson import JSONBodyError as JSONBodyError
from truckllm._internal.safejson import check_json as check_json
from truckllm._internal.safejson import decode_json as decode_json

__all__ = ["MAX_DEPTH", "JSONBodyError", "check_json", "decode_json"]
