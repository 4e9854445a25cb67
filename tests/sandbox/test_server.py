"""Running the sandbox: serve(), config files, reset/clock control and the `tiktok-pipeline sandbox` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxConfig, SandboxError, SandboxHandle, load_config, serve
from tests.sandbox.helpers import CREATOR_INFO, call, code_of

CLI = Path(sys.executable).with_name("tiktok-pipeline")


def test_serve_runs_on_a_free_port_and_stops(tmp_path: Path) -> None:
    with serve(SandboxConfig()) as first, serve(SandboxConfig()) as second:
        assert first.base_url != second.base_url
        assert httpx.get(f"{first.base_url}/_sandbox/clock").status_code == 200
        storage = Path(httpx.get(f"{first.base_url}/_sandbox/state").json()["storage_dir"])
        assert storage.is_dir()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.base_url}/_sandbox/clock")
    assert not storage.exists()  # uploads are removed with the server


def test_env_points_the_pipeline_at_the_sandbox(sandbox: SandboxHandle) -> None:
    env = sandbox.env()
    assert env["TIKTOK_PIPELINE_API_BASE_URL"] == sandbox.base_url
    assert env["TIKTOK_PIPELINE_AUTHORIZE_URL"] == f"{sandbox.base_url}/v2/auth/authorize/"
    assert env["TIKTOK_PIPELINE_CLIENT_KEY"] == "sbx_client_key"
    assert env["TIKTOK_PIPELINE_CLIENT_SECRET"] == "sbx_client_secret"


def test_reset_forgets_tokens_and_restores_the_startup_config(sandbox: SandboxHandle, sandbox_token) -> None:  # type: ignore[no-untyped-def]
    token = sandbox_token()
    sandbox.reset(sandbox.config.model_copy(update={"access_token_ttl": 5}))
    assert sandbox.config.access_token_ttl == 5
    assert code_of(call(sandbox.base_url, CREATOR_INFO, token)) == "access_token_invalid"
    assert sandbox.reset().access_token_ttl == 86_400
    clock = httpx.get(f"{sandbox.base_url}/_sandbox/clock").json()
    assert clock["offset"] == 0
    assert sandbox.advance_clock(100) >= clock["now"] + 100


def test_load_config_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "sandbox.yaml"
    yaml_file.write_text("client_key: k1\nclient_secret: s1\ncreators:\n  - {open_id: o1, username: solo}\n")
    config = load_config(yaml_file, unaudited=True)
    assert (config.client_key, config.unaudited, [c.username for c in config.creators]) == ("k1", True, ["solo"])
    json_file = tmp_path / "sandbox.json"
    json_file.write_text(json.dumps({"processing_delay": 0}))
    assert load_config(json_file).creators[0].username == "studio_main"
    json_file.write_text(json.dumps({"verified_url_prefixes": ["http://cdn.example.com/"]}))
    with pytest.raises(SandboxError, match="must be https"):
        load_config(json_file)
    with pytest.raises(SandboxError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_cli_starts_the_sandbox_in_the_foreground(tmp_path: Path) -> None:
    config_file = tmp_path / "sandbox.yaml"
    config_file.write_text("client_key: cli_key\n")
    process = subprocess.Popen(
        [str(CLI), "sandbox", "--port", "0", "--config", str(config_file), "--unaudited", "--log-level", "warning",
         "--webhook-url", "http://127.0.0.1:9/tiktok/webhooks"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
        env = dict(line.strip().split("=", 1) for line in lines if line.startswith("TIKTOK_PIPELINE_"))
        base_url = env["TIKTOK_PIPELINE_API_BASE_URL"]
        assert env["TIKTOK_PIPELINE_AUTHORIZE_URL"] == f"{base_url}/v2/auth/authorize/"
        assert env["TIKTOK_PIPELINE_CLIENT_KEY"] == "cli_key"
        state = httpx.get(f"{base_url}/_sandbox/state").json()
        assert state["config"]["unaudited"] is True
        # The callback URL is part of the startup config: a reset (which tests do) keeps it.
        httpx.put(f"{base_url}/_sandbox/webhook", json={"url": "http://127.0.0.1:10/other"}).raise_for_status()
        httpx.post(f"{base_url}/_sandbox/reset", json={}).raise_for_status()
        assert httpx.get(f"{base_url}/_sandbox/webhook").json()["url"] == "http://127.0.0.1:9/tiktok/webhooks"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    # Ctrl-C shuts down gracefully (lifespan removes the uploads) and exits with the usual 130.
    assert process.returncode == 130
    assert not Path(state["storage_dir"]).exists()
    assert process.stderr is not None and "Traceback" not in process.stderr.read()
