"""Read, substitute and validate a config file into an immutable :class:`~.schema.Config`.

Every problem is collected (not only the first) and named by file, line and field. The result is a
snapshot the gateway swaps as a whole on reload.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
from loguru import logger
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from truckllm._internal.allowlist import problems as allow_problems
from truckllm._internal.config.admin_token import is_loopback, weak_admin_token
from truckllm._internal.config.durations import Duration, parse_duration
from truckllm._internal.config.messages import fields_at, plain, unknown_field
from truckllm._internal.config.quoting import Quoting
from truckllm._internal.config.schema import (
    AdminConfig,
    Config,
    GatewayKeyConfig,
    ModelConfig,
    PluginsConfig,
    ProviderConfig,
    RoutingConfig,
    RoutingOverride,
)
from truckllm._internal.config.typed import secret_strings
from truckllm._internal.crypto import PREFIX, CryptoError, Keyring, unseal
from truckllm._internal.governance import config_problems
from truckllm._internal.netguard import NetPolicy, host_problem
from truckllm._internal.secrets import Secret
from truckllm.errors import ConfigError, Problem
from truckllm.types import ProviderSpec

__all__ = [
    "Registry",
    "decode_options",
    "load_config",
    "logger_entries",
    "merge_routing",
    "parse_config",
    "parse_plugins",
    "store_options",
]

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")
_SECTIONS = {name for name in Config.__struct_fields__}
_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')

MAX_NODES = 100_000
"""The most values (scalars, mappings, lists) a config may hold once YAML aliases are expanded: a
"billion laughs" alias bomb stops here instead of growing exponentially."""
MAX_NESTING = 64
"""The deepest a config may nest (a self-referencing alias stops here too)."""


@dataclass(frozen=True)
class Registry:
    """What the loaded plugins offer, for validating names in config."""

    providers: Mapping[str, ProviderSpec] = field(default_factory=dict)
    strategies: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    loggers: frozenset[str] = frozenset()
    default_strategy: str = "weighted"
    failed: tuple[str, ...] = ()
    store_classes: Mapping[str, Any] = field(default_factory=dict)
    logger_classes: Mapping[str, Any] = field(default_factory=dict)
    guardrails: Mapping[str, Any] = field(default_factory=dict)  # type: GuardrailSpec


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Duration:
        return parse_duration(obj)
    if type_ is Secret:
        if not isinstance(obj, str):
            raise ValueError("expected a string")
        return Secret(obj)
    raise NotImplementedError(type_)


def decode_options(obj: Any, type_: Any) -> Any:
    """Decode a plugin's ``options`` mapping strictly with its ``Options`` struct."""
    return msgspec.convert(obj, type=type_, strict=False, dec_hook=_dec_hook)


