"""Fuzzing `tiktok-pipeline publish`'s argument layer: random unicode, huge and empty values for every option.

Every invocation ends in exit 2 with one `error:` line on stderr, or (only for a valid request) in the
run, here a fake that records the request: never a traceback, never another exit code. No Prefect run
starts (`deployments.cli._publish.run_request` is replaced); the second test keeps the real checks
made before a run (ledger, source, media, schedule) against a real ledger and a real moto S3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from deployments.cli import build_app
from publishing import PublishRequest
from sandbox import free_port

runner = CliRunner()
APP = build_app()

#: Any unicode a terminal can pass (and NUL, which only an API can), short, empty or huge.
TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.just(""),
    st.text(st.characters(codec="utf-8"), min_size=2000, max_size=2400),
    st.integers(1, 200_000).map(lambda n: "x" * n),
    st.sampled_from(["-", "--", "-a", "--privacy", "\x00", " ", "\u202e", "SELF_ONLY", "direct", "inbox", "hold",
                     "blur", "crop", "trim", "reject", "defer", "fail", "keep", "move", "2099-01-01T00:00:00",
                     "2001-01-01", "1e309", "-1", "0", "9" * 40]),
)
#: Each option's valid values: an option is left out, given one of them, or given anything (TEXT).
VALID = {
    "--caption": st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cf"]), max_size=100),
    "--privacy": st.sampled_from(["SELF_ONLY", "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR"]),
    "--mode": st.sampled_from(["direct", "inbox", "hold"]),
    "--fit": st.sampled_from(["blur", "pad", "crop"]),
    "--cover-ms": st.integers(0, 10**6).map(str),
    "--on-too-long": st.sampled_from(["trim", "reject"]),
    "--schedule-at": st.sampled_from(["2099-01-01T00:00:00", "2099-06-01 10:00:00+02:00", "2001-01-01"]),
    "--cap-policy": st.sampled_from(["defer", "fail"]),
    "--source-action": st.sampled_from(["keep", "delete", "move"]),
    "--idempotency-key": st.text("abcdefghij0123456789-_", min_size=1, max_size=50),
}
FLAGS = ["--disable-comment", "--disable-duet", "--disable-stitch", "--brand-content", "--brand-organic", "--aigc"]
ACCOUNTS = st.sampled_from(["main", "brand", "studio.b-2"])


@st.composite
def publish_argv(draw: st.DrawFn, sources: st.SearchStrategy[str] = TEXT) -> list[str]:
    argv = ["publish", draw(sources | st.sampled_from(["s3://media/clip.mp4", "clip.mp4"]))]
    for account in draw(st.lists(ACCOUNTS | ACCOUNTS | TEXT, max_size=3)) + ([] if draw(st.booleans()) else ["main"]):
        argv += ["--account", account]
    for name, valid in VALID.items():
        value = draw(st.sampled_from(["absent", "absent", "valid", "valid", "valid", "any"]))
        if value != "absent" or (name == "--privacy" and draw(st.booleans())):
            argv += [name, draw(TEXT if value == "any" else valid)]
    argv += draw(st.lists(st.sampled_from(FLAGS), max_size=3))
    return argv


def assert_one_line_or_a_run(result, runs: list[PublishRequest]) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    event(f"exit {result.exit_code}")
    if result.exit_code == 0:
        (request,) = runs
        assert isinstance(request, PublishRequest)
        assert PublishRequest.model_validate(request.model_dump()) == request  # a valid request, nothing else
        assert result.stderr == ""
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert runs == []


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[PublishRequest]:
    recorded: list[PublishRequest] = []
    monkeypatch.setattr("deployments.cli._publish.run_request", recorded.append)
    return recorded


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=publish_argv())
def test_any_options_end_in_one_line_or_a_valid_request(argv: list[str], runs: list[PublishRequest],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    runs.clear()
    monkeypatch.setattr("deployments.cli._publish.check_request", lambda request: None)
    assert_one_line_or_a_run(runner.invoke(APP, argv), runs)


@pytest.fixture
def empty_ledger(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ledger with no account, an S3 bucket holding one object that is not a video."""
    import os

    import boto3

    from ledger import generate_key

    monkeypatch.setenv("TIKTOK_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", generate_key())
    boto3.client("s3", endpoint_url=os.environ["TIKTOK_PIPELINE_S3_ENDPOINT_URL"]).put_object(
        Bucket=s3_bucket, Key="in/clip.mp4", Body=b"not a video")
    return s3_bucket


def _sources(bucket: str) -> st.SearchStrategy[str]:
    prefixes = st.sampled_from(["", f"s3://{bucket}/", "s3://", f"http://127.0.0.1:{free_port()}/", "file://", "/dev/",
                                "/tmp/", "./", "C:\\", "https://", "s3:/"])
    return st.one_of(st.tuples(prefixes, TEXT).map("".join),
                     st.sampled_from([f"s3://{bucket}/in/clip.mp4", "/dev/null", "/", ".", "README.md"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_with_the_real_checks_every_request_without_a_connected_account_is_refused_in_one_line(
        data: st.DataObject, empty_ledger: str, runs: list[PublishRequest]) -> None:
    runs.clear()
    argv = data.draw(publish_argv(_sources(empty_ledger)))
    result = runner.invoke(APP, argv)
    assert_one_line_or_a_run(result, runs)
    assert result.exit_code == 2  # no account is connected: no request can pass the checks


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cf", "Zs"]), min_size=1, max_size=300),
       accounts=st.lists(ACCOUNTS, min_size=1, max_size=3, unique=True),
       values=st.fixed_dictionaries({}, optional=VALID))
def test_valid_options_reach_the_run_as_given(source: str, accounts: list[str], values: dict[str, str],
                                              runs: list[PublishRequest], monkeypatch: pytest.MonkeyPatch) -> None:
    runs.clear()
    monkeypatch.setattr("deployments.cli._publish.check_request", lambda request: None)
    values.setdefault("--privacy", "SELF_ONLY")
    argv = ["publish", source, *[a for name in accounts for a in ("-a", name)], *[x for item in values.items() for x in item]]
    result = runner.invoke(APP, argv)
    assert_one_line_or_a_run(result, runs)
    if source.startswith("-"):
        return  # an option to Typer, not a source: refused in one line
    assert result.exit_code == 0, result.output
    (request,) = runs
    assert request.source == source and request.accounts == accounts
    assert request.caption == values.get("--caption", "") and request.privacy_level == values["--privacy"]
