"""``rtstyle cam``: stylize a live camera or network stream with the lowest latency the net allows.

A grabber thread reads the source as fast as it delivers and keeps only the newest frame
(``Latest``); the main thread stylizes whichever frame is newest when it is free, so a net slower
than the camera drops stale frames instead of falling behind.

Camera indices and ``/dev/videoN`` are read with OpenCV: it speaks V4L2, DirectShow, Media
Foundation and AVFoundation and negotiates the camera's formats itself. URLs and files are read
with PyAV: its open/read timeouts and FFmpeg's protocol options are what make a dropped network
stream detectable (and so reconnectable) instead of a read that blocks forever.
"""
from __future__ import annotations

import contextlib
import functools
import os
import queue
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import cv2
import numpy as np
from tqdm import tqdm

from rtstyle import models
from rtstyle.errors import RtstyleError
from rtstyle.frames import Options, process
from rtstyle.imageio import write_image
from rtstyle.outputs import atomic_output, check_output
from rtstyle.stabilize import Stabilizer
from rtstyle.writer import VideoWriter

WINDOW = "rtstyle cam"
RECORD_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0


# ---------------------------------------------------------------- sources

def camera_device(source: str) -> int | str | None:
    """The OpenCV device for a camera index (``"0"``) or a V4L2 path; None for URLs and files."""
    if source.isdigit():
        return int(source)
    if source.startswith("/dev/video"):
        return source
    return None


def is_live(source: str) -> bool:
    """Cameras and network streams are live (they may drop and come back); files are not."""
    return camera_device(source) is not None or ("://" in source and not source.startswith("file:"))


# A reader yields, per frame, a function returning it as HxWx3 RGB uint8: only the frames that are
# shown get converted, not the stale ones the grabber replaces.
RGB = Callable[[], np.ndarray]


class CameraReader:
    """Frames from an OpenCV camera until it stops delivering."""

    def __init__(self, cap):
        self.cap = cap

    def __iter__(self) -> Iterator[RGB]:
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                return
            yield functools.partial(cv2.cvtColor, bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class AvReader:
    """Frames from a PyAV container. Files are paced at their own frame rate, like a camera."""

    def __init__(self, container, paced: bool):
        self.container, self.paced = container, paced

    def __iter__(self) -> Iterator[RGB]:
        stream = self.container.streams.video[0]
        start = None
        for packet in self.container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:  # a damaged packet (lost UDP datagram): the next keyframe recovers
                continue
            for frame in decoded:
                if self.paced and frame.time is not None:
                    if start is None:
                        start = time.monotonic() - frame.time
                    time.sleep(max(0.0, start + frame.time - time.monotonic()))
                yield functools.partial(frame.to_ndarray, format="rgb24")

    def close(self) -> None:
        self.container.close()


class SourceError(RtstyleError):
    """The source cannot be opened; ``reason`` says why, without the source's name."""

    def __init__(self, what: str, source: str, reason: str):
        super().__init__(f"cannot open {what} {source}: {reason}")
        self.reason = reason


def describe(e: BaseException, timeout: float) -> str:
    """Why reading or opening a stream failed, in a few words."""
    if isinstance(e, av.error.ExitError):  # PyAV's timeout interrupts FFmpeg with "immediate exit requested"
        return f"no data for {timeout:g} s"
    if isinstance(e, av.FFmpegError) and e.strerror:
        return e.strerror
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]


def open_source(source: str, timeout: float) -> CameraReader | AvReader:
    """Open a camera, URL or file; an unavailable source is a one-line ``SourceError``."""
    device = camera_device(source)
    if device is not None:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its own warnings would repeat ours
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2) if isinstance(device, str) else cv2.VideoCapture(device)
        if not cap.isOpened():
            raise SourceError("camera", source, "no such device, or it is in use")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; the grabber thread drains it anyway
        return CameraReader(cap)

    live = is_live(source)
    options = {"fflags": "nobuffer", "flags": "low_delay"} if live else {}  # (nobuffer makes MP4 files read empty)
    if source.startswith("udp://"):
        options["overrun_nonfatal"] = "1"  # a full receive buffer loses packets instead of ending the stream
    try:
        container = av.open(source, timeout=timeout, options=options, metadata_errors="replace")
    except av.FFmpegError as e:
        raise SourceError("source", source, describe(e, timeout)) from None
    if not container.streams.video:
        container.close()
        raise SourceError("source", source, "it has no video stream")
    return AvReader(container, paced=not live)


