"""Bring a source video into a per-run working directory: S3 objects, local paths, https URLs.

No Prefect here: the `ingest` task wraps `fetch_source`. Each fetch checks the size *before*
downloading (S3 HEAD, HTTP Content-Length) so an oversized object fails fast, hashes the bytes as
they land, and never writes outside the working directory whatever the object key looks like: the
local name (`safe_local_name`) is one path component of at most `MAX_LOCAL_NAME_BYTES`, readable,
with a short hash of the whole key so that two keys never share a file.

`check_source` is what a caller can learn before any run starts, without downloading: the file is a
readable regular file, the URL answers (HEAD) with something that is not a web page, the S3 object
exists; each problem is the typed error the fetch would raise, final unless it may pass by itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import unicodedata
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
    ParamValidationError,
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
#: Longest local file name, in UTF-8 bytes: under the 255 bytes of ext4/xfs/btrfs/APFS with room for
#: the suffixes written next to it (boto3's `.<8 hex>` download part, ffmpeg's `.partial`).
MAX_LOCAL_NAME_BYTES = 200
#: Hex digits of the key's SHA-256 in every local name: distinct keys never share a file.
LOCAL_NAME_HASH_DIGITS = 10
#: S3 object keys are at most 1024 bytes of UTF-8 (AWS's limit).
MAX_S3_KEY_BYTES = 1024
#: Redirects an http(s) source may take before it counts as a loop.
MAX_REDIRECTS = 10
#: Content types that are never a video: a web page, an API answer, a text file.
_NOT_VIDEO_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


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


class SourceUnreachable(SourceError):
    """Nothing answers at the URL's host (connection refused, unknown host): final, the URL is wrong."""


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
        raise InvalidSource(f"not an S3 URI of the form s3://bucket/key: {_shown(uri)}")
    key = unquote(key)
    if (size := len(key.encode("utf-8", "surrogatepass"))) > MAX_S3_KEY_BYTES:
        raise InvalidSource(f"S3 object keys are at most {MAX_S3_KEY_BYTES} bytes; this one is {size}: {_shown(uri)}")
    return S3Location(bucket=bucket, key=key)


def _shown(text: str, limit: int = 120) -> str:
    """`text` quoted for a message, cut in the middle when long (a 1000-character key stays readable)."""
    if len(text) > limit:
        text = f"{text[: limit // 2]}…{text[-limit // 2:]}"
    return repr(text)


def safe_local_name(key: str) -> str:
    """A file name for `key` (an S3 key, a URL path, a file name) that cannot escape a directory.

    Only the last path part is kept (S3 keys may hold `..`, absolute-looking prefixes, backslashes),
    anything but letters, digits, `.`, `_`, `-` and spaces becomes `_`, and the name is cut to at most
    `MAX_LOCAL_NAME_BYTES` of UTF-8 on a character boundary, keeping its extension. A short hash of
    the whole key is always added (`clip-<hash>.mp4`): two keys never name the same file, and the
    same key always names the same one.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:LOCAL_NAME_HASH_DIGITS]
    name = unicodedata.normalize("NFC", PurePosixPath(key.replace("\\", "/")).name)
    name = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem and 0 < len(extension) <= 10 and extension.isascii() and extension.isalnum()):
        stem, extension = name, ""
    suffix = f"-{digest}" + (f".{extension}" if extension else "")
    budget = MAX_LOCAL_NAME_BYTES - len(suffix.encode())
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .") or "source"
    return stem + suffix


def _target_in(work_dir: Path, key: str) -> Path:
    work_dir = work_dir.resolve()
    target = (work_dir / safe_local_name(key)).resolve()
    if target.parent != work_dir:  # defence in depth: safe_local_name already forbids this
        raise InvalidSource(f"object key {_shown(key)} would escape the working directory")
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def s3_client(settings: Settings, *, attempts: int = 5):  # -> botocore client (untyped)
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=BotoConfig(retries={"max_attempts": attempts, "mode": "standard"}),
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
    if isinstance(exc, ParamValidationError):  # e.g. a bucket name S3 cannot have: the URI is wrong
        why = " ".join(str(exc).split()).removeprefix("Parameter validation failed: ")
        why = why.split(": Bucket name must match")[0]  # boto3 goes on with its regular expressions
        return InvalidSource(f"not a valid S3 location: {_shown(location.uri)} ({why[:200]})")
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


def local_file_problem(path: Path) -> SourceError | None:
    """Why `path` cannot be a source or media file (missing, not a regular file, unreadable), or None.

    Checked without opening anything but a regular file: a FIFO or a device would block or never end.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return SourceNotFound(f"no such file: {path}")
    except PermissionError:
        return SourceAccessDenied(f"file is not readable: {path}")
    except OSError as exc:  # a name too long, a loop of links, ...
        return InvalidSource(f"not a usable path: {path} ({exc.strerror or exc})")
    if stat.S_ISDIR(mode):
        return InvalidSource(f"{path} is a directory, not a video file")
    if not stat.S_ISREG(mode):
        what = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        return InvalidSource(f"{path} is {what}, not a video file")
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        return SourceAccessDenied(f"file is not readable: {path}")
    except OSError as exc:
        return SourceAccessDenied(f"file cannot be opened: {path} ({exc.strerror or exc})")
    return None


