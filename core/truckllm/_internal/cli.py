"""The ``truckllm`` command: serve, validate, prices, plugins, encrypt, rotate-key, genkey.

Exit codes: 0 done; 1 the config has problems (each printed as ``file:line: field: message``);
2 the command cannot run as asked (a missing config file, an address that is not ``HOST:PORT``
or already in use, a gateway that would be exposed, a bad argument), said in one line on stderr.
No traceback unless ``--debug`` (or ``TRUCKLLM_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from truckllm import __version__
from truckllm._internal.config.loader import parse_config, parse_plugins
from truckllm._internal.config.schema import Config
from truckllm._internal.config.source import open_source
from truckllm._internal.plugins import PluginHost, list_plugins, make_plugin_manager
from truckllm.errors import ConfigError, StartupError

__all__ = ["QUICK_START_CONFIG", "build_parser", "main"]

QUICK_START_CONFIG = "config/truckllm.yaml"
"""``--config``'s default when ``TRUCKLLM_CONFIG`` is unset (relative to the current folder)."""
_BINDING = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}/[A-Za-z0-9_.:@/+-]{1,128}")
"""``encrypt --bind``: a provider's name and one of its keys' names (``gateway/NAME``: a gateway key)."""


class UsageError(Exception):
    """The command cannot run as asked; the message says what and how to fix it, in one line."""


def _config_path(given: str | None) -> str:
    """The config to use: ``--config``, else ``TRUCKLLM_CONFIG``, else the quick start's file;
    a local path must be a readable file (an http(s) URL is fetched later).

    :raises UsageError: naming the path, where it came from and how to give another.
    """
    env = os.environ.get("TRUCKLLM_CONFIG")
    path = given or env or QUICK_START_CONFIG
    if "://" in path:
        return path
    fix = "give --config PATH or set TRUCKLLM_CONFIG"
    if given:
        where = "--config"
    elif env:
        where = "from TRUCKLLM_CONFIG"
    else:
        where = "the default, the quick start's in the repository's root"
        fix = f"run from the repository's root, or {fix}"
    if not os.path.exists(path):
        raise UsageError(f"no config file at {path} ({where}): {fix}")
    if os.path.isdir(path):
        raise UsageError(f"{path} ({where}) is a folder: {fix} naming the config file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path} ({where}) cannot be read (permission denied): fix its mode, or {fix}")
    return path


def _cmd_serve(args: argparse.Namespace) -> int:
    from truckllm._internal.server import run_server

    args.config = _config_path(args.config)
    if args.listen:
        from truckllm._internal.preflight import parse_listen

        parse_listen(args.listen, "--listen")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give 1 or more worker processes")
    return run_server(args.config, listen=args.listen, workers=args.workers)


def _cmd_validate(args: argparse.Namespace) -> int:
    from truckllm._internal.preflight import preflight

    args.config = _config_path(args.config)
    try:
        config, _ = _load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {args.config}", file=sys.stderr)
        return 1
    try:
        preflight(config, args.listen)  # what serve refuses before binding
    except StartupError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        print(f"1 problem(s) in {args.config}: serve would refuse to start", file=sys.stderr)
        return 1
    print(f"{args.config}: OK ({len(config.providers)} providers, {len(config.models)} models)")
    return 0


def _load_config(path: str) -> tuple[Config, PluginHost]:
    """The config at ``path`` parsed as ``serve`` parses it, with its plugin manager.

    :raises ConfigError: the config has problems.
    """
    text = open_source(path).read()
    policy = parse_plugins(text, source=path)  # before any plugin is imported
    host = make_plugin_manager(policy.disable, allow=policy.allow)
    config = parse_config(text, host.registry(), source=path)
    return config, host


_RATES = (
    ("input", "input"),
    ("output", "output"),
    ("cached", "cached_input"),
    ("cache write", "cache_write"),
    ("reasoning", "reasoning"),
)


