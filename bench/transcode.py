"""Transcode benchmark: the pipeline against the command public guides recommend, in one run.

1. Two generated 1080p landscape 30 s clips with audio, grainy (testsrc2 + temporal noise, like a
   camera) and easy (plain testsrc2, which x264 compresses with little effort), each through:
   pipeline `make_tiktok_ready` (full transcode, blurred-background fit) vs the naive
   `ffmpeg -i in.mp4 -c:v libx264 -c:a aac -vf scale=1080:1920 out.mp4` (stretches the picture).
   Goal: pipeline <= 0.6x the naive wall time on both, with correct geometry and a bounded size.
2. Two compliant 1080x1920 30 s clips, grainy and easy: remux path vs the full path on the same
   clip. Goal: remux <= 0.05x the full transcode on both (the easy one is the hard case: its full
   transcode is the faster one, the remux costs the same).

3. Quality of both landscape outputs, and of the previous x264 settings (plain veryfast, the
   pipeline before `transcode._plan.X264_PARAMS`, run through the same steps) on the same clips:
   SSIM (whole frame and the 16:9 picture band only) and PSNR against a reference made once per clip,
   the pipeline's own blurred-background fit encoded losslessly (x264 -qp 0), with ffmpeg's ssim and
   psnr filters.

Usage: python bench/transcode.py [--seconds 30] [--keep DIR]. Prints the figures and the ratios.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
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
#: The pipeline runs ffmpeg niced by default; here it runs at the naive command's priority, so that
#: other load on the machine weighs on both alike.
SAME_PRIORITY = 0


def generate(directory: Path, seconds: float) -> tuple[Path, Path, Path, Path]:
    """A landscape camera-like clip (moving test pattern + grain), the same without grain (easy for
    x264), and compliant portrait ones, grainy and easy."""
    landscape, easy = directory / "landscape_1080p.mp4", directory / "landscape_easy_1080p.mp4"
    portrait, portrait_easy = directory / "compliant_1080x1920.mp4", directory / "compliant_easy_1080x1920.mp4"
    common = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]
    audio = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=48000,aformat=channel_layouts=stereo"]
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    grain = ",noise=alls=6:allf=t"
    for target, size, extra in ((landscape, "1920x1080", grain), (easy, "1920x1080", ""), (portrait, "1080x1920", grain),
                                (portrait_easy, "1080x1920", "")):
        if not target.exists():
            source = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}{extra}"]
            subprocess.run([*common, *source, *audio, *encode, str(target)], check=True)
    return landscape, easy, portrait, portrait_easy


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def naive(src: Path, out: Path) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264",
                    "-c:a", "aac", "-vf", "scale=1080:1920", str(out)], check=True)


def full_path(src: Path, out: Path, *, previous: bool = False) -> None:
    """The full transcode path with make_tiktok_ready's steps (probe, decode check, plan, run, verify),
    forced even on a source that would otherwise be remuxed; `previous` drops `-x264-params` (plain
    veryfast, the settings before them)."""
    policy = Policy()
    info = probe(src)
    check_decodable(info, niceness=SAME_PRIORITY)
    forced = plan(info, policy, out, video_bitrate=video_bitrate_budget(info.duration or 0, policy))
    argv = without_x264_params(forced.argv) if previous else forced.argv
    run_ffmpeg(argv, expected_duration=forced.expected_duration, output=out, niceness=SAME_PRIORITY)
    verify(out, policy, forced.expected_duration)


def without_x264_params(argv: list[str]) -> list[str]:
    at = argv.index("-x264-params")
    return argv[:at] + argv[at + 2:]


def reference(src: Path, out: Path) -> None:
    """The pipeline's own fit (its filter graph, unchanged) encoded losslessly: what a perfect encoder gives."""
    argv = plan(probe(src), Policy(), out).argv
    graph = argv[argv.index("-filter_complex") + 1]
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(src), "-filter_complex", graph,
                    *(arg for label in maps for arg in ("-map", label)), "-c:v", "libx264", "-preset", "ultrafast",
                    "-qp", "0", "-c:a", "flac", "-f", "matroska", str(out)], check=True)


def quality(output: Path, ref: Path, band_height: int) -> dict[str, float]:
    """SSIM (whole frame and the picture band) and PSNR of `output` against `ref`, by ffmpeg's filters."""
    band = f"crop=1080:{band_height}:0:(ih-{band_height})/2"
    graph = (f"[0:v]split=3[o1][o2][o3];[1:v]split=3[r1][r2][r3];[o1][r1]ssim@frame;[o2][r2]psnr;"
             f"[o3]{band}[ob];[r3]{band}[rb];[ob][rb]ssim@band")
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(output), "-i", str(ref), "-lavfi", graph,
                           "-an", "-f", "null", "-"], capture_output=True, text=True, check=True)
    ssim = dict(re.findall(r"\[ssim@(\w+) @ \S+\] SSIM .* All:([\d.]+)", done.stderr))
    psnr = re.search(r"Parsed_psnr_\d+ @ \S+\] PSNR .* average:([\d.]+|inf)", done.stderr)
    if set(ssim) != {"frame", "band"} or psnr is None:
        raise SystemExit(f"no SSIM/PSNR in ffmpeg's output:\n{done.stderr[-2000:]}")
    return {"ssim": float(ssim["frame"]), "band": float(ssim["band"]), "psnr": float(psnr.group(1))}


