"""The webhook settings as read from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tiktok_pipeline.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URLS", "SECRET", "TIMEOUT", "RETRIES", "RETRY_BACKOFF"):
        monkeypatch.delenv(f"TIKTOK_PIPELINE_WEBHOOK_{name}", raising=False)
    monkeypatch.chdir("/")  # no project .env file


def test_no_webhooks_by_default() -> None:
    settings = load_settings()
    assert settings.webhook_urls == [] and settings.webhook_secret is None
    assert settings.webhook_timeout == 10.0 and settings.webhook_retries == 4 and settings.webhook_retry_backoff == 2.0


@pytest.mark.parametrize(
    "value",
    [
        '["https://hooks.example.com/a", "http://127.0.0.1:9000/b?x=1,2"]',
        "https://hooks.example.com/a, http://127.0.0.1:9000/b?x=1",
        "https://hooks.example.com/a,http://127.0.0.1:9000/b?x=1,",
    ],
)
def test_urls_from_a_json_list_or_comma_separated(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", value)
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", "s")
    urls = load_settings().webhook_urls
    assert urls[0] == "https://hooks.example.com/a"
    assert urls[1].startswith("http://127.0.0.1:9000/b?x=1") and len(urls) == 2


def test_single_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", "https://hooks.example.com/a")
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", "s")
    assert load_settings().webhook_urls == ["https://hooks.example.com/a"]


@pytest.mark.parametrize("secret", [None, ""])
def test_urls_without_a_secret_are_refused_clearly(secret: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", "https://hooks.example.com/a")
    if secret is not None:
        monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError, match="webhook_secret is required when webhook_urls are set") as caught:
        load_settings()
    assert "TIKTOK_PIPELINE_WEBHOOK_SECRET" in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/a", "hooks.example.com/a", "https://"])
def test_non_http_urls_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", url)
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", "s")
    with pytest.raises(ValidationError, match="is not an http:// or https:// URL"):
        load_settings()


def test_secret_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", "https://hooks.example.com/a")
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", "whsec_do_not_print")
    settings = load_settings()
    assert "whsec_do_not_print" not in repr(settings)
    assert settings.webhook_secret.get_secret_value() == "whsec_do_not_print"
