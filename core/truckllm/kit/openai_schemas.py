"""OpenAI's Chat Completions, Completions and Embeddings request schemas: the canonical dialect.

``ChatRequest.typed`` holds a request decoded into these msgspec structs (for a request in another
dialect, translated into them), so that a provider plugin of another API translates from one typed
form. Optional scalars are ``msgspec.UNSET`` when not given; tool schemas and arguments stay
``msgspec.Raw``, byte for byte.

- Requests: :class:`ChatCompletionRequest`, :class:`CompletionRequest`, :class:`EmbeddingRequest`,
  with :class:`StreamOptions`, :class:`ResponseFormat` (:class:`JSONSchemaFormat`).
- Messages (:data:`Message`, a union tagged by ``role``): :class:`SystemMessage`,
  :class:`DeveloperMessage`, :class:`UserMessage`, :class:`AssistantMessage`,
  :class:`ToolMessage`, :class:`FunctionMessage`.
- Content parts (:data:`ContentPart`, a union tagged by ``type``): :class:`TextPart`,
  :class:`ImagePart` (:class:`ImageURL`), :class:`InputAudioPart` (:class:`InputAudio`),
  :class:`FilePart` (:class:`FileContent`), :class:`RefusalPart`.
- Tools: :class:`Tool` (:class:`FunctionDef`), :class:`ToolCall` (:class:`FunctionCall`),
  :class:`NamedToolChoice` (:class:`NamedFunction`).
- :func:`text_of`: the concatenated text of a message's content; :func:`is_set`: whether an
  optional field was given (neither ``UNSET`` nor ``None``).
"""

from truckllm._internal.schemas.openai import AssistantMessage as AssistantMessage
from truckllm._internal.schemas.openai import ChatCompletionRequest as ChatCompletionRequest
from truckllm._internal.schemas.openai import CompletionRequest as CompletionRequest
from truckllm._internal.schemas.openai import ContentPart as ContentPart
from truckllm._internal.schemas.openai import DeveloperMessage as DeveloperMessage
from truckllm._internal.schemas.openai import EmbeddingRequest as EmbeddingRequest
from truckllm._internal.schemas.openai import FileContent as FileContent
from truckllm._internal.schemas.openai import FilePart as FilePart
from truckllm._internal.schemas.openai import FunctionCall as FunctionCall
from truckllm._internal.schemas.openai import FunctionDef as FunctionDef
from truckllm._internal.schemas.openai import FunctionMessage as FunctionMessage
from truckllm._internal.schemas.openai import ImagePart as ImagePart
from truckllm._internal.schemas.openai import ImageURL as ImageURL
from truckllm._internal.schemas.openai import InputAudio as InputAudio
from truckllm._internal.schemas.openai import InputAudioPart as InputAudioPart
from truckllm._internal.schemas.openai import JSONSchemaFormat as JSONSchemaFormat
from truckllm._internal.schemas.openai import Message as Message
from truckllm._internal.schemas.openai import NamedFunction as NamedFunction
from truckllm._internal.schemas.openai import NamedToolChoice as NamedToolChoice
from truckllm._internal.schemas.openai import RefusalPart as RefusalPart
from truckllm._internal.schemas.openai import ResponseFormat as ResponseFormat
from truckllm._internal.schemas.openai import StreamOptions as StreamOptions
from truckllm._internal.schemas.openai import SystemMessage as SystemMessage
from truckllm._internal.schemas.openai import TextPart as TextPart
from truckllm._internal.schemas.openai import Tool as Tool
from truckllm._internal.schemas.openai import ToolCall as ToolCall
from truckllm._internal.schemas.openai import ToolMessage as ToolMessage
from truckllm._internal.schemas.openai import UserMessage as UserMessage
from truckllm._internal.schemas.openai import is_set as is_set
from truckllm._internal.schemas.openai import text_of as text_of

__all__ = [
    "AssistantMessage",
    "ChatCompletionRequest",
    "CompletionRequest",
    "ContentPart",
    "DeveloperMessage",
    "EmbeddingRequest",
    "FileContent",
    "FilePart",
    "FunctionCall",
    "FunctionDef",
    "FunctionMessage",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InputAudioPart",
    "JSONSchemaFormat",
    "Message",
    "NamedFunction",
    "NamedToolChoice",
    "RefusalPart",
    "ResponseFormat",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
    "is_set",
    "text_of",
]
