"""The image-generation and moderation endpoints in one place, for the plugin's hooks.

Both pass the client's body through with ``model`` rewritten to the deployment's (nothing else
is changed: these APIs refuse members they do not know, such as ``stream_options``).
"""

from __future__ import annotations

from truckllm.types import ChatRequest, UpstreamError, Usage

from .images import ImageStream, check_images, image_usage
from .moderations import check_moderation, moderation_usage

__all__ = ["SIMPLE_ENDPOINTS", "SIMPLE_PATHS", "ImageStream", "simple_body", "simple_check", "simple_usage"]

SIMPLE_PATHS = {"images.generations": "/images/generations", "moderations": "/moderations"}
"""The kernel's endpoint → the path under ``base_url``."""
SIMPLE_ENDPOINTS = frozenset(SIMPLE_PATHS)


def simple_body(request: ChatRequest, model: str) -> bytes:
    """The body sent upstream: the client's, ``model`` rewritten."""
    return request.with_model(model)


def simple_check(endpoint: str, body: bytes) -> UpstreamError | None:
    """``None`` when a 2xx ``body`` is a valid answer of ``endpoint``, else the failure."""
    return check_images(body) if endpoint == "images.generations" else check_moderation(body)


def simple_usage(endpoint: str, body: bytes) -> Usage | None:
    """The usage of a 2xx answer of ``endpoint``."""
    return image_usage(body) if endpoint == "images.generations" else moderation_usage(body)
