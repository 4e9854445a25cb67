"""Photo posts on the `make up` stack: the publish-photos deployment run by the real worker stages the
photos under the stack's verified prefix (moto's URL of s3://media/tiktok-pull/) and the sandbox pulls
them; videos on the same stack keep their chunked upload (TIKTOK_PIPELINE_PULL_VIDEOS=false)."""

from __future__ import annotations

import io
import json
import uuid

import boto3
from PIL import Image

from deployments import up
from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP


def _photo(size: tuple[int, int], colour: tuple[int, int, int], fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def test_a_carousel_is_posted_by_the_deployment_through_the_worker(prefect_stack: Stack) -> None:
    stack = prefect_stack
    env = stack.env
    prefixes = json.loads(env["TIKTOK_PIPELINE_PULL_URL_PREFIXES"])
    assert prefixes == {up.pull_url_prefix(stack.ports): "s3://media/tiktok-pull/"}
    assert env["TIKTOK_PIPELINE_PULL_VIDEOS"] == "false"
    s3 = boto3.client("s3", endpoint_url=env["TIKTOK_PIPELINE_S3_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    tag = uuid.uuid4().hex[:8]
    images = []
    for i, (size, colour, fmt, ext) in enumerate([((2400, 1600), (200, 30, 30), "JPEG", "jpg"),
                                                  ((900, 900), (30, 200, 30), "PNG", "png")]):
        key = f"photos/{tag}/{i}.{ext}"
        s3.put_object(Bucket="media", Key=key, Body=_photo(size, colour, fmt))
        images.append(f"s3://media/{key}")
    title = f"stack carousel {tag}"
    created = stack.create_run("publish-photos/publish-photos", {"request": {
        # `private`: `main` spends its 15 direct posts a day (the sandbox's cap, as TikTok's) on the other stack tests.
        "images": images, "accounts": ["private"], "title": title, "privacy_level": "SELF_ONLY", "photo_cover_index": 1}})
    run = stack.wait_for_run(created["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["state"]["message"] == "1 account done — private: published"
    assert run["name"] == "2 photos from 0.jpg → private"
    (post,) = [p for p in stack.sandbox_posts() if (p["post_info"] or {}).get("title") == title]
    assert post["media_type"] == "PHOTO" and post["photo_cover_index"] == 1 and len(post["media_urls"]) == 2
    assert all(url.startswith(up.pull_url_prefix(stack.ports)) for url in post["media_urls"])
    assert post["check"]["fail_reason"] is None and post["downloaded_bytes"] > 0
