"""Transcode benchmark: the pipeline against the command public guides recommend, in one run.

1. Two generated 1080p landscape 30 s clips with audio, grainy (testsrc2 + temporal noise, like a
   camera) and easy (plain testsrc2, which x264 compresses with little effort), each through:
   pipeline `make_tiktok_ready` (full transcode, blurred-background fit) vs the naive
   `ffmpeg -i in.mp4 -c:v libx264 -c:a aac -vf scale=1080:1920 out.mp4` (stretches the picture).
   Goal: pipeline <= 0.6x the naive wall time on both, with correct geometry and a bounded size.
2. A compliant 1080x1920 30 s clip: remux path vs the full path on the same clip.
   Goal: remux <= 0.05x the full transcode.

Usage: python bench/transcode.py [--seconds 30] [--keep DIR]. Prints the figures and the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcode import Policy, check_decodable, make_tiktok_ready, plan, probe, run_ffmpeg, verify  # noqa: E402
from transcode import video_bitrate_budget  # noqa: E402

GOAL_FULL_VS_NAIVE = 0.6
GOAL_REMUX_VS_FULL = 0.05


def generate(directory: Path, seconds: float) -> tuple[Path, Path, Path]:
    """A landscape camera-like clip (moving test pattern + grain), the same without grain (easy for
    x264), and a compliant portrait one."""
    landscape, easy = directory / "landscape_1080p.mp4", directory / "landscape_easy_1080p.mp4"
    portrait = directory / "compliant_1080x1920.mp4"
    common = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]
    audio = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=48000,aformat=channel_layouts=stereo"]
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    grain = ",noise=alls=6:allf=t"
    for target, size, extra in ((landscape, "1920x1080", grain), (easy, "1920x1080", ""), (portrait, "1080x1920", grain)):
        if not target.exists():
            source = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}{extra}"]
            subprocess.run([*common, *source, *audio, *encode, str(target)], check=True)
    return landscape, easy, portrait


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def naive(src: Path, out: Path) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264",
                    "-c:a", "aac", "-vf", "scale=1080:1920", str(out)], check=True)


def full_path(src: Path, out: Path) -> None:
    """The full transcode path on a source that would otherwise be remuxed (same steps as make_tiktok_ready)."""
    policy = Policy()
    info = probe(src)
    check_decodable(info)
    forced = plan(info, policy, out, video_bitrate=video_bitrate_budget(info.duration or 0, policy))
    run_ffmpeg(forced.argv, expected_duration=forced.expected_duration, output=out)
    verify(out, policy, forced.expected_duration)


def describe(path: Path, seconds: float) -> str:
    info = probe(path)
    video = info.video
    return (f"{video.width}x{video.height} SAR {video.sar}, {info.size / 1e6:.1f} MB, "
            f"{info.size * 8 / seconds / 1e6:.2f} Mbit/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--keep", type=Path, help="directory for the clips (kept between runs)")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-transcode-"))
    directory.mkdir(parents=True, exist_ok=True)
    landscape, easy, portrait = generate(directory, args.seconds)
    print(f"machine: {os.cpu_count()} CPUs; clips {args.seconds:g} s in {directory}")

    naive_s, _ = timed(lambda: naive(landscape, directory / "naive.mp4"))
    pipeline_s, result = timed(lambda: make_tiktok_ready(landscape, directory / "pipeline.mp4"))
    assert result.path.value == "transcode"
    easy_naive_s, _ = timed(lambda: naive(easy, directory / "naive_easy.mp4"))
    easy_s, easy_result = timed(lambda: make_tiktok_ready(easy, directory / "pipeline_easy.mp4"))
    assert easy_result.path.value == "transcode"
    full_s, _ = timed(lambda: full_path(portrait, directory / "full.mp4"))
    remux_s, remuxed = timed(lambda: make_tiktok_ready(portrait, directory / "remux.mp4"))
    assert remuxed.path.value == "remux"

    print(f"naive  (scale=1080:1920, preset medium): {naive_s:7.2f} s  {describe(directory / 'naive.mp4', args.seconds)}"
          "  16:9 squeezed into 9:16 pixels (SAR-only fix; stretched 3.16x where SAR is ignored)")
    print(f"pipeline full transcode (blur fit):       {pipeline_s:7.2f} s  "
          f"{describe(directory / 'pipeline.mp4', args.seconds)}  picture 16:9 kept, maxrate "
          f"{video_bitrate_budget(args.seconds, Policy()) / 1e6:.1f} Mbit/s")
    print(f"easy clip (no grain), naive:              {easy_naive_s:7.2f} s  "
          f"{describe(directory / 'naive_easy.mp4', args.seconds)}")
    print(f"easy clip (no grain), pipeline:           {easy_s:7.2f} s  "
          f"{describe(directory / 'pipeline_easy.mp4', args.seconds)}")
    print(f"compliant clip, full path:                {full_s:7.2f} s")
    print(f"compliant clip, remux path:               {remux_s:7.2f} s")
    full_ratio, easy_ratio, remux_ratio = pipeline_s / naive_s, easy_s / easy_naive_s, remux_s / full_s
    print(f"ratio full/naive = {full_ratio:.3f} (goal <= {GOAL_FULL_VS_NAIVE}) "
          f"{'MET' if full_ratio <= GOAL_FULL_VS_NAIVE else 'NOT MET'}")
    print(f"ratio full/naive, easy clip = {easy_ratio:.3f} (goal <= {GOAL_FULL_VS_NAIVE}) "
          f"{'MET' if easy_ratio <= GOAL_FULL_VS_NAIVE else 'NOT MET'}")
    print(f"ratio remux/full = {remux_ratio:.3f} (goal <= {GOAL_REMUX_VS_FULL}) "
          f"{'MET' if remux_ratio <= GOAL_REMUX_VS_FULL else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
