"""Fixtures of the contract tests: the real `tiktok` clients pointed at the session sandbox over loopback.

    def test_something(sandbox, connect, fake_time, clips):
        tiktok = connect("private_creator")     # TikTokClient with a fresh token of that test user
        ...                                     # its sleeps advance fake_time *and* the sandbox clock

Media is generated once per session: small real clips (ffmpeg lavfi, 640x360, 3 s) for posts that
must pass the sandbox's ffprobe checks, and random-byte files of exact sizes for transfer tests.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import ipaddress
import os
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox import SandboxHandle
from tiktok import SlidingWindowRateLimiter, TikTokClient
from tiktok_pipeline.settings import Settings, load_settings

FFMPEG = "/usr/bin/ffmpeg"


@pytest.fixture
def settings_for(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """`settings_for(**overrides)`: Settings loaded from the environment `sandbox.env()` describes.

    Going through the environment checks that the sandbox's variable names are the ones Settings reads.
    Call it after any `sandbox.reset(config)`, since env() follows the running config.
    """

    def load(**overrides: object) -> Settings:
        monkeypatch.delenv("TIKTOK_PIPELINE_REDIRECT_URI", raising=False)  # only web configs set it
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        return load_settings(_env_file=None, **overrides)

    return load


@dataclass
class FakeTime:
    """Monotonic clock and sleep for the client: sleeping advances this clock and the sandbox's."""

    sandbox: SandboxHandle
    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.sandbox.advance_clock(seconds)


@pytest.fixture
def fake_time(sandbox: SandboxHandle) -> FakeTime:
    return FakeTime(sandbox)


@pytest.fixture
def connect(
    sandbox: SandboxHandle, settings_for: Callable[..., Settings], fake_time: FakeTime
) -> Iterator[Callable[..., TikTokClient]]:
    """`connect(user=None, scopes=None, *, settings=None, rate_limit=None) -> TikTokClient`.

    The token comes from the /_sandbox/tokens shortcut (the OAuth dance itself is tested in
    test_oauth.py). Each client gets its own limiter with TikTok's per-minute figures on fake time,
    so the process-wide default limiter never carries budget from one test into another.
    """
    clients: list[TikTokClient] = []

    def make(
        user: str | None = None,
        scopes: list[str] | None = None,
        *,
        settings: Settings | None = None,
        rate_limit: Callable[[str, str], None] | None = None,
    ) -> TikTokClient:
        issued = sandbox.issue_token(user, scopes)
        client = TikTokClient(
            issued["access_token"],
            settings or settings_for(),
            account_key=issued["open_id"],
            rate_limit=rate_limit or SlidingWindowRateLimiter(sleep=fake_time.sleep, clock=fake_time.clock),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- media ------------------------------------------------------------------------------------------
def _ffmpeg(target: Path, *args: str) -> Path:
    command = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y", *args, str(target)]
    subprocess.run(command, check=True, timeout=120)
    return target


def _clip(target: Path, rate: int) -> Path:
    return _ffmpeg(
        target,
        "-f", "lavfi", "-i", f"testsrc2=s=640x360:r={rate}:d=3",
        "-f", "lavfi", "-i", "sine=f=440:d=3:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
    )  # fmt: skip


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real media: `valid` (640x360 30 fps 3 s H.264/AAC), `fps15` (fails TikTok's frame-rate rule), photos."""
    root = tmp_path_factory.mktemp("contract-clips")
    return {
        "valid": _clip(root / "valid.mp4", 30),
        "fps15": _clip(root / "fps15.mp4", 15),
        "photo_portrait": _ffmpeg(root / "portrait.jpg", "-f", "lavfi", "-i", "testsrc2=s=1080x1350", "-frames:v", "1"),
        "photo_square": _ffmpeg(root / "square.jpg", "-f", "lavfi", "-i", "testsrc2=s=720x720", "-frames:v", "1"),
    }


@pytest.fixture(scope="session")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """`blob(size)`: a file of `size` random bytes (made once per session), named .mp4 for its Content-Type.

    Random bytes travel like any video but fail the sandbox's ffprobe check (file_format_check_failed).
    """
    root = tmp_path_factory.mktemp("contract-blobs")

    @functools.cache
    def make(size: int) -> Path:
        target = root / f"random-{size}.mp4"
        with target.open("wb") as file:
            remaining = size
            while remaining:
                block = os.urandom(min(remaining, 8 * 1024 * 1024))
                file.write(block)
                remaining -= len(block)
        return target

    return make


# --- an HTTPS file host for PULL_FROM_URL -------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contract-tests 127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "host.pem", directory / "host.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass(frozen=True)
class HttpsHost:
    base_url: str  # https://127.0.0.1:PORT
    ca_file: Path

    def url(self, file: Path) -> str:
        return f"{self.base_url}/{file.name}"


@pytest.fixture(scope="session")
def https_host(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsHost]:
    """Serves the clips directory over TLS on 127.0.0.1.

    TikTok (and so the client) only takes https media URLs; the sandbox pulls them with httpx, which
    trusts this host once SSL_CERT_FILE names its certificate (see `trusted_https_host`).
    """
    cert_path, key_path = _self_signed(tmp_path_factory.mktemp("contract-tls"))
    handler = functools.partial(_QuietHandler, directory=str(clips["valid"].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="contract-https-host", daemon=True)
    thread.start()
    try:
        yield HttpsHost(f"https://127.0.0.1:{server.server_address[1]}", cert_path)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def trusted_https_host(https_host: HttpsHost, monkeypatch: pytest.MonkeyPatch) -> HttpsHost:
    """The HTTPS host, trusted by every httpx client created during the test (the sandbox's pulls)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(https_host.ca_file))
    return https_host
