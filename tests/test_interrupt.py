import os
import signal
import threading

import pytest

from rtstyle.interrupt import Interruption, graceful


def test_first_signal_requests_a_stop_the_second_aborts():
    stopped = []
    state = Interruption(on_request=lambda: stopped.append(True))
    before = signal.getsignal(signal.SIGINT)
    with graceful(state):
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread at the next bytecode
        assert state.requested.is_set() and stopped == [True] and not state.aborted.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10 ** 6):  # give the handler a chance to run
                pass
        assert state.aborted.is_set()
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_a_second_signal_while_closing_waits():
    state = Interruption()
    with graceful(state):
        os.kill(os.getpid(), signal.SIGINT)
        state.closing.set()
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the file is being finalised
        assert state.requested.is_set() and not state.aborted.is_set()


def test_other_signals_can_be_handled_the_same_way():
    state = Interruption()
    with graceful(state, signals=(signal.SIGINT, signal.SIGUSR1)):
        os.kill(os.getpid(), signal.SIGUSR1)
        assert state.requested.is_set()


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker():
        with graceful(Interruption()) as state:
            seen.append((signal.getsignal(signal.SIGINT), state.requested.is_set()))

    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [(before, False)]
