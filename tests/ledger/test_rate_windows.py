"""Rate windows in the ledger: TikTok's per-token limits as sliding windows every process shares."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ledger import Ledger, LedgerInputInvalid
from tests.ledger.helpers import SteppingClock

MINUTE = timedelta(minutes=1)


def test_a_window_admits_its_limit_then_says_how_long_to_wait(ledger: Ledger, clock: SteppingClock) -> None:
    assert [ledger.reserve_rate_slot("open-a", "video_init", 3, MINUTE) for _ in range(3)] == [0.0] * 3
    clock.advance(timedelta(seconds=20))
    assert ledger.reserve_rate_slot("open-a", "video_init", 3, MINUTE) == pytest.approx(40.0)
    # Other endpoints and other accounts have windows of their own.
    assert ledger.reserve_rate_slot("open-a", "status_fetch", 3, MINUTE) == 0.0
    assert ledger.reserve_rate_slot("open-b", "video_init", 3, MINUTE) == 0.0
    clock.advance(timedelta(seconds=40))  # the first three leave the window together
    assert [ledger.reserve_rate_slot("open-a", "video_init", 3, MINUTE) for _ in range(4)][:3] == [0.0] * 3
    with pytest.raises(LedgerInputInvalid):
        ledger.reserve_rate_slot("open-a", "video_init", 0, MINUTE)


def test_concurrent_callers_never_exceed_the_limit(database_url: str, encryption_key: str) -> None:
    # Separate Ledgers (engines, pools) as separate workers would have, on one database.
    ledgers = [Ledger(database_url, encryption_key) for _ in range(4)]
    barrier = threading.Barrier(len(ledgers) * 4)
    answers: list[float] = []
    lock = threading.Lock()

    def call(ledger: Ledger) -> None:
        barrier.wait()
        wait = ledger.reserve_rate_slot("open-busy", "video_init", 6, MINUTE)
        with lock:
            answers.append(wait)

    threads = [threading.Thread(target=call, args=(ledger,)) for ledger in ledgers for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ledger in ledgers:
        ledger.close()
    assert len(answers) == 16
    assert answers.count(0.0) == 6, answers  # exactly the limit went through; the others were told to wait
    assert all(0 < wait <= 60 for wait in answers if wait)
