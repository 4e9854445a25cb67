"""Fan-out: one video to 1, 3 and 10 accounts, by FILE_UPLOAD and by PULL_FROM_URL, side by side.

In one run: the sandbox TikTok (11 creators, a verified URL prefix) and a moto S3 server on
loopback, a Prefect test server (its start is not counted), accounts connected through OAuth. Each
trial publishes a clip of its own (distinct bytes, already TikTok-ready so the transcode is a remux)
through the publish-video flow, timed from outside, and counts the bytes the worker sent for it:
to TikTok's upload host (what the sandbox received) and to S3 (what was written under the pull
prefix). Downloading the source from S3 is the same in both modes and not counted.

    .venv/bin/python bench/fanout.py [--seconds 15] [--bitrate 6M]

Both TikTok's pulls and the worker run on this machine: the PULL_FROM_URL wall time includes the
sandbox fetching the video once per account from moto, which TikTok would do on its side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

FAN_OUTS = (1, 3, 10)
PULL_PREFIX_KEY = "tiktok-pull/"


def make_clip(path: Path, seconds: float, bitrate: str, seed: int) -> Path:
    """A 1080x1920 H.264 High / AAC clip TikTok takes as it is; `seed` makes its bytes its own."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1080x1920:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={300 + seed * 40}:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-b:v", bitrate, "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart",
         "-metadata", f"comment=fan-out trial {seed}", str(path)],
        check=True,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each generated clip")
    parser.add_argument("--bitrate", default="6M", help="video bitrate of the clips (size = bitrate x length)")
    args = parser.parse_args()

    import logging

    import boto3
    import httpx
    from prefect.testing.utilities import prefect_test_harness

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log

    from deployments.demo import patched_env
    from flows.publish import publish_video
    from ledger import generate_key
    from publishing import PublishRequest
    from sandbox import MotoServer, SandboxConfig, SandboxCreator, free_port, serve

    users = ["warm", *(f"fan{n}" for n in range(max(FAN_OUTS)))]
    creators = [SandboxCreator(open_id=f"sbx-open-id-{u}", username=u, nickname=u.capitalize(),
                               max_video_post_duration_sec=600, daily_post_cap=50) for u in users]
    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    with MotoServer.running() as s3:
        bucket = "bench-fanout"
        prefix = f"{s3.endpoint_url}/{bucket}/{PULL_PREFIX_KEY}"
        config = SandboxConfig(processing_delay=0, moderation_delay=0, creators=creators,
                               verified_url_prefixes=[prefix])
        with serve(config) as sandbox, prefect_test_harness(server_startup_timeout=120):
            env = {**sandbox.env(), **s3.env(), "TIKTOK_PIPELINE_DATA_DIR": str(work / "data"),
                   "TIKTOK_PIPELINE_REDIRECT_URI": f"http://localhost:{free_port()}/callback/",
                   "TIKTOK_PIPELINE_ENCRYPTION_KEY": generate_key(), "TIKTOK_PIPELINE_STATUS_POLL_INTERVAL": "2"}
            with patched_env(env):
                from publishing.connect import connect_account
                from tasks import runtime

                client = boto3.client("s3", endpoint_url=s3.endpoint_url)
                client.create_bucket(Bucket=bucket)
                client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/{PULL_PREFIX_KEY}*"}]}))
                settings = runtime.settings()
                for user in users:
                    connect_account(settings, runtime.ledger(settings), user,
                                    lambda url: httpx.get(url, follow_redirects=True, timeout=30),
                                    extra_params={"sandbox_user": user})

                def staged_bytes() -> int:
                    listed = client.list_objects_v2(Bucket=bucket, Prefix=PULL_PREFIX_KEY).get("Contents", [])
                    return sum(o["Size"] for o in listed)

                def trial(mode: str, accounts: list[str], seed: int) -> dict[str, float]:
                    clip = make_clip(work / f"clip-{seed}.mp4", args.seconds, args.bitrate, seed)
                    key = f"sources/clip-{seed}.mp4"
                    client.upload_file(str(clip), bucket, key)
                    pull = {"TIKTOK_PIPELINE_PULL_URL_PREFIXES": json.dumps({prefix: f"s3://{bucket}/{PULL_PREFIX_KEY}"})}
                    before_posts, before_staged = len(sandbox.posts()), staged_bytes()
                    with patched_env(pull if mode == "PULL_FROM_URL" else {"TIKTOK_PIPELINE_PULL_URL_PREFIXES": "{}"}):
                        started = time.perf_counter()
                        state = publish_video(PublishRequest(source=f"s3://{bucket}/{key}", accounts=accounts,
                                                             caption=f"fan-out {mode} {seed}", privacy_level="SELF_ONLY"),
                                              return_state=True)
                        wall = time.perf_counter() - started
                    results = state.result(raise_on_failure=False)
                    if not state.is_completed():
                        raise SystemExit(f"{mode} to {len(accounts)}: {state.message}")
                    posts = sandbox.posts()[before_posts:]
                    assert len(posts) == len(accounts) and all(p["source"] == mode for p in posts), posts
                    to_tiktok = sum(p["received_bytes"] or 0 for p in posts)
                    to_s3 = staged_bytes() - before_staged
                    return {"wall": wall, "tiktok": to_tiktok, "s3": to_s3, "clip": clip.stat().st_size,
                            "published": sum(r.state.value == "published" for r in results)}

                # Warm-up (imports, first ffmpeg, the ledger's first windows), not counted.
                trial("FILE_UPLOAD", ["warm"], 0)
                rows = []
                seed = 1
                for count in FAN_OUTS:
                    accounts = users[1:1 + count]
                    for mode in ("FILE_UPLOAD", "PULL_FROM_URL"):
                        rows.append((count, mode, trial(mode, accounts, seed)))
                        seed += 1

    print(f"clips: {args.seconds:g} s 1080x1920 at {args.bitrate}, about {rows[0][2]['clip'] / 1e6:.1f} MB each "
          "(a remux: no transcode)")
    print(f"{'accounts':>8}  {'mode':<13} {'wall s':>7} {'to TikTok MB':>12} {'to S3 MB':>9} {'sent / clip':>11} {'published':>9}")
    for count, mode, row in rows:
        sent = row["tiktok"] + row["s3"]
        print(f"{count:>8}  {mode:<13} {row['wall']:>7.1f} {row['tiktok'] / 1e6:>12.1f} {row['s3'] / 1e6:>9.1f} "
              f"{sent / row['clip']:>11.2f} {row['published']:>9}")
    print()
    for count in FAN_OUTS:
        file, pulled = (next(r for c, m, r in rows if c == count and m == mode) for mode in ("FILE_UPLOAD", "PULL_FROM_URL"))
        print(f"{count:>2} account(s): PULL_FROM_URL sends {(pulled['tiktok'] + pulled['s3']) / (file['tiktok'] + file['s3']):.2f}x "
              f"the bytes of FILE_UPLOAD, in {pulled['wall'] / file['wall']:.2f}x its wall time")


if __name__ == "__main__":
    main()
