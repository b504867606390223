"""Options: the URL is read strictly (a malformed one is a config error) and never shown."""

from __future__ import annotations

import msgspec
import pytest
from truckllm_logger_sql.options import SqlOptions, parse_target

from truckllm._internal.config.loader import _dec_hook
from truckllm.kit.options import Secret


def _decode(entry: dict[str, object]) -> SqlOptions:
    return msgspec.convert(entry, type=SqlOptions, strict=False, dec_hook=_dec_hook)


def test_defaults_and_urls() -> None:
    options = _decode({})
    assert options.target.backend == "sqlite" and options.target.path == "truckllm-requests.db"
    assert (options.batch_size, options.max_queue, options.retention_days, options.pool_size) == (
        500,
        50_000,
        30,
        4,
    )
    assert parse_target("sqlite:////var/lib/log.db").path == "/var/lib/log.db"
    pg = parse_target("postgresql://u:hunter2@db.local:5433/logs")
    assert pg.backend == "postgres" and pg.where == "postgresql://db.local:5433/logs"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:hunter2@h/db",
        "sqlite://hunter2@host/x.db",
        "sqlite:///",
        "postgresql://u:hunter2@/nohost",
        "postgresql://u:hunter2@h:notaport/db",
        "hunter2",
    ],
)
def test_malformed_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        _decode({"url": url})
    assert "hunter2" not in str(info.value)


def test_url_is_secret_and_unknown_fields_refused() -> None:
    options = _decode({"url": "postgresql://u:hunter2@h/db"})
    assert isinstance(options.url, Secret)
    assert "hunter2" not in repr(options) and "hunter2" not in str(msgspec.json.encode(options, enc_hook=str))
    with pytest.raises(msgspec.ValidationError):
        _decode({"uri": "sqlite:///x.db"})