class _Reader:
    """Holds the parsed tree (with line numbers) and collects problems."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[Problem] = []
        self.root: Any = None
        self.broken: set[tuple[str, str]] = set()
        self.quoting = Quoting()
        self.nodes = 0

    def line(self, path: Iterable[str | int]) -> int | None:
        """1-based line of the deepest node of ``path`` found in the tree."""
        node, line = self.root, None
        for part in path:
            try:
                if isinstance(node, CommentedMap) and part in node:
                    line = node.lc.key(part)[0] + 1
                    node = node[part]
                elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                    line = node.lc.item(part)[0] + 1
                    node = node[part]
                else:
                    break
            except (KeyError, IndexError, TypeError, AttributeError):
                break
        return line

    def problem(self, path: list[str | int], message: str) -> None:
        """Record one problem at ``path``."""
        dotted = ""
        for part in path:
            dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
        self.problems.append(Problem(message=message, field=dotted, file=self.source, line=self.line(path)))

    def scrubbed(self) -> list[Problem]:
        """The problems, none quoting a value from the environment or a secret field."""
        return [msgspec.structs.replace(p, message=self.quoting.scrub(p.message)) for p in self.problems]

    def substitute(self, node: Any, path: list[str | int]) -> Any:
        """A plain copy of ``node`` with ``${VAR}`` and ``${VAR:-default}`` replaced.

        :raises ConfigError: more than :data:`MAX_NODES` values (aliases expanded), or nested
            deeper than :data:`MAX_NESTING`.
        """
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.problem([], f"the config holds over {MAX_NODES} values once its aliases are expanded")
            raise ConfigError(self.scrubbed())
        if len(path) > MAX_NESTING:
            self.problem(path[:MAX_NESTING], f"nested deeper than {MAX_NESTING} levels")
            raise ConfigError(self.scrubbed())
        if isinstance(node, dict):
            for key in node:
                self._check_text(str(key), [*path, _printable(str(key))])
            return {str(k): self.substitute(v, [*path, _printable(str(k))]) for k, v in node.items()}
        if isinstance(node, list):
            return [self.substitute(v, [*path, i]) for i, v in enumerate(node)]
        if isinstance(node, str):
            return self._expand(node, path)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):  # ruamel's ScalarInt / ScalarBoolean keep formatting info
            return bool(node) if type(node).__name__ == "ScalarBoolean" else int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def _check_text(self, text: str, path: list[str | int]) -> None:
        """A string that cannot be UTF-8 (an unpaired surrogate: YAML's ``"\\ud83d"`` escapes
        split astral characters in two) would fail every request that carries it: refuse it here."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.problem(path, "holds an unpaired UTF-16 surrogate: write the character or a \\U escape")

    def _expand(self, text: str, path: list[str | int]) -> str:
        self._check_text(text, path)
        if "$" not in text:
            return str(text)

        used: list[str] = []

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    self.problem(path, f"environment variable {name} is not set (use ${{{name}:-default}})")
                    return ""
                return default
            used.append(name)
            self.quoting.hide(value, f"${{{name}}}")
            return value

        result = _VAR.sub(repl, str(text))
        if used:  # a value from the environment is never quoted: its variable is
            self.quoting.hide(result, "(from " + ", ".join(f"${{{n}}}" for n in used) + ")")
        return result

    def convert(self, obj: Any, type_: Any, path: list[str | int]) -> Any:
        """``msgspec.convert`` with problems recorded at the failing field; ``None`` on failure."""
        try:
            return msgspec.convert(obj, type=type_, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            text = str(exc)
            message, _, where = text.partition(" - at `$")
            sub: list[str | int] = []
            for m in _PATH_PART.finditer(where.rstrip("`")):
                if m.group(1):
                    sub.append(m.group(1))
                elif m.group(2):
                    sub.append(int(m.group(2)))
                else:
                    break
            unknown = re.match(r"Object contains unknown field `(.+)`", message)
            missing = re.match(r"Object missing required field `(.+)`", message)
            if unknown:
                message = unknown_field(unknown.group(1), fields_at(type_, sub))
                sub.append(unknown.group(1))
            elif missing:
                sub.append(missing.group(1))
                message = "required field is missing"
            else:
                message = plain(message, type_, sub)
            self.problem([*path, *sub], message)
            return None


def _printable(name: str) -> str:
    """``name`` as it can be shown in a problem (unpaired surrogates as ``\\udXXX`` escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("ascii", "replace")
    return name


def _read_tree(text: str, source: str, env: Mapping[str, str] | None) -> _Reader:
    """A reader holding ``text``'s YAML tree (a mapping, with line numbers).

    :raises ConfigError: the text is not YAML, or not a mapping.
    """
    reader = _Reader(source, os.environ if env is None else env)
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        reader.root = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = (exc.problem or "invalid YAML").strip()
        duplicate = _DUPLICATE.search(what)
        if duplicate:  # ruamel's message quotes both values: they may be secrets
            what = f"duplicate key {duplicate.group(1)!r}"
        raise ConfigError([Problem(message=what, file=source, line=line)]) from None
    except YAMLError as exc:
        what = getattr(exc, "reason", None) or type(exc).__name__  # not str(exc): it quotes the text
        raise ConfigError([Problem(message=f"invalid YAML: {what}", file=source)]) from None
    except RecursionError:
        raise ConfigError([Problem(message="invalid YAML: nested too deeply", file=source)]) from None
    except ValueError as exc:  # a constructor's: e.g. an integer of over 4,300 digits
        what = "a number has too many digits" if "digits" in str(exc) else type(exc).__name__
        raise ConfigError([Problem(message=f"invalid YAML: {what}", file=source)]) from None
    if reader.root is None:
        reader.root = CommentedMap()
    if not isinstance(reader.root, dict):
        raise ConfigError([Problem(message="the config must be a mapping", file=source, line=1)])
    return reader


class _PluginsOnly(msgspec.Struct, frozen=True, kw_only=True):
    """A config read for its ``plugins:`` section alone (every other section is ignored)."""

    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)


def _check_allow(plugins: PluginsConfig, reader: _Reader) -> None:
    """Each ``plugins.allow`` entry a distribution name with an optional version range, once."""
    for index, problem in allow_problems(plugins.allow or ()):
        reader.problem(["plugins", "allow", index], problem)


def parse_plugins(
    text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> PluginsConfig:
    """Only the ``plugins:`` section of a config text, read before any plugin is loaded: which
    plugins may be imported at all (``allow``) and which not (``disable``). The rest of the text is
    parsed later by :func:`parse_config`, with what the allowed plugins registered.

    :raises ConfigError: the text is not a YAML mapping, or its ``plugins:`` section is invalid.
    """
    reader = _read_tree(text, source, env)
    section = reader.root.get("plugins")
    if section is None:
        return PluginsConfig()
    got = reader.convert({"plugins": reader.substitute(section, ["plugins"])}, _PluginsOnly, [])
    if got is not None:
        _check_allow(got.plugins, reader)
    if reader.problems:
        raise ConfigError(reader.scrubbed())
    plugins: PluginsConfig = got.plugins
    return plugins


def parse_config(
    text: str,
    registry: Registry,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> Config:
    """Parse YAML (or JSON) text into a validated config; raise :class:`ConfigError` listing all problems."""
    reader = _read_tree(text, source, env)
    plain: dict[str, Any] = reader.substitute(reader.root, [])
    _decrypt(plain, reader)
    _hide_secrets(plain, registry, reader)
    sections: dict[str, Any] = {}
    for name, value in plain.items():
        if name not in _SECTIONS:
            reader.problem([name], unknown_field(name, _SECTIONS))
            continue
        if name in ("providers", "models"):
            if not isinstance(value, dict):
                reader.problem([name], "expected a mapping of names")
                continue
            item_type = ProviderConfig if name == "providers" else ModelConfig
            decoded = {}
            for item_name, item in value.items():
                got = reader.convert(item, item_type, [name, item_name])
                if got is not None:
                    decoded[item_name] = got
                else:
                    reader.broken.add((name, item_name))
            sections[name] = decoded
        elif name == "keys":
            if value is None:
                continue
            if not isinstance(value, list):
                reader.problem([name], "expected a list of gateway keys")
                continue
            keys = [reader.convert(item, GatewayKeyConfig, [name, i]) for i, item in enumerate(value)]
            sections[name] = tuple(k for k in keys if k is not None)
        else:
            got = reader.convert({name: value}, Config, [])
            if got is not None:
                sections[name] = getattr(got, name)

    config = Config(**sections)
    _check_allow(config.plugins, reader)
    _check_semantics(config, registry, reader)
    if reader.problems:
        raise ConfigError(reader.scrubbed())
    return _with_decoded_options(config, registry)


def _hide_secrets(plain: dict[str, Any], registry: Registry, reader: _Reader) -> None:
    """Tell ``reader.quoting`` every value the schema or a plugin's ``Options`` types as secret."""
    found = secret_strings(plain, Config)
    providers = plain.get("providers")
    for provider in providers.values() if isinstance(providers, dict) else ():
        spec = registry.providers.get(str(provider.get("type"))) if isinstance(provider, dict) else None
        if spec is not None and spec.options is not None:
            found += secret_strings(provider.get("options"), spec.options)
    store = plain.get("store")
    if isinstance(store, dict):
        store_options_type = getattr(registry.store_classes.get(store.get("type", "memory")), "Options", None)
        if store_options_type is not None:
            found += secret_strings(store, store_options_type)
    loggers = plain.get("loggers")
    cache = plain.get("cache")
    if isinstance(cache, dict):  # the response cache's options may hold secrets too
        cache_options = getattr(registry.logger_classes.get(str(cache.get("type", "cache"))), "Options", None)
        if cache_options is not None:
            found += secret_strings({k: v for k, v in cache.items() if k != "type"}, cache_options)
    for entry in loggers if isinstance(loggers, list) else ():
        for name, options in entry.items() if isinstance(entry, dict) else ():
            logger_options = getattr(registry.logger_classes.get(name), "Options", None)
            if logger_options is not None:
                found += secret_strings(options, logger_options)
    guardrails = plain.get("guardrails")
    for entry in guardrails if isinstance(guardrails, list) else ():
        spec = registry.guardrails.get(str(entry.get("type"))) if isinstance(entry, dict) else None
        if spec is not None and spec.options is not None and isinstance(entry, dict):
            found += secret_strings(entry.get("options"), spec.options)
    for value in found:
        reader.quoting.hide(value, "<secret>")


def _decrypt(plain: dict[str, Any], reader: _Reader) -> None:
    """Open every ``enc:v1:`` value in place; provider and gateway key values must match their binding."""
    keyring: Keyring | None = None

    def opened(value: str, path: list[str | int], where: str) -> str:
        nonlocal keyring
        try:
            if keyring is None:
                keyring = Keyring.from_env(reader.env)
            opened_value = unseal(value, keyring, where)
            reader.quoting.hide(opened_value, "<secret>")
            return opened_value
        except CryptoError as exc:
            reader.problem(path, f"cannot decrypt: {exc}")
            return ""

    providers = plain.get("providers")
    if isinstance(providers, dict):
        for pname, provider in providers.items():
            keys = provider.get("keys") if isinstance(provider, dict) else None
            for i, key in enumerate(keys if isinstance(keys, list) else []):
                if (
                    isinstance(key, dict)
                    and isinstance(key.get("value"), str)
                    and key["value"].startswith(PREFIX)
                ):
                    key["value"] = opened(
                        key["value"],
                        ["providers", pname, "keys", i, "value"],
                        f"{pname}/{key.get('name', '')}",
                    )
    gateway_keys = plain.get("keys")
    for i, key in enumerate(gateway_keys if isinstance(gateway_keys, list) else []):
        if isinstance(key, dict) and isinstance(key.get("value"), str) and key["value"].startswith(PREFIX):
            key["value"] = opened(key["value"], ["keys", i, "value"], f"gateway/{key.get('name', '')}")

    def walk(node: Any, path: list[str | int]) -> Any:
        if isinstance(node, dict):
            for k, v in node.items():
                node[k] = walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                node[i] = walk(v, [*path, i])
        elif isinstance(node, str) and node.startswith(PREFIX):
            return opened(node, path, "")
        return node

    walk(plain, [])


def load_config(path: str, registry: Registry, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Problem(message=f"cannot read config: {exc.strerror}", file=path)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(message="the config is not valid UTF-8", file=path)]) from None
    return parse_config(text, registry, source=path, env=env)


