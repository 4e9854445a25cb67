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
    settings.webhook_receiver  TikTokWebhookSettings  TikTok's webhooks to us (`webhooks serve`)

Every field carries the bounds of the code that uses it, so a value that code would refuse (or
trip over) later is refused here, at start, naming the variable
(`TIKTOK_PIPELINE_STATUS_POLL_INTERVAL: Input should be greater than or equal to 2`). Bounds that
belong to another package (TikTok's chunk sizes and polling floor, Prefect's retry scheduling) are
restated here, because the kernel imports nothing of the project, and
`tests/tiktok_pipeline/test_bounds.py` checks that each one equals the constant the code uses.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic import model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Prefix of every environment variable (`TIKTOK_PIPELINE_<FIELD>`).
ENV_PREFIX = "TIKTOK_PIPELINE_"

# --- bounds other packages apply (tests/tiktok_pipeline/test_bounds.py keeps them equal) ----------

#: TikTok's chunk size bounds (`tiktok.MIN_CHUNK_SIZE`, `tiktok.MAX_CHUNK_SIZE`, `check_chunk_size`).
MIN_CHUNK_SIZE = 5 * 1024 * 1024
MAX_CHUNK_SIZE = 64_000_000
#: status/fetch is polled no more often than every 2 s (`tiktok.PollPolicy`'s `initial_interval`
#: floor, tiktok's MIN_POLL_INTERVAL) and the wait grows to at most 30 s (its `max_interval`).
MIN_POLL_INTERVAL = 2.0
MAX_POLL_INTERVAL = 30.0
#: TikTok redelivers a webhook for up to 72 h (`ledger.TIKTOK_REDELIVERY_WINDOW`): a received event
#: is kept at least this long, so a late redelivery is still recognised as a duplicate.
TIKTOK_REDELIVERY_HOURS = 72
#: Prefect waits `backoff * 2**n` before retry n+1 (at most 50 delays, `exponential_backoff`), plus
#: up to this share of jitter (`tasks.policy.RETRY_JITTER`), and schedules it at now + that delay.
RETRY_JITTER = 0.5
MAX_RETRY_DELAYS = 50
#: Longest duration (s) any setting may ask for: the code hands durations to sockets as timeouts
#: (whose limit is about 292 years, int64 nanoseconds) and adds them to the current date (a retry's
#: scheduled time, a claim's expiry; dates end at year 9999). A century keeps inside both.
MAX_SECONDS = 100 * 365 * 24 * 3600
#: Longest pause Prefect's `pause_flow_run` can wait (its timeout is a whole number of seconds, and
#: the pause's deadline is a date): a year.
MAX_PAUSE_SECONDS = 366 * 24 * 3600
#: SQS: maxReceiveCount of a RedrivePolicy (written by `wire_bucket`), long-poll wait, batch size,
#: visibility timeout.
MAX_RECEIVE_COUNT = 1000
MAX_WAIT_SECONDS = 20
MAX_BATCH_SIZE = 10
MAX_VISIBILITY_TIMEOUT = 12 * 3600
#: The database URLs the ledger is built and tested for (SQLAlchemy `dialect[+driver]://...`).
DATABASE_DIALECTS = ("sqlite", "postgresql")
#: botocore's check of a region name (`botocore.utils.validate_region_name`), anchored at the very end.
_REGION = re.compile(r"(?![0-9]+\Z)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)\Z")
#: An S3 bucket name, including the legacy us-east-1 names (uppercase, underscores, up to 255).
_BUCKET = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,253}[a-zA-Z0-9]\Z")
_DIALECT = re.compile(r"([a-z][a-z0-9]*)(\+[a-z0-9_]+)?://")


class AppType(str, Enum):
    """Login Kit flavour: desktop apps use PKCE with a hex challenge and a localhost redirect."""

    desktop = "desktop"
    web = "web"


def _split_commas(value: object) -> object:
    """List settings accept a JSON list or, in the environment, comma-separated values."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def http_url_problem(url: str) -> str | None:
    """Why `url` is not an absolute http:// or https:// URL with a host, or None when it is."""
    if not isinstance(url, str) or any(ch.isspace() or not ch.isprintable() for ch in url):
        return f"{url!r} is not an http:// or https:// URL (it holds spaces or control characters)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number in 0..65535)
    except ValueError as exc:
        return f"{url!r} is not an http:// or https:// URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL"
    if not parts.hostname.isascii():
        return f"{url!r}: write the host name in ASCII (an international name in its xn-- form)"
    return None