def backoff(attempt: int) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based): 0.5, 1, 2, 4, 8, 8, ..."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt)


# ---------------------------------------------------------------- grabber

class Latest:
    """A one-frame mailbox between the grabber and the main loop: ``put`` replaces, ``get`` takes the newest."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: tuple[int, float, RGB] | None = None
        self.seq = 0
        self.ended = False
        self.error: str | None = None  # why the source ended, if it was lost

    def put(self, frame: RGB) -> None:
        with self._cond:
            self.seq += 1
            self._item = (self.seq, time.monotonic(), frame)
            self._cond.notify_all()

    def end(self, error: str | None = None) -> None:
        with self._cond:
            self.ended, self.error = True, error
            self._cond.notify_all()

    def get(self, after: int, timeout: float) -> tuple[int, float, RGB] | None:
        """(sequence number, time grabbed, frame) of the newest frame newer than ``after``; None if
        none came within ``timeout`` seconds or the source has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self.ended or (self._item is not None and self._item[0] > after), timeout)
            return self._item if self._item is not None and self._item[0] > after else None


def grab(source: str, reader, latest: Latest, stop: threading.Event, retries: int, timeout: float,
         warn: Callable[[str], None]) -> None:
    """Feed ``latest`` from ``reader``; when a live source drops, reopen it up to ``retries`` times in
    a row with exponential backoff (a frame received resets the count), then end with the reason."""
    failures = 0
    while True:
        reason = "the stream ended"
        try:
            for frame in reader:
                latest.put(frame)
                failures = 0
                if stop.is_set():
                    break
        except Exception as e:  # the thread boundary: whatever ended the stream is reported, not lost
            reason = describe(e, timeout)
        finally:
            reader.close()
        if stop.is_set() or not is_live(source):
            return latest.end()
        while True:
            if failures >= retries:
                return latest.end(f"lost the source {source}: {reason}; gave up after {retries} reconnect attempts")
            delay = backoff(failures)
            failures += 1
            warn(f"{source} dropped ({reason}); reconnecting in {delay:g} s (attempt {failures} of {retries})")
            if stop.wait(delay):
                return latest.end()
            try:
                reader = open_source(source, timeout)
                break
            except SourceError as e:
                reason = e.reason


# ---------------------------------------------------------------- recording

