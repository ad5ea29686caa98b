"""Ctrl-C, SIGTERM and SIGHUP as requests to stop at the next safe point, not as exceptions anywhere.

A KeyboardInterrupt raised between an optimiser's update of one parameter and the next, or
while an output file is being finalised, leaves state that no checkpoint or output can
describe. Long-running jobs therefore turn the signals into a flag, finish the unit of work
in flight (a training step, a video frame) and then stop cleanly; a second signal while
stopping is noted and changes nothing. SIGKILL remains the way to stop at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

# SIGHUP: the terminal closed (an ssh session dropped). A program started under nohup has it
# ignored and must go on: a signal ignored when the job starts stays ignored.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def taken_stop_signals() -> list[int]:
    """The stop signals this process does not ignore (``nohup`` ignores SIGHUP)."""
    return [signum for signum in STOP_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]


class StopRequests:
    """Context manager: while active, SIGINT, SIGTERM and SIGHUP (unless ignored) set
    :attr:`signal` instead of raising.

    Installs the handlers only on the main thread (the only one Python delivers signals to);
    elsewhere it does nothing and :attr:`signal` stays None. The previous handlers come back
    on exit.
    """

    def __init__(self) -> None:
        self.signal: int | None = None  # the first stop signal received
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in taken_stop_signals():
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
