"""What `tiktok-pipeline publish` checks before a Prefect run starts.

A request the run would refuse is refused here, in one `error:` line naming every problem found
(exit 2), without a run, a ledger row or a temporary Prefect server: accounts that are not connected
or need reconnecting, settings every post needs (the encryption key, AWS credentials for an S3
source), the source (a readable, non-empty regular file; a URL that answers a HEAD with something
other than a web page; an S3 object that exists), a local file's media (ffprobe: a video, not too
short, plausible), and a schedule (in the future, with a publish-video deployment to run it).
What cannot be checked now (the ledger or the Prefect server does not answer) exits 1. What may pass
by itself (a timeout, a 5xx) is left to the run, which retries it; what only the run can know (the
creator's privacy options and maximum duration, a remote file's media) the run reports, and the CLI
exits 2 for it too when it is about the request (`publishing.Verdict.refused`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployments.cli._common import EXIT_FAILED, EXIT_USAGE, fail
from ledger import AccountStatus, DatabaseUnavailable
from publishing import PhotoPostRequest, PublishRequest
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

if TYPE_CHECKING:
    from publishing.services import Services


@dataclass
class Findings:
    """Problems with the request (exit 2) and checks that could not be made (exit 1)."""

    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def refuse(self, problem: str) -> None:
        if problem not in self.refused:
            self.refused.append(problem)

    def report(self) -> None:
        """`fail` with the request's problems (exit 2), else with what could not be checked (exit 1)."""
        if self.refused:
            fail("; ".join(self.refused), EXIT_USAGE)
        if self.failed:
            fail("; ".join(self.failed), EXIT_FAILED)


def check_publish(request: PublishRequest) -> None:
    """Refuse (exit 2) or stop (exit 1) a request before its run starts; return when it may run."""
    findings = Findings()
    check_schedule(request, findings)
    services = _services()
    check_accounts(services, request, findings)
    check_source(services.settings, request, findings)
    findings.report()


def check_photo_post(request: PhotoPostRequest) -> None:
    """`check_publish` for a photo post: a verified URL prefix first (without one, the only problem
    said: nothing else matters), the accounts and settings, then every image as the run would fetch it."""
    from publishing.photo_posts import MAX_SOURCE_BYTES, photo_preflight
    from publishing.pull import PullPrefixMissing, require_pull_location
    from publishing.sources import SourceCredentialsMissing, check_source as check

    findings = Findings()
    services = _services()
    try:
        require_pull_location(services.settings, "a photo post")
    except PullPrefixMissing as exc:
        fail(str(exc), EXIT_USAGE)
    check_accounts(services, request, findings, preflight=lambda s, r: photo_preflight(s, r)[1])
    for i, image in enumerate(request.images, start=1):
        try:
            check(image, services.settings, max_bytes=MAX_SOURCE_BYTES)
        except SourceCredentialsMissing as exc:
            findings.refuse(str(exc))
        except PipelineError as exc:
            if not exc.retryable:  # retryable: the run tries again (and says so if it still fails)
                findings.refuse(f"photo {i} of {len(request.images)}: {exc}")
    findings.report()


def _services() -> Services:
    """The Services of this command; invalid settings raise a ValidationError, which the caller reports (exit 2)."""
    from tasks import runtime

    services = runtime.services()
    if services.settings.encryption_key is None and not _prefect_api_url():
        # No server could hold the key's Secret block (`setup` stores it only on PREFECT_API_URL's):
        # asking would start a temporary server just to hear there is none.
        from publishing.services import Services

        services = Services(services.settings, key_location=f"the Prefect Secret block {runtime.ENCRYPTION_KEY_BLOCK} "
                                                            "of the server PREFECT_API_URL names")
    return services


