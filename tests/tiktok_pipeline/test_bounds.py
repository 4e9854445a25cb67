"""The settings' bounds are the bounds of the code that uses each setting, and cannot drift from them.

The kernel imports nothing of the project, so it restates TikTok's chunk sizes and polling floor,
Prefect's retry scheduling and the limits of sockets and dates. Each test here puts a bound next
to the constant or the behaviour of the code it stands for: the setting accepts a value exactly
when that code does.
"""

from __future__ import annotations

import math
import socket
import uuid
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import botocore.utils
import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prefect import task
from prefect.tasks import exponential_backoff
from pydantic import ValidationError

import tiktok
from ledger import EncryptionKeyInvalid, Ledger, generate_key
from tasks import policy
from tiktok_pipeline import settings as bounds
from tiktok_pipeline.settings import Settings, bucket_name_problem, http_url_problem

PROPERTY = settings(max_examples=200, deadline=None)


def accepted(**values: object) -> bool:
    try:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    except ValidationError:
        return False
    return True


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("TIKTOK_PIPELINE_")]:
        monkeypatch.delenv(name)


# --- TikTok ---------------------------------------------------------------------------------------


def test_chunk_size_bounds_are_tiktoks() -> None:
    assert (bounds.MIN_CHUNK_SIZE, bounds.MAX_CHUNK_SIZE) == (tiktok.MIN_CHUNK_SIZE, tiktok.MAX_CHUNK_SIZE)
    field = Settings.model_fields["chunk_size"]
    assert tiktok.check_chunk_size(field.default) == field.default


def _tiktok_accepts_chunk(size: int) -> bool:
    try:
        tiktok.check_chunk_size(size)
    except tiktok.ChunkSizeOutOfRange:
        return False
    return True


@PROPERTY
@given(st.integers(min_value=-1, max_value=2 * tiktok.MAX_CHUNK_SIZE))
@example(tiktok.MIN_CHUNK_SIZE - 1)
@example(tiktok.MIN_CHUNK_SIZE)
@example(tiktok.MAX_CHUNK_SIZE)
@example(tiktok.MAX_CHUNK_SIZE + 1)
def test_the_setting_takes_a_chunk_size_exactly_when_tiktok_does(size: int) -> None:
    assert accepted(chunk_size=size) == _tiktok_accepts_chunk(size)


def _poll_policy_accepts(interval: float, timeout: float) -> bool:
    # As publishing.posting builds it for the poll task.
    try:
        tiktok.PollPolicy(initial_interval=interval, timeout=timeout)
    except tiktok.InvalidInput:
        return False
    return True


def test_poll_bounds_are_the_poll_policys() -> None:
    fields = tiktok.PollPolicy.model_fields
    assert [m.ge for m in fields["initial_interval"].metadata] == [bounds.MIN_POLL_INTERVAL]
    assert fields["max_interval"].default == bounds.MAX_POLL_INTERVAL
    assert [m.gt for m in fields["timeout"].metadata] == [0]


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@PROPERTY
@given(finite, st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=bounds.MAX_SECONDS))
@example(1.0, 900.0)  # the case of the issue: accepted before, refused by the poll task after the upload
@example(1.999, 900.0)
@example(2.0, 900.0)
@example(30.0, 900.0)
@example(30.001, 900.0)
@example(5.0, 0.0)
def test_the_settings_take_a_poll_schedule_exactly_when_the_poll_policy_does(interval: float, timeout: float) -> None:
    assert accepted(status_poll_interval=interval, status_poll_timeout=timeout) == _poll_policy_accepts(interval, timeout)


def test_an_infinite_or_nan_duration_is_refused() -> None:
    # The poll policy would take an infinite timeout, a socket refuses an infinite timeout: never a duration.
    for name in ("status_poll_timeout", "http_read_timeout", "upload_timeout", "claim_lease", "webhook_timeout"):
        for value in (math.inf, math.nan):
            assert not accepted(**{name: value}), name


# --- Prefect's retries ----------------------------------------------------------------------------


def test_retry_scheduling_constants_are_prefects_and_the_shells() -> None:
    assert bounds.RETRY_JITTER == policy.RETRY_JITTER
    assert len(exponential_backoff(1.0)(10_000)) == bounds.MAX_RETRY_DELAYS  # Prefect keeps at most 50 delays


