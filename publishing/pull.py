"""Media TikTok pulls itself (PULL_FROM_URL), without Prefect: written once to the S3 location behind a
URL prefix verified for the app, then announced to every account by URL.

`TIKTOK_PIPELINE_PULL_URL_PREFIXES` maps each verified prefix (a domain or URL prefix verified in
TikTok's developer portal, e.g. a CDN in front of a bucket) to the S3 location that serves it. A
file is stored under its content hash (`<location><sha256>.<ext>`), so staging the same bytes again
writes nothing, and every account of a fan-out posts the one copy: the worker sends the video once,
to S3, instead of once per account to TikTok.

TikTok fetches such media itself, so an init whose answer is lost may already be a post: the
init is not asked again (`publishing.posting.call_init` records the post unconfirmed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from publishing.sources import S3Location, s3_client, s3_failure
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings, split_prefix

_LOG = logging.getLogger(__name__)

CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class PullPrefixMissing(PipelineError):
    """Media TikTok must pull needs a verified URL prefix, and none is configured (final)."""


@dataclass(frozen=True)
class PullLocation:
    """A verified URL prefix and the S3 location whose objects it serves."""

    url_prefix: str
    location: S3Location

    def url_of(self, name: str) -> str:
        return self.url_prefix + name

    def object_of(self, name: str) -> S3Location:
        return S3Location(self.location.bucket, self.location.key + name)


@dataclass(frozen=True)
class Staged:
    """One file at its pull URL; `sent` is how many bytes this call wrote to S3 (0: it was there)."""

    url: str
    location: S3Location
    size: int
    sent: int


def pull_location(settings: Settings) -> PullLocation | None:
    """The configured verified prefix (the first, when several are), or None: media is uploaded instead."""
    for prefix, location in settings.pull_url_prefixes.items():
        bucket, key_prefix = split_prefix(location)
        return PullLocation(prefix, S3Location(bucket or "", key_prefix))
    return None


def require_pull_location(settings: Settings, what: str) -> PullLocation:
    location = pull_location(settings)
    if location is None:
        raise PullPrefixMissing(
            f"{what} needs a URL prefix verified for the app in TikTok's developer portal: set "
            'TIKTOK_PIPELINE_PULL_URL_PREFIXES, e.g. {"https://cdn.example.com/tiktok/": "s3://BUCKET/tiktok/"}')
    return location


def staged_name(sha256: str, path: Path) -> str:
    return f"{sha256}{path.suffix.lower() or '.bin'}"


def stage(settings: Settings, where: PullLocation, path: Path, sha256: str, *, client=None) -> Staged:
    """Put `path` at its pull URL (its content hash names it): written once, found the next time."""
    name = staged_name(sha256, path)
    target = where.object_of(name)
    size = path.stat().st_size
    s3 = client or s3_client(settings)
    try:
        head = s3.head_object(Bucket=target.bucket, Key=target.key)
        if head.get("ContentLength") == size:
            return Staged(where.url_of(name), target, size, 0)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in {"404", "NoSuchKey", "NotFound"}:
            raise s3_failure(exc, target, "for") from exc
    except BotoCoreError as exc:
        raise s3_failure(exc, target, "for") from exc
    try:
        s3.upload_file(str(path), target.bucket, target.key, ExtraArgs={
            "ContentType": CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            "Metadata": {"sha256": sha256}})
    except (ClientError, BotoCoreError) as exc:
        raise s3_failure(exc, target, "writing") from exc
    _LOG.info("staged %s (%d bytes) for TikTok to pull from %s", target.uri, size, where.url_of(name))
    return Staged(where.url_of(name), target, size, size)