def check_schedule(request: PublishRequest, findings: Findings, now: datetime | None = None) -> None:
    """A schedule_at in the past is refused; one in the future needs the publish-video deployment on
    the Prefect server of PREFECT_API_URL (a temporary server ends with this command: nothing would run it)."""
    from tasks.scheduling import PUBLISH_DEPLOYMENT, is_due

    if request.schedule_at is None:
        return
    now = now or datetime.now(UTC)
    when = request.schedule_at if request.schedule_at.tzinfo else request.schedule_at.replace(tzinfo=UTC)
    if when < now:
        findings.refuse(f"--schedule-at {when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC is in the past "
                        f"(now {now:%Y-%m-%d %H:%M:%S} UTC): give a time to come, or leave it out to post now")
        return
    if is_due(request, now):
        return  # within the start tolerance: posted now, by this run
    api_url = _prefect_api_url()
    if not api_url:
        findings.refuse("--schedule-at needs the Prefect server that runs the publish-video deployment: set "
                        "PREFECT_API_URL (see docs/deploy.md); without it this command runs on a temporary "
                        "server that ends with it, and nothing would run the post")
        return
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(PUBLISH_DEPLOYMENT)
    except ObjectNotFound:
        findings.refuse(f"--schedule-at needs the {PUBLISH_DEPLOYMENT} deployment, which the Prefect server at "
                        f"{api_url} does not have: deploy prefect.yaml (prefect --no-prompt deploy --all, see "
                        "docs/deploy.md)")
    except Exception as exc:  # unreachable, refused, not a Prefect API: nothing can be scheduled now
        findings.failed.append(f"cannot reach the Prefect server at {api_url} to schedule the post: "
                               f"{type(exc).__name__}: {exc}")


def _prefect_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_accounts(services: Services, request: PublishRequest | PhotoPostRequest, findings: Findings, *,
                   preflight: Callable[[Services, Any], dict[str, Any]] | None = None) -> None:
    """The settings every post needs (`preflight`, by default posting.preflight), then each account:
    connected, and usable."""
    from publishing import posting

    try:
        unknown = (preflight or posting.preflight)(services, request)
    except DatabaseUnavailable as exc:
        findings.failed.append(str(exc))
        return
    except PipelineError as exc:  # PreflightFailed: the key, AWS credentials (the message names what to set)
        findings.refuse(str(exc))
        return
    for failure in unknown.values():
        findings.refuse(failure.message)
    for name in request.accounts:
        if name in unknown:
            continue
        try:
            account = services.ledger.get_account(name)
        except DatabaseUnavailable as exc:
            findings.failed.append(str(exc))
            return
        except PipelineError as exc:
            findings.refuse(str(exc))
            continue
        if account.removed_at is not None:
            findings.refuse(f"account {name} was removed: connect it again with `tiktok-pipeline accounts connect {name}`")
        elif account.status is AccountStatus.needs_reconnect:
            why = f" ({account.status_reason})" if account.status_reason else ""
            findings.refuse(f"account {name} needs reconnecting{why}: run `tiktok-pipeline accounts connect {name}`")


def check_source(settings: Settings, request: PublishRequest, findings: Findings) -> None:
    """The source as the run's ingest would find it (publishing.sources.check_source), and a local
    file's media as its transcode would (ffprobe and the rules that need no creator)."""
    from publishing.sources import SourceCredentialsMissing, check_source as check
    from transcode import InvalidMediaError, Policy, ToolNotFoundError, probe, validate

    policy = Policy(fit=request.fit, on_too_long=request.on_too_long)
    try:
        found = check(request.source, settings, max_bytes=policy.max_bytes)
    except SourceCredentialsMissing as exc:
        findings.refuse(str(exc))  # also what preflight says: said once
        return
    except PipelineError as exc:
        if not exc.retryable:
            findings.refuse(str(exc))
        return  # retryable: the run tries again (and says so if it still fails)
    if found.path is None:
        return  # remote media is checked by the run, once downloaded
    try:
        validate(probe(Path(found.path)), policy)
    except InvalidMediaError as exc:
        findings.refuse(str(exc))
    except ToolNotFoundError as exc:
        findings.failed.append(str(exc))
    except PipelineError:
        return  # ffprobe failed for its own reasons: the run's transcode reports it
