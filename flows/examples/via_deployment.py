"""Example: a process that publishes through the publish-video deployment and gets typed results.

    python flows/examples/via_deployment.py s3://media/samples/sample.mp4 main [ACCOUNT ...]

The publish runs on the work pool's workers: this process needs only PREFECT_API_URL (and
PREFECT_API_KEY on Prefect Cloud), plus the result storage the workers write to (see
docs/deploy.md). The request is checked by the deployment's form rules when the run is created.
It exits 1 unless every account ended done.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from flows.syndicate import publish_via_deployment
from publishing import PublishRequest, verdict


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: via_deployment.py SOURCE ACCOUNT [ACCOUNT ...]", file=sys.stderr)
        return 2
    uri, *accounts = argv
    request = PublishRequest(source=uri, accounts=accounts, privacy_level="SELF_ONLY",
                             caption=f"Via the deployment {datetime.now(UTC):%Y-%m-%d %H:%M:%S}")
    results = publish_via_deployment(request, timeout=600)
    for r in results:
        print(f"{r.account}: {r.state.value} {r.share_url or r.error_message or ''}".rstrip())
    return 0 if verdict(results).ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
