"""Bring a source video into a per-run working directory: S3 objects, local paths, https URLs.

No Prefect here: the `ingest` task wraps `fetch_source`. Each fetch checks the size *before*
downloading (S3 HEAD, HTTP Content-Length) so an oversized object fails fast, hashes the bytes as
they land, and never writes outside the working directory whatever the object key looks like.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
)

from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

#: Multipart download: 8 MiB parts, 4 concurrent streams (boto3's transfer manager).
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=4,
    use_threads=True,
)
_HASH_BLOCK = 1024 * 1024


class SourceError(PipelineError):
    """A source could not be fetched."""


class SourceNotFound(SourceError):
    """The object, file or URL does not exist."""


class SourceAccessDenied(SourceError):
    """Credentials do not allow reading the source."""


class SourceCredentialsMissing(SourceAccessDenied):
    """No AWS credentials were found at all: final, the worker's environment must be fixed first."""


class SourceTooLarge(SourceError):
    """The source exceeds the configured maximum size; nothing was downloaded."""


class InvalidSource(SourceError):
    """The source string is not an S3 URI, an existing path or an http(s) URL."""


class SourceUnavailable(SourceError):
    """Network or service trouble while fetching: worth retrying."""

    retryable = True


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """`s3://bucket/key` that `parse_s3_uri` reads back as exactly this key: `%`, `#` and `?` are
        percent-escaped, everything else (spaces, accents, emoji) stays readable."""
        key = self.key.replace("%", "%25").replace("#", "%23").replace("?", "%3F")
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class FetchedSource:
    """A source copied into the working directory."""

    uri: str
    path: Path
    size: int
    sha256: str
    etag: str | None = None


