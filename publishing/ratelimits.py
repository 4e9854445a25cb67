"""TikTok's per-token rate limits, enforced where every worker sees them: sliding windows in the ledger.

TikTok counts calls per user token per endpoint over any 60 s. Each call first takes a place in its
(account, endpoint) window in the ledger (`Ledger.reserve_rate_slot`: one locked row, a millisecond
or two), and waits only when the window is full, exactly until its oldest call leaves. So work that
is waiting gets the whole budget (6 inits a minute, not half of it), and no worker, however many
there are, sends a 7th.

The window is TikTok's 60 s plus `RATE_MARGIN`: a call is timed when it takes its place, TikTok times
it when it arrives, and workers on several machines read their own clocks. The margin covers both,
for 3 % of the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from ledger import Ledger
from tiktok import TIKTOK_RATE_LIMITS

#: TikTok's window of its per-minute limits.
TIKTOK_WINDOW = timedelta(seconds=60)
#: Send-to-arrival delay and clock skew between workers that a window must absorb (keep clocks on NTP).
RATE_MARGIN = timedelta(seconds=2)


class LedgerRateLimiter:
    """RateLimitHook (tiktok): blocks until the call fits TikTok's limit for (account, endpoint)."""

    def __init__(self, ledger: Ledger, limits: Mapping[str, int] = TIKTOK_RATE_LIMITS, *,
                 window: timedelta = TIKTOK_WINDOW + RATE_MARGIN, sleep: Callable[[float], None] = time.sleep) -> None:
        self._ledger = ledger
        self._limits = dict(limits)
        self._window = window
        self._sleep = sleep

    def __call__(self, account_key: str, endpoint: str) -> None:
        limit = self._limits.get(endpoint)
        if limit is None:
            return
        while (wait := self._ledger.reserve_rate_slot(account_key, endpoint, limit, self._window)) > 0:
            self._sleep(wait)
