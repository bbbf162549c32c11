"""A bound on our own collectives that does not depend on the transport honouring its timeout.

Why: `runPolicy.collectiveTimeoutSeconds` is passed to the process group, and gloo usually raises
when a peer stays silent that long, which ends the rank with PeerLost. Not always: in the gang
test of a hung node (tests/gang, the peer SIGSTOPped right after a checkpoint) rank 0 stayed in
gloo's `all_reduce` well past the timeout in about half the runs (py-spy: blocked in
`distributed_c10d.all_reduce`), so the gang hung instead of restarting. A gang must never hang.

`CollectiveWatchdog.guard(what)` wraps a collective: a daemon thread checks once a second, and a
collective still running `grace_seconds` after the timeout ends the process through `on_expiry`
(the trainer writes the PeerLost termination message and exits with
`contract.EXIT_CODE_PEER_LOST`, as if the transport had raised). The trainer guards its own
all-reduces and barriers and, since DeepSpeed's step and checkpoint save hold collectives of
their own, each whole optimizer step and each checkpoint save: phases that on a healthy gang
take far less than the timeout (30 minutes by default).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CollectiveWatchdog:
    def __init__(
        self,
        timeout_seconds: float,
        on_expiry: Callable[[str, float], None],
        grace_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        enabled: bool = True,
    ):
        self.enabled = enabled  # a single rank has no peer to wait for: nothing to bound
        self.limit = timeout_seconds + grace_seconds
        self.on_expiry = on_expiry
        self.poll_seconds = poll_seconds
        self._running: tuple[str, float] | None = None  # (what, since), set by the training thread
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run a collective (or a phase made of collectives, such as a DeepSpeed step) under the
        watchdog. Guards nest: the outermost one is timed."""
        if not self.enabled:
            yield
            return
        self._start()
        outermost = self._running is None
        if outermost:
            self._running = (what, time.monotonic())
        try:
            yield
        finally:
            if outermost:
                self._running = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="collective-watchdog", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            running = self._running
            if running is not None and time.monotonic() - running[1] > self.limit:
                what, since = running
                self.on_expiry(what, time.monotonic() - since)
                return
