"""An interrupted post resumes with the very bytes TikTok was told about.

The transcode is not byte-for-byte repeatable (x264 frame threads + VBV), so the media a post's
init announced is kept under the data dir (`<data_dir>/media/<sha256>.mp4`) until the post
settles, and a re-run of the request uploads that file instead of transcoding again. Each test
interrupts a first run after init (after part of the upload where it matters), then runs the same
request again, and checks what the sandbox TikTok received.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.states import Completed, Running

from flows.maintenance import cleanup
from publishing import PublishRequest
from ledger import PostState
from tests.flows.helpers import run_publish, task_runs_of

CHUNK = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def big_landscape_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16:9 noise, 9 s: the pipeline must transcode it (blur fit to 1080x1920), and the output
    (~12 MB at the 10 Mbit/s ceiling) makes two 5 MiB chunks."""
    path = tmp_path_factory.mktemp("landscape") / "landscape-noise.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", "nullsrc=s=640x360:r=24:d=9,geq=lum='random(1)*255':cb=128:cr=128",
         "-f", "lavfi", "-i", "sine=f=440:d=9:sample_rate=48000,aformat=channel_layouts=stereo",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "30", "-c:a", "aac", "-b:a", "96k", str(path)],
        check=True,
    )
    return path


class WorkerKilled(RuntimeError):
    """Stands for the worker dying: not a PipelineError, so nothing retries it in the run."""


def interrupt_upload(monkeypatch: pytest.MonkeyPatch, *, after_chunks: int) -> None:
    """The next uploads die after TikTok confirmed `after_chunks` chunks (0: before the first byte)."""
    from tiktok import TikTokClient

    real = TikTokClient.upload_video

    def dies(self, path, upload_url, plan, **kwargs):
        if after_chunks == 0:
            raise WorkerKilled("worker killed before the upload")
        forward = kwargs.pop("on_progress", None)
        confirmed = [0]

        def progress(sent: int, total: int) -> None:
            if forward:
                forward(sent, total)
            confirmed[0] += 1
            if confirmed[0] >= after_chunks:
                raise WorkerKilled("worker killed during the upload")

        return real(self, path, upload_url, plan, on_progress=progress, **kwargs)

    monkeypatch.setattr(TikTokClient, "upload_video", dies)


