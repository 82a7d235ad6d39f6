"""Graceful interruption: the first Ctrl-C asks the work in hand to stop and finalise its output;
a second one stops at once.

A KeyboardInterrupt raised at an arbitrary point (between encoding a frame and muxing its packets,
say) would lose data, so while ``graceful`` is active the signal only sets ``requested`` and calls
``on_request``; the worker checks it, finishes the file and then raises KeyboardInterrupt itself.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


class Interruption:
    """What the signals asked for: ``requested`` (stop soon), ``aborted`` (stopped at once).

    While ``closing`` is set (the output is being finalised: milliseconds) a second signal waits
    for it instead of aborting, so that a file being closed is never left broken."""

    def __init__(self, on_request: Callable[[], None] = lambda: None):
        self.on_request = on_request
        self.requested, self.aborted, self.closing = threading.Event(), threading.Event(), threading.Event()

    def handle(self, signum, frame) -> None:
        if self.requested.is_set() and not self.closing.is_set():
            self.aborted.set()
            raise KeyboardInterrupt
        self.requested.set()
        self.on_request()


@contextlib.contextmanager
def graceful(state: Interruption, signals: tuple[int, ...] = (signal.SIGINT,)) -> Iterator[Interruption]:
    """Let ``state`` handle ``signals`` inside the block; the previous handlers come back after it.

    Signal handlers can only be set from the main thread: elsewhere the block runs with the default
    handling (and ``requested`` is never set)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, state.handle) for s in signals}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
