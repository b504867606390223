"""``providers.<name>.options`` for ``type: vertex`` and ``type: vertex-anthropic``.

Each extends the options of the plugin whose translation it reuses (``truckllm-provider-gemini``,
``truckllm-provider-anthropic``) with where the model runs on Vertex AI: the Google Cloud
``project`` and the ``location`` (a region such as ``us-central1``, or ``global``).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta
from truckllm_provider_anthropic.options import Options as AnthropicOptions
from truckllm_provider_gemini.options import Options as GeminiOptions

__all__ = ["ANTHROPIC_VERSION", "AnthropicVertexOptions", "Location", "Project", "VertexOptions"]

ANTHROPIC_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Claude on Vertex AI takes in the request body."""

Project = Annotated[
    str,
    Meta(
        pattern=r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$",
        description="a Google Cloud project id (my-project-123)",
    ),
]
"""A Google Cloud project id: 6 to 30 lower-case letters, digits and hyphens (an optional
``domain:`` prefix for the old domain-scoped projects)."""

Location = Annotated[
    str,
    Meta(pattern=r"^[a-z]+(?:-[a-z0-9]+)*$", description="a Vertex AI location (us-central1, global)"),
]
"""A Vertex AI location: ``global``, a multi-region (``us``, ``eu``) or a region (``europe-west4``)."""


class VertexOptions(GeminiOptions, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Options of a ``type: vertex`` entry (Gemini models): every Gemini option, plus:

    :ivar project: the Google Cloud project the calls are made (and billed) in.
    :ivar location: where the model runs; ``global`` uses the global endpoint
        ``aiplatform.googleapis.com``, any other the regional ``{location}-aiplatform.googleapis.com``.
    """

    project: Project
    location: Location = "global"


class AnthropicVertexOptions(AnthropicOptions, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Options of a ``type: vertex-anthropic`` entry (Claude models): every Anthropic option, plus
    ``project`` and ``location`` as for ``type: vertex``. ``anthropic_version`` is sent in the
    request body (Vertex's place for it), ``vertex-2023-10-16`` by default."""

    project: Project
    location: Location = "global"
    anthropic_version: str = ANTHROPIC_VERSION
