"""Local stand-ins for production services: a moto S3 server on loopback.

Used by `make demo`, `make up` and the tests: moto runs in server mode (a real HTTP S3 endpoint),
so boto3 talks to it exactly as it would to AWS, via `TIKTOK_PIPELINE_S3_ENDPOINT_URL`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

#: moto accepts any credentials; boto3 still needs some to sign requests.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for a server about to start, or a refused connection)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class MotoServer:
    endpoint_url: str
    _server: ThreadedMotoServer

    @classmethod
    @contextlib.contextmanager
    def running(cls, host: str = "127.0.0.1", port: int = 0) -> Iterator["MotoServer"]:
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
