"""The collective watchdog ends a collective that outlives its bound, and only such a one."""

from __future__ import annotations

import threading
import time

from recipe_trainer.training.collective_watchdog import CollectiveWatchdog


def test_a_collective_past_timeout_and_grace_is_reported_once():
    expired: list[tuple[str, float]] = []
    done = threading.Event()

    def on_expiry(what: str, seconds: float) -> None:
        expired.append((what, seconds))
        done.set()

    watchdog = CollectiveWatchdog(0.2, on_expiry, grace_seconds=0.1, poll_seconds=0.05)
    with watchdog.guard("all_reduce of the step's loss"):
        assert done.wait(5.0)
    assert len(expired) == 1
    what, seconds = expired[0]
    assert what == "all_reduce of the step's loss" and seconds > 0.3


def test_collectives_that_return_in_time_are_left_alone():
    expired: list[str] = []
    watchdog = CollectiveWatchdog(
        1.0, lambda what, _s: expired.append(what), grace_seconds=1.0, poll_seconds=0.02
    )
    for _ in range(4):
        with watchdog.guard("barrier"):
            time.sleep(0.05)
        time.sleep(2.5)  # idle time between collectives never counts
    assert expired == []


def test_guards_nest_and_the_outermost_is_timed():
    expired: list[str] = []
    done = threading.Event()
    watchdog = CollectiveWatchdog(
        0.3, lambda what, _s: (expired.append(what), done.set()), grace_seconds=0.1, poll_seconds=0.02
    )
    with watchdog.guard("optimizer step"):
        for _ in range(3):
            with watchdog.guard("all_reduce"):  # each inner one is short
                time.sleep(0.05)
        assert done.wait(5.0)  # the step as a whole is not
    assert expired == ["optimizer step"]


def test_a_single_rank_is_never_bounded():
    """One rank has no peer: a slow step there is just slow, never PeerLost."""
    expired: list[str] = []
    watchdog = CollectiveWatchdog(
        0.05, lambda what, _s: expired.append(what), grace_seconds=0.0, poll_seconds=0.01, enabled=False
    )
    with watchdog.guard("optimizer step"):
        time.sleep(0.5)
    assert expired == [] and watchdog._thread is None
