"""A local TikTok: Content Posting API, Login Kit OAuth, authorize page and upload host on one port.

It enforces what TikTok enforces (token expiry and rotation, scopes, rate limits, creator caps,
unaudited-app rules, chunk plans, ffprobe media checks, status progression) and adds control
endpoints under `/_sandbox/` for tests: clock, faults, resets, inspection of every post received.

    from sandbox import SandboxConfig, serve

    with serve(SandboxConfig(processing_delay=0)) as sandbox:
        print(sandbox.base_url, sandbox.env())
"""

from sandbox._app import create_app
from sandbox._config import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_CLIENT_SECRET,
    SandboxConfig,
    SandboxCreator,
    default_creators,
    load_config,
)
from sandbox._errors import SandboxError
from sandbox._faults import FaultRule
from sandbox._oauth import hex_challenge
from sandbox._server import SandboxHandle, pipeline_env, serve

__all__ = [
    "DEFAULT_CLIENT_KEY",
    "DEFAULT_CLIENT_SECRET",
    "FaultRule",
    "SandboxConfig",
    "SandboxCreator",
    "SandboxError",
    "SandboxHandle",
    "create_app",
    "default_creators",
    "hex_challenge",
    "load_config",
    "pipeline_env",
    "serve",
]
