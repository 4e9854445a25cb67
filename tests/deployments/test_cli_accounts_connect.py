"""`tiktok-pipeline accounts connect`: what can be checked is checked before the OAuth exchange starts, and
what goes wrong after (the redirect port is busy, no redirect arrives) ends in one `error:` line.

Real ports: the tests hold the redirect port with a listening socket of their own, and the redirect
wait really times out (a short `--timeout`). The sandbox plays TikTok.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import build_app
from tests.deployments.helpers import one_error_line
from ledger import Ledger, generate_key
from publishing.connect import (AccountNameInvalid, ConnectInputInvalid, RedirectPortBusy, RedirectTimedOut,
                                connect_account)
from sandbox import free_port
from tiktok_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def env(sandbox, tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment: the sandbox as TikTok, a data dir of the test's own, the redirect on `port`."""
    values = {**sandbox.env(), "TIKTOK_PIPELINE_DATA_DIR": str(tmp_path / "data"),
              "TIKTOK_PIPELINE_REDIRECT_URI": f"http://localhost:{port}/callback/",
              "TIKTOK_PIPELINE_ENCRYPTION_KEY": generate_key()}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the command asked the browser to open."""
    import webbrowser

    urls: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: urls.append(url) or True)
    return urls


@pytest.fixture
def held(port: int) -> Iterator[socket.socket]:
    """Another program listening on the redirect port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        yield other


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def connect(*args: str):
    return runner.invoke(build_app(), ["accounts", "connect", *args])


# --- refused before anything starts -------------------------------------------------------------------

