"""The ``mcp`` component's options: upstream servers, who may use them, and bounds.

Configured as a ``loggers:`` entry (the kernel builds a plugin's component with its options
decoded strictly, keeps its ``Secret`` values out of logs and the admin config view, opens
``enc:v1:`` values and substitutes ``${ENV}``)::

    loggers:
      - mcp:
          servers:
            github:                                 # a streamable-HTTP server
              url: https://api.githubcopilot.com/mcp/
              headers: {Authorization: "Bearer ${GITHUB_MCP_TOKEN}"}   # secrets
            files:                                  # a stdio server, started by the gateway
              command: npx
              args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
              env: {API_TOKEN: "enc:v1:..."}        # secrets
          access:                                   # nothing is allowed unless a rule allows it
            - keys: [team-a]                        # gateway key names ("*": every key)
              teams: [research]                     # or every key of these teams
              servers: [github, files]              # "*": every server
              tools: ["github__search_*", "files__*"]   # namespaced tool globs (default "*")
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from truckllm.kit.options import Duration, Secret

__all__ = ["SERVER_NAME", "AccessRule", "McpOptions", "ServerOptions"]

SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""A server's name: lower-case letters, digits and dashes, at most 32 characters, so that
``<server>__<tool>`` splits at its first ``__`` and stays within MCP's tool-name characters."""

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

PosInt = Annotated[int, Meta(gt=0)]


class ServerOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``servers.<name>``: one upstream MCP server, streamable HTTP (``url``) or stdio (``command``).

    :ivar url: the server's streamable-HTTP endpoint (``http``/``https``, no credentials in it).
    :ivar headers: sent with every request to ``url`` (credentials: every value is a secret).
    :ivar command: the program to start (stdio); ``args``, ``env`` (secrets) and ``cwd`` go with it.
    :ivar timeout: one call's deadline (a tool call, a read, a listing).
    :ivar connect_timeout: connecting and the first listing's deadline.
    """

    url: str | None = None
    headers: dict[str, Secret] = msgspec.field(default_factory=dict)
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, Secret] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    timeout: Duration = Duration(60)
    connect_timeout: Duration = Duration(10)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.command is None):
            raise ValueError("a server has either url: (streamable HTTP) or command: (stdio)")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url: must be an absolute http(s) URL")
            if parts.username or parts.password:
                raise ValueError("url: must not carry credentials (use headers:)")
            if self.env or self.args or self.cwd:
                raise ValueError("args, env and cwd are for stdio servers (command:)")
        elif self.headers:
            raise ValueError("headers: are for streamable-HTTP servers (url:)")
        for name in self.headers:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"headers: {name!r} is not a header name")
        if self.command is not None and not self.command.strip():
            raise ValueError("command: must not be empty")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")

    @property
    def transport(self) -> str:
        """``http`` or ``stdio``."""
        return "http" if self.url is not None else "stdio"


class AccessRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``access[]``: which callers may use which servers and tools.

    A rule applies to a caller whose gateway key is named in ``keys`` (``"*"``: any caller,
    the open gateway's included) or whose team is in ``teams``. A caller may use what any rule
    that applies to it allows: a server in ``servers`` (``"*"``: all), and of its tools those
    whose namespaced name (``<server>__<tool>``) matches a glob of ``tools``.
    """

    keys: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    servers: tuple[str, ...] = ("*",)
    tools: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        if not self.keys and not self.teams:
            raise ValueError('an access rule names keys: or teams: ("*" for every key)')
        if not self.servers or not self.tools:
            raise ValueError("an access rule's servers: and tools: must not be empty")


class McpOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``loggers: [{mcp: {...}}]``.

    :ivar servers: name → upstream server (names: :data:`SERVER_NAME`).
    :ivar access: the rules; with none, no caller may use anything (the endpoint answers a 403).
    :ivar refresh: how often each server's tools, resources and prompts are listed again (a
        failure marks the server down; it is reconnected with backoff).
    :ivar backoff_base: the first wait before reconnecting a server that is down; doubled per
        failure up to ``backoff_max``.
    :ivar max_result_bytes: a tool result, resource or prompt larger than this (JSON) is refused.
    :ivar max_answer_bytes: the most bytes read of one upstream answer before it is parsed (an
        HTTP body, one event of an event stream, one stdio line); a larger answer is not read
        further (a call gets an ``isError`` result, a listing marks the server down).
    :ivar max_items: tools (and resources, prompts) kept per server at most.
    :ivar count_rpm: each tool call takes one request from the gateway key's ``rpm`` (and its
        team's and organisation's).
    """

    servers: dict[str, ServerOptions]
    access: tuple[AccessRule, ...] = ()
    refresh: Duration = Duration(60)
    backoff_base: Duration = Duration(1)
    backoff_max: Duration = Duration(60)
    max_result_bytes: PosInt = 4 * 1024 * 1024
    max_answer_bytes: PosInt = 16 * 1024 * 1024
    max_items: PosInt = 1000
    count_rpm: bool = True

    def __post_init__(self) -> None:
        for name in self.servers:
            if not SERVER_NAME.fullmatch(name):
                raise ValueError(
                    f"servers: {name!r} is not a server name (lower-case letters, digits and dashes, "
                    "at most 32 characters, starting and ending with a letter or digit)"
                )
        for rule in self.access:
            unknown = [s for s in rule.servers if s != "*" and s not in self.servers]
            if unknown:
                raise ValueError(
                    f"access: unknown server {unknown[0]!r} (servers: {', '.join(sorted(self.servers))})"
                )
        if self.refresh <= 0 or self.backoff_base <= 0 or self.backoff_max < self.backoff_base:
            raise ValueError("refresh and backoff_base must be positive, backoff_max at least backoff_base")