def fetch_local(path: Path, work_dir: Path, max_bytes: int) -> FetchedSource:
    if (problem := local_file_problem(path)) is not None:
        raise problem
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


def _http_refusal(url: str, response: httpx.Response, max_bytes: int) -> SourceError | None:
    """What the status and headers of `url`'s answer say against it as a video source, or None."""
    status = response.status_code
    if status in (404, 410):
        return SourceNotFound(f"URL not found ({status}): {url}")
    if status in (401, 403):
        return SourceAccessDenied(f"URL refused access ({status}): {url}")
    if status >= 500 or status == 429:
        return SourceUnavailable(f"URL answered {status}: {url}")
    if status >= 400:
        return InvalidSource(f"URL answered {status}: {url}")
    if 300 <= status < 400:  # a redirect without a Location httpx could follow
        return InvalidSource(f"URL answered {status} without a usable redirect: {url}")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith(_NOT_VIDEO_TYPES):
        return InvalidSource(f"{url} is a web page or document ({kind}), not a video: link the video file itself")
    declared = response.headers.get("content-length")
    if declared is not None:
        if not (declared.strip().isascii() and declared.strip().isdigit()):
            return InvalidSource(f"{url} answered an invalid Content-Length {declared[:40]!r}")
        if int(declared) > max_bytes:
            return SourceTooLarge(f"{url} is {int(declared)} bytes, over the {max_bytes}-byte limit",
                                  detail={"size": int(declared), "max_bytes": max_bytes})
    return None


def _http_failure(url: str, exc: httpx.HTTPError) -> SourceError:
    """The typed error for an httpx failure on `url`: a wrong URL is final, network trouble retryable."""
    if isinstance(exc, httpx.TooManyRedirects):
        return InvalidSource(f"{url} redirects in a loop (more than {MAX_REDIRECTS} redirects)")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return InvalidSource(f"not a usable URL: {url} ({exc})")
    if isinstance(exc, httpx.RemoteProtocolError) and "content-length" in str(exc).lower():
        return InvalidSource(f"{url} answered an invalid Content-Length header ({exc})")
    return SourceUnavailable(f"download of {url} failed: {exc}")


def fetch_http(url: str, work_dir: Path, max_bytes: int, *, timeout: float = 60.0) -> FetchedSource:
    target = _target_in(work_dir, unquote(urlparse(url).path) or "source")
    digest = hashlib.sha256()
    written = 0
    try:
        with httpx.Client(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout) as client, \
                client.stream("GET", url) as response:
            if (refusal := _http_refusal(url, response, max_bytes)) is not None:
                raise refusal
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
        raise _http_failure(url, exc) from exc
    return FetchedSource(uri=url, path=target, size=written, sha256=digest.hexdigest())


def _scheme(source: str) -> str:
    """The source's scheme: `s3`, `http`, `https`, `file`, or "" for a path (a `C:` drive letter too).

    Raises InvalidSource for any other scheme."""
    try:
        scheme = urlparse(source).scheme
    except ValueError as exc:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        raise InvalidSource(f"not a usable source: {_shown(source)} ({exc})") from exc
    if scheme in ("s3", "http", "https", "file") or len(scheme) <= 1:
        return scheme if len(scheme) > 1 else ""
    raise InvalidSource(f"unsupported source scheme {scheme!r} in {_shown(source)}: use s3://, https:// or a path")


