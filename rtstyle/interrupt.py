"""Graceful interruption: the first Ctrl-C (or SIGTERM, or SIGHUP) asks the work in hand to stop and
finalise its output; a second one stops at once.

SIGTERM is what ``docker stop``, systemd, SLURM, ``timeout`` and CI runners send; SIGHUP is what a
closed terminal or SSH session sends. Both mean "stop", exactly like Ctrl-C: ``stop_signals`` makes them
raise KeyboardInterrupt as SIGINT does by default, so every ``except KeyboardInterrupt`` (training
saves its state, the camera keeps its recording) handles all three, and the process exits with
128 + the signal's number (130, 143, 129), as a shell reports a job killed by it.

A KeyboardInterrupt raised at an arbitrary point (between encoding a frame and muxing its packets,
say) would lose data, so while ``graceful`` is active the signal only sets ``requested`` and calls
``on_request``; the worker checks it, finishes the file and then raises KeyboardInterrupt itself.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

# The signals that mean "stop and keep what is done" (SIGHUP does not exist on Windows).
SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)
_received = [signal.SIGINT]  # the last stop signal received: the exit code says which


def received() -> int:
    """The number of the last stop signal received (SIGINT when none was: Ctrl-C's KeyboardInterrupt)."""
    return int(_received[0])


def name(signum: int | None = None) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    signum = received() if signum is None else signum
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _raise(signum, frame) -> None:
    _received[0] = signum
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise KeyboardInterrupt, like SIGINT (from the main thread
    only; a signal ignored when the process started, as ``nohup`` ignores SIGHUP, stays ignored)."""
    _received[0] = signal.SIGINT
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, _raise) for s in SIGNALS
                    if s != signal.SIGINT and signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_code() -> int:
    """What a shell reports for a job the last stop signal ended: 128 + its number (130, 143, 129)."""
    return 128 + received()


def ignore_in_child() -> None:
    """For helper processes (DataLoader workers): leave stopping to the parent, which finishes its
    step and then ends them. Ctrl-C in a terminal, SIGHUP and systemd's or SLURM's SIGTERM reach
    the whole process group: a worker that died of it would break the step the parent is finishing."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


class Interruption:
    """What the signals asked for: ``requested`` (stop soon), ``aborted`` (stopped at once).

    While ``closing`` is set (the output is being finalised: milliseconds) a second signal waits
    for it instead of aborting, so that a file being closed is never left broken."""

    def __init__(self, on_request: Callable[[], None] = lambda: None):
        self.on_request = on_request
        self.requested, self.aborted, self.closing = threading.Event(), threading.Event(), threading.Event()

    def handle(self, signum, frame) -> None:
        _received[0] = signum
        if self.requested.is_set() and not self.closing.is_set():
            self.aborted.set()
            raise KeyboardInterrupt
        self.requested.set()
        self.on_request()


@contextlib.contextmanager
def graceful(state: Interruption, signals: tuple[int, ...] = SIGNALS) -> Iterator[Interruption]:
    """Let ``state`` handle ``signals`` inside the block; the previous handlers come back after it.

    Signal handlers can only be set from the main thread: elsewhere the block runs with the default
    handling (and ``requested`` is never set). A signal ignored before (``nohup``) stays ignored."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, state.handle) for s in signals if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