def transcodes_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transcode gives other bytes (as x264 with frame threads does): a valid MP4 `free` box
    with a random payload is appended to each output."""
    import tasks.publishing

    real = tasks.publishing.make_tiktok_ready

    def different_each_time(src, dst, policy, **kwargs):
        result = real(src, dst, policy, **kwargs)
        with Path(dst).open("ab") as out:
            out.write(struct.pack(">I4s", 24, b"free") + uuid.uuid4().bytes)
        return result.model_copy(update={"output": result.output.model_copy(update={"size": Path(dst).stat().st_size})})

    monkeypatch.setattr(tasks.publishing, "make_tiktok_ready", different_each_time)


def _request(source: str) -> PublishRequest:
    return PublishRequest(source=source, accounts=["main"], caption=f"resume {uuid.uuid4().hex[:6]}",
                          privacy_level="SELF_ONLY")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kept_files(pipeline) -> list[Path]:
    root = pipeline.data_dir / "media"
    return sorted(root.iterdir()) if root.exists() else []


def received_file(pipeline, publish_id: str) -> Path:
    """The bytes the sandbox TikTok received for `publish_id` (its storage holds one file per upload)."""
    (post,) = [p for p in pipeline.sandbox.posts() if p["publish_id"] == publish_id]
    storage = Path(httpx.get(f"{pipeline.sandbox.base_url}/_sandbox/state", timeout=10).json()["storage_dir"])
    (found,) = [p for p in storage.iterdir() if p.is_file() and p.stat().st_size == post["video_size"]]
    return found


def age(path: Path, hours: float) -> None:
    """As if nobody had touched the file for `hours` (the sweep's grace is about idle files)."""
    old = time.time() - hours * 3600
    os.utime(path, (old, old))


def logged(prefect_logs) -> str:
    return "\n".join(r.getMessage() for r in prefect_logs.records)


def test_a_transcoded_post_interrupted_mid_upload_resumes_with_the_kept_bytes_and_publishes_once(
        pipeline, big_landscape_clip, monkeypatch, prefect_logs) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_CHUNK_SIZE", str(CHUNK))
    source = pipeline.upload(big_landscape_clip, "in/landscape.mp4")
    request = _request(source)
    book = pipeline.ledger()

    with monkeypatch.context() as during_first_run:
        interrupt_upload(during_first_run, after_chunks=1)
        state, (first,) = run_publish(request)
    assert state.is_failed() and first.state is PostState.initialized, first
    assert "run the same request again" in first.error_message
    (at_tiktok,) = pipeline.sandbox.posts()
    assert at_tiktok["publish_id"] == first.publish_id and at_tiktok["total_chunk_count"] >= 2
    assert at_tiktok["received_bytes"] == CHUNK  # one chunk in, then the worker died
    assert pipeline.work_files() == []  # the run's working directory is gone...
    init = next(e for e in book.post_events(first.post_id) if e.to_state is PostState.initialized)
    (kept,) = kept_files(pipeline)  # ...the media init announced is kept
    assert kept == pipeline.data_dir / "media" / f"{init.data['media_sha256']}.mp4"
    assert kept.stat().st_size == init.data["media_size"] == at_tiktok["video_size"]
    assert _sha256(kept) == init.data["media_sha256"] and init.data["kept_media"] == str(kept)
    assert init.data["flow_run_id"] == str(state.state_details.flow_run_id)

    age(kept, 3)  # idle for hours: only the initialized post that needs it keeps it
    assert cleanup()["kept_media_removed"] == 0
    assert kept.exists()

    prefect_logs.clear()
    state, (second,) = run_publish(request)
    assert state.is_completed(), state.message
    assert second.state is PostState.published and second.publish_id == first.publish_id, second
    assert "transcode" not in [t.step for t in second.timings]
    assert "transcode" not in {t.name.rsplit("-", 1)[0] for t in task_runs_of(state)}
    text = logged(prefect_logs)
    assert f"resumes with the media kept at init, {kept}" in text and "not transcoded again" in text
    assert "nothing to transcode" in text
    (at_tiktok,) = pipeline.sandbox.posts()  # one post at TikTok, every byte, exactly those initialized
    assert at_tiktok["received_bytes"] == at_tiktok["video_size"] and at_tiktok["status"] == "PUBLISH_COMPLETE"
    assert _sha256(received_file(pipeline, first.publish_id)) == init.data["media_sha256"]
    assert "1 resyncs" in text  # resumed from the byte TikTok held, not from 0
    assert [e.kind for e in book.post_events(first.post_id) if e.to_state is PostState.initialized
            and e.from_state is not PostState.initialized] == ["transition"]  # one init; claims stay in the state

    assert cleanup()["kept_media_removed"] == 0 and kept.exists()  # settled, but touched a moment ago
    age(kept, 2)
    assert cleanup()["kept_media_removed"] == 1
    assert kept_files(pipeline) == []


def test_kept_media_gone_with_bytes_at_tiktok_fails_the_post_naming_the_shared_data_dir(
        pipeline, big_compliant_clip, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_CHUNK_SIZE", str(CHUNK))
    transcodes_differ(monkeypatch)
    source = pipeline.upload(big_compliant_clip, "in/big.mp4")
    request = _request(source)
    with monkeypatch.context() as during_first_run:
        interrupt_upload(during_first_run, after_chunks=1)
        _, (first,) = run_publish(request)
    assert first.state is PostState.initialized
    for path in kept_files(pipeline):  # the retry runs on a worker with a data dir of its own
        path.unlink()

    state, (second,) = run_publish(request)
    assert state.is_failed() and second.state is PostState.failed, second
    assert second.error_code == "KeptMediaMissing"
    assert "TIKTOK_PIPELINE_DATA_DIR" in second.error_message and f"holds {CHUNK} of its" in second.error_message
    assert "new idempotency_key" in second.error_message
    post = pipeline.ledger().get_post(first.post_id)
    assert post.publish_id == first.publish_id and post.error_code == "KeptMediaMissing"
    (at_tiktok,) = pipeline.sandbox.posts()  # no other publish_id, no other bytes
    assert at_tiktok["received_bytes"] == CHUNK
    events = [e for e in pipeline.ledger().post_events(first.post_id) if not e.kind.startswith("claim")]
    assert events[-1].data["kind"] == "final"


def test_kept_media_gone_before_any_byte_gives_up_that_publish_id_and_posts_once_with_a_new_one(
        pipeline, media, monkeypatch) -> None:
    transcodes_differ(monkeypatch)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    request = _request(source)
    with monkeypatch.context() as during_first_run:
        interrupt_upload(during_first_run, after_chunks=0)
        _, (first,) = run_publish(request)
    assert first.state is PostState.initialized
    for path in kept_files(pipeline):
        path.unlink()

    state, (second,) = run_publish(request)
    assert state.is_completed(), state.message
    assert second.state is PostState.published and second.post_id == first.post_id
    assert second.publish_id != first.publish_id
    by_id = {p["publish_id"]: p for p in pipeline.sandbox.posts()}
    assert set(by_id) == {first.publish_id, second.publish_id}
    assert by_id[first.publish_id]["received_bytes"] == 0  # the given-up publish_id never got a byte
    assert by_id[first.publish_id]["status"] == "PROCESSING_UPLOAD"
    assert by_id[second.publish_id]["status"] == "PUBLISH_COMPLETE"
    events = pipeline.ledger().post_events(first.post_id)
    (abandoned,) = [e for e in events if e.kind == "publish_id_abandoned"]
    assert abandoned.data["abandoned_publish_id"] == first.publish_id and abandoned.data["uploaded_bytes"] == 0
    assert abandoned.to_state is PostState.media_ready
    initialized = [e for e in events if e.to_state is PostState.initialized and e.from_state is not PostState.initialized]
    assert [e.data["publish_id"] for e in initialized] == [first.publish_id, second.publish_id]
    assert _sha256(received_file(pipeline, second.publish_id)) == initialized[-1].data["media_sha256"]


def test_kept_media_gone_but_the_same_bytes_prepared_again_resumes_the_same_publish_id(
        pipeline, big_compliant_clip, monkeypatch) -> None:
    """An already-compliant source is remuxed, which is repeatable: the new file has the announced hash."""
    monkeypatch.setenv("TIKTOK_PIPELINE_CHUNK_SIZE", str(CHUNK))
    source = pipeline.upload(big_compliant_clip, "in/big.mp4")
    request = _request(source)
    with monkeypatch.context() as during_first_run:
        interrupt_upload(during_first_run, after_chunks=1)
        _, (first,) = run_publish(request)
    (kept,) = kept_files(pipeline)
    kept.unlink()

    state, (second,) = run_publish(request)
    assert state.is_completed() and second.publish_id == first.publish_id, second
    (at_tiktok,) = pipeline.sandbox.posts()
    assert at_tiktok["received_bytes"] == at_tiktok["video_size"] and at_tiktok["status"] == "PUBLISH_COMPLETE"
    assert kept_files(pipeline) == [kept]  # kept again for any later resume


def test_without_its_media_a_run_leaves_a_post_to_the_live_run_that_initialized_it(pipeline, media, monkeypatch) -> None:
    """Another worker (its own data dir) is still on the post: nothing is sent, nothing is decided."""
    transcodes_differ(monkeypatch)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    request = _request(source)
    with monkeypatch.context() as during_first_run:
        interrupt_upload(during_first_run, after_chunks=0)
        first_state, (first,) = run_publish(request)
    for path in kept_files(pipeline):
        path.unlink()
    with get_client(sync_client=True) as client:  # as if that run were still going on its worker
        client.set_flow_run_state(first_state.state_details.flow_run_id, Running(), force=True)

    state, (second,) = run_publish(request)
    assert state.is_failed() and second.state is PostState.initialized, second
    assert second.error_code == "UploadInProgressElsewhere" and "may still be uploading it" in second.error_message
    assert str(first_state.state_details.flow_run_id) in second.error_message
    post = pipeline.ledger().get_post(first.post_id)
    assert (post.state, post.publish_id, post.error_code) == (PostState.initialized, first.publish_id, None)
    (at_tiktok,) = pipeline.sandbox.posts()
    assert at_tiktok["received_bytes"] == 0
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first_state.state_details.flow_run_id, Completed(), force=True)


def test_a_post_initialized_by_a_run_still_going_is_left_to_it(pipeline) -> None:
    """Without its media here, a run never decides for a post another live run may be uploading."""
    from datetime import UTC, datetime

    from tasks.publishing import InitRecord, initializer_still_running

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("publish-video")
        run = client.create_flow_run_from_deployment(
            client.create_deployment(flow_id=flow_id, name=f"resume-{uuid.uuid4().hex[:6]}"), parameters={})
        client.set_flow_run_state(run.id, Running(), force=True)
    record = InitRecord(at=datetime.now(UTC), publish_id="p", upload_url="u", chunk_size=CHUNK, size=1,
                        sha256="0" * 64, flow_run_id=str(run.id))
    assert str(run.id) in initializer_still_running(record)
    assert initializer_still_running(record.model_copy(update={"flow_run_id": None})) is not None
    expired = record.model_copy(update={"at": datetime(2020, 1, 1, tzinfo=UTC)})
    assert initializer_still_running(expired) is None  # TikTok takes no byte on an expired URL
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Completed(), force=True)
    assert initializer_still_running(record) is None


