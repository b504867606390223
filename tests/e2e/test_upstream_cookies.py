"""The upstream session keeps no cookies: what an upstream sets in one client's answer never
rides on another client's request (nor on the same client's: the gateway is not a browser).

Real providers set cookies (OpenAI and Anthropic answer through Cloudflare, ``__cf_bm``,
``_cfuvid``); a shared cookie jar would carry one tenant's cookies into every other tenant's
requests to that host. The fake below sets a cookie on every answer, reached through a host
*name* (``localhost``: a cookie jar keeps no cookies for bare IP addresses, which would hide the
bug); every request after the first is checked for a ``Cookie`` header.
"""

from __future__ import annotations

import openai

from truckllm_testing.fakes import FakeOpenAI
from truckllm_testing.fakes.base import Ctx
from truckllm_testing.server import GatewayServer

KEY = "sk-test-cookiecookiecookie00"


class CookieSettingOpenAI(FakeOpenAI):
    """A fake OpenAI whose every answer sets a cookie, as Cloudflare in front of the real one does."""

    def success_headers(self, ctx: Ctx) -> dict[str, str]:
        """The usual headers plus ``Set-Cookie``."""
        return {**super().success_headers(ctx), "set-cookie": "__cf_bm=tenant-a-secret; path=/; HttpOnly"}


def test_an_upstream_cookie_is_never_sent_back() -> None:
    fake = CookieSettingOpenAI(keys=[KEY])
    with fake.running():
        base_url = fake.base_url.replace("127.0.0.1", "localhost")
        config = f"""
providers:
  oa: {{type: openai, base_url: '{base_url}', keys: [{{name: k, value: {KEY}}}]}}
models:
  m: {{deployments: [{{provider: oa, model: gpt-4o-mini}}]}}
"""
        with GatewayServer(config) as gw:
            for tenant in ("tenant-a", "tenant-b", "tenant-b"):
                with openai.OpenAI(base_url=gw.url + "/v1", api_key=tenant, max_retries=0) as client:
                    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 3
    assert [r.headers.get("cookie") for r in fake.requests] == [None, None, None]
    assert fake.violations == []