@pytest.mark.parametrize("name, reason", [
    ("../evil", "account name '../evil' is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"),
    ("", "account name '' is not valid"),
    ("a" * 65, f"account name {'a' * 65!r} is not valid: use 1-64 letters"),
    ("-rf", "account name '-rf' is not valid"),
    ("tab\there", "account name: U+0009 (CHARACTER TABULATION) at character 4"),
    ("\u202eniam", "account name: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 1"),
])
def test_a_bad_name_is_refused_before_the_settings_the_port_or_the_authorize_page(
    name: str, reason: str, env: dict[str, str], held: socket.socket, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings that cannot be read and a port that cannot be bound: reaching either would say so instead.
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_MAX_RECEIVES", "many")
    result = connect("--timeout", "5", "--", name)  # "--": a name such as -rf is not an option
    assert one_error_line(result, 2).startswith(f"error: {reason}"), result.stderr
    assert opened == [] and "Open this URL" not in result.stdout
    assert not Path(env["TIKTOK_PIPELINE_DATA_DIR"]).exists()  # no ledger was opened either


@pytest.mark.parametrize("timeout", ["0", "-1", "inf", "nan", "1e9"])
def test_an_unusable_timeout_is_refused_before_the_port_is_bound(timeout: str, env: dict[str, str], held: socket.socket,
                                                                 opened: list[str]) -> None:
    line = one_error_line(connect("main", "--timeout", timeout), 2)
    assert "the timeout for the OAuth redirect must be more than 0 and at most 86400 seconds" in line
    assert opened == []


@pytest.mark.parametrize("uri", ["https://app.example.com/callback/", "http://localhost/callback/",
                                 "http://localhost:99999/callback/", "http://192.0.2.1:8765/callback/"])
def test_a_redirect_uri_that_cannot_be_received_here_is_refused(uri: str, env: dict[str, str], opened: list[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_REDIRECT_URI", uri)
    line = one_error_line(connect("main", "--timeout", "5"), 2)
    assert "redirect" in line.lower() and opened == []


# --- what goes wrong once it has started ----------------------------------------------------------------

def test_a_busy_redirect_port_is_one_line_and_no_authorize_page(env: dict[str, str], port: int, held: socket.socket,
                                                                 opened: list[str]) -> None:
    result = connect("main", "--timeout", "5")
    line = one_error_line(result, 1)
    assert line == (f"error: port {port} of the redirect URI http://localhost:{port}/callback/ is in use by another "
                    "program (another `accounts connect`?): stop it and connect again, or register another localhost "
                    "redirect with TikTok and set TIKTOK_PIPELINE_REDIRECT_URI to it")
    assert opened == [] and "Open this URL" not in result.stdout


def test_no_redirect_within_the_timeout_is_one_line_and_frees_the_port(env: dict[str, str], port: int,
                                                                        opened: list[str]) -> None:
    result = connect("main", "--timeout", "0.3")
    line = one_error_line(result, 1)
    assert line == (f"error: no OAuth redirect reached http://localhost:{port}/callback/ within 0.3 s: approve the app "
                    "on the authorize page within that time, then connect again")
    assert len(opened) == 1 and "Open this URL" in result.stdout  # it had started: the page was shown
    assert port_is_free(port)  # the receiver is closed
    assert runner.invoke(build_app(), ["accounts", "list"]).stdout.startswith("no accounts yet")


def test_the_command_line_as_a_user_runs_it(env: dict[str, str], held: socket.socket) -> None:
    """A real process: the real argv, no traceback, one line, for a bad name and for a busy port."""
    cli = [sys.executable, "-m", "deployments.cli", "accounts", "connect"]
    environment = {**os.environ, **env}
    bad = subprocess.run([*cli, "../evil"], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=120)
    assert (bad.returncode, bad.stderr.splitlines()) == (2, [
        "error: account name '../evil' is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a "
        "letter or digit"]), bad.stderr
    busy = subprocess.run([*cli, "main", "--no-open", "--timeout", "5"], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=120)
    assert busy.returncode == 1 and len(busy.stderr.splitlines()) == 1, busy.stderr
    assert busy.stderr.startswith("error: port ") and "Traceback" not in busy.stdout + busy.stderr


# --- the service layer: the same checks for every caller -------------------------------------------------

@pytest.fixture
def settings(sandbox, tmp_path: Path, port: int) -> Settings:
    env = sandbox.env()
    return Settings(api_base_url=env["TIKTOK_PIPELINE_API_BASE_URL"], authorize_url=env["TIKTOK_PIPELINE_AUTHORIZE_URL"],
                    client_key=env["TIKTOK_PIPELINE_CLIENT_KEY"], client_secret=env["TIKTOK_PIPELINE_CLIENT_SECRET"],
                    app_type=env["TIKTOK_PIPELINE_APP_TYPE"], redirect_uri=f"http://localhost:{port}/callback/",
                    data_dir=tmp_path, database_url=None, encryption_key=generate_key())


@pytest.fixture
def book(settings: Settings) -> Ledger:
    return Ledger(settings.effective_database_url, settings.encryption_key.get_secret_value())


def test_connect_account_checks_first_then_raises_typed_errors(settings: Settings, book: Ledger, port: int) -> None:
    shown: list[str] = []
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(AccountNameInvalid, match="'../evil' is not valid"):
            connect_account(settings, book, "../evil", shown.append, timeout=5)
        with pytest.raises(ConnectInputInvalid, match="must be more than 0"):
            connect_account(settings, book, "main", shown.append, timeout=float("inf"))
        with pytest.raises(ConnectInputInvalid, match="is not http://localhost:PORT"):
            connect_account(settings.model_copy(update={"redirect_uri": "https://x.example/cb"}), book, "main",
                            shown.append)
        assert shown == []  # nothing started: the held port was never tried
        with pytest.raises(RedirectPortBusy, match=f"port {port} of the redirect URI"):
            connect_account(settings, book, "main", shown.append, timeout=5)
        assert shown == []
    with pytest.raises(RedirectTimedOut, match="within 0.2 s"):
        connect_account(settings, book, "main", shown.append, timeout=0.2)
    assert len(shown) == 1 and port_is_free(port) and book.list_accounts() == []


def test_after_a_timeout_the_same_name_connects(settings: Settings, book: Ledger) -> None:
    import httpx

    with pytest.raises(RedirectTimedOut):
        connect_account(settings, book, "main", lambda url: None, timeout=0.2)
    account = connect_account(settings, book, "main", lambda url: httpx.get(url, follow_redirects=True, timeout=30),
                              extra_params={"sandbox_user": "studio_main"}, timeout=30)
    assert account.name == "main" and [a.name for a in book.list_accounts()] == ["main"]