class Recorder:
    """H.264 encoding in a background thread; each frame's timestamp is the time it was grabbed, so
    the recording plays at the speed it happened even when stale frames were dropped."""

    def __init__(self, path: Path, fmt: str, crf: int = 20):
        self.path, self.fmt, self.crf = path, fmt, crf
        self.frames = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="rtstyle-record", daemon=True)
        self._thread.start()

    def write(self, rgb: np.ndarray, t: float) -> None:
        if self.error:
            raise self.error
        self._queue.put((rgb, t))

    def show(self, shown: np.ndarray, grabbed: float, stats) -> None:
        """As a sink of the camera loop: record what is shown, at the time it was grabbed."""
        self.write(shown, grabbed)

    def idle(self, shown: np.ndarray | None) -> None:
        pass

    def close(self) -> None:
        """Flush the encoder and finalise the container; an empty recording leaves no file."""
        self._queue.put(None)
        self._thread.join()
        if self.frames == 0:
            self.path.unlink(missing_ok=True)
        if self.error:
            raise self.error

    def _open(self, rgb: np.ndarray) -> VideoWriter:
        """The file, sized by the first frame (yuv420p needs even sizes). zerolatency: no lookahead,
        so each frame reaches the file at once (a live recording cut short by a lost source or
        Ctrl-C keeps what was shown)."""
        writer = VideoWriter(self.path, self.fmt)
        writer.add_video("libx264", 30, rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2, Fraction(1, 1000),
                         {"preset": "veryfast", "tune": "zerolatency", "crf": str(self.crf)})
        return writer

    def _run(self) -> None:
        writer, t0, last = None, 0.0, -1
        try:
            while (item := self._queue.get()) is not None:
                rgb, t = item
                if writer is None:
                    writer, t0 = self._open(rgb), t
                size = (writer.stream.height, writer.stream.width)
                if rgb.shape[:2] != size:  # a reconnect may change the size; the file cannot
                    rgb = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA)
                last = max(last + 1, round((t - t0) * 1000))
                writer.write(rgb, last)
                self.frames += 1
        except BaseException as e:  # noqa: B036 - handed to the main thread, which raises it
            self.error = e
            while self._queue.get() is not None:  # keep draining so the main thread never blocks on a full queue
                pass
        finally:
            if writer is not None:
                self._finalise(writer)

    def _finalise(self, writer: VideoWriter) -> None:
        try:
            try:
                if self.error is None:
                    writer.finish()
            finally:
                writer.close()
        except Exception as e:  # the trailer could not be written (a full disk): the file is not valid
            self.error = self.error or e


# ---------------------------------------------------------------- styles and keys

class Styles:
    """The style models keys 1-9 choose from, each loaded into its backend once, on first use."""

    def __init__(self, first: str | None, backend: str, precision: str, device: str | None):
        # a style inside a multi-style file is opened by its name, any other model by its file
        self.installed = [name if meta["arch"].get("styles") else str(path)
                          for name, path, meta in models.list_models("style")][:9]
        if first is None and not self.installed:
            raise RtstyleError("no style models installed; pass --style CHECKPOINT (see `rtstyle styles`)")
        self.current = first or self.installed[0]
        self.backend, self.precision, self.device = backend, precision, device
        self._loaded: dict[str, models.Model] = {}
        self.get()  # a bad --style fails before the source is opened

    @property
    def name(self) -> str:
        return self.get().name

    def get(self) -> models.Model:
        """The current style's model."""
        if self.current not in self._loaded:
            self._loaded[self.current] = models.open_model(self.current, "style", self.backend, self.device,
                                                           self.precision)
        return self._loaded[self.current]

    def select(self, number: int) -> bool:
        """Switch to installed style ``number`` (1-based); False if there is none."""
        if not 1 <= number <= len(self.installed):
            return False
        self.current = self.installed[number - 1]
        return True


@dataclass
class View:
    """What the preview shows, changed by keys."""

    original: bool = False
    quit: bool = False


def save_snapshot(rgb: np.ndarray, folder: Path, style: str) -> Path:
    """Write the frame on screen as a PNG (atomically) with a timestamped name."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return write_image(folder / f"rtstyle-{style}-{stamp}.png", rgb)


def handle_key(key: int, view: View, styles: Styles, shown: np.ndarray | None, snapshot_dir: Path) -> str | None:
    """Apply one key press (``cv2.waitKey`` code, -1 for none); returns a message to print, if any."""
    if key < 0:
        return None
    char = chr(key & 0xFF)
    if char in ("q", "\x1b"):
        view.quit = True
    elif char == " ":
        view.original = not view.original
    elif char.isdigit() and char != "0":
        if styles.select(int(char)):
            view.original = False
            return f"style {char}: {styles.name}"
        return f"no style {char}: {len(styles.installed)} installed (see `rtstyle styles`)"
    elif char == "s" and shown is not None:
        return f"saved {save_snapshot(shown, snapshot_dir, 'original' if view.original else styles.name)}"
    return None


def draw_overlay(bgr: np.ndarray, text: str) -> np.ndarray:
    """``text`` in the top-left corner, white on a dark outline so it reads on any picture."""
    scale = max(0.4, bgr.shape[0] / 720)
    org = (int(10 * scale), int(30 * scale))
    cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, int(4 * scale)), cv2.LINE_AA)
    cv2.putText(bgr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), max(1, int(1.5 * scale)), cv2.LINE_AA)
    return bgr


def check_display() -> None:
    """Fail early, in one line, where no window can open (Qt would abort the process instead)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RtstyleError("no display for the preview window; use --no-window (with --frames N or --record OUT)")


