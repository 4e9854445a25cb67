"""The one settings model of the project (environment prefix ``TIKTOK_PIPELINE_``).

Every external URL is a setting so the same code runs against the local sandbox, moto and
production. Defaults point at TikTok's real hosts; `make demo` and the tests point them at the
sandbox they start.

`Settings` is read once (by an entry point, or by `tasks.runtime` in a worker) and passed down. Its
fields come in groups, each a model of its own, so a part is handed only what it uses and keeps the
variable names users set (`TIKTOK_PIPELINE_<FIELD>`):

    settings.tiktok     TikTokAppSettings   the TikTok app, its hosts, uploads and status polling
    settings.runs       RunSettings         retries of the Prefect steps
    settings.storage    StorageSettings     data directory, ledger database and key, S3
    settings.listener   ListenerSettings    the S3 event listener and the object -> request merge
    settings.webhooks   WebhookSettings     our outgoing webhooks
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from typing import TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AppType(str, Enum):
    """Login Kit flavour: desktop apps use PKCE with a hex challenge and a localhost redirect."""

    desktop = "desktop"
    web = "web"


def _split_commas(value: object) -> object:
    """List settings accept a JSON list or, in the environment, comma-separated values."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class TikTokAppSettings(BaseModel):
    """The TikTok app (Login Kit and Content Posting API): what `tiktok`'s clients are built from."""

    api_base_url: str = Field("https://open.tiktokapis.com", description="Content Posting API host")
    authorize_url: str = Field(
        "https://www.tiktok.com/v2/auth/authorize/", description="Login Kit authorize page"
    )
    client_key: str = Field("", description="TikTok app client key")
    client_secret: SecretStr = Field(SecretStr(""), description="TikTok app client secret (server side only)")
    redirect_uri: str = Field(
        "http://localhost:8765/callback/", description="OAuth redirect URI registered for the app"
    )
    app_type: AppType = Field(AppType.desktop, description="desktop (PKCE, hex challenge) or web")
    scopes: str = Field(
        "user.info.basic,video.publish,video.upload", description="Comma-separated OAuth scopes to request"
    )
    # TikTok's bounds are TikTok's constants: `tiktok.check_chunk_size` refuses a bad value (at
    # startup, and in every `plan_chunks`); the kernel imports nothing of the project.
    chunk_size: int = Field(
        16 * 1024 * 1024, description="Upload chunk size in bytes (5 MiB to 64,000,000)"
    )
    http_connect_timeout: float = Field(10.0, description="Seconds to establish a connection")
    http_read_timeout: float = Field(60.0, description="Seconds to wait for an API answer")
    upload_timeout: float = Field(300.0, description="Seconds allowed for one chunk PUT")

    status_poll_interval: float = Field(5.0, description="First wait between status/fetch calls (s); grows to 30 s")
    status_poll_timeout: float = Field(
        900.0, description="How long one poll task waits for TikTok to finish processing (s)"
    )

    @property
    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.scopes.split(",") if s.strip()]


class RunSettings(BaseModel):
    """How the Prefect shell retries a retryable step, and how long a runner's claim on a post lasts."""

    task_retries: int = Field(4, ge=0, description="Retries of a retryable step (read when a run starts)")
    task_retry_backoff: float = Field(
        10.0, ge=0, description="First retry delay (s), doubled each retry, with jitter"
    )
    claim_lease: float = Field(
        120.0, ge=5, description="Seconds a runner's claim on a post lasts (renewed while it uploads); "
        "a dead runner's claim is taken over once it lapses"
    )


