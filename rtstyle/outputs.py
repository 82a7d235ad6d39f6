"""Output file safety: never write over an input, never leave a half-written file, never lose a
result to another run writing the same file.

Every command that writes a file goes through ``check_output`` (decide and validate the
destination, refusing any spelling of an input: a relative path, a symlink, a hard link, a
``file:`` URL) and ``atomic_output``, ``write_atomic`` or ``atomic_outputs`` (write to a temporary
file beside it, publish it when complete). Publishing without ``--overwrite`` never replaces a file
that appeared meanwhile: a hard link fails if the name exists, atomically, so of two runs writing
the same new output one wins and the other stops cleanly.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from rtstyle.errors import RtstyleError

NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
WRAPPERS = ("cache:", "async:")  # FFmpeg protocols that read the URL after them


def atomic_path(dest: Path) -> Path:
    """A fresh temporary path beside ``dest`` (same filesystem, so the final rename is atomic),
    named after this process (``.NAME.HOST-BOOT-PID-START.RANDOM.part``). Temporaries that runs
    killed outright (SIGKILL, a power cut) left for the same destination are removed first: those
    of processes that no longer run on this machine, and only those."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{_owner(os.getpid())}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _boot() -> str:
    """This boot of the machine (process ids and start times restart at a reboot); "" if unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), telling a reused pid from the one that
    made a file; None if no such process. Without /proc: "0" for any living process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]  # field 22, after the command name
    except FileNotFoundError:
        return None
    except (OSError, IndexError, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return "0"


def _owner(pid: int) -> str:
    return f"{_host()}-{_boot()}-{pid}-{_started(pid)}"


def remove_stale(dest: Path) -> list[Path]:
    """Remove the temporaries of ``dest`` whose writer is dead: made on this machine (same host
    name) by a process that is gone, or before the last reboot. Those of live runs, of other
    machines sharing the folder, and files named otherwise are left alone. Returns what was removed."""
    removed = []
    for tmp in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        owner = tmp.name[len(dest.name) + 2:].split(".")[0].split("-")
        if len(owner) != 4 or owner[0] != _host() or not owner[2].isdigit():
            continue
        host, boot, pid, started = owner
        if boot != _boot() or _started(int(pid)) != started:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def publish(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Move a finished temporary file onto ``dest``, with the mode a new file would get (mkstemp
    creates it private, 0600). Without ``overwrite`` an existing ``dest`` is never replaced, even
    one created a moment ago by another run: the caller gets a one-line error and ``tmp`` stays."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails with EEXIST if the name exists: no window between check and write
    except FileExistsError:
        raise RtstyleError(f"output {dest} appeared while this run was writing it (another run?); "
                           "it was kept; pass --overwrite to replace it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        _publish_without_links(tmp, dest)
        return
    tmp.unlink()


def _publish_without_links(tmp: Path, dest: Path) -> None:
    """Filesystems without hard links (FAT, some network shares): claim the name with O_EXCL, then rename."""
    try:
        os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise RtstyleError(f"output {dest} appeared while this run was writing it (another run?); "
                           "it was kept; pass --overwrite to replace it") from None
    os.replace(tmp, dest)


def write_atomic(dest: Path, write, overwrite: bool) -> None:
    """Call ``write(tmp_path)``, then publish the result as ``dest``; on any error ``dest`` is untouched."""
    tmp = atomic_path(dest)
    try:
        write(tmp)
        publish(tmp, dest, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def local_path(spec: str | os.PathLike) -> Path | None:
    """The local file a command-line path or FFmpeg URL names; None for a network URL or a camera.

    FFmpeg opens ``file:X`` as the path X, unescaped (``file:///a`` is ``///a``, i.e. ``/a``);
    ``cache:`` and ``async:`` wrap another URL. ``file:`` URLs written by other tools may be
    percent-escaped: ``local_paths`` gives both readings.

    >>> str(local_path("file:///tmp/in.mp4")), str(local_path("cache:file:in.mp4")), local_path("rtsp://cam/live")
    ('/tmp/in.mp4', 'in.mp4', None)
    """
    spec = os.fspath(spec)
    while spec.startswith(WRAPPERS):
        spec = spec.split(":", 1)[1]
    if spec.startswith("file:"):
        return Path(spec[5:] or ".")
    if "://" in spec or spec.startswith(("pipe:", "fd:")):
        return None
    return Path(spec)


def local_paths(spec: str | os.PathLike) -> list[Path]:
    """Every local file ``spec`` may name: the literal path and, for a ``file:`` URL with escapes
    (``%20``), the unescaped one too. Empty for network URLs.

    >>> [str(p) for p in local_paths("file:///tmp/a%20b.mp4")]
    ['/tmp/a%20b.mp4', '/tmp/a b.mp4']
    """
    path = local_path(spec)
    if path is None:
        return []
    unescaped = Path(unquote(str(path)))
    return [path] if unescaped == path else [path, unescaped]


def same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name the same file however spelled: the same path, relative or
    absolute, through symlinks, a hard link, another case on a case-insensitive filesystem (the
    same device and inode), or, for names that do not exist yet, the same resolved path."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b) or Path(a).resolve() == Path(b).resolve()
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_output(inputs: list[Path | str] | Path | str, output: Path, overwrite: bool,
                 how: str = "--overwrite") -> Path:
    """Refuse to write over an input (``inputs`` are paths or URLs), or over an existing file without
    ``--overwrite`` (``how`` names the switch: the Python API's is ``overwrite=True``)."""
    for src in inputs if isinstance(inputs, list) else [inputs]:
        if any(same_file(path, output) for path in local_paths(src)):
            raise RtstyleError(f"output {output} is the input file {src}; choose another output")
    if output.is_dir():
        raise RtstyleError(f"output {output} is a directory")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise RtstyleError(f"output {output} exists; pass {how} to replace it")
    if not output.parent.exists():
        raise RtstyleError(f"output folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise RtstyleError(f"cannot write to the output folder {output.parent}")
    return output


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, through symlinks; None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def case_insensitive(folder: Path) -> bool:
    """Whether names in ``folder`` (an existing one) ignore case (macOS and Windows by default, FAT,
    some network shares): probed with a temporary file, since it depends on the filesystem."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".rtstyle-case-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        return os.path.exists(os.path.join(folder, os.path.basename(probe).upper()))
    finally:
        os.unlink(probe)


def _existing_ancestor(path: Path) -> Path:
    return next(p for p in [path, *path.parents] if p.exists())


def check_outputs(jobs: list[tuple[Path, Path]], overwrite: bool) -> list[tuple[Path, Path]]:
    """The (source, destination) pairs of a many-file run, checked before any is written: no
    destination is an input, exists without ``--overwrite`` or is a folder, and no two sources
    share one destination (the same file named twice is processed once). Names differing only in
    case collide where the destination's filesystem ignores case."""
    sources = {file_id(src): src for src, _ in jobs}
    folds: dict[Path, bool] = {}
    seen: dict[str, Path] = {}
    unique = []
    for src, dest in jobs:
        anchor = _existing_ancestor(dest.parent.absolute())
        if not anchor.is_dir():
            raise RtstyleError(f"cannot create the output folder {dest.parent}: {anchor} is a file")
        key = str(dest.parent.resolve() / dest.name)
        if len(jobs) > 1 and folds.setdefault(anchor, case_insensitive(anchor)):
            key = key.casefold()
        if key in seen:
            if file_id(seen[key]) == file_id(src):
                continue  # one image given twice (or a file and its folder): processed once
            raise RtstyleError(f"{seen[key]} and {src} would both be written to {dest}; "
                               "rename one or write them to different folders")
        seen[key] = src
        if file_id(dest) in sources:
            raise RtstyleError(f"output {dest} is the input file {sources[file_id(dest)]}; choose another output")
        if dest.is_dir():
            raise RtstyleError(f"output {dest} is a directory")
        if (dest.exists() or dest.is_symlink()) and not overwrite:
            raise RtstyleError(f"output {dest} exists; pass --overwrite to replace it")
        unique.append((src, dest))
    return unique


def _os_error(dest: Path, e: OSError, tmp: Path) -> RtstyleError | None:
    """The one-line error for a failed write of ``dest`` (through ``tmp``), or None if it is not one."""
    if e.errno in NO_SPACE:
        return RtstyleError(f"no space left to write {dest} ({os.strerror(e.errno)}); nothing was written")
    if e.filename in (str(tmp), str(dest)):  # e.g. the folder became read-only
        return RtstyleError(f"cannot write {dest}: {e.strerror or e}; nothing was written")
    return None


@contextlib.contextmanager
def atomic_output(dest: Path, overwrite: bool, keep_partial_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; publish it as ``dest`` when the block completes.

    On an error the temporary file is removed, so ``dest`` is either complete or untouched. With
    ``keep_partial_on_interrupt`` a KeyboardInterrupt still publishes: the writer has finalised a
    shorter but valid file (the video pipeline does this on Ctrl-C).
    """
    try:
        tmp = atomic_path(dest)
    except OSError as e:  # a read-only or special folder, no permission
        raise RtstyleError(f"cannot write {dest}: {e.strerror or e}") from None
    try:
        yield tmp
        publish(tmp, dest, overwrite)
    except KeyboardInterrupt:
        if keep_partial_on_interrupt and tmp.exists() and tmp.stat().st_size:
            publish(tmp, dest, overwrite)
        raise
    except OSError as e:
        raise _os_error(dest, e, tmp) or e from e
    finally:
        tmp.unlink(missing_ok=True)


class Outputs:
    """Files published together (``atomic_outputs``): each is written to a temporary file beside
    its destination, and all are published once every one is complete."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite
        self.pending: list[tuple[Path, Path]] = []
        self.made: list[Path] = []  # folders this batch created, removed again if it fails

    def path(self, dest: Path) -> Path:
        """The temporary file to write ``dest``'s content to."""
        missing = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
        try:
            tmp = atomic_path(dest)
        except OSError as e:
            raise RtstyleError(f"cannot write {dest}: {e.strerror or e}") from None
        finally:
            self.made += [p for p in reversed(missing) if p.is_dir() and p not in self.made]
        self.pending.append((tmp, dest))
        return tmp

    def publish(self) -> None:
        done: list[tuple[Path, os.stat_result]] = []
        try:
            for tmp, dest in self.pending:
                st = os.stat(tmp)
                publish(tmp, dest, self.overwrite)
                done.append((dest, st))
        except BaseException:
            for dest, st in done:  # files this batch created (not replaced ones) are taken back
                with contextlib.suppress(OSError):
                    now = os.stat(dest)
                    if not self.overwrite and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                        dest.unlink()
            raise

    def discard(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never anything someone else put there


@contextlib.contextmanager
def atomic_outputs(overwrite: bool) -> Iterator[Outputs]:
    """Several outputs, all or none: on an error or Ctrl-C no destination changes, no folder is
    left behind, and a rerun starts from the same state."""
    batch = Outputs(overwrite)
    try:
        yield batch
        batch.publish()
    except OSError as e:
        tmp, dest = next(((t, d) for t, d in batch.pending if e.filename in (str(t), str(d))), (None, None))
        err = _os_error(dest, e, tmp) if dest else (RtstyleError(f"no space left to write the outputs "
                                                                 f"({os.strerror(e.errno)}); nothing was written")
                                                    if e.errno in NO_SPACE else None)
        raise err or e from e
    finally:
        batch.discard()
