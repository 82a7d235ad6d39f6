"""Output file safety: never write over the input, never leave a half-written file.

Every command that writes a file goes through ``check_output`` (decide and validate the
destination) and ``atomic_output`` or ``write_atomic`` (write to a temporary file beside it,
rename when complete).
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from rtstyle.errors import RtstyleError


def atomic_path(dest: Path) -> Path:
    """A fresh temporary path beside ``dest`` (same filesystem, so the final rename is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, dest: Path) -> None:
    """Rename a finished temporary file onto ``dest``, with the mode a new file would get
    (mkstemp creates it private, 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def write_atomic(dest: Path, write) -> None:
    """Call ``write(tmp_path)``, then rename the result onto ``dest``; on any error ``dest`` is untouched."""
    tmp = atomic_path(dest)
    try:
        write(tmp)
        publish(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` are the same file: same path, a symlink to it, or a hard link."""
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(inputs: list[Path] | Path, output: Path, overwrite: bool) -> Path:
    """Refuse to write over an input, or over an existing file without ``--overwrite``."""
    for src in [inputs] if isinstance(inputs, Path) else inputs:
        if same_file(src, output):
            raise RtstyleError(f"output {output} is the input file; choose another -o")
    if output.is_dir():
        raise RtstyleError(f"output {output} is a directory")
    if output.exists() and not overwrite:
        raise RtstyleError(f"output {output} exists; pass --overwrite to replace it")
    if not output.parent.exists():
        raise RtstyleError(f"output folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise RtstyleError(f"cannot write to the output folder {output.parent}")
    return output


@contextlib.contextmanager
def atomic_output(dest: Path, keep_partial_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` when the block completes.

    On an error the temporary file is removed, so ``dest`` is either complete or untouched. With
    ``keep_partial_on_interrupt`` a KeyboardInterrupt still renames: the writer has finalised a
    shorter but valid file (the video pipeline does this on Ctrl-C).
    """
    try:
        tmp = atomic_path(dest)
    except OSError as e:  # a read-only or special folder, no permission
        raise RtstyleError(f"cannot write {dest}: {e.strerror or e}") from None
    try:
        yield tmp
        publish(tmp, dest)
    except KeyboardInterrupt:
        if keep_partial_on_interrupt and tmp.exists() and tmp.stat().st_size:
            publish(tmp, dest)
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise RtstyleError(f"no space left to write {dest} ({os.strerror(e.errno)}); nothing was written") from e
        if e.filename in (str(tmp), str(dest)):  # e.g. the folder became read-only
            raise RtstyleError(f"cannot write {dest}: {e.strerror or e}; nothing was written") from e
        raise
    finally:
        tmp.unlink(missing_ok=True)