class StorageSettings(BaseModel):
    """Where files and the ledger live, the key of its tokens, and S3."""

    data_dir: Path = Field(Path(".data"), description="Working files, kept media of uploads in progress, SQLite ledger")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the ledger; default SQLite file under data_dir"
    )
    encryption_key: SecretStr | None = Field(
        None, description="Fernet key encrypting tokens at rest"
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (moto, MinIO); default AWS")
    aws_region: str = Field("us-east-1", description="AWS region for S3")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"


class ListenerSettings(BaseModel):
    """The S3 event listener, and how an S3 object becomes a PublishRequest."""

    s3_queue_url: str | None = Field(
        None, description="SQS queue receiving the bucket's s3:ObjectCreated:* notifications (tiktok-pipeline listen)"
    )
    s3_dead_letter_queue_url: str | None = Field(
        None, description="Queue for messages that keep failing; default: the queue's RedrivePolicy target"
    )
    s3_max_receives: int = Field(
        5, ge=1, description="Receives before a failing message is dead-lettered (the queue's maxReceiveCount wins)"
    )
    # `| str`: comma-separated in the environment, as for webhook_urls; `_comma_separated_lists` splits it.
    s3_prefixes: list[str] | str = Field(
        default_factory=list, description="Only keys under these prefixes are published (empty: every key)"
    )
    s3_suffixes: list[str] | str = Field(
        default_factory=lambda: [".mp4", ".mov", ".m4v", ".webm", ".mkv"],
        description="Only keys ending with one of these (any case) are published",
    )
    s3_prefix_defaults: dict[str, dict[str, object]] = Field(
        default_factory=dict,
        description='PublishRequest fields per key prefix (JSON, e.g. {"brand-a/": {"accounts": ["main"]}}); '
        "object metadata and the sidecar override them",
    )
    s3_require_sidecar: bool = Field(
        False, description="Publish an object only once its <key>.json sidecar exists (metadata alone is not enough)"
    )
    s3_wait_seconds: int = Field(20, ge=0, le=20, description="SQS long-poll wait (s)")
    s3_batch_size: int = Field(10, ge=1, le=10, description="Messages received per poll")
    s3_visibility_timeout: int = Field(
        60, ge=1, le=43200, description="Seconds a received message stays hidden; extended while it is handled"
    )
    s3_retry_delay: int = Field(
        60, ge=0, le=43200,
        description="Seconds before a message that could not be handled yet (sidecar missing or invalid, "
        "S3 or Prefect unreachable) is tried again",
    )
    s3_deployment: str = Field(
        "publish-s3-object/publish-s3-object", description="Deployment the listener runs for each new object"
    )
    s3_start_runs: bool = Field(
        True, description="The listener starts runs; false: it only emits s3.object.created for a deployment trigger"
    )

    @field_validator("s3_prefixes", "s3_suffixes", mode="before")
    @classmethod
    def _comma_separated_lists(cls, value: object) -> object:
        return _split_commas(value)


class WebhookSettings(BaseModel):
    """The webhooks announcing every post outcome."""

    # `| str`: pydantic-settings JSON-decodes list settings from the environment and, for a union,
    # hands a value that is not JSON (comma-separated URLs) over as is; `_comma_separated_lists` then
    # makes it a list, so the value is always a list of URLs.
    webhook_urls: list[str] | str = Field(
        default_factory=list,
        description="URLs POSTed every post outcome (JSON list or comma-separated in the environment)",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        validate_default=True,
        description="HMAC-SHA256 key signing every webhook (required when webhook_urls are set)",
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds allowed for one webhook delivery attempt")
    webhook_retries: int = Field(
        4, ge=0, description="Retries of a webhook after a timeout, connection error, 429 or 5xx"
    )
    webhook_retry_backoff: float = Field(
        2.0, ge=0, description="First webhook retry delay (s), doubled each retry, with jitter"
    )

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _comma_separated_urls(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls_are_http(cls, value: list[str]) -> list[str]:
        for url in value:
            scheme, _, rest = url.partition("://")
            if scheme not in ("http", "https") or not rest.split("/", 1)[0]:
                raise ValueError(f"webhook URL {url!r} is not an http:// or https:// URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhooks_are_signed(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("webhook_urls") and not (value and value.get_secret_value()):
            raise ValueError(
                "webhook_secret is required when webhook_urls are set: set TIKTOK_PIPELINE_WEBHOOK_SECRET "
                "(receivers verify each webhook's signature with it)"
            )
        return value



Group = TypeVar("Group", bound=BaseModel)

#: The groups in the order the README's configuration table shows them.
GROUPS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("TikTok app", TikTokAppSettings),
    ("Prefect runs", RunSettings),
    ("Storage", StorageSettings),
    ("S3 events (listener)", ListenerSettings),
    ("Webhooks", WebhookSettings),
)


class Settings(TikTokAppSettings, RunSettings, StorageSettings, ListenerSettings, WebhookSettings, BaseSettings):
    """Every setting, read from the environment and `.env`; `.tiktok`, `.storage`, ... are its groups."""

    model_config = SettingsConfigDict(
        env_prefix="TIKTOK_PIPELINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    def _group(self, group: type[Group]) -> Group:
        return group.model_validate({name: getattr(self, name) for name in group.model_fields})

    @property
    def tiktok(self) -> TikTokAppSettings:
        return self._group(TikTokAppSettings)

    @property
    def runs(self) -> RunSettings:
        return self._group(RunSettings)

    @property
    def storage(self) -> StorageSettings:
        return self._group(StorageSettings)

    @property
    def listener(self) -> ListenerSettings:
        return self._group(ListenerSettings)

    @property
    def webhooks(self) -> WebhookSettings:
        return self._group(WebhookSettings)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and `.env`), with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_table() -> str:
    """The README's configuration table, made from the model itself (a test keeps the README in step)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for title, group in GROUPS:
        rows.append(f"| **{title}** | | |")
        for name, field in group.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = "(set it)" if not default.get_secret_value() else "(secret)"
            elif isinstance(default, Enum):
                default = default.value
            shown = "—" if default in (None, "", [], {}) else f"`{default}`"
            rows.append(f"| `TIKTOK_PIPELINE_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)
