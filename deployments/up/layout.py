"""Where `make up` puts things: ports, the state directory, the environment every process gets."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from sandbox import FAKE_AWS_ENV, SandboxConfig, pipeline_env

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
SAMPLE_BUCKET = "media"
SAMPLE_KEY = "samples/sample.mp4"
SAMPLE_URI = f"s3://{SAMPLE_BUCKET}/{SAMPLE_KEY}"
#: Uploads under this prefix of the sample bucket are published by the S3 → SQS listener.
INCOMING_PREFIX = "incoming/"
#: Uploads under this prefix are published only after a review in the Prefect UI (request.review).
REVIEW_PREFIX = f"{INCOMING_PREFIX}review/"
#: Where photo posts are staged for TikTok to pull (the sandbox treats its URL as verified).
PULL_PREFIX = "tiktok-pull/"


#: Prefect's own setting for its server's database (SQLite in PREFECT_HOME when unset).
PREFECT_DATABASE_VARIABLE = "PREFECT_API_DATABASE_CONNECTION_URL"


class UpError(RuntimeError):
    """A step of `up` failed; the message says which and where its log is."""


@dataclass(frozen=True)
class Ports:
    prefect: int = 4200
    sandbox: int = 9400
    moto: int = 9401
    redirect: int = 9402
    webhooks: int = 9403

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Ports:
        values: dict[str, int] = {}
        for name, default in cls().__dict__.items():
            variable = f"UP_{name.upper()}_PORT"
            raw = environ.get(variable, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise UpError(f"{variable}={raw!r} is not a TCP port")
            values[name] = int(raw)
        if len(set(values.values())) != len(values):
            raise UpError(f"the ports must differ, got {values}")
        return cls(**values)


@dataclass(frozen=True)
class Layout:
    """Where `up` keeps its state: `.data/up` in the checkout, or UP_STATE_DIR."""

    root: Path
    state: Path | None = None

    @classmethod
    def from_env(cls, root: Path, environ: Mapping[str, str]) -> Layout:
        state = environ.get("UP_STATE_DIR")
        return cls(root, Path(state).resolve() if state else None)

    @property
    def state_dir(self) -> Path:
        return self.state or self.root / ".data" / "up"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def sample(self) -> Path:
        return self.state_dir / "sample.mp4"

    def pid_file(self, service: str) -> Path:
        return self.state_dir / f"{service}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"


def shown(layout: Layout, path: Path) -> Path:
    """`path` relative to the checkout when it is inside it (as people type it), else absolute."""
    try:
        return path.relative_to(layout.root)
    except ValueError:
        return path


def api_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.prefect}/api"


def sandbox_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.sandbox}"


def webhooks_url(ports: Ports) -> str:
    """Where the TikTok webhook receiver (`tiktok-pipeline webhooks serve`) takes the sandbox's webhooks."""
    return f"http://{HOST}:{ports.webhooks}/tiktok/webhooks"


def pull_url_prefix(ports: Ports) -> str:
    """The URL prefix verified for the app on the stack: moto's URL of s3://media/tiktok-pull/ (public read)."""
    return f"http://{HOST}:{ports.moto}/{SAMPLE_BUCKET}/{PULL_PREFIX}"


def stack_env(layout: Layout, ports: Ports, encryption_key: str, prefect_home: Path,
              ledger_url: str | None = None) -> dict[str, str]:
    """Every variable the processes of the stack need (the same for all of them); the ledger is
    `ledger_url` when given (e.g. PostgreSQL), else SQLite under the state directory."""
    return {
        "PREFECT_API_URL": api_url(ports),
        # The UI asks this URL for its data; left unset it asks :4200 whatever port the server has.
        "PREFECT_UI_API_URL": api_url(ports),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **pipeline_env(sandbox_url(ports), SandboxConfig()),
        "TIKTOK_PIPELINE_REDIRECT_URI": f"http://{HOST}:{ports.redirect}/callback/",
        "TIKTOK_PIPELINE_DATA_DIR": str(layout.data_dir),
        "TIKTOK_PIPELINE_DATABASE_URL": ledger_url or f"sqlite:///{layout.data_dir / 'ledger.sqlite3'}",
        "TIKTOK_PIPELINE_ENCRYPTION_KEY": encryption_key,
        "TIKTOK_PIPELINE_S3_ENDPOINT_URL": f"http://{HOST}:{ports.moto}",
        "TIKTOK_PIPELINE_AWS_REGION": FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
        "TIKTOK_PIPELINE_S3_PREFIXES": INCOMING_PREFIX,
        # Uploads under incoming/review/ wait for a person to review them in the Prefect UI.
        "TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS": json.dumps({REVIEW_PREFIX: {"review": True}}),
        # The sandbox sends TikTok's webhooks to the receiver: posts settle by them, polling is the safety net.
        "TIKTOK_PIPELINE_TIKTOK_WEBHOOKS": "true",
        "TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_HOST": HOST,
        "TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_PORT": str(ports.webhooks),
        # Photo posts are pulled by TikTok from a verified prefix (moto's URL of the bucket's tiktok-pull/);
        # videos keep their chunked upload.
        "TIKTOK_PIPELINE_PULL_URL_PREFIXES": json.dumps({pull_url_prefix(ports): f"s3://{SAMPLE_BUCKET}/{PULL_PREFIX}"}),
        "TIKTOK_PIPELINE_PULL_VIDEOS": "false",
        **FAKE_AWS_ENV,
    }


def databases(environ: Mapping[str, str], prefect_home: Path) -> str:
    """Which databases the stack uses, passwords hidden: Prefect's own variable picks the server's."""
    from sqlalchemy.engine import make_url

    prefect = environ.get(PREFECT_DATABASE_VARIABLE) or f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    shown = [make_url(url).render_as_string(hide_password=True)
             for url in (prefect, environ["TIKTOK_PIPELINE_DATABASE_URL"])]
    return f"databases: Prefect server {shown[0]}, ledger {shown[1]}"


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """KEY=value lines readable by `set -a; . FILE` and by dotenv; 0600 as it holds the key."""
    lines = ["# Written by `make up` (deployments/up/); the encryption key is kept across runs."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in sorted(values.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def saved_encryption_key(path: Path) -> str | None:
    if not path.exists():
        return None
    return dotenv_values(path).get("TIKTOK_PIPELINE_ENCRYPTION_KEY") or None
