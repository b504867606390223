"""The checks ``truckllm serve`` runs before it binds, which ``truckllm validate`` runs too.

Each refusal is a :class:`~truckllm.errors.StartupError` whose message is one line saying what is
wrong and how to fix it: an address that is not ``HOST:PORT`` or a port out of range, a gateway
exposed off loopback with no gateway keys or a weak admin token, and (``serve`` only, just before
binding) an address already in use or not bindable here.
"""

from __future__ import annotations

import errno
import re
import socket

from loguru import logger

from truckllm._internal.config.admin_token import is_loopback, weak_admin_token
from truckllm._internal.config.schema import Config
from truckllm.errors import StartupError

__all__ = ["Listen", "bind_error", "check_bindable", "check_exposure", "parse_listen", "preflight"]

_HOST = re.compile(r"[A-Za-z0-9_.-]*")
_EXAMPLES = "e.g. 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080, unix:/run/truckllm.sock"

Listen = tuple[str, int] | None
"""A TCP listen address as ``(host, port)``; ``None`` for ``unix:`` and ``fd://`` addresses."""


def parse_listen(listen: str, where: str = "server.listen") -> Listen:
    """``listen`` as ``(host, port)`` (``None`` for a ``unix:`` or ``fd://`` address).

    :param where: what set it (``server.listen`` or ``--listen``), for the message.
    :raises StartupError: not ``HOST:PORT``, or the port is not 1-65535.
    """
    if listen.startswith("unix:") and len(listen) > 5:
        return None
    if listen.startswith("fd://") and listen[5:].isdigit():
        return None
    host, colon, port = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    valid_host = (bracketed and _is_ipv6(host)) or (not bracketed and _HOST.fullmatch(host) is not None)
    if not colon or not valid_host or not port.isascii() or not port.isdigit():
        raise StartupError(f"{where} {listen!r} is not HOST:PORT: write an address and a port, {_EXAMPLES}")
    number = int(port)
    if not 1 <= number <= 65535:
        raise StartupError(f"{where} {listen!r}: the port must be 1-65535, not {number}")
    return host, number


def _is_ipv6(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        return False
    return True


def check_exposure(config: Config, listen: str) -> None:
    """Refuse to serve anywhere but loopback without gateway keys or with a weak admin token.

    ``listen`` is the address actually bound (``--listen`` overrides ``server.listen``, which the
    config loader checked the admin token against).
    """
    loopback = is_loopback(listen)
    if config.keys is None:
        if not loopback:
            raise StartupError(
                f"no gateway keys are configured and the gateway would listen on {listen}: "
                "add a keys: section, or listen on 127.0.0.1"
            )
        logger.warning("no keys: section: any bearer token is accepted (listening on loopback only)")
    weak = weak_admin_token(config.admin.token)
    if weak is not None and not loopback:
        raise StartupError(
            f"admin.token: {weak}, and the gateway would listen on {listen}: set a random token of "
            "at least 16 characters (e.g. TRUCKLLM_ADMIN_TOKEN), or listen on 127.0.0.1"
        )


def preflight(config: Config, listen: str | None = None) -> str:
    """Every check ``serve`` runs on a valid config before binding; the address it will bind.

    :param listen: ``--listen``, which overrides ``server.listen``.
    :raises StartupError: the address is not ``HOST:PORT``, or the gateway would be exposed.
    """
    bind = listen or config.server.listen
    parse_listen(bind, "--listen" if listen else "server.listen")
    check_exposure(config, bind)
    return bind


def bind_error(listen: str, exc: OSError) -> StartupError | None:
    """The one-line start-up error for ``exc``, raised binding ``listen``; ``None`` when ``exc`` is
    not one binding raises."""
    fix = "stop it, or choose another port with --listen HOST:PORT or server.listen"
    reasons = {
        errno.EADDRINUSE: f"the address is already in use (another truckllm, or another program): {fix}",
        errno.EACCES: "permission denied (ports below 1024 need privileges): choose a port above 1023",
        errno.EADDRNOTAVAIL: "this machine has no such address: listen on 127.0.0.1, 0.0.0.0 or its own",
    }
    if isinstance(exc, socket.gaierror):
        return StartupError(f"cannot listen on {listen}: the host name does not resolve: use an IP address")
    reason = reasons.get(exc.errno or 0)
    return StartupError(f"cannot listen on {listen}: {reason}") if reason else None


def check_bindable(listen: str) -> None:
    """Bind ``listen`` once and let go, as the server is about to (``unix:`` and ``fd://`` are
    left to the server).

    :raises StartupError: the address is in use, not this machine's, or needs privileges.
    """
    address = parse_listen(listen)
    if address is None:
        return
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # as hypercorn binds
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        error = bind_error(listen, exc)
        if error is None:
            raise
        raise error from None
