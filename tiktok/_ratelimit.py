"""Client-side rate limiting: a hook called before every API request.

TikTok limits each endpoint per user access token per minute and answers 429 beyond that. The hook
lets deployments share the budget across processes (e.g. through the ledger); the default keeps it
within one process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from enum import StrEnum

#: Called as hook(account_key, endpoint) before each request; may block, or raise to refuse.
RateLimitHook = Callable[[str, str], None]


class Endpoint(StrEnum):
    """Endpoint names passed to the rate-limit hook."""

    USER_INFO = "user_info"
    CREATOR_INFO = "creator_info"
    VIDEO_INIT = "video_init"
    INBOX_VIDEO_INIT = "inbox_video_init"
    CONTENT_INIT = "content_init"
    STATUS_FETCH = "status_fetch"
    CANCEL = "cancel"


#: Requests per minute per user token (TikTok's rate-limit page). Cancel is undocumented: it gets
#: the 6/min of the init endpoints whose posts it cancels, the tightest write budget TikTok uses.
TIKTOK_RATE_LIMITS: Mapping[str, int] = {
    Endpoint.USER_INFO: 600,
    Endpoint.CREATOR_INFO: 20,
    Endpoint.VIDEO_INIT: 6,
    Endpoint.INBOX_VIDEO_INIT: 6,
    Endpoint.CONTENT_INIT: 6,
    Endpoint.STATUS_FETCH: 30,
    Endpoint.CANCEL: 6,
}


class SlidingWindowRateLimiter:
    """Blocks until a request fits in the last `window` seconds for (account_key, endpoint).

    Thread-safe. Endpoints missing from `limits` are not limited.
    """

    def __init__(
        self,
        limits: Mapping[str, int] = TIKTOK_RATE_LIMITS,
        *,
        window: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._window = window
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, str], deque[float]] = {}

    def __call__(self, account_key: str, endpoint: str) -> None:
        limit = self._limits.get(endpoint)
        if limit is None:
            return
        while True:
            wait = self._reserve(account_key, endpoint, limit)
            if wait <= 0:
                return
            # Sleep outside the lock so other accounts and endpoints are not held up.
            self._sleep(wait)

    def _reserve(self, account_key: str, endpoint: str, limit: int) -> float:
        """Record a request and return 0, or return how long until the oldest one leaves the window."""
        with self._lock:
            now = self._clock()
            sent = self._sent.setdefault((account_key, endpoint), deque())
            while sent and sent[0] <= now - self._window:
                sent.popleft()
            if len(sent) < limit:
                sent.append(now)
                return 0.0
            return sent[0] + self._window - now


_default_limiter: SlidingWindowRateLimiter | None = None
_default_lock = threading.Lock()


def default_rate_limiter() -> SlidingWindowRateLimiter:
    """The process-wide limiter every `TikTokClient` shares unless given another hook."""
    global _default_limiter
    with _default_lock:
        if _default_limiter is None:
            _default_limiter = SlidingWindowRateLimiter()
        return _default_limiter