# ---------------------------------------------------------------- the loop

@dataclass
class Stats:
    """What the run did: frames shown, stale frames skipped, and each frame's latency."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    latencies: list = field(default_factory=list)  # seconds from grabbed to shown, per frame
    recent: deque = field(default_factory=lambda: deque(maxlen=30))  # completion times, for the live fps

    def add(self, grabbed: float, done: float) -> None:
        self.frames += 1
        self.latencies.append(done - grabbed)
        self.recent.append(done)

    def fps(self) -> float:
        return (len(self.recent) - 1) / (self.recent[-1] - self.recent[0]) if len(self.recent) > 1 and self.recent[-1] > self.recent[0] else 0.0

    def summary(self) -> str:
        if not self.frames:
            return "0 frames"
        ms = sorted(x * 1000 for x in self.latencies)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        return (f"{self.frames} frames in {self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} fps), "
                f"latency median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, {self.dropped} stale frames dropped")




# ---------------------------------------------------------------- sinks: where each shown frame goes

class Preview:
    """The preview window: the frame with its style, fps and latency; keys act on ``view``."""

    def __init__(self, view: View, styles: Styles, snapshot_dir: Path):
        self.view, self.styles, self.snapshot_dir = view, styles, snapshot_dir
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)  # resizable: a 4K stream still fits
        except cv2.error:
            raise RtstyleError("this OpenCV build cannot open windows (opencv-python-headless?); use --no-window") from None

    def show(self, shown: np.ndarray, grabbed: float, stats: Stats) -> None:
        label = "original" if self.view.original else self.styles.name
        text = f"{label}  {stats.fps():.1f} fps  {stats.latencies[-1] * 1000:.0f} ms"
        cv2.imshow(WINDOW, draw_overlay(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR), text))
        self.idle(shown)

    def idle(self, shown: np.ndarray | None) -> None:
        """Let the window process events and act on a key press; closing the window quits."""
        message = handle_key(cv2.waitKey(1), self.view, self.styles, shown, self.snapshot_dir)
        if message:
            print(f"rtstyle: {message}", file=sys.stderr)
        if shown is not None and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            self.view.quit = True

    def close(self) -> None:
        cv2.destroyAllWindows()


class Progress:
    """A progress bar on stderr, for runs without a window."""

    def __init__(self, frames: int | None):
        self.bar = tqdm(total=frames, unit="frame", dynamic_ncols=True, file=sys.stderr)

    def show(self, shown: np.ndarray, grabbed: float, stats: Stats) -> None:
        self.bar.update()

    def idle(self, shown: np.ndarray | None) -> None:
        pass

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------- the loop

def run(source: str = "0", style: str | None = None, backend: str = "auto", precision: str = "fp32",
        device: str | None = None, window: bool = True, record: str | None = None, frames: int | None = None,
        max_side: int | None = None, overwrite: bool = False, retries: int = 5, timeout: float = 5.0,
        snapshot_dir: str = ".", stabilize: bool = False) -> Stats:
    """Stylize ``source`` live: show it (``window``), record it (``record``), stop after ``frames``.

    Ends when the user quits, after ``frames`` frames, at the end of a file, or when a live source
    stays lost after ``retries`` reconnects; in every case (Ctrl-C included) the recording is finalised.
    """
    out = _check_args(source, window, record, frames, overwrite, retries, timeout)
    options = Options(max_side=max_side, stabilize=stabilize)
    styles, view = Styles(style, backend, precision, device), View()
    reader = open_source(source, timeout)
    try:
        preview = Preview(view, styles, Path(snapshot_dir)) if window else None
    except RtstyleError:
        reader.close()
        raise
    latest, stop, stats = Latest(), threading.Event(), Stats()
    grabber = threading.Thread(target=grab, args=(source, reader, latest, stop, retries, timeout, _warn),
                               name="rtstyle-grab", daemon=True)
    grabber.start()
    recorder = None
    try:
        with (atomic_output(out, overwrite, keep_partial_on_interrupt=True) if out else contextlib.nullcontext()) as tmp:
            recorder = Recorder(tmp, RECORD_FORMATS[out.suffix.lower()]) if out else None
            closing = [s for s in (None if window else Progress(frames), recorder) if s]
            try:
                show_frames(latest, styles, options, view, [*closing, *([preview] if preview else [])], stats, frames)
            finally:
                stop.set()
                for sink in closing:
                    sink.close()
            if out and not recorder.frames:
                raise RtstyleError(f"no frames came from {source}; nothing recorded" + (f" ({latest.error})" if latest.error else ""))
    except KeyboardInterrupt:
        if recorder and recorder.frames:
            print(f"rtstyle: interrupted; recorded {recorder.frames} frames to {out}", file=sys.stderr)
        raise
    finally:
        stop.set()
        grabber.join(timeout + 1)
        if preview:
            preview.close()
    return _finish(stats, latest, out)


def _check_args(source: str, window: bool, record: str | None, frames: int | None, overwrite: bool, retries: int,
                timeout: float) -> Path | None:
    """Refuse bad options before opening anything; the recording's path, if any."""
    if frames is not None and frames < 1:
        raise RtstyleError(f"--frames must be at least 1, not {frames}")
    if retries < 0 or timeout <= 0:
        raise RtstyleError("--retries must be >= 0 and --timeout > 0")
    out = Path(record) if record else None
    if out is not None:
        if out.suffix.lower() not in RECORD_FORMATS:
            raise RtstyleError(f"--record must end in {', '.join(RECORD_FORMATS)}, not {out.name!r}")
        check_output([source], out, overwrite)  # never record over the source, however spelled (a file: URL too)
    if window:
        check_display()
    return out


