"""Progress artifacts: each create or update is a request to Prefect's API and an event for its
services, so a step over within a second leaves one artifact at 100 %, and a long one is updated at
most once per PROGRESS_EVERY_S."""

from __future__ import annotations

from typing import Any

import pytest

import tasks.publishing as publishing
from tasks.publishing import PROGRESS_EVERY_S, ArtifactProgress


class FakeApi:
    """Prefect's artifact calls, recorded, and the clock ArtifactProgress reads."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.now = 1000.0

    def create(self, progress: float, description: str) -> str:
        self.calls.append(("create", progress, description))
        return "artifact-1"

    def update(self, artifact_id: str, progress: float, description: str) -> None:
        self.calls.append(("update", artifact_id, progress, description))

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(publishing, "create_progress_artifact", fake.create)
    monkeypatch.setattr(publishing, "update_progress_artifact", fake.update)
    return fake


def test_a_step_over_within_a_second_makes_one_artifact_at_100(api: FakeApi) -> None:
    progress = ArtifactProgress(clock=lambda: api.now)
    progress.start("Uploading 3.7 MB to Main in 1 chunk(s)")
    api.advance(0.2)
    progress.update(100.0, "Uploading 3.7 MB to Main in 1 chunk(s): 3.7 MB sent")
    api.advance(0.1)
    progress.update(100.0, "Uploaded 3.7 MB to Main in 1 chunk(s) (v_pub_1)")
    assert api.calls == [
        ("create", 100.0, "Uploading 3.7 MB to Main in 1 chunk(s): 3.7 MB sent"),
        ("update", "artifact-1", 100.0, "Uploaded 3.7 MB to Main in 1 chunk(s) (v_pub_1)"),
    ]


def test_a_long_step_shows_progress_at_most_once_per_interval(api: FakeApi) -> None:
    progress = ArtifactProgress(clock=lambda: api.now)
    progress.start("Transcoding clip.mov")
    for percent in (5.0, 10.0):  # within the first interval: nothing sent
        api.advance(PROGRESS_EVERY_S / 4)
        progress.update(percent)
    assert api.calls == []
    api.advance(PROGRESS_EVERY_S / 2)
    progress.update(20.0)  # a full interval after start: created, with the start's description
    api.advance(PROGRESS_EVERY_S / 2)
    progress.update(30.0)  # too soon after the last one
    api.advance(PROGRESS_EVERY_S)
    progress.update(50.0)
    progress.update(100.0, "clip.mov: transcode in 3.1 s")  # the final update is never held back
    assert api.calls == [
        ("create", 20.0, "Transcoding clip.mov"),
        ("update", "artifact-1", 50.0, "Transcoding clip.mov"),
        ("update", "artifact-1", 100.0, "clip.mov: transcode in 3.1 s"),
    ]