def _prefect_can_schedule(backoff: float, retries: int) -> bool:
    """What Prefect does for the last retry: now + the longest delay, jitter included."""
    delays = exponential_backoff(backoff)(retries)
    try:
        datetime.now(UTC) + timedelta(seconds=max(delays, default=0) * (1 + policy.RETRY_JITTER))
    except OverflowError:
        return False
    return True


@PROPERTY
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.integers(min_value=0, max_value=200))
@example(10.0, 4)
@example(10.0, 60)
@example(1e6, 25)
def test_retries_the_settings_take_can_be_scheduled_by_prefect(backoff: float, retries: int) -> None:
    takes = accepted(task_retries=retries, task_retry_backoff=backoff)
    assert takes == accepted(webhook_retries=retries, webhook_retry_backoff=backoff)
    if takes:
        assert _prefect_can_schedule(backoff, retries)
        task = policy.with_retries(_step, Settings(_env_file=None, task_retries=retries, task_retry_backoff=backoff))
        assert task.retries == retries
    # And what cannot be scheduled is refused: the bound is not looser than Prefect's.
    if not _prefect_can_schedule(backoff, retries):
        assert not takes


@task(**policy.retry_options())
def _step() -> None:  # never run: only its retry options are built
    return None


def test_max_seconds_fits_a_socket_and_a_date() -> None:
    with socket.socket() as sock:
        sock.settimeout(bounds.MAX_SECONDS)
        with pytest.raises(OverflowError):
            sock.settimeout(1e10)  # the limit is real: about 292 years of nanoseconds
    datetime.now(UTC) + timedelta(seconds=bounds.MAX_SECONDS * (1 + bounds.RETRY_JITTER))
    assert accepted(http_read_timeout=bounds.MAX_SECONDS) and not accepted(http_read_timeout=1e10)
    assert accepted(claim_lease=bounds.MAX_SECONDS) and not accepted(claim_lease=bounds.MAX_SECONDS * 2)


# --- the ledger, AWS, Prefect names, URLs ---------------------------------------------------------


def _fernet_accepts(keys: str) -> bool:
    # The ledger's own parsing: comma-separated, stripped, empty parts dropped, each a Fernet key.
    try:
        [Fernet(part.strip()) for part in keys.split(",") if part.strip()]
    except ValueError:
        return False
    return True


key_text = st.one_of(
    st.text(max_size=60),
    st.builds(lambda: generate_key()),
    st.lists(st.one_of(st.builds(lambda: generate_key()), st.text(max_size=50)), max_size=3).map(",".join),
    st.binary(min_size=28, max_size=36).map(lambda b: __import__("base64").urlsafe_b64encode(b).decode()),
)


@PROPERTY
@given(key_text)
@example(" " + Fernet.generate_key().decode() + " , ")
@example(Fernet.generate_key().decode()[:-1])
def test_the_setting_takes_an_encryption_key_exactly_when_the_ledger_does(keys: str) -> None:
    assert accepted(encryption_key=keys) == _fernet_accepts(keys)


def test_a_refused_key_is_refused_by_the_ledger_too_and_never_shown() -> None:
    keys = f"{generate_key()},not-a-key"
    with pytest.raises(EncryptionKeyInvalid, match="key #2 is not a Fernet key"):
        Ledger("sqlite://", keys, migrate=False)
    with pytest.raises(ValidationError, match="key #2 is not a Fernet key") as caught:
        Settings(_env_file=None, encryption_key=keys)  # type: ignore[call-arg]
    assert "not-a-key" not in str(caught.value) and keys.split(",")[0] not in str(caught.value)


def _botocore_accepts_region(name: str) -> bool:
    try:
        botocore.utils.validate_region_name(name)
    except botocore.exceptions.InvalidRegionError:
        return False
    return True


@PROPERTY
@given(st.one_of(st.text(max_size=70), st.from_regex(r"[a-z]{2}-[a-z]+-[0-9]", fullmatch=True)))
@example("us-east-1")
@example("-us")
@example("123")
@example("a" * 64)
def test_the_setting_takes_a_region_botocore_takes(name: str) -> None:
    # botocore also takes "" (then no region is found) and "name\n" (its `$` allows a final newline,
    # then the endpoint is broken): the setting refuses those two, and agrees everywhere else.
    if name and not name.endswith("\n"):
        assert accepted(aws_region=name) == _botocore_accepts_region(name)
    else:
        assert not accepted(aws_region=name)


