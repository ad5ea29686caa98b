"""Stop signals become a flag while a job is at work, and the old handlers come back after."""

from __future__ import annotations

import os
import signal
import threading

from humanparse.interrupts import StopRequests


def test_signals_are_noted_once_and_the_previous_handlers_return() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopRequests() as stops:
        assert not stops.requested
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # the second one does not raise, nor replace the first
        assert stops.requested and stops.signal == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_off_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def work() -> None:
        with StopRequests() as stops:
            seen.append(signal.getsignal(signal.SIGINT))
            seen.append(stops.requested)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before, False]