def _check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment"
    if parts.username or parts.password:
        return "must not carry credentials (use keys:)"
    return None


def _check_semantics(config: Config, registry: Registry, reader: _Reader) -> None:
    _check_admin_token(config.admin, config.server.listen, reader)
    store_type = config.store.get("type", "memory")
    if "store" in reader.root and store_type not in registry.stores:
        reader.problem(["store", "type"], _unknown("store type", store_type, registry.stores, registry))
    store_cls = registry.store_classes.get(store_type)
    if store_cls is not None and getattr(store_cls, "Options", None) is not None:
        reader.convert(store_options(config), store_cls.Options, ["store"])
    for i, entry in enumerate(config.loggers):
        names = [entry] if isinstance(entry, str) else list(entry)
        if isinstance(entry, dict) and len(entry) != 1:
            reader.problem(["loggers", i], "a logger entry is a name or {name: {options}}")
        for name in names:
            if name not in registry.loggers:
                reader.problem(["loggers", i], _unknown("logger", name, registry.loggers, registry))
                continue
            logger_cls = registry.logger_classes.get(name)
            if logger_cls is not None and getattr(logger_cls, "Options", None) is not None:
                options = entry[name] if isinstance(entry, dict) else {}
                reader.convert(options or {}, logger_cls.Options, ["loggers", i, name])

    if config.cache is not None:
        name, options = cache_entry(config.cache)
        cache_cls = registry.logger_classes.get(name)
        if name not in registry.loggers:
            reader.problem(["cache", "type"], _unknown("response cache", name, registry.loggers, registry))
        elif cache_cls is not None and getattr(cache_cls, "Options", None) is not None:
            reader.convert(options, cache_cls.Options, ["cache"])

    for pname, provider in config.providers.items():
        spec = registry.providers.get(provider.type)
        if spec is None:
            reader.problem(
                ["providers", pname, "type"],
                _unknown("provider type", provider.type, registry.providers, registry),
            )
        elif _needs_keys(spec, provider.options) and not provider.keys:
            reader.problem(["providers", pname, "keys"], "this provider type needs at least one key")
        if provider.base_url is not None:
            bad = _check_url(provider.base_url) or host_problem(
                urlsplit(provider.base_url).hostname or "",
                NetPolicy(config.server.upstream.allow_loopback, config.server.upstream.allow_private),
            )
            if bad:
                reader.problem(["providers", pname, "base_url"], bad)
        seen: set[str] = set()
        for i, key in enumerate(provider.keys):
            if key.name in seen:
                reader.problem(["providers", pname, "keys", i, "name"], f"duplicate key name {key.name!r}")
            seen.add(key.name)
            if spec is not None and _needs_keys(spec, provider.options) and not key.value:
                reader.problem(["providers", pname, "keys", i, "value"], "the key has no value")
        if spec is not None and spec.options is not None:
            reader.convert(provider.options, spec.options, ["providers", pname, "options"])
        elif provider.options and spec is not None:
            reader.problem(
                ["providers", pname, "options"], f"provider type {provider.type!r} takes no options"
            )

    for alias, model in config.models.items():
        if model.strategy is not None and model.strategy not in registry.strategies:
            reader.problem(
                ["models", alias, "strategy"],
                _unknown("strategy", model.strategy, registry.strategies, registry),
            )
        for i, dep in enumerate(model.deployments):
            dep_provider = config.providers.get(dep.provider)
            if dep_provider is None and ("providers", dep.provider) in reader.broken:
                continue
            if dep_provider is None:
                reader.problem(
                    ["models", alias, "deployments", i, "provider"], f"no provider named {dep.provider!r}"
                )
                continue
            spec = registry.providers.get(dep_provider.type)
            if spec is not None and _needs_keys(spec, dep_provider.options):
                usable = [k for k in dep_provider.keys if k.models is None or dep.model in k.models]
                if dep_provider.keys and not usable:
                    reader.problem(
                        ["models", alias, "deployments", i, "model"],
                        f"no key of provider {dep.provider!r} may use model {dep.model!r}",
                    )
        for which in ("fallbacks", "context_window_fallbacks"):
            for i, target in enumerate(getattr(model, which)):
                if target not in config.models and ("models", target) not in reader.broken:
                    reader.problem(["models", alias, which, i], f"no model alias named {target!r}")
                elif target == alias:
                    reader.problem(["models", alias, which, i], "an alias cannot fall back to itself")

    _check_guardrails(config, registry, reader)
    for name in config.affinity.provider_ttl:
        if name not in config.providers and ("providers", name) not in reader.broken:
            reader.problem(["affinity", "provider_ttl", name], f"no provider named {name!r}")
    seen_keys: set[str] = set()
    for i, gkey in enumerate(config.keys or ()):
        if gkey.name in seen_keys:
            reader.problem(["keys", i, "name"], f"duplicate key name {gkey.name!r}")
        seen_keys.add(gkey.name)
        if (gkey.value is None) == (gkey.hash is None):
            reader.problem(["keys", i], "give exactly one of value or hash")
        for j, alias in enumerate(gkey.models or ()):
            prefix, sep, _ = alias.partition("/")
            if sep and prefix in config.providers:
                continue  # provider/model or provider/*
            if alias not in config.models and ("models", alias) not in reader.broken:
                reader.problem(["keys", i, "models", j], f"no model alias named {alias!r}")
    for path, message in config_problems(config):
        reader.problem(path, message)


