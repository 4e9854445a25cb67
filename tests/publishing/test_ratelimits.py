"""LedgerRateLimiter: TikTok's per-token limits over the ledger's sliding windows, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import Ledger
from publishing.ratelimits import RATE_MARGIN, TIKTOK_WINDOW, LedgerRateLimiter
from tiktok import TIKTOK_RATE_LIMITS, Endpoint


class FakeTime:
    """One clock for the ledger and the limiter's sleep: sleeping moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += timedelta(seconds=seconds)


def test_waiting_work_gets_the_whole_budget_and_never_one_more(tmp_path: Path) -> None:
    time = FakeTime()
    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", clock=time.clock) as ledger:
        limiter = LedgerRateLimiter(ledger, sleep=time.sleep)
        sent = []
        for _ in range(13):  # 13 inits for one account, one right after the other
            limiter("open-1", Endpoint.VIDEO_INIT)
            sent.append(time.now)
        per_minute = TIKTOK_RATE_LIMITS[Endpoint.VIDEO_INIT]
        span = TIKTOK_WINDOW + RATE_MARGIN
        # Six at once, then each waits exactly until the oldest of its window leaves it.
        assert sent[:per_minute] == [sent[0]] * per_minute
        assert sent[6] == sent[0] + span and sent[12] == sent[0] + 2 * span
        assert time.sleeps == [span.total_seconds()] * 2
        # No 60 s window (TikTok's) holds more than 6 of them.
        assert max(sum(1 for t in sent if start <= t < start + TIKTOK_WINDOW) for start in sent) == per_minute
        # Other endpoints, other accounts and unlimited endpoints do not wait for it.
        limiter("open-2", Endpoint.VIDEO_INIT)
        limiter("open-1", Endpoint.STATUS_FETCH)
        limiter("open-1", "not-limited")
        assert len(time.sleeps) == 2
