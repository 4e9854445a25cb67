"""`make demo`: the whole pipeline on embedded defaults, offline, in about a minute.

Starts the TikTok sandbox and a moto S3 server on free loopback ports, generates a 16:9 clip,
uploads it to the local bucket, connects two sandbox accounts through the real OAuth flow,
publishes to both with the publish-video flow (Prefect's temporary server unless PREFECT_API_URL
is set), prints the results and stops everything it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

DEMO_ACCOUNTS = {"studio": "studio_main", "newsroom": "newsroom"}


def make_sample_clip(path: Path, seconds: float = 6.0) -> Path:
    """A 1280x720 30 fps clip with a tone: landscape on purpose, so the blur fit is exercised."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


@contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block, what was there before restored after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old




def run_demo(console) -> bool:
    """Run the demo; True when both accounts ended published."""
    import boto3

    from sandbox import MotoServer, free_port
    from publishing import PublishRequest
    from ledger import generate_key
    from sandbox import SandboxConfig, SandboxCreator, serve
    from sandbox import default_creators
    from deployments.cli._common import results_table, timings_table

    work = Path(tempfile.mkdtemp(prefix="tiktok-pipeline-demo-"))
    creators = [default_creators()[0], SandboxCreator(open_id="sbx-open-id-newsroom", username="newsroom",
                                                      nickname="Newsroom Daily", max_video_post_duration_sec=180)]
    config = SandboxConfig(creators=creators, processing_delay=1.0, moderation_delay=0)
    try:
        with serve(config) as sandbox, MotoServer.running() as s3:
            env = {**sandbox.env(), **s3.env(),
                   "TIKTOK_PIPELINE_DATA_DIR": str(work / "data"),
                   "TIKTOK_PIPELINE_REDIRECT_URI": f"http://localhost:{free_port()}/callback/",
                   "TIKTOK_PIPELINE_ENCRYPTION_KEY": generate_key()}
            console.print(f"sandbox TikTok at {sandbox.base_url}, S3 (moto) at {s3.endpoint_url}")
            with patched_env(env):
                from flows.publish import publish_video
                from tasks import runtime
                from publishing.connect import connect_account

                clip = make_sample_clip(work / "sample.mp4")
                bucket = boto3.client("s3", endpoint_url=s3.endpoint_url)
                bucket.create_bucket(Bucket="media")
                bucket.upload_file(str(clip), "media", "incoming/sample.mp4")
                console.print(f"uploaded a 16:9 sample clip to s3://media/incoming/sample.mp4 ({clip.stat().st_size} bytes)")

                settings = runtime.settings()
                for name, user in DEMO_ACCOUNTS.items():
                    # The sandbox's authorize page approves at once and redirects to our localhost receiver.
                    account = connect_account(settings, runtime.ledger(settings), name,
                                              lambda url: httpx.get(url, follow_redirects=True, timeout=30),
                                              extra_params={"sandbox_user": user})
                    console.print(f"connected account [bold]{name}[/] through OAuth: {account.nickname} (@{account.username})")

                request = PublishRequest(source="s3://media/incoming/sample.mp4", accounts=list(DEMO_ACCOUNTS),
                                         caption="Made with tiktok-pipeline #demo", privacy_level="PUBLIC_TO_EVERYONE")
                started = time.monotonic()
                results = publish_video(request)
                total = time.monotonic() - started
                console.print(results_table(results, title=f"Demo: publish-video to two accounts ({total:.1f} s)"))
                console.print(timings_table(results))
                posts = sandbox.posts()
                console.print(f"the sandbox received {len(posts)} post(s)")
                return all(r.ok for r in results) and len(posts) == len(DEMO_ACCOUNTS)
    finally:
        shutil.rmtree(work, ignore_errors=True)
