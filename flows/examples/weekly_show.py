"""Example: another team's flow that publishes its episode to TikTok as a subflow.

    python flows/examples/weekly_show.py s3://media/samples/sample.mp4 main [ACCOUNT ...]

`publish_to_tiktok` runs publish-video inside this flow's run and process, so this process needs what
a worker needs (docs/deploy.md, "Publishing from another pipeline"): the pipeline's settings (ledger,
encryption key, TikTok app), AWS credentials for an S3 source, and ffmpeg. It exits 1 unless every
account ended done (published, in the inbox, held, scheduled or deferred).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.syndicate import publish_to_tiktok
from publishing import PublishResult, verdict


@flow(name="weekly-show")
def weekly_show(uri: str, accounts: list[str], caption: str) -> list[PublishResult]:
    """Stands in for a pipeline that rendered `uri` and now syndicates it."""
    results = publish_to_tiktok(uri, accounts, caption=caption, privacy_level="SELF_ONLY")
    get_run_logger().info(verdict(results).message)
    return results


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: weekly_show.py SOURCE ACCOUNT [ACCOUNT ...]", file=sys.stderr)
        return 2
    uri, *accounts = argv
    results = weekly_show(uri, accounts, caption=f"Weekly show {datetime.now(UTC):%Y-%m-%d %H:%M:%S} #show")
    for r in results:
        print(f"{r.account}: {r.state.value} {r.share_url or r.error_message or ''}".rstrip())
    return 0 if verdict(results).ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