def parse_s3_uri(uri: str) -> S3Location:
    """Bucket and key of `s3://bucket/key`; the key is percent-decoded (write `%` as `%25`).

    Not `urlparse`: a `#` or `?` in a key is part of the key, not a fragment or a query.
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/") if uri.startswith("s3://") else ("", "", "")
    if not bucket or not key.strip("/"):
        raise InvalidSource(f"not an S3 URI of the form s3://bucket/key: {uri!r}")
    return S3Location(bucket=bucket, key=unquote(key))


def safe_local_name(key: str) -> str:
    """A file name for `key` that cannot escape a directory: the last path part, sanitised.

    S3 keys may contain `..`, absolute-looking prefixes or backslashes; only the final component
    is kept, and anything that is not a plain name falls back to `source`.
    """
    name = PurePosixPath(key.replace("\\", "/")).name
    name = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip(" .")
    return name or "source"


def _target_in(work_dir: Path, key: str) -> Path:
    work_dir = work_dir.resolve()
    target = (work_dir / safe_local_name(key)).resolve()
    if target.parent != work_dir:  # defence in depth: safe_local_name already forbids this
        raise InvalidSource(f"object key {key!r} would escape the working directory")
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def s3_client(settings: Settings):  # -> botocore client (untyped)
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
    )


#: Where boto3 looks for credentials, as a user fixes it (one line in every message about it).
AWS_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the worker's environment, "
    "or give the worker an instance role"
)
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


def credentials_missing(uri: str, exc: BaseException | None = None) -> SourceCredentialsMissing:
    why = f" ({exc})" if exc is not None and not isinstance(exc, NoCredentialsError) else ""
    return SourceCredentialsMissing(f"no AWS credentials to read {uri}{why}: {AWS_CREDENTIALS_HINT}", detail={"source": uri})


def has_aws_credentials(settings: Settings) -> bool:
    """True when boto3 finds credentials (environment, profile, container or instance role)."""
    return boto3.session.Session(region_name=settings.aws_region).get_credentials() is not None


def s3_failure(exc: Exception, location: S3Location, doing: str) -> SourceError:
    """The typed error for a boto3 failure while `doing` (e.g. "reading"): missing credentials are
    final (retrying cannot find them), connection trouble is retryable, ClientErrors by their code."""
    if isinstance(exc, ClientError):
        return _s3_error(exc, location)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return credentials_missing(location.uri, exc)
    return SourceUnavailable(f"cannot reach S3 {doing} {location.uri}: {exc}")


def _s3_error(exc: ClientError, location: S3Location) -> SourceError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"} or status == 404:
        return SourceNotFound(f"S3 object not found: {location.uri}", detail=exc.response)
    if code in {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                "InvalidToken"} or status == 403:
        return SourceAccessDenied(f"access denied reading {location.uri}", detail=exc.response)
    if status is not None and status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
        return SourceUnavailable(f"S3 unavailable reading {location.uri}: {code}", detail=exc.response)
    return SourceError(f"S3 error {code or status} reading {location.uri}", detail=exc.response)


def head_s3_object(client, location: S3Location) -> dict:
    try:
        return client.head_object(Bucket=location.bucket, Key=location.key)
    except (ClientError, BotoCoreError) as exc:
        raise s3_failure(exc, location, "for") from exc


def fetch_s3(client, location: S3Location, work_dir: Path, max_bytes: int) -> FetchedSource:
    head = head_s3_object(client, location)
    size = int(head["ContentLength"])
    if size > max_bytes:
        raise SourceTooLarge(
            f"{location.uri} is {size} bytes, over the {max_bytes}-byte limit; nothing downloaded",
            detail={"size": size, "max_bytes": max_bytes},
        )
    etag = str(head.get("ETag", "")).strip('"') or None
    target = _target_in(work_dir, location.key)
    try:
        client.download_file(location.bucket, location.key, str(target), Config=TRANSFER_CONFIG)
    except (ClientError, BotoCoreError) as exc:
        target.unlink(missing_ok=True)
        raise s3_failure(exc, location, "downloading") from exc
    got = target.stat().st_size
    if got != size:  # the object changed between HEAD and GET: refuse a mix of two versions
        target.unlink(missing_ok=True)
        raise SourceUnavailable(f"{location.uri} changed during download ({size} then {got} bytes)")
    return FetchedSource(uri=location.uri, path=target, size=got, sha256=sha256_of(target), etag=etag)


def fetch_local(path: Path, work_dir: Path, max_bytes: int) -> FetchedSource:
    if not path.is_file():
        raise SourceNotFound(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise SourceAccessDenied(f"file is not readable: {path}")
    size = path.stat().st_size
    if size > max_bytes:
        raise SourceTooLarge(f"{path} is {size} bytes, over the {max_bytes}-byte limit", detail={"size": size})
    target = _target_in(work_dir, path.name)
    # A copy, not the original: transcoding and cleanup must never touch the user's file.
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return FetchedSource(uri=str(path.resolve()), path=target, size=size, sha256=sha256_of(target))


def fetch_http(url: str, work_dir: Path, max_bytes: int, *, timeout: float = 60.0) -> FetchedSource:
    target = _target_in(work_dir, urlparse(url).path or "source")
    digest = hashlib.sha256()
    written = 0
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 404:
                raise SourceNotFound(f"URL not found (404): {url}")
            if response.status_code in (401, 403):
                raise SourceAccessDenied(f"URL refused access ({response.status_code}): {url}")
            if response.status_code >= 500:
                raise SourceUnavailable(f"URL answered {response.status_code}: {url}")
            if response.status_code >= 400:
                raise SourceError(f"URL answered {response.status_code}: {url}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise SourceTooLarge(f"{url} is {declared} bytes, over the {max_bytes}-byte limit")
            with target.open("wb") as fh:
                for block in response.iter_bytes(_HASH_BLOCK):
                    written += len(block)
                    if written > max_bytes:  # servers can lie about or omit Content-Length
                        raise SourceTooLarge(f"{url} exceeds the {max_bytes}-byte limit")
                    digest.update(block)
                    fh.write(block)
    except SourceError:
        target.unlink(missing_ok=True)
        raise
    except httpx.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise SourceUnavailable(f"download of {url} failed: {exc}") from exc
    return FetchedSource(uri=url, path=target, size=written, sha256=digest.hexdigest())


def fetch_source(source: str, work_dir: Path, settings: Settings, *, max_bytes: int) -> FetchedSource:
    """Copy `source` (s3://, http(s)://, file:// or a path) into `work_dir`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    scheme = urlparse(source).scheme
    if scheme == "s3":
        return fetch_s3(s3_client(settings), parse_s3_uri(source), work_dir, max_bytes)
    if scheme in ("http", "https"):
        return fetch_http(source, work_dir, max_bytes, timeout=settings.http_read_timeout)
    if scheme == "file":
        return fetch_local(Path(unquote(urlparse(source).path)), work_dir, max_bytes)
    if scheme and len(scheme) > 1:  # "C:" style drive letters are paths, anything else is not supported
        raise InvalidSource(f"unsupported source scheme {scheme!r} in {source!r}: use s3://, https:// or a path")
    return fetch_local(Path(source).expanduser(), work_dir, max_bytes)


def apply_source_action(settings: Settings, source_uri: str, action: str, move_prefix: str = "published/") -> str | None:
    """After a successful publish: keep the S3 source, delete it, or move it under `move_prefix`.

    Returns the new URI for a move, None otherwise. Only S3 sources are touched; local files and
    URLs are always kept (they are not ours to delete).
    """
    if action == "keep" or urlparse(source_uri).scheme != "s3":
        return None
    location = parse_s3_uri(source_uri)
    client = s3_client(settings)
    try:
        if action == "move":
            new_key = move_prefix.rstrip("/") + "/" + location.key
            client.copy({"Bucket": location.bucket, "Key": location.key}, location.bucket, new_key, Config=TRANSFER_CONFIG)
            client.delete_object(Bucket=location.bucket, Key=location.key)
            return S3Location(location.bucket, new_key).uri
        if action == "delete":
            client.delete_object(Bucket=location.bucket, Key=location.key)
            return None
    except (ClientError, BotoCoreError) as exc:
        raise s3_failure(exc, location, f"to {action}") from exc
    raise InvalidSource(f"unknown source action {action!r}: keep, delete or move")