def _check_guardrails(config: Config, registry: Registry, reader: _Reader) -> None:
    """``guardrails:``: known types, unique names, options decoded strictly with the type's
    ``Options``."""
    names: set[str] = set()
    for i, entry in enumerate(config.guardrails):
        spec = registry.guardrails.get(entry.type)
        if spec is None:
            reader.problem(
                ["guardrails", i, "type"],
                _unknown("guardrail type", entry.type, registry.guardrails, registry),
            )
        elif spec.options is not None:
            reader.convert(entry.options, spec.options, ["guardrails", i, "options"])
        elif entry.options:
            reader.problem(["guardrails", i, "options"], f"guardrail type {entry.type!r} takes no options")
        name = entry.name or entry.type
        if name in names:
            reader.problem(["guardrails", i, "name"], f"duplicate guardrail name {name!r}")
        names.add(name)
        if not entry.stages:
            reader.problem(["guardrails", i, "stages"], "give at least one of input, output")
        for j, alias in enumerate(entry.aliases):
            prefix, sep, _ = alias.partition("/")
            if sep and prefix in config.providers:
                continue  # provider/model
            if alias not in config.models and ("models", alias) not in reader.broken:
                reader.problem(["guardrails", i, "aliases", j], f"no model alias named {alias!r}")


