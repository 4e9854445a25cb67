"""The settings as read from the environment: webhooks, every bound, and errors that name the variable."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ledger import generate_key
from tiktok_pipeline.settings import GROUPS, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TIKTOK_PIPELINE_")]:
        monkeypatch.delenv(name)
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


# --- every setting validated at start, the error naming the variable --------------------------------


def test_every_default_passes_its_own_bounds() -> None:
    settings = load_settings()
    for _, group in GROUPS:  # each group on its own too, as `settings.tiktok`, ... builds it
        group.model_validate({name: getattr(settings, name) for name in group.model_fields})
    assert set(Settings.model_fields) == {name for _, group in GROUPS for name in group.model_fields}


INVALID = [
    ("STATUS_POLL_INTERVAL", "1", "greater than or equal to 2"),
    ("STATUS_POLL_INTERVAL", "31", "less than or equal to 30"),
    ("STATUS_POLL_TIMEOUT", "0", "greater than 0"),
    ("CHUNK_SIZE", "5242879", "greater than or equal to 5242880"),
    ("CHUNK_SIZE", "64000001", "less than or equal to 64000000"),
    ("HTTP_CONNECT_TIMEOUT", "0", "greater than 0"),
    ("HTTP_READ_TIMEOUT", "inf", "finite number"),
    ("UPLOAD_TIMEOUT", "nan", "finite number"),
    ("TASK_RETRIES", "-1", "greater than or equal to 0"),
    ("TASK_RETRY_BACKOFF", "-0.5", "greater than or equal to 0"),
    ("CLAIM_LEASE", "4", "greater than or equal to 5"),
    ("API_BASE_URL", "open.tiktokapis.com", "is not an http:// or https:// URL"),
    ("AUTHORIZE_URL", "https://", "is not an http:// or https:// URL"),
    ("REDIRECT_URI", "http://localhost:99999/callback/", "is not an http:// or https:// URL"),
    ("APP_TYPE", "mobile", "'desktop' or 'web'"),
    ("DATABASE_URL", "mysql://root:hunter2@db/ledger", "the ledger runs on SQLite or PostgreSQL"),
    ("S3_ENDPOINT_URL", "127.0.0.1:9000", "is not an http:// or https:// URL"),
    ("AWS_REGION", "us east 1", "is not an AWS region name"),
    ("S3_QUEUE_URL", "sqs://queue", "is not an http:// or https:// URL"),
    ("S3_MAX_RECEIVES", "1001", "less than or equal to 1000"),
    ("S3_BUCKETS", "media,no such bucket", "'no such bucket' is not an S3 bucket name"),
    ("S3_PREFIXES", "s3://x/in/", "'s3://x/in/': 'x' is not an S3 bucket name"),
    ("S3_WAIT_SECONDS", "21", "less than or equal to 20"),
    ("S3_BATCH_SIZE", "0", "greater than or equal to 1"),
    ("S3_VISIBILITY_TIMEOUT", "43201", "less than or equal to 43200"),
    ("S3_RETRY_DELAY", "-1", "greater than or equal to 0"),
    ("S3_DEPLOYMENT", "publish-s3-object", "is neither FLOW-NAME/DEPLOYMENT-NAME nor a deployment id"),
    ("WEBHOOK_TIMEOUT", "0", "greater than 0"),
    ("WEBHOOK_RETRIES", "-1", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("name", "value", "message"), INVALID, ids=[f"{n}={v}" for n, v, _ in INVALID])
def test_an_invalid_value_fails_at_start_naming_the_variable(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = f"TIKTOK_PIPELINE_{name}"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    (error,) = caught.value.errors()
    assert error["loc"][0] == variable and message in error["msg"]
    assert "hunter2" not in str(caught.value)  # a database URL's password is never shown


@pytest.mark.parametrize(("variables", "variable", "message"), [
    ({"TASK_RETRIES": "60"}, "TIKTOK_PIPELINE_TASK_RETRIES", "60 retries with TIKTOK_PIPELINE_TASK_RETRY_BACKOFF=10"),
    ({"WEBHOOK_RETRIES": "40", "WEBHOOK_RETRY_BACKOFF": "100"}, "TIKTOK_PIPELINE_WEBHOOK_RETRIES",
     "40 retries with TIKTOK_PIPELINE_WEBHOOK_RETRY_BACKOFF=100: the last one would wait up to"),
    ({"S3_BUCKETS": "media", "S3_PREFIXES": "s3://other-bucket/in/"}, "TIKTOK_PIPELINE_S3_PREFIXES",
     "'s3://other-bucket/in/' names the bucket 'other-bucket', which TIKTOK_PIPELINE_S3_BUCKETS (media) does not allow"),
])
def test_settings_that_only_fail_together_name_one_variable(
    variables: dict[str, str], variable: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", key)
    for name, value in variables.items():
        monkeypatch.setenv(f"TIKTOK_PIPELINE_{name}", value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    (error,) = caught.value.errors()
    assert error["loc"] == (variable,) and message in error["msg"]
    assert key not in str(caught.value)  # the whole input of a model-level error is not shown


def test_the_bucket_allow_list_defaults_to_the_buckets_the_prefixes_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().bucket_allow_list == ()
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_PREFIXES", "s3://media/incoming/, shared/, s3://brand-b, s3://media/other/")
    assert load_settings().bucket_allow_list == ("media", "brand-b")
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_BUCKETS", "brand-b, media, extra-bucket")
    assert load_settings().bucket_allow_list == ("brand-b", "media", "extra-bucket")


def test_the_cli_reports_an_invalid_setting_in_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.cli import build_app

    monkeypatch.setenv("TIKTOK_PIPELINE_STATUS_POLL_INTERVAL", "1")
    result = CliRunner().invoke(build_app(), ["accounts", "list"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line == ("error: invalid settings: TIKTOK_PIPELINE_STATUS_POLL_INTERVAL: "
                    "Input should be greater than or equal to 2")