# --- the kept-media store (no Prefect) -------------------------------------------------------------


def _settings(tmp_path: Path):
    from tiktok_pipeline.settings import load_settings

    return load_settings(data_dir=tmp_path / "data")


def _prepared(tmp_path: Path, content: bytes) -> tuple[Path, str]:
    path = tmp_path / f"work-{uuid.uuid4().hex[:6]}.mp4"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_keep_media_is_content_addressed_shared_and_survives_the_run_directory(tmp_path: Path) -> None:
    from publishing.workdirs import keep_media, kept_media_path

    settings = _settings(tmp_path)
    work, sha = _prepared(tmp_path, b"video bytes")
    kept = keep_media(settings, work, sha)
    assert kept == kept_media_path(settings, sha) == settings.data_dir.resolve() / "media" / f"{sha}.mp4"
    assert kept.stat().st_ino == work.stat().st_ino  # a hard link: no copy of a big file
    assert keep_media(settings, work, sha) == kept  # a second post of the run shares it
    work.unlink()  # the run's working directory goes
    assert kept.read_bytes() == b"video bytes"
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]  # no partial left
    with pytest.raises(ValueError):
        kept_media_path(settings, "../../etc/passwd")


def test_keep_media_copies_across_filesystems_and_names_the_fix_when_it_cannot(tmp_path: Path, monkeypatch) -> None:
    from publishing.workdirs import KeptMediaUnwritable, keep_media

    settings = _settings(tmp_path)
    work, sha = _prepared(tmp_path, b"other bytes")

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    kept = keep_media(settings, work, sha)
    assert kept.read_bytes() == b"other bytes" and kept.stat().st_ino != work.stat().st_ino
    kept.unlink()
    kept.parent.rmdir()
    kept.parent.write_text("a file where the media directory should be")  # unwritable, even for root
    with pytest.raises(KeptMediaUnwritable, match="TIKTOK_PIPELINE_DATA_DIR") as caught:
        keep_media(settings, work, sha)
    assert caught.value.final and str(kept.parent) in str(caught.value)


