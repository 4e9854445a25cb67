"""Flow run names from the request (pure)."""

from __future__ import annotations

from publishing import accounts_label, deferred_run_name, publish_run_name, release_run_name, s3_object_run_name, source_name


def test_the_file_name_of_every_kind_of_source() -> None:
    assert source_name("s3://media/samples/sample.mp4") == "sample.mp4"
    assert source_name("s3://media/a%20dir/take%20%231.mp4") == "take #1.mp4"
    assert source_name("https://cdn.example.com/v/clip.mov?sig=abc") == "clip.mov"
    assert source_name("/srv/videos/final cut.mp4") == "final cut.mp4"
    assert source_name("file:///srv/videos/x.webm") == "x.webm"
    assert source_name("https://cdn.example.com/") == "https://cdn.example.com/"


def test_long_names_keep_their_start_and_extension() -> None:
    name = source_name("s3://b/" + "episode-" * 10 + "final.mp4")
    assert len(name) == 40 and name.startswith("episode-episode") and name.endswith("final.mp4") and "…" in name


def test_run_names_name_the_video_and_the_accounts() -> None:
    assert publish_run_name("s3://media/samples/sample.mp4", ["main", "private"]) == "sample.mp4 → main, private"
    assert publish_run_name("s3://m/clip.mp4", ["main"], "hold") == "clip.mp4 → main (hold)"
    assert publish_run_name("s3://m/clip.mp4", ["main"], "direct") == "clip.mp4 → main"
    assert accounts_label(["a", "b", "c", "d", "e"]) == "a, b, c +2 more"
    assert accounts_label(["x" * 60]).endswith("x") and len(accounts_label(["x" * 60])) == 24
    assert accounts_label([]) == "no account"


def test_names_of_the_other_publish_flows() -> None:
    assert release_run_name(12, "inbox") == "release post 12 → inbox"
    assert deferred_run_name(12) == "deferred post 12"
    assert s3_object_run_name("media", "incoming/clip.mp4") == "clip.mp4 from s3://media/incoming/"
    assert s3_object_run_name("media", "clip.mp4") == "clip.mp4 from s3://media/"
