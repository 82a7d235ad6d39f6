"""What rtstyle tells the user: the one error type users see (the CLI prints its message on one
line and exits non-zero), and one-line notices on stderr."""
import re
import sys
from pathlib import Path


class RtstyleError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def say(msg: str) -> None:
    """A one-line notice on stderr (what ``auto`` chose, what is being built and cached)."""
    print(f"rtstyle: {msg}", file=sys.stderr, flush=True)


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
