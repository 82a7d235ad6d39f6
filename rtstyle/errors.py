"""What rtstyle tells the user: the one error type users see (the CLI prints its message on one
line and exits non-zero), one-line notices and warnings on stderr, and progress bars.

How much is said is one setting for the process: the CLI's ``-q/--quiet`` and ``--no-progress``
set it, and the Python API (``rtstyle.api``) silences everything while it runs unless asked.
"""
from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

# verbosity: 2 = notices, warnings and bars; 1 = warnings only (-q); 0 = nothing (the Python API)
_state = {"verbosity": 2, "progress": True}


class RtstyleError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def configure(quiet: bool = False, progress: bool = True, silent: bool = False) -> None:
    """Set what rtstyle prints on stderr for the rest of the process."""
    _state["verbosity"] = 0 if silent else (1 if quiet else 2)
    _state["progress"] = progress


@contextlib.contextmanager
def verbosity(quiet: bool = False, progress: bool = True, silent: bool = False) -> Iterator[None]:
    """``configure`` for the duration of a block, restored afterwards."""
    saved = dict(_state)
    configure(quiet, progress, silent)
    try:
        yield
    finally:
        _state.update(saved)


def say(msg: str) -> None:
    """A one-line notice on stderr (what ``auto`` chose, what is being built and cached)."""
    if _state["verbosity"] >= 2:
        print(f"rtstyle: {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """A one-line warning on stderr: something was dropped or skipped but the work goes on."""
    if _state["verbosity"] >= 1:
        tqdm.write(f"rtstyle: warning: {msg}", file=sys.stderr)


def progress(iterable=None, *, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar on stderr, shown only when stderr is a terminal (a log file gets none) and neither
    ``--quiet`` nor ``--no-progress`` was given."""
    off = disable or not _state["progress"] or _state["verbosity"] < 2
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=True if off else None, **kwargs)  # None: tqdm's "only on a terminal"


def unreadable_input(path: Path, kind: str = "input") -> RtstyleError:
    """Why ``path``, which is not a regular file, cannot be an input: missing, a folder, a pipe,
    a device, or an image-sequence pattern (``img%03d.png``), in one line."""
    if not path.exists() and re.search(r"%0?\d*d", path.name):
        return RtstyleError(f"{path} is an image-sequence pattern, not a file: stylize the images' folder "
                            f"(`rtstyle stylize FOLDER`), or join them into a video first (ffmpeg -i '{path}' seq.mp4)")
    if path.is_fifo():
        return RtstyleError(f"{path} is a pipe (FIFO): rtstyle reads an input more than once, so it needs a regular "
                            f"file; save the stream to a file, or read it live with `rtstyle cam --source {path}`")
    if path.is_dir():
        return RtstyleError(f"{path} is a folder, not a file")
    if path.exists():
        return RtstyleError(f"{path} is not a regular file (a device or socket)")
    return RtstyleError(f"{kind} not found: {path}")
