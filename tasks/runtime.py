"""The Prefect shell's composition root: the Services a task or flow run in this worker process uses.

`services()` builds `publishing.Services` from the worker's settings, with what only Prefect provides:
the encryption key from a Secret block when no setting holds it. (TikTok's rate limits are the
ledger's, shared by every worker on it: publishing/ratelimits.py.)
The settings are read here and nowhere else in tasks/ and flows/; steps receive what they need.
"""

from __future__ import annotations

import functools
import os

from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import ObjectNotFound

from ledger import Ledger
from publishing.services import Services
from tiktok_pipeline.settings import Settings, load_settings

#: Name of the Prefect Secret block that may hold the Fernet key when no setting provides it.
ENCRYPTION_KEY_BLOCK = "tiktok-pipeline-encryption-key"

#: The settings' environment prefix (Settings.model_config["env_prefix"]).
ENV_PREFIX = "TIKTOK_PIPELINE_"

_block_key: list[str] = []  # the Secret block's value once read: every task asks for the ledger


def _key_from_secret_block() -> str | None:
    if _block_key:
        return _block_key[0]
    try:
        from prefect.blocks.system import Secret

        _block_key.append(str(Secret.load(ENCRYPTION_KEY_BLOCK).get()))
    except Exception:  # no block, no Prefect API reachable, ...: the setting is the documented way
        return None  # the ledger raises EncryptionKeyMissing with the fix when a token is touched
    return _block_key[0]


def _build(current: Settings) -> Services:
    return Services(
        current,
        key_fallback=_key_from_secret_block,
        key_location=f"the Prefect Secret block {ENCRYPTION_KEY_BLOCK}",
    )


@functools.lru_cache(maxsize=8)
def _services_for(environment: tuple[tuple[str, str], ...], cwd: str) -> Services:
    return _build(load_settings())


def services(current: Settings | None = None) -> Services:
    """The Services of this process: built once from the worker's settings, then handed to every step.

    Keyed on the TIKTOK_PIPELINE_* environment and the working directory (relative paths such as the
    default data_dir depend on it), so a process whose environment changes (a test, the demo) gets
    Services of its new settings instead of stale ones; a worker's flow run builds one.
    """
    if current is not None:
        return _build(current)
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))
    return _services_for(environment, os.getcwd())


def settings() -> Settings:
    """The settings of this process (the ones `services()` was built from)."""
    return services().settings


def ledger(current: Settings | None = None) -> Ledger:
    """The ledger of the current settings (one engine per database and key in this process)."""
    return services(current).ledger


def encryption_key(current: Settings) -> str | None:
    return services(current).encryption_key()


def flow_run_has_ended(client: SyncPrefectClient, run_id: str) -> bool:
    """Whether the flow run `run_id` names is over: a final state, or unknown to Prefect (deleted).
    A name that is not a flow run id is never taken for an ended run."""
    try:
        run = client.read_flow_run(UUID(run_id))
    except ValueError:
        return False
    except ObjectNotFound:
        return True
    return run.state is not None and run.state.is_final()
