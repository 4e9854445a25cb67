"""The default rate-limit hook: sliding window per (account, endpoint), blocking, thread-safe."""

from __future__ import annotations

import threading

import pytest

from tiktok import TIKTOK_RATE_LIMITS, Endpoint, SlidingWindowRateLimiter
from tiktok._ratelimit import default_rate_limiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_tiktok_figures() -> None:
    assert TIKTOK_RATE_LIMITS == {
        "user_info": 600,
        "creator_info": 20,
        "video_init": 6,
        "inbox_video_init": 6,
        "content_init": 6,
        "status_fetch": 30,
        "cancel": 6,
    }
    assert set(TIKTOK_RATE_LIMITS) == set(Endpoint)


@pytest.mark.parametrize(("endpoint", "limit"), sorted(TIKTOK_RATE_LIMITS.items()))
def test_blocks_the_request_over_the_limit_until_a_slot_frees(endpoint: str, limit: int) -> None:
    time = FakeTime()
    limiter = SlidingWindowRateLimiter(sleep=time.sleep, clock=time.clock)
    step = 50.0 / limit  # the whole budget is spent within 50 s
    for i in range(limit):
        time.now = i * step
        limiter("acct", endpoint)
    assert time.sleeps == []
    last_sent = time.now
    limiter("acct", endpoint)
    # The first request (t = 0) leaves the window at t = 60: that is when the next one may go.
    assert time.sleeps == [pytest.approx(60.0 - last_sent)]
    assert time.now == pytest.approx(60.0)


def test_window_slides() -> None:
    time = FakeTime()
    limiter = SlidingWindowRateLimiter({"video_init": 2}, sleep=time.sleep, clock=time.clock)
    limiter("a", "video_init")  # t=0
    time.now = 30
    limiter("a", "video_init")  # t=30
    time.now = 45
    limiter("a", "video_init")  # waits until t=60 (the t=0 request leaves the window)
    assert time.sleeps == [15.0] and time.now == 60
    limiter("a", "video_init")  # waits until t=90
    assert time.sleeps == [15.0, 30.0]


def test_accounts_and_endpoints_have_separate_budgets() -> None:
    time = FakeTime()
    limiter = SlidingWindowRateLimiter({"video_init": 1, "status_fetch": 1}, sleep=time.sleep, clock=time.clock)
    limiter("a", "video_init")
    limiter("b", "video_init")
    limiter("a", "status_fetch")
    limiter("a", "not_limited")
    limiter("a", "not_limited")
    assert time.sleeps == []


class Blocked(Exception):
    pass


def refuse_to_wait(seconds: float) -> None:
    raise Blocked(seconds)


def test_concurrent_callers_get_exactly_the_limit() -> None:
    # 8 threads race for 1000 slots of a one-hour window; every extra caller must be told to wait.
    limiter = SlidingWindowRateLimiter({"user_info": 1000}, window=3600, sleep=refuse_to_wait)
    admitted: list[int] = []
    blocked: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(130):
            try:
                limiter("acct", "user_info")
            except Blocked:
                with lock:
                    blocked.append(1)
            else:
                with lock:
                    admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1000 and len(blocked) == 8 * 130 - 1000


def test_default_limiter_is_shared_by_the_process() -> None:
    assert default_rate_limiter() is default_rate_limiter()