def _rate(price: dict[str, float | None], name: str) -> float:
    """The rate charged for ``name`` (an unset cached/cache-write rate is input's, reasoning output's)."""
    value = price.get(name)
    if value is not None:
        return value
    return float(price["output"] if name == "reasoning" else price["input"])  # type: ignore[arg-type]


_UNITS = (
    ("image", "per image"),
    ("audio_second", "per second"),
    ("character", "per character"),
    ("search_unit", "per search unit"),
    ("request", "per call"),
    ("batch", "batch fraction"),
)


def _units(price: dict[str, object] | None) -> str:
    """The unit rates of a price row, ``-`` when it has none (``image 0.04, 1024x1792/hd 0.12``)."""
    if not price:
        return "-"
    parts = [f"{label} {price[name]:g}" for name, label in _UNITS if price.get(name) is not None]
    images = price.get("images")
    parts += [f"{tier} {rate:g}" for tier, rate in images.items()] if isinstance(images, dict) else []
    return ", ".join(parts) or "-"


def _cmd_prices(args: argparse.Namespace) -> int:
    from truckllm._internal.health import HealthRegistry
    from truckllm._internal.price_report import price_rows
    from truckllm._internal.runtime import build_runtime

    args.config = _config_path(args.config)
    config, host = _load_config(args.config)
    rt = build_runtime(config, host, HealthRegistry(), source=args.config, warn=False)
    rows = price_rows(rt, args.model)
    if args.json:
        print(json.dumps(rows, indent=2))
    if not rows:
        what = f"model {args.model!r}" if args.model else "models:"
        print(
            f"{args.config}: no deployment matches {what} (give an alias, an upstream model or "
            "provider/model)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        return 0
    table = [("deployment", "provider/model", *(label for label, _ in _RATES), "USD per unit", "price from")]
    for row in rows:
        price = row["price"]
        rates = [f"{_rate(price, name):g}" for _, name in _RATES] if price else ["-"] * len(_RATES)
        if row["price_source"] == "book":
            origin = f"{row['price_label']} ({row['price_url']})" if row["price_url"] else row["price_label"]
        elif row["price_source"] == "config":
            origin = "config (price:)"
        else:
            origin = "none: cost counts as $0, keys with a budget are refused"
        table.append((row["deployment"], f"{row['provider']}/{row['model']}", *rates, _units(price), origin))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    print("USD per 1M tokens of each kind (cached: cached prompt tokens; reasoning: part of the output)")
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        )
    return 0


def _plugins_config(given: str | None) -> str | None:
    """The config whose ``plugins:`` section ``truckllm plugins`` applies: ``--config``, else
    ``TRUCKLLM_CONFIG``, else the quick start's file when it exists, else none."""
    if given or os.environ.get("TRUCKLLM_CONFIG"):
        return _config_path(given)
    return QUICK_START_CONFIG if os.path.isfile(QUICK_START_CONFIG) else None


def _files_line(row: dict[str, object]) -> str:
    """``truckllm plugins``' install line of a row: where, RECORD's hash, the files checked."""
    where = f"{row['location']}" + (f" (editable: {row['source']})" if row.get("editable") else "")
    files = row.get("files")
    if row.get("record_sha256") is None or not isinstance(files, dict):
        return f"    at {where}; no RECORD: its files cannot be checked"
    hashed = files["listed"] - files["unhashed"]
    bad = [*files["mismatched"], *(f"{m} (missing)" for m in files["missing"])]
    if bad:
        check = f"{files['verified']} of {hashed} hashed files as installed; CHANGED SINCE INSTALL: "
        check += ", ".join(bad)
    else:
        check = f"all {hashed} hashed files as installed"
    return f"    at {where}\n    RECORD sha256 {row['record_sha256']}; {check}"


