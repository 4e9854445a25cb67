"""What `make up` puts in the stack: the sample clip in S3, the bucket's notification to the
listener's queue, two sandbox accounts connected through the real OAuth flow, and the app's
webhook callback URL registered with the sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from deployments.listener.provisioning import QueueWiring, wire_bucket
from sandbox import FAKE_AWS_ENV
from deployments.up.layout import INCOMING_PREFIX, PULL_PREFIX, SAMPLE_BUCKET, SAMPLE_KEY

#: Ledger account name → sandbox test user who approves the OAuth request.
ACCOUNTS = {"main": "studio_main", "private": "private_creator"}


def sample_clip_command(path: Path) -> list[str]:
    """ffmpeg: 5 s of 1280x720 (16:9, so the pipeline has to fit it to 9:16) H.264 video with AAC audio."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=5",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart", str(path),
    ]  # fmt: skip


def make_sample(path: Path) -> Path:
    if not path.exists():
        partial = path.with_suffix(".partial.mp4")
        subprocess.run(sample_clip_command(partial), check=True, stdin=subprocess.DEVNULL)
        partial.replace(path)
    return path


def upload_sample(sample: Path, endpoint_url: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"])
    try:
        s3.create_bucket(Bucket=SAMPLE_BUCKET)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3.upload_file(str(sample), SAMPLE_BUCKET, SAMPLE_KEY, ExtraArgs={"ContentType": "video/mp4"})


def serve_pull_prefix(endpoint_url: str) -> None:
    """Let anyone read s3://media/tiktok-pull/, as a CDN in front of it would: TikTok (the sandbox)
    fetches photo posts from there."""
    import json

    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"])
    s3.put_bucket_policy(Bucket=SAMPLE_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{SAMPLE_BUCKET}/{PULL_PREFIX}*"}]}))


def wire_sample_bucket(endpoint_url: str) -> QueueWiring:
    """Uploads under s3://media/incoming/ notify the listener's queue (which has a dead-letter queue)."""
    return wire_bucket(SAMPLE_BUCKET, endpoint_url=endpoint_url, prefix=INCOMING_PREFIX)


def open_in_sandbox(url: str) -> None:
    """What a browser does on the sandbox's authorize page: follow its redirect to our callback."""
    httpx.get(url, follow_redirects=True, timeout=30.0).raise_for_status()


def connect_sandbox_accounts() -> list[str]:
    from ledger import Ledger
    from publishing.connect import connect_account
    from tiktok_pipeline.settings import load_settings

    settings = load_settings()
    connected = []
    with Ledger.from_settings(settings) as book:
        for name, user in ACCOUNTS.items():
            account = connect_account(settings, book, name, open_in_sandbox, extra_params={"sandbox_user": user},
                                      timeout=30.0)
            connected.append(f"{account.name} ({account.nickname or account.open_id})")
    return connected


def register_webhook_url(sandbox: str, url: str) -> None:
    """Register `url` as the app's callback URL with the sandbox, as a developer does in TikTok's portal
    (the sandbox keeps it in memory: every `up` registers it again)."""
    httpx.put(f"{sandbox}/_sandbox/webhook", json={"url": url}, timeout=30).raise_for_status()
