"""Credential sources of ``type: azure`` keys: the api-key as it is, Entra ID tokens fetched by an
(injected) azure-identity credential in a thread, refreshed, never leaking the client secret."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import truckllm_provider_azure as plugin
from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from truckllm_provider_azure.credentials import identity_credential

from .conftest import Kit


class FakeCredential:
    """A token credential handing out numbered tokens that expire ``lifetime`` after ``now``."""

    def __init__(self, now: float = 1_000_000.0, lifetime: int = 3600, fail: Exception | None = None) -> None:
        self.now, self.lifetime, self.fail = now, lifetime, fail
        self.scopes: list[tuple[str, ...]] = []
        self.threads: list[str] = []
        self.closed = False

    def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.append(scopes)
        self.threads.append(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        return AccessToken(f"token-{len(self.scopes)}", int(self.now) + self.lifetime)

    def close(self) -> None:
        self.closed = True


def test_api_key_source_never_expires() -> None:
    source = plugin.ApiKeySource("k-1")
    assert source.current() == "k-1"


async def test_api_key_refresh_is_infinite() -> None:
    assert await plugin.ApiKeySource("k").refresh() == math.inf


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", plugin.EntraLogin(kind="managed_identity")),
        ("managed-identity", plugin.EntraLogin(kind="managed_identity")),
        ("default", plugin.EntraLogin(kind="default")),
        ('{"client_id": "uami"}', plugin.EntraLogin(kind="managed_identity", client_id="uami")),
        (
            '{"tenant_id": "t", "client_id": "c", "client_secret": "s"}',
            plugin.EntraLogin(kind="client_secret", tenant_id="t", client_id="c", client_secret="s"),
        ),
    ],
)
def test_entra_key_values(value: str, expected: plugin.EntraLogin) -> None:
    assert plugin.read_login(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('{"tenant_id": "t", "client_secret": "hunter2"}', "lacks client_id"),
        ('{"tenant_id": "t", "client_id": "c", "secret": "hunter2"}', "not valid"),
        ("hunter2-not-json", "managed-identity, default, or a JSON object"),
    ],
)
def test_bad_entra_key_values_are_named_never_quoted(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as bad:
        plugin.read_login(value)
    assert "hunter2" not in str(bad.value)


def test_the_plugin_gives_each_key_its_source(kit: type[Kit]) -> None:
    fake = FakeCredential()
    azure = plugin.AzurePlugin(credential_factory=lambda login: fake)
    assert isinstance(azure.credentials(kit.provider(), "k"), plugin.ApiKeySource)
    assert isinstance(azure.credentials(kit.provider(auth="entra"), ""), plugin.EntraSource)
    with pytest.raises(ValueError):
        azure.credentials(kit.provider(auth="entra"), "{")


async def test_entra_source_fetches_in_a_thread_and_refreshes(kit: type[Kit]) -> None:
    fake = FakeCredential(now=2_000_000.0, lifetime=600)
    logins: list[plugin.EntraLogin] = []

    def factory(login: plugin.EntraLogin) -> FakeCredential:
        logins.append(login)
        return fake

    source = plugin.AzurePlugin(credential_factory=factory).credentials(
        kit.provider(auth="entra", scope="api://custom/.default"), '{"client_id": "uami"}'
    )
    assert source.current() == ""
    assert await source.refresh() == 2_000_600.0
    assert source.current() == "token-1"
    fake.now += 500
    assert await source.refresh() == 2_001_100.0
    assert source.current() == "token-2"
    assert fake.scopes == [("api://custom/.default",)] * 2
    assert threading.current_thread().name not in fake.threads  # never on the event loop's thread
    assert logins == [plugin.EntraLogin(kind="managed_identity", client_id="uami")]  # built once
    await source.close()
    assert fake.closed


async def test_a_failed_refresh_keeps_the_token_and_hides_the_secret() -> None:
    fake = FakeCredential()
    login = plugin.read_login('{"tenant_id": "t", "client_id": "c", "client_secret": "hunter2"}')
    source = plugin.EntraSource(login, plugin.DEFAULT_SCOPE, lambda _: fake)
    await source.refresh()
    fake.fail = RuntimeError("AADSTS7000215: Invalid client secret provided: hunter2\nTrace ID: x")
    with pytest.raises(RuntimeError) as failed:
        await source.refresh()
    assert "AADSTS7000215" in str(failed.value) and "hunter2" not in str(failed.value)
    assert "Trace ID" not in str(failed.value)
    assert source.current() == "token-1"


async def test_an_empty_token_is_a_failure() -> None:
    class Empty(FakeCredential):
        def get_token(self, *scopes: str) -> AccessToken:
            return AccessToken("", 0)

    source = plugin.EntraSource(plugin.EntraLogin(kind="default"), plugin.DEFAULT_SCOPE, lambda _: Empty())
    with pytest.raises(RuntimeError, match="empty token"):
        await source.refresh()


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ('{"tenant_id": "t", "client_id": "c", "client_secret": "s"}', ClientSecretCredential),
        ("managed-identity", ManagedIdentityCredential),
        ('{"client_id": "uami"}', ManagedIdentityCredential),
        ("default", DefaultAzureCredential),
    ],
)
def test_azure_identity_builds_the_credential(value: str, kind: Any) -> None:
    credential = identity_credential(plugin.read_login(value))  # no network until get_token
    try:
        assert isinstance(credential, kind)
    finally:
        credential.close()
