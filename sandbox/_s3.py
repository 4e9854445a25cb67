"""A local S3 beside the local TikTok: a moto server on loopback.

Used by `make demo`, `make up` and the tests: moto runs in server mode (a real HTTP S3 endpoint),
so boto3 talks to it exactly as it would to AWS, via `TIKTOK_PIPELINE_S3_ENDPOINT_URL`.
moto is the `local` extra (`pip install 'tiktok-pipeline[local]'`, which `make demo` installs):
production installs do not carry it, and asking for a local S3 without it says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox._errors import SandboxError

#: moto accepts any credentials; boto3 still needs some to sign requests.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class MotoServer:
    endpoint_url: str
    _server: Any

    @classmethod
    @contextlib.contextmanager
    def running(cls, host: str = "127.0.0.1", port: int = 0) -> Iterator["MotoServer"]:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise SandboxError(
                "a local S3 needs moto, the `local` extra: pip install 'tiktok-pipeline[local]' (make demo installs it)"
            ) from exc
        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        bound_host, bound_port = server.get_host_and_port()
        try:
            yield cls(endpoint_url=f"http://{bound_host}:{bound_port}", _server=server)
        finally:
            server.stop()

    def env(self) -> dict[str, str]:
        """Environment that points boto3 and the pipeline's settings at this server."""
        return {**FAKE_AWS_ENV, "TIKTOK_PIPELINE_S3_ENDPOINT_URL": self.endpoint_url}
