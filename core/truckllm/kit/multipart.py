"""Building a ``multipart/form-data`` upstream body from an upload's spooled files.

A provider plugin serving an upload route (``ChatRequest.upload``) rebuilds the form for its
upstream, usually with ``model`` rewritten, and sends it with ``UpstreamRequest.body_stream``::

    fields = [(k, model if k == "model" else v) for k, v in request.upload.items()]
    content_type, length, stream = encode(fields, request.upload.files)
    return UpstreamRequest(
        url=..., headers={"content-type": content_type, "content-length": str(length)},
        body_stream=stream,
    )

- ``encode(fields, files, *, boundary=None)``: ``(content_type, length, stream_factory)``; the
  body's exact length is known up front (send it as ``content-length``), and each call of the
  factory streams the body afresh from disk, so that a failover attempt replays it byte-exact.
- ``quote``: a name or file name as a ``Content-Disposition`` parameter.
- ``CHUNK``: bytes read from a file at a time.
"""

from truckllm._internal.multipart_encode import CHUNK as CHUNK
from truckllm._internal.multipart_encode import encode as encode
from truckllm._internal.multipart_encode import quote as quote

__all__ = ["CHUNK", "encode", "quote"]
