"""The token source against the fake Vertex token endpoint: google-auth signs the service
account's assertion, the fake checks it and issues a token; the source returns its expiry and
hands the token out with no I/O. Nothing secret reaches an error message or a log record."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from truckllm_provider_vertex.credentials import CredentialError, GoogleTokenSource

from truckllm_testing.fakes.vertex import FakeVertex


@pytest.fixture
async def fake() -> AsyncIterator[FakeVertex]:
    async with FakeVertex(keys=["sa-1", "sa-2"], token_lifetime=900) as server:
        yield server


async def test_refresh_returns_the_expiry_and_current_the_token(fake: FakeVertex) -> None:
    source = GoogleTokenSource(fake.service_account_json("sa-1"))
    before = time.time()
    expiry = await source.refresh()
    assert before + 890 <= expiry <= time.time() + 900
    (issued,) = fake.issued
    assert issued.account == "sa-1"
    assert source.current() == issued.token
    fake.token_lifetime = 30
    assert await source.refresh() <= time.time() + 30
    assert source.current() == fake.issued[-1].token != issued.token  # a new token each refresh
    await source.close()
    assert source.current() == ""


async def test_a_key_file_path(fake: FakeVertex, tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text(fake.service_account_json("sa-2"))
    source = GoogleTokenSource(str(path))
    await source.refresh()
    assert fake.issued[-1].account == "sa-2" and source.current() == fake.issued[-1].token
    await source.close()


async def test_application_default_credentials(
    fake: FakeVertex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "adc.json"
    path.write_text(fake.service_account_json("sa-1"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    source = GoogleTokenSource("")
    await source.refresh()
    assert source.current() == fake.issued[-1].token
    await source.close()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE', "not valid JSON"),
        ('["service_account"]', "not an object"),
        ('{"type": "service_account", "private_key": "SECRETKEYMATERIAL"}', "could not load|not usable"),
        ("/no/such/file-SECRETPATH.json", "neither JSON nor the path"),
        ('{"type": "no_such_type", "private_key": "SECRETKEYMATERIAL"}', "type 'no_such_type' are not taken"),
    ],
)
async def test_unusable_keys_are_named_not_quoted(value: str, why: str) -> None:
    source = GoogleTokenSource(value)
    with pytest.raises(CredentialError, match=why) as failed:
        await source.refresh()
    shown = "".join(traceback.format_exception(failed.value))  # chained exceptions included
    assert "SECRET" not in shown and "BEGIN" not in shown
    assert source.current() == ""
    await source.close()


async def test_a_refused_assertion_is_a_clear_error(fake: FakeVertex) -> None:
    forged = fake.service_account("sa-1")
    forged["private_key"] = fake.service_account("sa-2")["private_key"]
    source = GoogleTokenSource(json.dumps(forged))
    with pytest.raises(CredentialError, match="Invalid JWT Signature") as failed:
        await source.refresh()
    assert "PRIVATE KEY" not in str(failed.value) and "eyJ" not in str(failed.value)  # no key, no assertion
    assert source.current() == ""


async def test_a_failed_refresh_keeps_the_previous_token(fake: FakeVertex) -> None:
    source = GoogleTokenSource(fake.service_account_json("sa-1"))
    await source.refresh()
    token = source.current()
    await fake.close()  # the token endpoint is down
    with pytest.raises(CredentialError, match="could not be reached"):
        await source.refresh()
    assert source.current() == token  # the kernel serves it until it expires
    await fake.start()
    await source.refresh()
    assert source.current() != token
    await source.close()


async def test_google_auth_logs_no_token(fake: FakeVertex, caplog: pytest.LogCaptureFixture) -> None:
    """Even with the ``google`` loggers at DEBUG (where google-auth's own transport logs every
    request and response), a refresh writes neither the assertion nor the token."""
    caplog.set_level(logging.DEBUG, logger="google")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    source = GoogleTokenSource(fake.service_account_json("sa-1"))
    await source.refresh()
    token = source.current()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert token not in logged
    assert "assertion" not in logged and "eyJ" not in logged
    await source.close()
