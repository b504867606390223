"""Kernel exceptions and the gateway's error value type."""

from __future__ import annotations

import msgspec

__all__ = [
    "ConfigError",
    "CredentialError",
    "GatewayError",
    "Problem",
    "StartupError",
    "UnsupportedRequest",
    "UpstreamFailure",
]


class StartupError(Exception):
    """The gateway cannot start: names the plugin, file or setting at fault."""


class Problem(msgspec.Struct, frozen=True):
    """One config problem: where (file, line) and which field, and what is wrong."""

    message: str
    field: str = ""
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class ConfigError(StartupError):
    """The config is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class GatewayError(Exception):
    """An error answered to the client in its own dialect.

    :param status: HTTP status.
    :param message: human-readable, never containing a secret.
    :param type: OpenAI error ``type`` (``invalid_request_error``, ``rate_limit_error``...).
    :param code: OpenAI error ``code`` or ``None``.
    :param param: the request field at fault, or ``None``.
    :param headers: extra response headers (``retry-after``...).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


class UpstreamFailure(Exception):
    """Raised by a provider plugin (or its stream translator) for a failed upstream answer.

    :param error: the classified failure; the kernel decides whether to retry or fail over.
    :param pending: output a stream translator produced from the same chunk before the error:
        the kernel sends it (when the stream has started) before the error event.
    """

    def __init__(self, error: object, pending: bytes = b"") -> None:
        from truckllm.types import UpstreamError

        assert isinstance(error, UpstreamError)
        super().__init__(error.message)
        self.error: UpstreamError = error
        self.pending = pending


class UnsupportedRequest(Exception):
    """Raised by ``transform_request`` when this provider cannot serve this request as asked.

    The kernel skips the candidate (it is not a key failure) and tries the next; when no candidate
    can serve the request the client gets a 400 with this message and ``param``.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class CredentialError(Exception):
    """Raised by a :class:`~truckllm.kit.credentials.CredentialSource`'s ``refresh()`` with a
    message free of secrets (``"the token endpoint refused the service account: invalid_grant"``):
    the kernel logs the message. Any other exception is logged by its type only, since a
    library's message may quote what it read."""