def _check_admin_token(admin: AdminConfig, listen: str, reader: _Reader) -> None:
    weak = weak_admin_token(admin.token)
    if weak is None:
        return
    if is_loopback(listen):
        logger.warning("admin.token: {}; allowed only because the gateway listens on {}", weak, listen)
    else:
        reader.problem(
            ["admin", "token"],
            f"{weak}: refused on {listen} (not loopback); set a random token of at least "
            "16 characters, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
        )


def store_options(config: Config) -> dict[str, Any]:
    """The ``store:`` section without its ``type``: the store class's options."""
    return {k: v for k, v in config.store.items() if k != "type"}


def logger_entries(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """``loggers:`` as ``(name, options)`` pairs, then the ``cache:`` section's plugin (a response
    cache is built and attached like a logger: its class is registered through
    ``register_loggers`` and implements ``cache_lookup`` / ``cache_store``)."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for entry in config.loggers:
        if isinstance(entry, str):
            entries.append((entry, {}))
        else:
            entries.extend((name, dict(options or {})) for name, options in entry.items())
    if config.cache is not None:
        entries.append(cache_entry(config.cache))
    return entries


def cache_entry(section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``cache: {type: ..., options...}`` as ``(plugin name, options)`` (type ``cache`` by default)."""
    options = dict(section)
    return str(options.pop("type", "cache")), options


def _with_decoded_options(config: Config, registry: Registry) -> Config:
    providers = {}
    for name, provider in config.providers.items():
        spec = registry.providers.get(provider.type)
        if spec is not None and spec.options is not None:
            options = decode_options(provider.options, spec.options)
            provider = msgspec.structs.replace(provider, options=options)
        providers[name] = provider
    return msgspec.structs.replace(config, providers=providers)


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _unknown(what: str, name: str, installed: Iterable[str], registry: Registry) -> str:
    message = f"unknown {what} {name!r} (installed: {_names(installed)})"
    if registry.failed:
        message += f"; plugins that failed to load: {'; '.join(registry.failed)}"
    return message


def _set_fields(override: msgspec.Struct) -> dict[str, Any]:
    return {
        name: getattr(override, name)
        for name in override.__struct_fields__
        if getattr(override, name) is not msgspec.UNSET
    }


def merge_routing(base: RoutingConfig, *overrides: RoutingOverride | None) -> RoutingConfig:
    """``base`` with each override's set fields applied in order (later wins), field by field:
    a nested block (``backoff``, ``cooldown``, ``retry_budget``) changes only the fields it sets."""
    result = base
    for override in overrides:
        if override is None:
            continue
        changes = _set_fields(override)
        for name, value in list(changes.items()):
            if isinstance(value, msgspec.Struct):
                changes[name] = msgspec.structs.replace(getattr(result, name), **_set_fields(value))
        if changes:
            result = msgspec.structs.replace(result, **changes)
    return result


ConfigLoader = Callable[[], Config]


def _needs_keys(spec: ProviderSpec, options: object) -> bool:
    """Whether this provider entry needs keys: its spec's ``resolve`` (given the entry's options,
    decoded) may say otherwise than the type's ``needs_keys`` (a local server's preset)."""
    if spec.resolve is None or spec.options is None:
        return spec.needs_keys
    try:
        decoded = (
            options
            if isinstance(options, spec.options)
            else msgspec.convert(options or {}, type=spec.options, strict=False, dec_hook=_dec_hook)
        )
        needs = spec.resolve(decoded)[1]
    except Exception:  # bad options are reported where they are decoded
        return spec.needs_keys
    return spec.needs_keys if needs is None else needs