def _local_path(source: str, scheme: str) -> Path:
    path = unquote(urlparse(source).path) if scheme == "file" else source
    if "\x00" in path:
        raise InvalidSource(f"a path cannot contain a NUL character: {_shown(source)}")
    return Path(path).expanduser() if scheme != "file" else Path(path)


def fetch_source(source: str, work_dir: Path, settings: Settings, *, max_bytes: int) -> FetchedSource:
    """Copy `source` (s3://, http(s)://, file:// or a path) into `work_dir`."""
    scheme = _scheme(source)
    work_dir.mkdir(parents=True, exist_ok=True)
    if scheme == "s3":
        return fetch_s3(s3_client(settings), parse_s3_uri(source), work_dir, max_bytes)
    if scheme in ("http", "https"):
        return fetch_http(source, work_dir, max_bytes, timeout=settings.http_read_timeout)
    return fetch_local(_local_path(source, scheme), work_dir, max_bytes)


#: Seconds a `check_source` HEAD may take; the run's own download has the read timeout of the settings.
CHECK_TIMEOUT = 15.0


@dataclass(frozen=True)
class SourceCheck:
    """What `check_source` learned without downloading: the local path (for a file), the size when known."""

    uri: str
    size: int | None = None
    path: Path | None = None


def check_source(source: str, settings: Settings, *, max_bytes: int) -> SourceCheck:
    """Check `source` as `fetch_source` would find it, without downloading it.

    A path: a readable, non-empty regular file within `max_bytes` (a directory, a FIFO, a device is
    refused unopened). An http(s) URL: a HEAD (a GET's headers when HEAD is not allowed) answering
    2xx, within `max_redirects`, with a Content-Length that is a number within `max_bytes` and a
    content type that is not a web page; a host that refuses connections is `SourceUnreachable`. An
    S3 URI: a valid bucket and key, an object that exists, within `max_bytes`, not empty.

    Raises the typed error the fetch would raise. A retryable one (timeout, 5xx, S3 unreachable)
    says only that the source could not be checked now: a run would retry it.
    """
    scheme = _scheme(source)
    if scheme == "s3":
        location = parse_s3_uri(source)
        head = head_s3_object(s3_client(settings, attempts=2), location)
        size = int(head.get("ContentLength") or 0)
        if size > max_bytes:
            raise SourceTooLarge(f"{location.uri} is {size} bytes, over the {max_bytes}-byte limit",
                                 detail={"size": size, "max_bytes": max_bytes})
        if size == 0:
            raise InvalidSource(f"{location.uri} is empty (0 bytes)")
        return SourceCheck(uri=location.uri, size=size)
    if scheme in ("http", "https"):
        return SourceCheck(uri=source, size=_check_http(source, max_bytes, timeout=min(CHECK_TIMEOUT, settings.http_read_timeout)))
    path = _local_path(source, scheme)
    if (problem := local_file_problem(path)) is not None:
        raise problem
    size = path.stat().st_size
    if size > max_bytes:
        raise SourceTooLarge(f"{path} is {size} bytes, over the {max_bytes}-byte limit", detail={"size": size})
    if size == 0:
        raise InvalidSource(f"{path} is empty (0 bytes)")
    return SourceCheck(uri=str(path.resolve()), size=size, path=path)


def _check_http(url: str, max_bytes: int, *, timeout: float) -> int | None:
    """The size `url` declares (None when it does not say); raises what stands against it."""
    try:
        with httpx.Client(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout) as client:
            response = client.head(url)
            if response.status_code >= 400 and response.status_code not in (404, 410):
                # HEAD not allowed, or a URL signed for GET only (an S3 presigned URL): a GET's headers,
                # its body left unread.
                with client.stream("GET", url) as streamed:
                    response = streamed
            if (refusal := _http_refusal(url, response, max_bytes)) is not None:
                raise refusal
    except httpx.ConnectError as exc:  # refused, unknown host: nothing serves this URL
        host = urlparse(url).netloc or url
        raise SourceUnreachable(f"cannot connect to {host} for {url}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise _http_failure(url, exc) from exc
    declared = response.headers.get("content-length")
    return int(declared) if declared is not None else None


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