def picture_band(src: Path) -> int:
    """Height of the central band of the output that the (landscape) picture fills, a few lines inside it."""
    video = probe(src).video
    return int(1080 * video.display_height / video.display_width) // 8 * 8 - 8


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


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
    landscape, easy, portrait, portrait_easy = generate(directory, args.seconds)
    print(f"machine: {os.cpu_count()} CPUs; clips {args.seconds:g} s in {directory}")

    argv = plan(probe(landscape), Policy(), directory / "unused.mp4").argv
    print(f"transcode benchmark {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{load_average()}; x264: {argv[argv.index('-preset') + 1]} + {argv[argv.index('-x264-params') + 1]} "
          "(previous settings: the same without -x264-params)")

    clips = {"grainy": landscape, "easy": easy}
    timings: dict[str, dict[str, float]] = {}
    for name, src in clips.items():
        out = {kind: directory / f"{name}_{kind}.mp4" for kind in ("naive", "pipeline", "previous")}
        naive_s, _ = timed(lambda: naive(src, out["naive"]))  # noqa: B023
        pipeline_s, result = timed(lambda: make_tiktok_ready(src, out["pipeline"], niceness=SAME_PRIORITY))  # noqa: B023
        assert result.path.value == "transcode"
        previous_s, _ = timed(lambda: full_path(src, out["previous"], previous=True))  # noqa: B023
        timings[name] = {"naive": naive_s, "pipeline": pipeline_s, "previous": previous_s}
        print(f"{name} clip, naive (scale=1080:1920, preset medium): {naive_s:7.2f} s  "
              f"{describe(out['naive'], args.seconds)}  16:9 squeezed into 9:16 pixels")
        print(f"{name} clip, pipeline full transcode (blur fit):  {pipeline_s:7.2f} s  "
              f"{describe(out['pipeline'], args.seconds)}  picture 16:9 kept, maxrate "
              f"{video_bitrate_budget(args.seconds, Policy()) / 1e6:.1f} Mbit/s")
        print(f"{name} clip, previous x264 settings, same steps:  {previous_s:7.2f} s  "
              f"{describe(out['previous'], args.seconds)}")
    compliant = {"grainy": portrait, "easy": portrait_easy}
    remux_timings: dict[str, tuple[float, float]] = {}
    for name, src in compliant.items():
        full_s, _ = timed(lambda: full_path(src, directory / f"{name}_full.mp4"))  # noqa: B023
        remux_s, remuxed = timed(lambda: make_tiktok_ready(src, directory / f"{name}_remux.mp4",  # noqa: B023
                                                           niceness=SAME_PRIORITY))
        assert remuxed.path.value == "remux"
        remux_timings[name] = (full_s, remux_s)
        print(f"compliant {name} clip, full path:         {full_s:7.2f} s")
        print(f"compliant {name} clip, remux path:        {remux_s:7.2f} s")
    print(f"load average after the timings: {load_average()}")

    print("quality against the lossless encode of the same fit (x264 -qp 0): SSIM whole frame / picture band, PSNR")
    for name, src in clips.items():
        ref = directory / f"{name}_reference.mkv"
        reference(src, ref)
        band = picture_band(src)
        for kind in ("pipeline", "previous"):
            q = quality(directory / f"{name}_{kind}.mp4", ref, band)
            print(f"  {name:6} {kind:8}: SSIM {q['ssim']:.5f} / band 1080x{band} {q['band']:.5f}, "
                  f"PSNR {q['psnr']:.2f} dB, {(directory / f'{name}_{kind}.mp4').stat().st_size / 1e6:.2f} MB")
        ref.unlink()

    for name in clips:
        ratio = timings[name]["pipeline"] / timings[name]["naive"]
        before = timings[name]["previous"] / timings[name]["naive"]
        print(f"ratio full/naive, {name} clip = {ratio:.3f} (goal <= {GOAL_FULL_VS_NAIVE}) "
              f"{'MET' if ratio <= GOAL_FULL_VS_NAIVE else 'NOT MET'}  [previous settings: {before:.3f}]")
    for name, (full_s, remux_s) in remux_timings.items():
        remux_ratio = remux_s / full_s
        print(f"ratio remux/full, compliant {name} clip = {remux_ratio:.3f} (goal <= {GOAL_REMUX_VS_FULL}) "
              f"{'MET' if remux_ratio <= GOAL_REMUX_VS_FULL else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