@pytest.mark.parametrize(("name", "ok"), [
    ("publish-s3-object/publish-s3-object", True), ("0b7e7d2c-4f0e-4b59-9a51-3f4c2f0e5a11", True), ("flow/dep loyment", True),
    ("no-slash", False), ("a/b/c", False), ("/dep", False), ("flow/", False), (" / ", False),
])
def test_the_deployment_name_is_what_run_deployment_can_read(name: str, ok: bool) -> None:
    # Prefect's read_deployment_by_name does `flow_name, deployment_name = name.split("/")`.
    assert accepted(s3_deployment=name) == ok
    if ok and not _is_uuid(name):
        flow_name, deployment_name = name.split("/")
        assert flow_name.strip() and deployment_name.strip()


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("url", "ok"), [
    ("sqlite:////tmp/ledger.sqlite3", True), ("sqlite://", True), ("postgresql://u:p@127.0.0.1:5432/ledger", True),
    ("postgresql+psycopg://u@h/db", True), ("postgres://u@h/db", False), ("mysql://u@h/db", False),
    ("ledger.sqlite3", False), ("", True),
])
def test_database_urls_are_those_the_ledger_runs_on(url: str, ok: bool) -> None:
    assert accepted(database_url=url) == ok
    if ok and url:
        assert sa.make_url(url).get_backend_name() in bounds.DATABASE_DIALECTS
    if url == "postgres://u@h/db":  # SQLAlchemy 2 has no such dialect either
        with pytest.raises(sa.exc.NoSuchModuleError):
            sa.create_engine(url)


urls = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}", st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
              st.text(max_size=15), st.text(max_size=15)),
    st.sampled_from(["http://127.0.0.1:99999/", "http://[::1]:80/x", "https://", "http://a b/", "http://h:port/"]),
)


@PROPERTY
@given(urls)
def test_every_url_the_settings_take_is_one_httpx_sends_to(url: str) -> None:
    if http_url_problem(url) is None:
        parsed = httpx.URL(url)
        assert parsed.scheme in ("http", "https") and parsed.host
        assert accepted(api_base_url=url, s3_endpoint_url=url, s3_queue_url=url)
    else:
        assert not accepted(api_base_url=url) and not accepted(s3_queue_url=url)


@PROPERTY
@given(st.text(max_size=70))
@example("media")
@example("ab")
@example("Legacy_Bucket.Name")
def test_bucket_names(name: str) -> None:
    assert accepted(s3_buckets=[name]) == (bucket_name_problem(name) is None)
    if bucket_name_problem(name) is None:
        assert 3 <= len(name) <= 255 and name[0].isalnum() and name[-1].isalnum()


# --- TikTok's webhooks ----------------------------------------------------------------------------


def test_received_webhooks_are_kept_as_long_as_the_ledger_must_keep_them() -> None:
    from ledger import TIKTOK_REDELIVERY_WINDOW

    assert timedelta(hours=bounds.TIKTOK_REDELIVERY_HOURS) == TIKTOK_REDELIVERY_WINDOW
    assert accepted(tiktok_webhooks_keep_hours=bounds.TIKTOK_REDELIVERY_HOURS)
    assert not accepted(tiktok_webhooks_keep_hours=bounds.TIKTOK_REDELIVERY_HOURS - 0.5)


@pytest.mark.parametrize("interval", [1.9, 2.0, 2.5, 60.0, 3600.0])
def test_the_safety_net_interval_is_one_the_poll_policy_takes(interval: float) -> None:
    # With webhooks on, the poll task polls every tiktok_webhooks_poll_interval (initial = max).
    try:
        tiktok.PollPolicy(initial_interval=interval, max_interval=interval)
        polls = True
    except tiktok.InvalidInput:
        polls = False
    assert accepted(tiktok_webhooks_poll_interval=interval) is polls


# --- review mode ----------------------------------------------------------------------------------


def test_the_longest_review_timeout_is_a_pause_prefect_can_schedule() -> None:
    from prefect.states import Paused

    state = Paused(timeout_seconds=bounds.MAX_PAUSE_SECONDS)
    assert state.state_details.pause_timeout is not None
    assert accepted(review_timeout=bounds.MAX_PAUSE_SECONDS) and not accepted(review_timeout=bounds.MAX_PAUSE_SECONDS + 1)
    assert not accepted(review_timeout=29)
