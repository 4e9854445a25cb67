"""What TikTok-ready means, as pure functions shared by plan (is the source already compliant?)
and verify (is the output compliant?), plus the bit budget both the plan and validate use."""

from __future__ import annotations

from fractions import Fraction

from transcode._models import AudioStreamInfo, MediaInfo, Policy, VideoStreamInfo

#: AAC-LC stereo bit rate of every encoded audio track.
AUDIO_BITRATE = 128_000
#: Video bit rate never exceeded even when the size budget allows more: TikTok re-encodes anyway,
#: and at 1080x1920 H.264 gains nothing visible above this.
VIDEO_BITRATE_CEILING = 10_000_000
#: Below this a 1080x1920 picture is mush: refuse rather than publish it.
MIN_VIDEO_BITRATE = 150_000
#: Share of the byte limit the encoder aims at; the rest absorbs VBV overshoot and MP4 overhead.
SIZE_HEADROOM = 0.92
#: Encoder VBV buffer in seconds of maxrate. x264 starts it 90 % full, so an encode can spend that
#: much above maxrate x duration; the budget reserves it (it matters for short clips).
BUFFER_SECONDS = 2.0
VBV_INITIAL_FILL = 0.9
#: Output duration may differ from the expected one by this much (AAC frame padding, last frame).
DURATION_TOLERANCE = 0.25

_COMPLIANT_PROFILES = {"High", "Main"}
_COMPLIANT_SAMPLE_RATES = {44100, 48000}
_SDR_COLOR_TAGS = {None, "bt709"}


def video_problems(video: VideoStreamInfo, policy: Policy) -> list[str]:
    """Why this video stream cannot be published as is (empty: stream-copy it)."""
    problems = []
    if video.codec != "h264":
        problems.append(f"video codec {video.codec} (needs h264)")
    elif video.profile not in _COMPLIANT_PROFILES:
        problems.append(f"H.264 profile {video.profile} (needs High or Main)")
    elif video.level is not None and video.level > 42:
        problems.append(f"H.264 level {video.level / 10:.1f} (needs 4.2 or lower)")
    if video.pix_fmt != "yuv420p":
        problems.append(f"pixel format {video.pix_fmt} (needs yuv420p 8-bit)")
    if video.hdr is not None:
        problems.append(f"HDR {video.hdr.value}{' (assumed, untagged)' if video.hdr_assumed else ''} (needs SDR BT.709)")
    else:
        tags = {video.color_primaries, video.color_transfer, video.color_space}
        if not tags <= _SDR_COLOR_TAGS:
            problems.append(f"colour tags {sorted(t for t in tags if t)} (needs BT.709)")
        if video.color_range == "pc":
            problems.append("full-range colour (needs limited range)")
    if video.rotation:
        problems.append(f"rotated {video.rotation} degrees by metadata")
    if (video.width, video.height) != (policy.width, policy.height):
        problems.append(f"picture {video.width}x{video.height} (needs {policy.width}x{policy.height})")
    if video.sar_value != 1:
        problems.append(f"non-square pixels (SAR {video.sar})")
    if video.interlaced:
        problems.append(f"interlaced ({video.field_order})")
    fps = video.fps
    if video.vfr:
        problems.append(f"variable frame rate (real {video.r_frame_rate}, average {video.avg_frame_rate})")
    elif fps is None or not policy.min_fps <= fps <= policy.max_fps:
        shown = f"{float(fps):.3f}" if fps else "unknown"
        problems.append(f"frame rate {shown} (needs {policy.min_fps:g}-{policy.max_fps:g} fps)")
    return problems


def audio_problems(audio: AudioStreamInfo | None) -> list[str]:
    """Why this audio stream cannot be published as is (empty: stream-copy it)."""
    if audio is None:
        return ["no audio track"]
    problems = []
    if audio.codec != "aac" or audio.profile not in (None, "LC"):
        problems.append(f"audio codec {audio.codec} {audio.profile or ''}".rstrip() + " (needs AAC-LC)")
    if audio.channels > 2:
        problems.append(f"{audio.channels} audio channels (needs stereo or mono)")
    if audio.sample_rate not in _COMPLIANT_SAMPLE_RATES:
        problems.append(f"audio sample rate {audio.sample_rate} Hz (needs 44.1 or 48 kHz)")
    return problems


def output_duration(info: MediaInfo, policy: Policy) -> float:
    """How long the published video will be: the source, trimmed to the maximum."""
    return min(info.duration or 0.0, policy.max_duration)


def output_fps(video: VideoStreamInfo, policy: Policy) -> Fraction:
    """Constant output rate: keep a steady rate within range, clamp fast ones, 30 for VFR or slow ones."""
    fps = video.fps
    if video.vfr or fps is None or fps < policy.min_fps:
        return Fraction(30)
    if fps > policy.max_fps:
        return Fraction(policy.max_fps).limit_denominator(1001)
    return fps


def video_bitrate_budget(duration: float, policy: Policy) -> int:
    """Video maxrate (bit/s) so that video + audio + overhead + VBV burst stays under the size limit."""
    video_bits = policy.max_bytes * SIZE_HEADROOM * 8 - AUDIO_BITRATE * duration
    budget = video_bits / (max(duration, 0.0) + BUFFER_SECONDS * VBV_INITIAL_FILL)
    return int(min(budget, VIDEO_BITRATE_CEILING))
