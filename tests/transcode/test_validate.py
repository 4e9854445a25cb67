"""Bad input: each kind gets its own typed, final error naming the problem, with ffprobe/ffmpeg detail."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcode import (
    AbsurdMediaError,
    CorruptMediaError,
    EmptyFileError,
    InvalidMediaError,
    MediaNotFoundError,
    NoVideoStreamError,
    NotMediaError,
    OverLength,
    Policy,
    SizeBudgetError,
    TooLongError,
    TooShortError,
    check_decodable,
    make_tiktok_ready,
    probe,
    validate,
)


@pytest.mark.parametrize(("name", "error", "words"), [
    ("empty", EmptyFileError, "empty"),
    ("text", NotMediaError, "not a video or audio file"),
])
def test_unprobeable_input(media, name: str, error: type[InvalidMediaError], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        probe(media.path(name))
    assert caught.value.final and caught.value.path == media.path(name)
    if name == "text":
        assert "Invalid data" in caught.value.detail["stderr"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="no such file"):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize(("name", "words"), [
    ("cover_art_mp3", "audio with cover art"),
    ("image", "a still image"),
])
def test_no_video_stream(media, name: str, words: str) -> None:
    with pytest.raises(NoVideoStreamError, match=words) as caught:
        validate(probe(media.path(name)), Policy())
    assert caught.value.detail["path"] == str(media.path(name))


def test_truncated_faststart_mp4_is_refused_by_validate(media) -> None:
    with pytest.raises(CorruptMediaError, match="truncated"):
        validate(probe(media.path("truncated")), Policy())


def test_truncated_with_intact_box_layout_is_caught_by_decode_check(media) -> None:
    info = probe(media.path("truncated_patched"))
    validate(info, Policy())  # the box layout looks whole
    with pytest.raises(CorruptMediaError, match="damaged or truncated") as caught:
        check_decodable(info)
    assert caught.value.detail["returncode"] != 0 and caught.value.detail["stderr"]


def test_good_file_passes_decode_check(media) -> None:
    check_decodable(probe(media.path("landscape")))


def test_too_short(media) -> None:
    with pytest.raises(TooShortError, match="shorter than the minimum 3 s"):
        validate(probe(media.path("short")), Policy())


def test_too_long_rejected_or_allowed_for_trim(media) -> None:
    info = probe(media.path("long"))
    with pytest.raises(TooLongError, match="longer than the maximum 4 s"):
        validate(info, Policy(max_duration=4, on_too_long=OverLength.reject))
    validate(info, Policy(max_duration=4))


def test_size_budget_too_small(media) -> None:
    with pytest.raises(SizeBudgetError, match="too small"):
        validate(probe(media.path("landscape")), Policy(max_bytes=50_000))


def test_absurd_dimensions_and_duration(media) -> None:
    info = probe(media.path("landscape"))
    with pytest.raises(AbsurdMediaError, match="picture size"):
        validate(info.model_copy(update={"video": info.video.model_copy(update={"width": 100_000})}), Policy())
    with pytest.raises(AbsurdMediaError, match="duration"):
        validate(info.model_copy(update={"duration": 9e9}), Policy())


@pytest.mark.parametrize(("name", "error"), [
    ("empty", EmptyFileError), ("text", NotMediaError), ("truncated", CorruptMediaError),
    ("truncated_patched", CorruptMediaError), ("cover_art_mp3", NoVideoStreamError), ("image", NoVideoStreamError),
])
def test_make_tiktok_ready_leaves_nothing_behind(media, tmp_path: Path, name: str,
                                                 error: type[InvalidMediaError]) -> None:
    with pytest.raises(error):
        make_tiktok_ready(media.path(name), tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_policy_rejects_inconsistent_limits() -> None:
    with pytest.raises(ValueError):
        Policy(max_duration=2, min_duration=3)
    with pytest.raises(ValueError):
        Policy(max_bytes=5_000_000_000)
    assert Policy.for_creator(180).max_duration == 180
    assert Policy.for_creator(None).max_duration == 600