def show_frames(latest: Latest, styles: Styles, options: Options, view: View, sinks: list, stats: Stats,
                frames: int | None) -> None:
    """Stylize the newest frame whenever free and hand it to every sink, until the user quits,
    ``frames`` are shown or the source ends."""
    seq, shown, start = 0, None, time.monotonic()
    stabilizer, stabilized_as = (Stabilizer() if options.stabilize else None), None
    try:
        while not view.quit and (frames is None or stats.frames < frames):
            item = latest.get(seq, timeout=0.05)
            if item is None:
                if latest.ended:
                    break
                for sink in sinks:
                    sink.idle(shown)
                continue
            stats.dropped += item[0] - seq - 1
            seq, grabbed, frame = item
            rgb = frame()
            if not stats.frames:
                start = grabbed  # the rate counts from the first frame, not from opening the source
            if stabilizer is not None and (styles.name, view.original) != stabilized_as:
                stabilizer.reset()  # a new style (or the original shown in between): no history across
                stabilized_as = (styles.name, view.original)
            shown = rgb if view.original else process(styles.get(), rgb, options, stabilizer)
            stats.add(grabbed, time.monotonic())
            for sink in sinks:
                sink.show(shown, grabbed, stats)
    finally:
        stats.seconds = time.monotonic() - start


def _warn(message: str) -> None:
    tqdm.write(f"rtstyle: warning: {message}", file=sys.stderr)


def _finish(stats: Stats, latest: Latest, out: Path | None) -> Stats:
    saved = f"; recorded {out}" if out else ""
    if latest.error:
        raise RtstyleError(f"{latest.error}; {stats.summary()}{saved}")
    print(f"rtstyle cam: {stats.summary()}{saved}", file=sys.stderr)
    return stats
