"""What a Prefect server needs before the deployments can run: the work pool, crash detection, the
key. (TikTok's rate limits live in the ledger, publishing/ratelimits.py; the Prefect global
concurrency limits earlier versions kept them in are removed here.)

`bootstrap` is what `tiktok-pipeline setup` (and `make up`) run. Every step is idempotent, so it
is safe to run again after connecting an account or rotating the encryption key. The Prefect API is
the one of the current Prefect settings (PREFECT_API_URL, or a profile); an unset URL is refused
because Prefect would otherwise start a throwaway in-process server and the setup would vanish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.workers.process import ProcessWorker

from deployments.automations import (
    CRASH_AFTER,
    CRASH_AUTOMATION_NAME,
    HEARTBEAT_SECONDS,
    HEARTBEAT_VARIABLE,
    Change,
    crash_detection,
    ensure_automation,
    with_heartbeat,
)
from deployments.names import WORK_POOL_NAME
from deployments.warmstart import with_launch_command
from ledger import Ledger
from tasks.runtime import ENCRYPTION_KEY_BLOCK
from tiktok import TIKTOK_RATE_LIMITS
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

WORK_POOL_TYPE = "process"


class SetupError(PipelineError):
    """The Prefect side of the pipeline could not be prepared."""


class PrefectApiNotConfigured(SetupError):
    """No PREFECT_API_URL: there is no server to set up."""


class PrefectApiUnreachable(SetupError):
    """PREFECT_API_URL is set but the server does not answer its health check."""

    retryable = True


class WorkPoolTypeMismatch(SetupError):
    """A work pool of that name exists with another type; it is left alone."""


class EncryptionKeyNotSet(SetupError):
    """--store-encryption-key without TIKTOK_PIPELINE_ENCRYPTION_KEY."""


@dataclass
class SetupReport:
    api_url: str
    work_pool: str
    work_pool_created: bool
    heartbeat: Change = "unchanged"
    crash_detection: Change = "unchanged"
    accounts: list[str] = field(default_factory=list)
    #: Prefect global concurrency limits of earlier versions (`tiktok:<open_id>:<endpoint>`) removed.
    obsolete_limits: int = 0
    key_block: str | None = None

    def lines(self) -> list[str]:
        """What was done, one line per step, for people."""
        pool = "created" if self.work_pool_created else "already exists"
        lines = [
            f"Prefect API: {self.api_url}",
            f"work pool {self.work_pool!r} ({WORK_POOL_TYPE}): {pool}; its flow runs send a heartbeat every "
            f"{HEARTBEAT_SECONDS} s ({HEARTBEAT_VARIABLE}: {'already set' if self.heartbeat == 'unchanged' else 'set'}) "
            "and start through the warm-start launcher (forked from a preloaded process under `tiktok-pipeline worker`)",
            f"crash detection: automation {CRASH_AUTOMATION_NAME!r} {self.crash_detection} (a run without heartbeat "
            f"for {int(CRASH_AFTER.total_seconds())} s is marked Crashed)",
        ]
        accounts = f"{len(self.accounts)} account(s): {', '.join(self.accounts)}" if self.accounts else "no account yet"
        lines.append(f"rate limits: TikTok's per-token limits, kept in the ledger and shared by every worker on it "
                     f"({accounts})" + (f"; removed {self.obsolete_limits} Prefect rate limit(s) of an earlier version"
                                        if self.obsolete_limits else ""))
        if self.key_block:
            lines.append(f"encryption key stored in the Prefect Secret block {self.key_block!r}")
        return lines


def prefect_api_url() -> str:
    """The configured Prefect API URL; raises when none is configured or it does not answer."""
    url = get_current_settings().api.url
    if not url:
        raise PrefectApiNotConfigured(
            "PREFECT_API_URL is not set: point it at your Prefect server (e.g. http://127.0.0.1:4200/api "
            "after `prefect server start`, or `prefect cloud login`), or run `make up` for a local one"
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise PrefectApiUnreachable(
            f"the Prefect API at {url} does not answer ({type(problem).__name__}: {problem}); "
            "start the server or fix PREFECT_API_URL",
            detail={"api_url": url, "error": repr(problem)},
        )
    return str(url)


def pool_template(base_job_template: Mapping[str, Any]) -> dict[str, Any]:
    """What the pool's base job template must hold: the heartbeat, and the warm-start launcher as its command."""
    return with_launch_command(with_heartbeat(base_job_template))


def ensure_work_pool(name: str = WORK_POOL_NAME) -> tuple[bool, Change]:
    """The process work pool, created when missing, with the heartbeat and the warm-start launcher in its
    base job template.

    Returns (created, what happened to the template). Other template changes are kept.
    """
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(name)
        except ObjectNotFound:
            template = pool_template(ProcessWorker.get_default_base_job_template())
            client.create_work_pool(WorkPoolCreate(name=name, type=WORK_POOL_TYPE, base_job_template=template))
            return True, "created"
        if existing.type != WORK_POOL_TYPE:
            raise WorkPoolTypeMismatch(
                f"work pool {name!r} exists with type {existing.type!r}; the deployments need a {WORK_POOL_TYPE!r} "
                "pool: delete it or pick another name",
                detail={"work_pool": name, "type": existing.type},
            )
        template = pool_template(existing.base_job_template)
        if template == existing.base_job_template:
            return False, "unchanged"
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return False, "updated"


def store_encryption_key(settings: Settings) -> str:
    """Save the Fernet key(s) of the settings as the Secret block the tasks fall back to."""
    from prefect.blocks.system import Secret

    if settings.encryption_key is None or not settings.encryption_key.get_secret_value():
        raise EncryptionKeyNotSet(
            "TIKTOK_PIPELINE_ENCRYPTION_KEY is not set, so there is no key to store; generate one with "
            "`tiktok-pipeline db generate-key`"
        )
    Secret(value=settings.encryption_key.get_secret_value()).save(ENCRYPTION_KEY_BLOCK, overwrite=True)
    return ENCRYPTION_KEY_BLOCK


def remove_obsolete_rate_limits(open_ids: list[str]) -> int:
    """Delete the Prefect global concurrency limits earlier versions kept TikTok's limits in; how many."""
    removed = 0
    with get_client(sync_client=True) as client:
        for open_id in open_ids:
            for endpoint in TIKTOK_RATE_LIMITS:
                try:
                    client.delete_global_concurrency_limit_by_name(f"tiktok:{open_id}:{endpoint}")
                except ObjectNotFound:
                    continue
                removed += 1
    return removed


def bootstrap(settings: Settings, *, work_pool: str = WORK_POOL_NAME, store_key: bool = False) -> SetupReport:
    """Work pool (with heartbeats), crash detection, and optionally the key as a Secret block."""
    api_url = prefect_api_url()
    created, heartbeat = ensure_work_pool(work_pool)
    report = SetupReport(api_url=api_url, work_pool=work_pool, work_pool_created=created, heartbeat=heartbeat,
                         crash_detection=ensure_automation(crash_detection()))
    with Ledger.from_settings(settings) as ledger:
        accounts = ledger.list_accounts()
    report.accounts = [account.name for account in accounts]
    report.obsolete_limits = remove_obsolete_rate_limits([account.open_id for account in accounts])
    if store_key:
        report.key_block = store_encryption_key(settings)
    return report
