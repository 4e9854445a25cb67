"""A local TikTok: Content Posting API, Login Kit OAuth, authorize page and upload host on one port.

It enforces what TikTok enforces (token expiry and rotation, scopes, rate limits, creator caps,
unaudited-app rules, chunk plans, ffprobe media checks, status progression) and adds control
endpoints under `/_sandbox/` for tests: clock, faults, resets, inspection of every post received.

    from sandbox import SandboxConfig, serve

    with serve(SandboxConfig(processing_delay=0)) as sandbox:
        print(sandbox.base_url, sandbox.env())

Beside it, a local S3 (`MotoServer`, moto in server mode; the `local` extra) and the few helpers the
command line and `make up` use to run either as a server of its own.

It imports no other core package on purpose: it re-states TikTok's rules from TikTok's docs, so a
mistake in the `tiktok` client cannot hide behind constants the two would share.

Public surface, by group:
- in-process server: `serve` -> `SandboxHandle` (base_url, env(), control endpoints: clock, faults,
  resets, posts), `SandboxConfig`, `SandboxCreator`, `default_creators`, `load_config` (YAML/JSON file).
- a server of its own (CLI, `make up`): `create_app`, `bind_socket`, `uvicorn_server`, `base_url_of`,
  `free_port`, `pipeline_env` (the TIKTOK_PIPELINE_* variables pointing the pipeline at it).
- local S3: `MotoServer`, `FAKE_AWS_ENV`.
- errors: `SandboxError`, the one error the sandbox raises to its caller (tree in `sandbox/_errors.py`).
"""

from sandbox._app import create_app
from sandbox._config import SandboxConfig, SandboxCreator, default_creators, load_config
from sandbox._errors import SandboxError
from sandbox._s3 import FAKE_AWS_ENV, MotoServer
from sandbox._server import SandboxHandle, base_url_of, bind_socket, free_port, pipeline_env, serve, uvicorn_server

__all__ = [
    "FAKE_AWS_ENV",
    "MotoServer",
    "SandboxConfig",
    "SandboxCreator",
    "SandboxError",
    "SandboxHandle",
    "base_url_of",
    "bind_socket",
    "create_app",
    "default_creators",
    "free_port",
    "load_config",
    "pipeline_env",
    "serve",
    "uvicorn_server",
]
