"""Example: publish a video that already sits in another team's bucket, leaving it where it is.

The worker's AWS credentials need s3:GetObject on that bucket (and nothing else: the source is
kept, `source_action` stays `keep`). Results come back typed, one PublishResult per account.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from publishing import PublishResult
from flows.syndicate import publish_to_tiktok


@flow(name="publish-from-partner-bucket")
def publish_from_partner_bucket(uri: str = "s3://partner-media/exports/trailer.mp4",
                                accounts: list[str] = ["main"],  # noqa: B006 (Prefect parameters are copied)
                                caption: str = "Trailer out now #partner") -> list[PublishResult]:
    results = publish_to_tiktok(uri, accounts, caption=caption, privacy_level="PUBLIC_TO_EVERYONE",
                                brand_content_toggle=True)  # a paid partnership: disclosed as such
    for r in results:
        get_run_logger().info("%s: %s %s", r.account, r.state.value, r.share_url or r.error_message or "")
    return results
