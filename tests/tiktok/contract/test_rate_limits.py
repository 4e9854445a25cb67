"""The client's limiter (TikTok's per-minute figures) keeps a burst under the sandbox's limits by waiting."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sandbox import SandboxHandle
from tiktok import (
    TIKTOK_RATE_LIMITS,
    Endpoint,
    PostInfo,
    PrivacyLevel,
    SlidingWindowRateLimiter,
    SourceInfo,
    TikTokClient,
    plan_chunks,
)

from .conftest import FakeTime
from .helpers import MIB


def window_counts(sandbox: SandboxHandle) -> dict[str, int]:
    """Calls the sandbox counted in its current rate window, by endpoint."""
    state = httpx.get(f"{sandbox.base_url}/_sandbox/state", timeout=30).json()
    return {key.split(":", 1)[0]: count for key, count in state["rate_limit_calls"].items()}


def test_creator_info_burst_waits_instead_of_hitting_429(
    sandbox: SandboxHandle, connect: Callable[..., TikTokClient], fake_time: FakeTime
) -> None:
    limiter = SlidingWindowRateLimiter(TIKTOK_RATE_LIMITS, sleep=fake_time.sleep, clock=fake_time.clock)
    tiktok = connect(rate_limit=limiter)
    per_minute = TIKTOK_RATE_LIMITS[Endpoint.CREATOR_INFO]
    answers = [tiktok.creator_info() for _ in range(2 * per_minute + 5)]  # any 429 would raise
    assert all(answer.creator_username == "studio_main" for answer in answers)
    # Calls 21 and 41 each had to wait for the first call of their window to age out.
    assert fake_time.sleeps == [60.0, 60.0]
    assert window_counts(sandbox)["creator_info"] == 5


def test_init_burst_waits_instead_of_hitting_429(
    sandbox: SandboxHandle, connect: Callable[..., TikTokClient], fake_time: FakeTime
) -> None:
    limiter = SlidingWindowRateLimiter(TIKTOK_RATE_LIMITS, sleep=fake_time.sleep, clock=fake_time.clock)
    tiktok = connect(rate_limit=limiter)
    plan = plan_chunks(MIB, 16 * MIB)
    for _ in range(TIKTOK_RATE_LIMITS[Endpoint.VIDEO_INIT] + 2):
        tiktok.init_video(PostInfo(privacy_level=PrivacyLevel.SELF_ONLY), SourceInfo.file_upload(plan))
    assert fake_time.sleeps == [60.0]
    assert len(sandbox.posts()) == 8
