"""The ``truckllm`` command: serve, validate, plugins."""

from __future__ import annotations

import argparse
import json
import os
import sys

from loguru import logger

from truckllm import __version__
from truckllm.config.loader import load_config
from truckllm.errors import ConfigError, StartupError
from truckllm.plugins import list_plugins, make_plugin_manager

__all__ = ["main"]

DEFAULT_CONFIG = os.environ.get("TRUCKLLM_CONFIG", "config/truckllm.yaml")


def _cmd_serve(args: argparse.Namespace) -> int:
    from truckllm.server import run_server

    return run_server(args.config, listen=args.listen, workers=args.workers)


def _cmd_validate(args: argparse.Namespace) -> int:
    host = make_plugin_manager()
    try:
        config = load_config(args.config, host.registry())
        if config.plugins.disable:
            host = make_plugin_manager(config.plugins.disable)
            load_config(args.config, host.registry())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {args.config}", file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(config.providers)} providers, {len(config.models)} models)")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    host = make_plugin_manager()
    rows = list_plugins(host, all=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        status = "" if row["status"] == "loaded" else f"  FAILED: {row['error']}"
        print(f"{row['name']} {row['version'] or ''}  [{row['entry_point'] or row['module']}]{status}")
        if row["hooks"]:
            print(f"    hooks: {', '.join(row['hooks'])}")
    return 0


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from truckllm.crypto import CryptoError, Keyring, seal

    if sys.stdin.isatty():
        import getpass

        secret = getpass.getpass("secret to encrypt: ")
    else:
        secret = sys.stdin.read().rstrip("\r\n")
    if not secret:
        print("nothing to encrypt on stdin", file=sys.stderr)
        return 1
    try:
        print(seal(secret, Keyring.from_env(), args.bind or ""))
    except CryptoError as exc:
        print(f"cannot encrypt: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_rotate_key(args: argparse.Namespace) -> int:
    from truckllm.config.source import FileSource
    from truckllm.crypto import CryptoError, Keyring, reseal_text

    source = FileSource(args.config)
    text = source.read()
    keyring = Keyring.from_env()
    try:
        new_text, count = reseal_text(text, keyring, keyring)
    except CryptoError as exc:
        print(f"cannot rotate: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run:
        source.write(new_text)
    print(
        f"{args.config}: {count} value(s) re-encrypted under the current master key"
        + (" (dry run, nothing written)" if args.dry_run else "")
    )
    return 0


def _cmd_genkey(args: argparse.Namespace) -> int:
    import base64
    import secrets

    print(base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``truckllm`` command."""
    parser = argparse.ArgumentParser(prog="truckllm", description="TruckLLM LLM gateway")
    parser.add_argument("--version", action="version", version=f"truckllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help="config file (YAML or JSON)")
    serve.add_argument("--listen", help="host:port, overrides server.listen")
    serve.add_argument("--workers", type=int, help="hypercorn worker processes, overrides server.workers")
    serve.set_defaults(func=_cmd_serve)

    validate = sub.add_parser("validate", help="check a config file and print every problem")
    validate.add_argument("--config", default=DEFAULT_CONFIG)
    validate.set_defaults(func=_cmd_validate)

    encrypt = sub.add_parser("encrypt", help="encrypt a secret read on stdin under TRUCKLLM_MASTER_KEY")
    encrypt.add_argument(
        "--bind",
        metavar="PROVIDER/KEY",
        help="bind the value to one place (providers' keys: PROVIDER/KEYNAME; gateway keys: "
        "gateway/NAME): it will not decrypt anywhere else",
    )
    encrypt.set_defaults(func=_cmd_encrypt)

    rotate = sub.add_parser(
        "rotate-key",
        help="re-encrypt every enc: value of a config under TRUCKLLM_MASTER_KEY "
        "(old keys in TRUCKLLM_OLD_MASTER_KEYS)",
    )
    rotate.add_argument("--config", default=DEFAULT_CONFIG)
    rotate.add_argument("--dry-run", action="store_true")
    rotate.set_defaults(func=_cmd_rotate_key)

    genkey = sub.add_parser("genkey", help="print a new random master key (base64)")
    genkey.set_defaults(func=_cmd_genkey)

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--all", action="store_true", help="include the kernel's defaults")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``truckllm`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except StartupError as exc:
        logger.error("cannot start: {}", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
