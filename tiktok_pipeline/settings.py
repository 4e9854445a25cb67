"""The one settings model of the project (environment prefix ``TIKTOK_PIPELINE_``).

Every external URL is a setting so the same code runs against the local sandbox, moto and
production. Defaults point at TikTok's real hosts; `make demo` and the tests point them at the
sandbox they start.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: TikTok's media-transfer bounds for a chunk (bytes). The docs never say MB or MiB, so stay inside both.
MIN_CHUNK_SIZE = 5 * 1024 * 1024
MAX_CHUNK_SIZE = 64_000_000


class AppType(str, Enum):
    """Login Kit flavour: desktop apps use PKCE with a hex challenge and a localhost redirect."""

    desktop = "desktop"
    web = "web"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIKTOK_PIPELINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- TikTok -------------------------------------------------------------------------------
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

    # --- Prefect shell ------------------------------------------------------------------------
    task_retries: int = Field(4, ge=0, description="Retries of a retryable step (read when a worker starts)")
    task_retry_backoff: float = Field(
        10.0, ge=0, description="First retry delay (s), doubled each retry, with jitter"
    )

    # --- Storage --------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Working files, SQLite ledger, sweeper state")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the ledger; default SQLite file under data_dir"
    )
    encryption_key: SecretStr | None = Field(
        None, description="Fernet key encrypting tokens at rest"
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (moto, MinIO); default AWS")
    aws_region: str = Field("us-east-1", description="AWS region for S3")

    # --- S3 events (listener) -----------------------------------------------------------------

    # --- Notifications (webhooks) -------------------------------------------------------------

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size_in_bounds(cls, value: int) -> int:
        if not MIN_CHUNK_SIZE <= value <= MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, got {value}"
            )
        return value

    @property
    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.scopes.split(",") if s.strip()]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and `.env`), with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