def _require_http_url(value: str | None) -> str | None:
    if value is not None and (problem := http_url_problem(value)):
        raise ValueError(problem)
    return value


def bucket_name_problem(name: object) -> str | None:
    """Why `name` is not an S3 bucket name, or None when it is."""
    if not isinstance(name, str) or not _BUCKET.match(name):
        return f"{name!r} is not an S3 bucket name (3 to 255 letters, digits, dots, hyphens, underscores)"
    return None


def split_prefix(entry: str) -> tuple[str | None, str]:
    """(bucket, key prefix) of an S3_PREFIXES entry: `incoming/` → (None, "incoming/"), any bucket;
    `s3://media/incoming/` → ("media", "incoming/"); `s3://media` → ("media", ""), the whole bucket."""
    if entry.startswith("s3://"):
        bucket, _, prefix = entry.removeprefix("s3://").partition("/")
        return bucket, prefix
    return None, entry


def _largest_retry_delay(backoff: float, retries: int) -> float:
    """The longest wait Prefect can schedule for `retries` retries with this backoff, jitter included."""
    if retries <= 0 or backoff <= 0:
        return 0.0
    return backoff * 2.0 ** (min(retries, MAX_RETRY_DELAYS) - 1) * (1 + RETRY_JITTER)


class SettingValueError(ValueError):
    """A problem of several settings together, reported under the variable named `variable`."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def _check_retry_delays(backoff: float, retries: int, backoff_var: str, retries_var: str) -> None:
    if (delay := _largest_retry_delay(backoff, retries)) > MAX_SECONDS:
        raise SettingValueError(
            retries_var,
            f"{retries} retries with {backoff_var}={backoff:g}: the last one would wait up to {delay:.3g} s "
            f"(the delay doubles each retry), over the {MAX_SECONDS:.3g} s a retry can be scheduled ahead; "
            "lower one of them",
        )


class _Group(BaseModel):
    """A group of settings: no infinite or NaN number passes (every float here is a duration)."""

    model_config = ConfigDict(allow_inf_nan=False)


class TikTokAppSettings(_Group):
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
    # TikTok's bounds (`tiktok.check_chunk_size` refuses the same values again at startup).
    chunk_size: int = Field(
        16 * 1024 * 1024, ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE,
        description="Upload chunk size in bytes (5 MiB to 64,000,000)",
    )
    http_connect_timeout: float = Field(10.0, gt=0, le=MAX_SECONDS, description="Seconds to establish a connection")
    http_read_timeout: float = Field(60.0, gt=0, le=MAX_SECONDS, description="Seconds to wait for an API answer")
    upload_timeout: float = Field(300.0, gt=0, le=MAX_SECONDS, description="Seconds allowed for one chunk PUT")

    status_poll_interval: float = Field(
        5.0, ge=MIN_POLL_INTERVAL, le=MAX_POLL_INTERVAL,
        description="First wait between status/fetch calls (s, 2 to 30); grows to 30 s",
    )
    status_poll_timeout: float = Field(
        900.0, gt=0, le=MAX_SECONDS, description="How long one poll task waits for TikTok to finish processing (s)"
    )

    @field_validator("api_base_url", "authorize_url", "redirect_uri")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        return _require_http_url(value)  # type: ignore[return-value]

    @property
    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.scopes.split(",") if s.strip()]


class RunSettings(_Group):
    """How the Prefect shell retries a retryable step, how long a runner's claim on a post lasts, and the
    CPU priority of transcodes."""

    task_retries: int = Field(4, ge=0, description="Retries of a retryable step (read when a run starts)")
    task_retry_backoff: float = Field(
        10.0, ge=0, le=MAX_SECONDS, description="First retry delay (s), doubled each retry, with jitter"
    )
    claim_lease: float = Field(
        120.0, ge=5, le=MAX_SECONDS, description="Seconds a runner's claim on a post lasts (renewed while it uploads); "
        "a dead runner's claim is taken over once it lapses"
    )
    transcode_niceness: int = Field(
        10, ge=0, le=19, description="Niceness (0-19) of the ffmpeg runs of a transcode, so the uploads and polls of "
        "other runs on the machine keep the CPU they need; 0 runs ffmpeg at the worker's own priority"
    )
    review_timeout: int = Field(
        3600, ge=30, le=MAX_PAUSE_SECONDS, description="Seconds a review (request.review) waits in the Prefect UI "
        "before its posts stay held, releasable later; the flow run's process waits with it"
    )

    @model_validator(mode="after")
    def _retries_can_be_scheduled(self) -> RunSettings:
        _check_retry_delays(self.task_retry_backoff, self.task_retries,
                            f"{ENV_PREFIX}TASK_RETRY_BACKOFF", f"{ENV_PREFIX}TASK_RETRIES")
        return self


class StorageSettings(_Group):
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
    pull_url_prefixes: dict[str, str] = Field(
        default_factory=dict,
        description='URL prefixes verified for the app in TikTok\'s developer portal, each served from an S3 location '
        '(JSON, e.g. {"https://cdn.example.com/tiktok/": "s3://media-cdn/tiktok/"}): the prepared video is written '
        "there once and every account posts it by PULL_FROM_URL (no upload from the worker); photo posts need one",
    )
    pull_videos: bool = Field(
        True,
        description="With a verified URL prefix, post videos by PULL_FROM_URL too; false keeps FILE_UPLOAD for "
        "videos, and only photo posts use the prefix",
    )

    @field_validator("database_url")
    @classmethod
    def _ledger_database(cls, value: str | None) -> str | None:
        if not value:
            return value
        # The URL is secret-bearing (a password): the message names its dialect only.
        match = _DIALECT.match(value)
        if not match or match.group(1) not in DATABASE_DIALECTS:
            dialect = f"dialect {match.group(1)!r}" if match else "no dialect://"
            raise ValueError(
                f"the ledger runs on SQLite or PostgreSQL: sqlite:///PATH or postgresql[+driver]://USER@HOST/DB "
                f"(this URL has {dialect})"
            )
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # The ledger's check (cryptography's Fernet): each comma-separated key, stripped, is 32 bytes
        # in url-safe base64. Never echo the key itself.
        if value is None:
            return value
        parts = [part.strip() for part in value.get_secret_value().split(",") if part.strip()]
        for position, key in enumerate(parts, start=1):
            try:
                valid = len(base64.urlsafe_b64decode(key)) == 32
            except (binascii.Error, ValueError):
                valid = False
            if not valid:
                raise ValueError(
                    f"key #{position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "generate one with `tiktok-pipeline db generate-key`"
                )
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        return _require_http_url(value)

    @field_validator("pull_url_prefixes")
    @classmethod
    def _pull_locations(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix, location in value.items():
            if problem := http_url_problem(prefix):
                raise ValueError(f"pull URL prefix {problem}")
            if not prefix.endswith("/"):
                raise ValueError(f"pull URL prefix {prefix!r} must end with / (objects are named under it)")
            if not location.startswith("s3://") or not location.endswith("/"):
                raise ValueError(f"{prefix!r} maps to {location!r}: give an s3://BUCKET/PREFIX/ location ending with /")
            bucket, _ = split_prefix(location)
            if bucket is None or (problem := bucket_name_problem(bucket)):
                raise ValueError(f"{prefix!r} maps to {location!r}: {problem or 'no bucket'}")
        return value

    @field_validator("aws_region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. us-east-1)")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"


class ListenerSettings(_Group):
    """The S3 event listener, and how an S3 object becomes a PublishRequest."""

    s3_queue_url: str | None = Field(
        None, description="SQS queue receiving the bucket's s3:ObjectCreated:* notifications (tiktok-pipeline listen)"
    )
    s3_dead_letter_queue_url: str | None = Field(
        None, description="Queue for messages that keep failing; default: the queue's RedrivePolicy target"
    )
    s3_max_receives: int = Field(
        5, ge=1, le=MAX_RECEIVE_COUNT,
        description="Receives before a failing message is dead-lettered (the queue's maxReceiveCount wins)",
    )
    # `| str`: comma-separated in the environment, as for webhook_urls; `_comma_separated_lists` splits it.
    s3_buckets: list[str] | str = Field(
        default_factory=list,
        description="Buckets whose notifications are published; any other bucket's are dead-lettered. Default: "
        "the buckets named in S3_PREFIXES, else those the queue's policy lets S3 send from",
    )
    s3_prefixes: list[str] | str = Field(
        default_factory=list,
        description="Only keys under these prefixes are published (empty: every key); "
        "s3://BUCKET/PREFIX holds for that bucket only",
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
    s3_wait_seconds: int = Field(20, ge=0, le=MAX_WAIT_SECONDS, description="SQS long-poll wait (s)")
    s3_batch_size: int = Field(10, ge=1, le=MAX_BATCH_SIZE, description="Messages received per poll")
    s3_visibility_timeout: int = Field(
        60, ge=1, le=MAX_VISIBILITY_TIMEOUT,
        description="Seconds a received message stays hidden; extended while it is handled",
    )
    s3_retry_delay: int = Field(
        60, ge=0, le=MAX_VISIBILITY_TIMEOUT,
        description="Seconds before a message that could not be handled yet (sidecar missing or invalid, "
        "S3 or Prefect unreachable) is tried again",
    )
    s3_deployment: str = Field(
        "publish-s3-object/publish-s3-object", description="Deployment the listener runs for each new object"
    )
    s3_start_runs: bool = Field(
        True, description="The listener starts runs; false: it only emits s3.object.created for a deployment trigger"
    )

    @field_validator("s3_buckets", "s3_prefixes", "s3_suffixes", mode="before")
    @classmethod
    def _comma_separated_lists(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("s3_queue_url", "s3_dead_letter_queue_url")
    @classmethod
    def _queue_urls(cls, value: str | None) -> str | None:
        return _require_http_url(value)

    @field_validator("s3_buckets")
    @classmethod
    def _bucket_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if problem := bucket_name_problem(name):
                raise ValueError(problem)
        return value

    @field_validator("s3_prefixes")
    @classmethod
    def _bucket_prefixes(cls, value: list[str]) -> list[str]:
        for entry in value:
            bucket, _ = split_prefix(entry)
            if bucket is not None and (problem := bucket_name_problem(bucket)):
                raise ValueError(f"{entry!r}: {problem}")
        return value

    @field_validator("s3_deployment")
    @classmethod
    def _deployment_name(cls, value: str) -> str:
        # What Prefect's run_deployment reads: a deployment id, or FLOW/DEPLOYMENT (split on its one "/").
        try:
            uuid.UUID(value)
            return value
        except ValueError:
            pass
        parts = value.split("/")
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise ValueError(f"{value!r} is neither FLOW-NAME/DEPLOYMENT-NAME nor a deployment id")
        return value

    @model_validator(mode="after")
    def _prefix_buckets_are_allowed(self) -> ListenerSettings:
        if self.s3_buckets:
            for entry in self.s3_prefixes:
                bucket, _ = split_prefix(entry)
                if bucket is not None and bucket not in self.s3_buckets:
                    raise SettingValueError(
                        f"{ENV_PREFIX}S3_PREFIXES",
                        f"{entry!r} names the bucket {bucket!r}, which {ENV_PREFIX}S3_BUCKETS "
                        f"({', '.join(self.s3_buckets)}) does not allow",
                    )
        return self

    @property
    def bucket_allow_list(self) -> tuple[str, ...]:
        """S3_BUCKETS, else the buckets S3_PREFIXES names (empty when neither names one)."""
        if self.s3_buckets:
            return tuple(dict.fromkeys(self.s3_buckets))
        named = (split_prefix(entry)[0] for entry in self.s3_prefixes)
        return tuple(dict.fromkeys(bucket for bucket in named if bucket is not None))


class WebhookSettings(_Group):
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
    webhook_timeout: float = Field(
        10.0, gt=0, le=MAX_SECONDS, description="Seconds allowed for one webhook delivery attempt"
    )
    webhook_retries: int = Field(
        4, ge=0, description="Retries of a webhook after a timeout, connection error, 429 or 5xx"
    )
    webhook_retry_backoff: float = Field(
        2.0, ge=0, le=MAX_SECONDS, description="First webhook retry delay (s), doubled each retry, with jitter"
    )

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _comma_separated_urls(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls_are_http(cls, value: list[str]) -> list[str]:
        for url in value:
            if http_url_problem(url):
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

    @model_validator(mode="after")
    def _webhook_retries_can_be_scheduled(self) -> WebhookSettings:
        _check_retry_delays(self.webhook_retry_backoff, self.webhook_retries,
                            f"{ENV_PREFIX}WEBHOOK_RETRY_BACKOFF", f"{ENV_PREFIX}WEBHOOK_RETRIES")
        return self


class TikTokWebhookSettings(_Group):
    """TikTok's webhooks to this pipeline: the receiver (`tiktok-pipeline webhooks serve`) and what
    status polling does while they are on."""

    tiktok_webhooks: bool = Field(
        False, description="TikTok's webhooks reach the receiver (`tiktok-pipeline webhooks serve`): a post is "
        "settled by its webhook, and status polling slows to a safety net every TIKTOK_WEBHOOKS_POLL_INTERVAL",
    )
    tiktok_webhooks_host: str = Field("127.0.0.1", min_length=1, description="Interface the receiver listens on")
    tiktok_webhooks_port: int = Field(8787, ge=0, le=65535, description="Port the receiver listens on (0: any free port)")
    tiktok_webhooks_poll_interval: float = Field(
        60.0, ge=MIN_POLL_INTERVAL, le=MAX_SECONDS,
        description="With webhooks on: seconds between the safety-net status/fetch calls of a post waiting for its "
        "webhook (the ledger is checked every second meanwhile)",
    )
    tiktok_webhooks_keep_hours: float = Field(
        168.0, ge=TIKTOK_REDELIVERY_HOURS, le=MAX_SECONDS / 3600,
        description="Hours a received webhook is kept (to recognise redeliveries, at least TikTok's 72 h) before "
        "`cleanup` prunes it",
    )


Group = TypeVar("Group", bound=BaseModel)

#: The groups in the order the README's configuration table shows them.
GROUPS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("TikTok app", TikTokAppSettings),
    ("Prefect runs", RunSettings),
    ("Storage", StorageSettings),
    ("S3 events (listener)", ListenerSettings),
    ("Webhooks", WebhookSettings),
    ("TikTok's webhooks (receiver)", TikTokWebhookSettings),
)


class Settings(TikTokAppSettings, RunSettings, StorageSettings, ListenerSettings, WebhookSettings,
               TikTokWebhookSettings, BaseSettings):
    """Every setting, read from the environment and `.env`; `.tiktok`, `.storage`, ... are its groups."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", allow_inf_nan=False
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _named_by_variable(exc) from None

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

    @property
    def webhook_receiver(self) -> TikTokWebhookSettings:
        return self._group(TikTokWebhookSettings)


#: Fields whose value is never shown, not even in an error (a database URL may hold a password).
_SECRET_FIELDS = frozenset({"client_secret", "encryption_key", "webhook_secret", "database_url"})


def _named_by_variable(exc: ValidationError) -> ValidationError:
    """The same errors, each located at the variable a user sets (`TIKTOK_PIPELINE_CHUNK_SIZE`)
    instead of the field, and without the value of a secret."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = str(loc[0]) if loc else ""
        cause = (error.get("ctx") or {}).get("error")
        if not loc and isinstance(cause, SettingValueError):
            loc, field = (cause.variable,), cause.variable.removeprefix(ENV_PREFIX).lower()
        elif field in Settings.model_fields:
            loc = (f"{ENV_PREFIX}{field.upper()}", *loc[1:])
        # The message as pydantic wrote it ("{" escaped: a custom error formats its template).
        message = error["msg"].replace("{", "{{").replace("}", "}}")
        details.append({
            "type": PydanticCustomError(error["type"], message),
            "loc": loc,
            # A model-level error's input is every setting: never shown either.
            "input": "**********" if field in _SECRET_FIELDS or not error["loc"] else error["input"],
        })
    return ValidationError.from_exception_data(exc.title, details)


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
