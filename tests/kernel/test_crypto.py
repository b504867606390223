"""Provider keys encrypted at rest: enc:v1 values, bindings, rotation, clear start-up errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from truckllm._internal.cli import main
from truckllm._internal.config.loader import parse_config
from truckllm._internal.crypto import CryptoError, Keyring, key_id, parse_master_key, seal, unseal
from truckllm._internal.plugins import make_plugin_manager
from truckllm.errors import ConfigError

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = (b"B" * 32).hex()


def config_with(value: str) -> str:
    return f"""
providers:
  openai: {{type: openai, keys: [{{name: main, value: "{value}"}}, {{name: spare, value: plain-key}}]}}
models:
  m: {{deployments: [{{provider: openai, model: gpt-4o}}]}}
"""


def test_master_key_forms() -> None:
    assert parse_master_key(KEY_A) == b"A" * 32
    assert parse_master_key(KEY_B) == b"B" * 32
    with pytest.raises(CryptoError, match="32 bytes"):
        parse_master_key("c2hvcnQ=")


def test_seal_and_unseal_with_binding() -> None:
    keyring = Keyring(parse_master_key(KEY_A))
    sealed = seal("sk-live-1234", keyring, "openai/main")
    assert sealed.startswith(f"enc:v1:{key_id(b'A' * 32)}:") and "sk-live" not in sealed
    assert seal("sk-live-1234", keyring) != seal("sk-live-1234", keyring)  # random nonce
    assert unseal(sealed, keyring, "openai/main") == "sk-live-1234"
    with pytest.raises(CryptoError, match="sealed for 'openai/main', found at 'openai/spare'"):
        unseal(sealed, keyring, "openai/spare")
    with pytest.raises(CryptoError, match="not in TRUCKLLM_MASTER_KEY"):
        unseal(sealed, Keyring(parse_master_key(KEY_B)))
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(CryptoError, match="cannot decrypt"):
        unseal(tampered, keyring)


def test_swapping_the_binding_field_breaks_decryption() -> None:
    keyring = Keyring(parse_master_key(KEY_A))
    sealed = seal("v", keyring, "openai/main").split(":")
    sealed[3] = base64.urlsafe_b64encode(b"openai/spare").decode().rstrip("=")
    with pytest.raises(CryptoError, match="cannot decrypt"):
        unseal(":".join(sealed), keyring, "openai/spare")


def test_config_values_are_decrypted_into_secrets() -> None:
    env = {"TRUCKLLM_MASTER_KEY": KEY_A}
    sealed = seal("sk-live-abc", Keyring.from_env(env), "openai/main")
    config = parse_config(config_with(sealed), make_plugin_manager().registry(), env=env)
    value = config.providers["openai"].keys[0].value
    assert value is not None and value.reveal() == "sk-live-abc" and str(value) == "<secret>"


def test_start_up_fails_clearly_when_a_value_cannot_be_decrypted() -> None:
    sealed = seal("sk-live-abc", Keyring(parse_master_key(KEY_A)), "openai/main")
    registry = make_plugin_manager().registry()
    with pytest.raises(ConfigError) as no_key:
        parse_config(config_with(sealed), registry, source="c.yaml", env={})
    assert "c.yaml:3: providers.openai.keys[0].value: cannot decrypt" in str(no_key.value)
    with pytest.raises(ConfigError) as moved:
        parse_config(config_with(sealed).replace("name: main", "name: moved"), registry,
                     env={"TRUCKLLM_MASTER_KEY": KEY_A})
    assert "sealed for 'openai/main', found at 'openai/moved'" in str(moved.value)


def test_cli_encrypt_and_rotate_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRUCKLLM_MASTER_KEY", KEY_A)
    monkeypatch.setattr("sys.stdin", _Stdin("sk-live-rotate\n"))
    assert main(["encrypt", "--bind", "openai/main"]) == 0
    sealed = capsys.readouterr().out.strip()
    path = tmp_path / "c.yaml"
    path.write_text("# keep this comment\n" + config_with(sealed))
    monkeypatch.setenv("TRUCKLLM_MASTER_KEY", KEY_B)
    monkeypatch.setenv("TRUCKLLM_OLD_MASTER_KEYS", KEY_A)
    assert main(["rotate-key", "--config", str(path)]) == 0
    rotated = path.read_text()
    assert rotated.startswith("# keep this comment\n") and sealed not in rotated
    assert f"enc:v1:{key_id(b'B' * 32)}:" in rotated and "sk-live" not in rotated
    config = parse_config(rotated, make_plugin_manager().registry(), env={"TRUCKLLM_MASTER_KEY": KEY_B})
    assert config.providers["openai"].keys[0].value.reveal() == "sk-live-rotate"  # type: ignore[union-attr]


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def isatty(self) -> bool:
        return False

    def read(self) -> str:
        return self.text


def test_genkey_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["genkey"]) == 0
    assert len(parse_master_key(capsys.readouterr().out.strip())) == 32
