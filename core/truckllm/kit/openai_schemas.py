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

from truckllm.schemas.openai import AssistantMessage as AssistantMessage
from truckllm.schemas.openai import ChatCompletionRequest as ChatCompletionRequest
from truckllm.schemas.openai import CompletionRequest as CompletionRequest
from truckllm.schemas.openai import ContentPart as ContentPart
from truckllm.schemas.openai import DeveloperMessage as DeveloperMessage
from truckllm.schemas.openai import EmbeddingRequest as EmbeddingRequest
from truckllm.schemas.openai import FileContent as FileContent
from truckllm.schemas.openai import FilePart as FilePart
from truckllm.schemas.openai import FunctionCall as FunctionCall
from truckllm.schemas.openai import FunctionDef as FunctionDef
from truckllm.schemas.openai import FunctionMessage as FunctionMessage
from truckllm.schemas.openai import ImagePart as ImagePart
from truckllm.schemas.openai import ImageURL as ImageURL
from truckllm.schemas.openai import InputAudio as InputAudio
from truckllm.schemas.openai import InputAudioPart as InputAudioPart
from truckllm.schemas.openai import JSONSchemaFormat as JSONSchemaFormat
from truckllm.schemas.openai import Message as Message
from truckllm.schemas.openai import NamedFunction as NamedFunction
from truckllm.schemas.openai import NamedToolChoice as NamedToolChoice
from truckllm.schemas.openai import RefusalPart as RefusalPart
from truckllm.schemas.openai import ResponseFormat as ResponseFormat
from truckllm.schemas.openai import StreamOptions as StreamOptions
from truckllm.schemas.openai import SystemMessage as SystemMessage
from truckllm.schemas.openai import TextPart as TextPart
from truckllm.schemas.openai import Tool as Tool
from truckllm.schemas.openai import ToolCall as ToolCall
from truckllm.schemas.openai import ToolMessage as ToolMessage
from truckllm.schemas.openai import UserMessage as UserMessage
from truckllm.schemas.openai import is_set as is_set
from truckllm.schemas.openai import text_of as text_of

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
