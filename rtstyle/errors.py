"""What rtstyle tells the user: the one error type users see (the CLI prints its message on one
line and exits non-zero), and one-line notices on stderr."""
import sys


class RtstyleError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def say(msg: str) -> None:
    """A one-line notice on stderr (what ``auto`` chose, what is being built and cached)."""
    print(f"rtstyle: {msg}", file=sys.stderr, flush=True)
