"""The TLS context of the API clients: built once per process, not once per client."""

from __future__ import annotations

import certifi
import httpx
import pytest

from tiktok import TikTokClient
from tiktok._http import shared_tls_context


def _context_of(client: httpx.Client):
    return client._transport._pool._ssl_context  # httpx's default transport keeps it on its pool


def test_clients_without_a_transport_share_one_verifying_context(settings) -> None:
    with TikTokClient("token", settings) as first, TikTokClient("token", settings) as second:
        assert _context_of(first._http) is _context_of(second._http) is shared_tls_context()
    context = shared_tls_context()
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_a_certificate_file_setting_gets_its_own_context(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    default = shared_tls_context()  # httpx's default: certifi's bundle
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert shared_tls_context() is not default
    assert shared_tls_context() is shared_tls_context()
    monkeypatch.delenv("SSL_CERT_FILE")
    assert shared_tls_context() is default