def test_the_media_sweep_keeps_what_a_post_needs_and_what_was_just_kept(tmp_path: Path) -> None:
    from publishing.workdirs import keep_media, media_root, sweep_kept_media

    settings = _settings(tmp_path)
    needed, unneeded, fresh = (keep_media(settings, *_prepared(tmp_path, c)) for c in (b"needed", b"settled", b"fresh"))
    for path in (needed, unneeded):
        age(path, 3)
    partial = media_root(settings) / f".{unneeded.name}.123-456.partial"
    partial.write_bytes(b"half")
    age(partial, 3)
    foreign = media_root(settings) / "notes.txt"
    foreign.write_text("not ours")
    age(foreign, 3)
    removed = sweep_kept_media(settings, {needed.stem}, idle_s=3600)
    assert sorted(removed) == sorted([unneeded, partial])
    assert needed.exists() and fresh.exists() and foreign.exists()
    assert sweep_kept_media(settings, set(), idle_s=3600, now=time.time() + 7200) == sorted([fresh, needed])


def test_an_upload_url_long_expired_frees_its_media() -> None:
    from datetime import UTC, datetime, timedelta

    from publishing.posting import KEPT_MEDIA_MARGIN, UPLOAD_URL_LIFETIME, InitRecord

    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    record = InitRecord(at=at, publish_id="p", upload_url="u", chunk_size=CHUNK, size=1, sha256="0" * 64)
    assert not record.url_expired(at + UPLOAD_URL_LIFETIME)
    assert record.url_expired(at + UPLOAD_URL_LIFETIME + timedelta(seconds=1))
    assert not record.url_expired(at + UPLOAD_URL_LIFETIME + timedelta(minutes=30), KEPT_MEDIA_MARGIN)
    assert record.url_expired(at + UPLOAD_URL_LIFETIME + KEPT_MEDIA_MARGIN + timedelta(seconds=1), KEPT_MEDIA_MARGIN)
