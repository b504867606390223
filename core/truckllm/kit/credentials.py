"""Credentials fetched and refreshed off the request path, for cloud provider plugins.

- :class:`CredentialSource`: what a provider plugin's ``ProviderSpec.credentials`` factory
  returns, one per (provider, key): ``refresh()`` (I/O, returns the expiry), ``current()`` (the
  string ``transform_request`` gets as ``api_key``), ``close()``. The kernel refreshes every
  source before serving and again before it expires, in the background, never on the request path.
"""

from truckllm.types import CredentialSource as CredentialSource

__all__ = ["CredentialSource"]