def _cmd_plugins(args: argparse.Namespace) -> int:
    config = _plugins_config(args.config)
    policy = parse_plugins(open_source(config).read(), source=config) if config else None
    host = make_plugin_manager(policy.disable if policy else (), allow=policy.allow if policy else None)
    rows = list_plugins(host, all=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if host.allow is None:
        print(f"plugins.allow: not set{f' in {config}' if config else ''}: every installed plugin loads")
    else:
        print(f"plugins.allow ({config}): {', '.join(host.allow.text) or '(empty: none)'}")
    for row in rows:
        status = {"loaded": "", "failed": f"  FAILED: {row['error']}"}.get(
            row["status"], f"  present, NOT ALLOWED: {row['error']}"
        )
        origin = "" if row["first_party"] is not False else "  (not TruckLLM's)"
        print(
            f"{row['name']} {row['version'] or ''}  [{row['entry_point'] or row['module']}]{status}{origin}"
        )
        if row["hooks"]:
            print(f"    hooks: {', '.join(row['hooks'])}")
        if row["location"]:
            print(_files_line(row))
    return 0


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from truckllm._internal.crypto import CryptoError, Keyring, seal

    if args.bind and not _BINDING.fullmatch(args.bind):
        raise UsageError(
            f"--bind {args.bind!r} is not PROVIDER/KEY: give a provider's name and one of its keys' "
            "names (e.g. openai/main), or gateway/NAME for a gateway key"
        )
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
    from truckllm._internal.config.source import FileSource
    from truckllm._internal.crypto import CryptoError, Keyring, reseal_text

    args.config = _config_path(args.config)
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


def _add_config(parser: argparse.ArgumentParser, what: str) -> None:
    default = os.environ.get("TRUCKLLM_CONFIG") or QUICK_START_CONFIG
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"{what} (YAML or JSON; a path or an http(s) URL); default: {default} "
        f"(TRUCKLLM_CONFIG when set, else {QUICK_START_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``truckllm`` command."""
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error (also TRUCKLLM_DEBUG=1)",
    )
    parser = argparse.ArgumentParser(prog="truckllm", description="TruckLLM LLM gateway", parents=[debug])
    parser.add_argument("--version", action="version", version=f"truckllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway", parents=[debug])
    _add_config(serve, "config to serve")
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="the address to listen on, overrides server.listen"
    )
    serve.add_argument("--workers", type=int, help="hypercorn worker processes, overrides server.workers")
    serve.set_defaults(func=_cmd_serve)

    validate = sub.add_parser(
        "validate",
        help="check a config file as serve does before binding and print every problem",
        parents=[debug],
    )
    _add_config(validate, "config to check")
    validate.add_argument("--listen", metavar="HOST:PORT", help="check as if served with --listen HOST:PORT")
    validate.set_defaults(func=_cmd_validate)

    encrypt = sub.add_parser(
        "encrypt", help="encrypt a secret read on stdin under TRUCKLLM_MASTER_KEY", parents=[debug]
    )
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
        parents=[debug],
    )
    _add_config(rotate, "config file to re-encrypt in place")
    rotate.add_argument("--dry-run", action="store_true")
    rotate.set_defaults(func=_cmd_rotate_key)

    genkey = sub.add_parser("genkey", help="print a new random master key (base64)", parents=[debug])
    genkey.set_defaults(func=_cmd_genkey)

    prices = sub.add_parser(
        "prices",
        help="what each deployment is charged per 1M tokens of each kind, and where the price comes from",
        parents=[debug],
    )
    _add_config(prices, "config to read")
    prices.add_argument(
        "model",
        nargs="?",
        help="only this alias, upstream model or provider/model (default: every deployment)",
    )
    prices.add_argument("--json", action="store_true", help="print JSON")
    prices.set_defaults(func=_cmd_prices)

    plugins = sub.add_parser(
        "plugins",
        help="list installed plugins: version, where, allowed or not, RECORD hash, files checked",
        parents=[debug],
    )
    _add_config(plugins, "config whose plugins.allow and plugins.disable apply")
    plugins.add_argument("--all", action="store_true", help="include the kernel's defaults")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``truckllm`` console script."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False) or os.environ.get("TRUCKLLM_DEBUG"))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (StartupError, UsageError) as exc:
        if debug:
            raise
        print(f"truckllm {args.command}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        print(
            f"truckllm {args.command}: {type(exc).__name__}: {_one_line(str(exc))} "
            "(run again with --debug to see the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
