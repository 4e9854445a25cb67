"""The Prefect server schedules: `prefect.yaml` deployed to a real `prefect server start` gets upcoming
runs of its scheduled deployments from the server's own scheduler service, on SQLite and on
PostgreSQL, and the server logs no traceback while doing it (Prefect 3.8 with SQLAlchemy 2.1 logs one
every minute and never schedules anything)."""

from __future__ import annotations

import subprocess

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployments import up
from ledger import generate_key
from tests.plugins.postgres import throwaway_database
from tests.plugins.prefect_server import BIN, ROOT, PrefectServer, Stack, clean_environment
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

PRODUCT_DEPLOYMENTS = {"publish-video/publish-video", "publish-photos/publish-photos", "refresh-tokens/refresh-tokens",
                       "cleanup/cleanup",
                       "release-held-post/release-held-post", "publish-s3-object/publish-s3-object",
                       "publish-deferred-post/publish-deferred-post"}


def deployed_names(api) -> set[str]:
    flows = {f["id"]: f["name"] for f in api.http.post("/flows/filter", json={}).json()}
    return {f"{flows[d['flow_id']]}/{d['name']}" for d in api.http.post("/deployments/filter", json={}).json()}


def assert_scheduled_within_the_next_cron_periods(upcoming: dict[str, list[datetime]]) -> None:
    now = datetime.now(UTC)
    refresh, cleanup = upcoming["refresh-tokens/refresh-tokens"], upcoming["cleanup/cleanup"]
    assert refresh and cleanup, upcoming
    assert now - timedelta(minutes=1) < cleanup[0] <= now + timedelta(minutes=30)  # every 30 min
    assert now - timedelta(minutes=1) < refresh[0] <= now + timedelta(hours=4)  # every 4 h
    assert all(t.minute in (0, 30) and t.second == 0 for t in cleanup)


def test_make_up_reports_the_scheduler_working(prefect_stack: Stack) -> None:
    output = prefect_stack.output
    assert "scheduler: next refresh-tokens/refresh-tokens run at" in output, output
    assert "scheduler: next cleanup/cleanup run at" in output, output
    assert "Prefect server log: no traceback" in output, output
    # What the UI's "Upcoming" tab lists: runs the server's scheduler created, of the product only.
    assert_scheduled_within_the_next_cron_periods(up.upcoming_runs(prefect_stack.api_url))
    assert deployed_names(prefect_stack.api) == PRODUCT_DEPLOYMENTS
    assert up.server_log_tracebacks(prefect_stack.state_dir / "prefect.log") == []


@pytest.mark.postgres
def test_a_postgresql_backed_server_schedules_the_deployments(postgres_server: str, tmp_path: Path) -> None:
    with throwaway_database(postgres_server, "prefect_test") as database:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        with PrefectServer.running(tmp_path / "prefect-home", database_url=url) as server:
            env = clean_environment({**server.env(), "TIKTOK_PIPELINE_DATA_DIR": str(tmp_path / "data"),
                                     "TIKTOK_PIPELINE_ENCRYPTION_KEY": generate_key()})
            for argv in ([str(BIN / "tiktok-pipeline"), "setup"], [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"]):
                done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                                      stdin=subprocess.DEVNULL)
                assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
            next_runs = up.wait_for_schedules(server.api_url)
            assert set(next_runs) == {"refresh-tokens/refresh-tokens", "cleanup/cleanup"}
            assert_scheduled_within_the_next_cron_periods(up.upcoming_runs(server.api_url))
            # The scheduler loop runs once a minute: its next pass must not fail either.
            assert server.tracebacks() == [], server.log_file.read_text()
