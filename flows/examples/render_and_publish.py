"""Example: a "render" pipeline whose output goes to TikTok, wired two ways.

1. Directly: `render_and_publish` calls the render flow, then `publish_to_tiktok` as a subflow.
2. Loosely: `render_video` emits `render.video.completed` (resource `s3.<bucket>.<key>`) when it
   has uploaded its output; the `publish-rendered-video` deployment in prefect.yaml has a trigger
   on that event and starts publish-video with the event's URI. The render team's flow needs no
   import of this project at all.

The "render" here is ffmpeg's test pattern standing in for your renderer.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import boto3
from prefect import flow, task
from prefect.events import emit_event

from publishing import PublishResult
from flows.syndicate import publish_to_tiktok
from tasks import runtime

RENDERED_EVENT = "render.video.completed"


@task
def render_clip(seconds: float, workdir: str) -> Path:
    out = Path(workdir) / "render.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out)],
        check=True,
    )
    return out


@task
def upload_render(path: Path, bucket: str, key: str) -> str:
    settings = runtime.settings()
    boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region).upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


@flow(name="render-video")
def render_video(bucket: str, key: str, seconds: float = 6.0) -> str:
    """Render a clip, upload it to S3, announce it with a `render.video.completed` event."""
    with tempfile.TemporaryDirectory(prefix="render-") as workdir:
        uri = upload_render(render_clip(seconds, workdir), bucket, key)
    emit_event(event=RENDERED_EVENT, resource={"prefect.resource.id": f"s3.{bucket}.{key}"}, payload={"uri": uri})
    return uri


@flow(name="render-and-publish")
def render_and_publish(bucket: str, key: str, accounts: list[str], caption: str = "",
                       privacy_level: str = "SELF_ONLY") -> list[PublishResult]:
    """Render, then publish the render to TikTok in the same flow run (publish-video as a subflow)."""
    uri = render_video(bucket, key)
    return publish_to_tiktok(uri, accounts, caption=caption, privacy_level=privacy_level)
