from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from sandbox import free_port
from ledger import DatabaseUnavailable, DeliveryStatus, Ledger, OutboxEntry, PostState
from ledger._migrate import alembic_config
from ledger._models import Base
from tests.ledger.helpers import insert_legacy_post
from deployments.cli import build_app
from tiktok_pipeline.settings import load_settings

LEDGER_TABLES = {"accounts", "posts", "post_events", "init_attempts", "webhook_deliveries", "rate_windows",
                 "received_tiktok_events", "alembic_version"}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_first_use_migrates_an_empty_database_and_reruns_are_no_ops(database_url: str) -> None:
    with Ledger(database_url, migrate=False) as ledger:
        assert ledger.current_revision() is None
        assert _tables(database_url) == set()
        assert ledger.migrate() is True
        assert ledger.current_revision() == ledger.head_revision() is not None
        assert ledger.migrate() is False
    with Ledger(database_url) as again:  # automatic migration on construction, now a no-op
        assert again.current_revision() == again.head_revision()
    assert _tables(database_url) == LEDGER_TABLES


def test_concurrent_first_use_migrates_once(database_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            Ledger(database_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
            Ledger.head_revision()
        ]
    engine.dispose()


def test_models_and_migrations_agree(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_default_sqlite_file_goes_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOK_PIPELINE_DATABASE_URL", raising=False)
    settings = load_settings(data_dir=tmp_path / "not" / "yet")
    with Ledger.from_settings(settings) as ledger:
        assert ledger.current_revision() == ledger.head_revision()
    assert (tmp_path / "not" / "yet" / "ledger.sqlite3").is_file()


def test_unreachable_postgres_is_a_retryable_typed_error() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(DatabaseUnavailable) as caught:
        Ledger(f"postgresql+psycopg://postgres@127.0.0.1:{port}/ledger")
    assert caught.value.retryable
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_cli_db_upgrade_and_current(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", database_url)
    app = build_app()
    runner = CliRunner()
    head = Ledger.head_revision()

    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0, before.output
    assert "(empty database)" in before.output and "db upgrade" in before.output

    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"upgraded to revision {head}" in first.output
    second = runner.invoke(app, ["db", "upgrade"])
    assert f"already at revision {head}" in second.output

    after = runner.invoke(app, ["db", "current"])
    assert f"revision {head}, head {head} (up to date)" in after.output


def test_migration_0004_adds_claims_and_attempts_to_an_existing_ledger(database_url: str) -> None:
    with Ledger(database_url, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003")
            old = insert_legacy_post(connection, "before-0004")
        assert _tables(database_url) == LEDGER_TABLES - {"init_attempts", "webhook_deliveries", "rate_windows",
                                                   "received_tiktok_events"}
        assert ledger.migrate() is True and ledger.current_revision() == ledger.head_revision()
        assert _tables(database_url) == LEDGER_TABLES
        post = ledger.get_post(old)
        assert (post.state, post.publish_id, post.lease_owner, post.lease_expires_at) == (
            PostState.initialized, "v_pub_before-0004", None, None,
        )
        assert ledger.init_attempts(post) == [] and ledger.caps_left("brand").direct.used == 1  # counted as before
        assert ledger.claim_post(post, "runner", timedelta(minutes=1)).owner == "runner"
        # And back: the downgrade drops what 0004 added in place (no table rebuild), keeping the rows.
        with ledger.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        assert _tables(database_url) == LEDGER_TABLES - {"init_attempts", "webhook_deliveries", "rate_windows",
                                                   "received_tiktok_events"}
        with ledger.engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("posts")}
            assert not columns & {"lease_owner", "lease_expires_at"}
            assert connection.execute(sa.text("SELECT publish_id FROM posts")).scalars().all() == ["v_pub_before-0004"]


def test_migration_0005_adds_the_webhook_outbox_to_an_existing_ledger(database_url: str) -> None:
    with Ledger(database_url, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0004")
            old = insert_legacy_post(connection, "before-0005")
        assert _tables(database_url) == LEDGER_TABLES - {"webhook_deliveries", "rate_windows", "received_tiktok_events"}
        assert ledger.migrate() is True and ledger.current_revision() == ledger.head_revision()
        assert ledger.webhook_deliveries() == []  # an existing ledger starts with an empty outbox
        [delivery] = ledger.add_webhook_deliveries([OutboxEntry(
            event_id="4545110d-5ce7-5973-bf07-080dec82c7c5", event_type="tiktok.post.published", post_id=old,
            receiver="0" * 64, receiver_label="https://hooks.example.com/…", body='{"id":"4545110d"}')])
        assert (delivery.post_id, delivery.status, delivery.attempts) == (old, DeliveryStatus.pending, 0)
        with ledger.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0004")
        assert _tables(database_url) == LEDGER_TABLES - {"webhook_deliveries", "rate_windows", "received_tiktok_events"}
        with ledger.engine.connect() as connection:  # the posts stay as they were (read raw: the models are newer)
            assert connection.execute(sa.text("SELECT publish_id FROM posts WHERE id = :p"), {"p": old}).scalar() == (
                "v_pub_before-0005")


def test_migration_0006_forgets_the_plaintext_upload_urls_of_finished_uploads(database_url: str) -> None:
    url = "https://upload.example/upload/1?upload_token=PLAINTEXT-token"
    with Ledger(database_url, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
            uploading = insert_legacy_post(connection, "still-uploading")
            finished = insert_legacy_post(connection, "finished")
            connection.execute(sa.text("UPDATE posts SET state = 'published' WHERE id = :p"), {"p": finished})
            events = sa.Table("post_events", sa.MetaData(), autoload_with=connection)
            for post_id in (uploading, finished):
                connection.execute(events.insert().values(
                    post_id=post_id, at=datetime.now(UTC), from_state="media_ready", to_state="initialized",
                    kind="transition", message="initialized", data={"upload_url": url, "chunk_size": 5}))
        assert ledger.migrate() is True and ledger.current_revision() == ledger.head_revision()
        with ledger.engine.connect() as connection:
            stored = dict(connection.execute(sa.text("SELECT post_id, data FROM post_events")).all())
        assert "PLAINTEXT-token" not in str(stored[finished]) and "chunk_size" in str(stored[finished])
        # An upload under way keeps its URL, so it can resume within TikTok's hour, until the post moves on.
        assert ledger.upload_url(uploading) == url and ledger.upload_url(finished) is None
        ledger.transition(ledger.get_post(uploading), PostState.uploaded, message="uploaded")
        with ledger.engine.connect() as connection:
            assert "PLAINTEXT-token" not in str(connection.execute(sa.text("SELECT data FROM post_events")).all())


def test_migration_0007_adds_rate_windows_and_deferred_slots_to_an_existing_ledger(database_url: str) -> None:
    with Ledger(database_url, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0006")
            old = insert_legacy_post(connection, "before-0007")
        assert _tables(database_url) == LEDGER_TABLES - {"rate_windows", "received_tiktok_events"}
        assert ledger.migrate() is True and ledger.current_revision() == ledger.head_revision()
        assert ledger.get_post(old).deferred_to is None  # nothing was deferred to a slot of its own before
        assert ledger.reserve_rate_slot("open-id", "video_init", 1, timedelta(minutes=1)) == 0.0
        assert ledger.reserve_rate_slot("open-id", "video_init", 1, timedelta(minutes=1)) > 0
        with ledger.engine.begin() as connection:  # and back, in place, keeping the posts
            command.downgrade(alembic_config(connection), "0006")
        assert _tables(database_url) == LEDGER_TABLES - {"rate_windows", "received_tiktok_events"}
        with ledger.engine.connect() as connection:
            assert "deferred_to" not in {c["name"] for c in sa.inspect(connection).get_columns("posts")}
            assert connection.execute(sa.text("SELECT publish_id FROM posts")).scalars().all() == ["v_pub_before-0007"]


def test_migration_0008_adds_received_tiktok_events_to_an_existing_ledger(database_url: str) -> None:
    key = "a" * 64
    with Ledger(database_url, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0007")
            old = insert_legacy_post(connection, "before-0008")
        assert _tables(database_url) == LEDGER_TABLES - {"received_tiktok_events"}
        assert ledger.migrate() is True and ledger.current_revision() == "0008" == ledger.head_revision()
        assert ledger.received_events() == []  # an existing ledger has received nothing yet
        stored, created = ledger.record_received_event(key, event="post.publish.complete", user_openid="open-brand",
                                                       publish_id="v_pub_before-0008", body="{}")
        assert created and ledger.record_received_event(key, event="post.publish.complete", user_openid="open-brand",
                                                        publish_id="v_pub_before-0008", body="{}") == (stored, False)
        with ledger.engine.connect() as connection:
            inspector = sa.inspect(connection)
            indexes = inspector.get_indexes("received_tiktok_events")  # PostgreSQL also lists the unique key's
            assert {i["name"] for i in indexes if "duplicates_constraint" not in i} == {
                "ix_received_tiktok_events_publish_id", "ix_received_tiktok_events_applied_at_received_at"}
            assert [u["name"] for u in inspector.get_unique_constraints("received_tiktok_events")] == [
                "uq_received_tiktok_events_key"]
        with ledger.engine.begin() as connection:  # and back, keeping the posts
            command.downgrade(alembic_config(connection), "0007")
        assert _tables(database_url) == LEDGER_TABLES - {"received_tiktok_events"}
        with ledger.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT publish_id FROM posts WHERE id = :p"), {"p": old}).scalar() == (
                "v_pub_before-0008")
