"""Video and image files through a transform net.

Video: one thread decodes (PyAV, threaded decoding), one runs the net (``rtstyle.frames``), and the
calling thread encodes and muxes; bounded queues between them give back-pressure, so the slowest
stage (the net, ideally) sets the pace. Everything the user did not ask to change is kept: every
frame and its timestamp, the rotation, the audio (copied when the container takes it).
"""
from __future__ import annotations

import heapq
import queue
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtstyle.backends import Backend, load_backend
from rtstyle.errors import RtstyleError
from rtstyle.frames import Options, output_shape, process
from rtstyle.imageio import IMAGE_EXTS, list_images, read_image, write_image
from rtstyle.outputs import atomic_output, check_output

VIDEO_CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx",
                "av1": "libsvtav1"}
# Output containers. Not AVI: it has no presentation timestamps, so B-frames and variable frame
# rates come out in the wrong order or at the wrong times.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Audio codecs the MP4/MOV muxers take without "experimental" flags; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"}
MOV_AUDIO = MP4_AUDIO - {"flac", "opus"}  # FFmpeg writes these only in MP4
RGB_MATRIX, BT601 = 0, 6  # AVColorSpace: AVCOL_SPC_RGB, AVCOL_SPC_SMPTE170M
QUEUE_FRAMES = 8  # frames buffered between stages: enough to absorb jitter, little memory
REORDER = 8       # decode-order timestamps (AVI) are sorted over this many frames


@dataclass
class Report:
    frames: int
    seconds: float
    net_seconds: float
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def net_fps(self) -> float:
        return self.frames / self.net_seconds if self.net_seconds else 0.0

    def __str__(self) -> str:
        eff = f", efficiency {self.fps / self.net_fps:.0%}" if self.net_fps else ""
        return (f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.1f} fps end to end, "
                f"net {self.net_fps:.1f} fps{eff}")


def load(name_or_path: str, kind: str, backend: str = "auto", precision: str = "fp32",
         device: str | None = None) -> tuple[Backend, dict]:
    """A model by name or path, wrapped in an inference backend: (backend, meta)."""
    from rtstyle.models import load as load_model

    net, meta = load_model(name_or_path, kind)
    return load_backend(net, meta, backend=backend, device=device, precision=precision), meta


def default_output(src: Path, name: str, suffix: str | None = None) -> Path:
    """``in.mp4`` styled with ``muse`` -> ``in.muse.mp4`` beside it."""
    return src.with_name(f"{src.stem}.{name}{suffix if suffix is not None else src.suffix}")


def is_video(path: Path) -> bool:
    """Decided by content: a file PyAV opens as a moving-picture container (not a still-image demuxer)."""
    try:
        with av.open(str(path), metadata_errors="replace") as c:
            still = c.format.name == "image2" or c.format.name.endswith("_pipe")
            return bool(c.streams.video) and not still
    except (av.error.FFmpegError, UnicodeDecodeError):
        return False


# ---------------------------------------------------------------- images

def run_images(inputs: list[Path], output: Path | None, backend: Backend, meta: dict, options: Options,
               overwrite: bool = False, progress: bool = True, name: str | None = None) -> list[Path]:
    """Process image files and folders of images. Default output: ``STEM.NAME.EXT`` beside each file;
    a folder ``DIR`` goes to ``DIR.NAME/``. With several images, ``output`` is a folder."""
    from tqdm import tqdm

    name = name or meta.get("name", "out")
    jobs: list[tuple[Path, Path]] = []
    for src in inputs:
        if src.is_dir():
            files = list_images(src)
            if not files:
                raise RtstyleError(f"no images in folder {src}")
            root = output or src.with_name(f"{src.name}.{name}")
            jobs += [(f, root / f.relative_to(src)) for f in files]
        elif src.is_file():
            many = len(inputs) > 1 or (output is not None and output.is_dir())
            dest = (output / src.name if many else output) if output else default_output(src, name)
            jobs.append((src, dest))
        else:
            raise RtstyleError(f"input not found: {src}")
    for src, dest in jobs:
        if dest.suffix.lower() not in IMAGE_EXTS:
            raise RtstyleError(f"output {dest} needs an image extension ({', '.join(IMAGE_EXTS)})")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtstyleError(f"cannot create the output folder {dest.parent}: {e.strerror or e}") from None
        check_output([s for s, _ in jobs], dest, overwrite)
    for src, dest in tqdm(jobs, unit="image", disable=not progress or len(jobs) < 2):
        write_image(dest, process(backend, meta, read_image(src), options))
    return [dest for _, dest in jobs]


# ---------------------------------------------------------------- video

def open_video(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise RtstyleError(f"input not found: {path}")
    try:
        c = av.open(str(path), metadata_errors="replace")  # a damaged tag is not worth refusing the video
    except av.error.FFmpegError as e:
        raise RtstyleError(f"{path} is not a readable video ({e.strerror or e})") from None
    if not c.streams.video:
        c.close()
        raise RtstyleError(f"{path} has no video stream")
    return c


def _probe_first_frame(path: Path) -> av.VideoFrame:
    """The first decodable frame: its size and display matrix decide the output stream's."""
    with open_video(path) as c:
        try:
            for frame in c.decode(c.streams.video[0]):
                return frame
        except av.error.FFmpegError as e:
            raise RtstyleError(f"{path}: cannot decode video ({e.strerror or e})") from None
    raise RtstyleError(f"{path} has no decodable video frames")


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline stops (so no thread hangs on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _get(q: queue.Queue, stop: threading.Event):
    """Blocking get that returns None (end) when the pipeline stops."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return None


class _Stage(threading.Thread):
    """A pipeline thread: runs ``fn``, records its exception, ends its output with ``None``."""

    def __init__(self, fn, out: queue.Queue, stop: threading.Event):
        super().__init__(daemon=True)
        self.fn, self.out, self.stop, self.error = fn, out, stop, None
        # Set when ``fn`` has returned. (Once a Ctrl-C has interrupted ``join``, Python 3.11 may take
        # the thread for finished while it still runs; a daemon thread still in torch's C++ code at
        # exit aborts the process.)
        self.finished = threading.Event()

    def run(self):
        try:
            self.fn()
        except BaseException as e:  # handed to the main thread, which re-raises it
            self.error = e
            self.stop.set()
        finally:
            _put(self.out, None, self.stop)
            self.finished.set()


def _decode(inp, vstream, audio: dict, q: queue.Queue, stop: threading.Event) -> None:
    """Demux and decode: video frames as RGB arrays with display timestamps; audio packets to copy
    or frames to re-encode, in file order."""
    heap, pending, last, last_dts, skipped = [], deque(), None, {}, Counter()
    step = max(1, round(1 / (vstream.average_rate * vstream.time_base))) if vstream.average_rate else 1

    def emit(final: bool) -> bool:
        nonlocal last
        while pending and (final or len(pending) > REORDER):
            t = heapq.heappop(heap)
            last = t = t if last is None or t > last else last + 1
            if not _put(q, ("v", pending.popleft(), t), stop):
                return False
        return True

    for packet in inp.demux([vstream, *(s for s, _ in audio.values())]):
        if stop.is_set():
            return
        if packet.stream is vstream:
            frames = _decode_packet(packet)
            if frames is None:
                skipped["corrupt video"] += 1
            for frame in frames or []:
                t = frame.pts if frame.pts is not None else frame.dts
                heapq.heappush(heap, t if t is not None else (last or 0) + step * (len(pending) + 1))
                pending.append(frame.to_ndarray(format="rgb24"))
            if not emit(False):
                return
        else:
            ostream, copy = audio[packet.stream.index]
            if copy:
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                if packet.dts <= last_dts.get(ostream.index, packet.dts - 1):  # muxers refuse these
                    skipped["out-of-order audio"] += 1
                    continue
            # Copied packets are decoded too: a corrupt one copied would leave an output that does not decode.
            frames = _decode_packet(packet)
            if frames is None:
                skipped["corrupt audio"] += 1
                continue
            if copy:
                last_dts[ostream.index] = packet.dts
            items = [("a", packet, ostream)] if copy else [("af", _in_samples(f), ostream) for f in frames]
            for item in items:
                if not _put(q, item, stop):
                    return
    emit(True)
    if skipped:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items())
        print(f"rtstyle: warning: skipped {counts} packet(s), as players do", file=sys.stderr)


def _decode_packet(packet: av.Packet) -> list | None:
    """The packet's frames; None if the decoder rejects it as corrupt (the caller skips it)."""
    try:
        return packet.decode()
    except av.error.InvalidDataError:
        return None


def _in_samples(frame: av.AudioFrame) -> av.AudioFrame:
    """Timestamps in samples, so the encoder's re-chunking into its frame size keeps them exact."""
    if frame.pts is not None:
        frame.pts = round(frame.pts * frame.time_base * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
    return frame


def _infer(backend: Backend, meta: dict, options: Options, batch: int, q_in: queue.Queue, q_out: queue.Queue,
           stop: threading.Event, timing: list) -> None:
    """Run the net on batches of frames; audio items pass straight through."""
    frames: list = []

    def flush() -> bool:
        t0 = time.perf_counter()
        out = process(backend, meta, np.stack([f for f, _ in frames]), options)
        timing[0] += time.perf_counter() - t0
        ok = all(_put(q_out, ("v", y, t), stop) for y, (_, t) in zip(out, frames))
        frames.clear()
        return ok

    while (item := _get(q_in, stop)) is not None:
        if item[0] == "v":
            frames.append(item[1:])
            if len(frames) >= batch and not flush():
                return
        elif not _put(q_out, item, stop):
            return
    if frames:
        flush()


def yuv_matrix(first: av.VideoFrame) -> int:
    """The YUV matrix (AVColorSpace) of the output: the source's, or BT.601 (what FFmpeg converts
    with by default) for a source coded in RGB (PNG, QuickTime RLE...): tagging YUV as RGB would make
    players show wrong colours, and VP9 refuses it."""
    return BT601 if first.colorspace == RGB_MATRIX else first.colorspace


def _add_video_stream(out, vstream, first: av.VideoFrame, codec: str, crf: int | None, height: int, width: int):
    if codec not in av.codecs_available:
        raise RtstyleError(f"video encoder {codec!r} is not available in this PyAV build")
    try:
        ovs = out.add_stream(codec, rate=vstream.average_rate or vstream.guessed_rate or 25)
    except (ValueError, av.error.FFmpegError) as e:
        raise RtstyleError(f"cannot encode {codec} into {out.format.name}: {e}") from None
    ovs.width, ovs.height, ovs.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
    ovs.time_base = ovs.codec_context.time_base = vstream.time_base
    # The source's colour tags: frames are converted back to YUV with the matrix they were decoded with.
    cc = ovs.codec_context
    cc.colorspace, cc.color_primaries, cc.color_trc = yuv_matrix(first), first.color_primaries, first.color_trc
    if codec in ("libx264", "libx265"):
        ovs.options = {"preset": "veryfast", "crf": str(crf if crf is not None else 18)}
    elif codec.startswith("libvpx"):
        ovs.options = {"deadline": "realtime", "cpu-used": "8", "b": "0", "crf": str(crf if crf is not None else 30)}
    elif crf is not None:  # hardware encoders (nvenc) call their constant-quality mode cq
        ovs.options = {"cq" if "nvenc" in codec else "crf": str(crf)}
    side = first.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX) if first.side_data else None
    if side is not None:
        ovs.set_display_matrix(np.frombuffer(bytes(side), dtype="<i4").tolist())
    return ovs


def _add_audio_streams(inp, out) -> dict:
    """{input stream index: (output stream, copy?)}: copy when the container takes the codec, else AAC."""
    streams = {}
    allowed = {"mp4": MP4_AUDIO, "mov": MOV_AUDIO}.get(out.format.name)
    for s in inp.streams.audio:
        name = s.codec_context.codec.canonical_name
        if name in out.supported_codecs and (allowed is None or name in allowed):
            streams[s.index] = (out.add_stream_from_template(s), True)
        else:
            rate = s.codec_context.sample_rate or 48000
            layout = s.codec_context.layout.name if s.codec_context.layout else "stereo"
            codec = "libopus" if out.format.name == "webm" else "aac"
            streams[s.index] = (out.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout=layout), False)
    return streams


def run_video(src: Path, dst: Path, backend: Backend, meta: dict, options: Options, codec: str | None = None,
              crf: int | None = None, batch: int = 1, overwrite: bool = False, progress: bool = True) -> Report:
    """Process every frame of ``src`` into ``dst``. On Ctrl-C the frames done so far are finalised
    into a playable ``dst`` and KeyboardInterrupt is re-raised."""
    from tqdm import tqdm

    fmt = CONTAINERS.get(dst.suffix.lower())
    if fmt is None:
        why = "AVI cannot keep the frames' timestamps" if dst.suffix.lower() == ".avi" else "unknown container"
        raise RtstyleError(f"output {dst}: {why}; use one of {', '.join(CONTAINERS)}")
    if batch < 1:
        raise RtstyleError(f"--batch must be at least 1, not {batch}")
    check_output(src, dst, overwrite)
    codec = VIDEO_CODECS.get(codec or ("vp9" if fmt == "webm" else "h264"), codec)
    first = _probe_first_frame(src)
    height, width = output_shape(meta, first.height, first.width, options)

    inp = open_video(src)
    vstream = inp.streams.video[0]
    vstream.thread_type = "AUTO"
    dropped = [s for s in inp.streams if s.type not in ("video", "audio")] + list(inp.streams.video[1:])
    if dropped:
        kinds = ", ".join(sorted({s.type for s in dropped}))
        print(f"rtstyle: warning: dropping {len(dropped)} stream(s) ({kinds}) not supported in the output",
              file=sys.stderr)
    stop, interrupted, timing, done = threading.Event(), threading.Event(), [0.0], 0
    aborted, closing = threading.Event(), threading.Event()
    q_dec, q_net = queue.Queue(QUEUE_FRAMES), queue.Queue(QUEUE_FRAMES)

    def on_sigint(signum, frame):
        """Ctrl-C stops the stages and lets this thread finish the frames in hand and finalise the
        file: a KeyboardInterrupt between encoding and muxing would lose packets. A second Ctrl-C
        stops at once (after the batch the net is running) and leaves no file, unless the file is
        already being closed (milliseconds)."""
        if interrupted.is_set() and not closing.is_set():
            aborted.set()
            raise KeyboardInterrupt
        interrupted.set()
        stop.set()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    t0 = time.perf_counter()
    try:
        with atomic_output(dst, keep_partial_on_interrupt=True) as tmp:
            # MP4 edit lists count in the movie timescale (default 1000): use the video's, so a
            # stream that does not start at 0 keeps its exact first timestamp.
            mux_options = {"movie_timescale": str(vstream.time_base.denominator)} if fmt in ("mp4", "mov") else {}
            out = av.open(str(tmp), "w", format=fmt, options=mux_options)
            stages: list[_Stage] = []
            try:
                ovs = _add_video_stream(out, vstream, first, codec, crf, height, width)
                audio = _add_audio_streams(inp, out)
                stages = [_Stage(lambda: _decode(inp, vstream, audio, q_dec, stop), q_dec, stop),
                          _Stage(lambda: _infer(backend, meta, options, batch, q_dec, q_net, stop, timing), q_net, stop)]
                for stage in stages:
                    stage.start()
                total = vstream.frames or (round(inp.duration / 1e6 * vstream.average_rate)
                                           if inp.duration and vstream.average_rate else None)  # Matroska: no count
                bar = tqdm(total=total, unit="frame", disable=not progress, file=sys.stderr)
                try:
                    while (item := _get(q_net, stop)) is not None:
                        if item[0] == "v":
                            rgb = item[1]
                            if rgb.shape[0] % 2 or rgb.shape[1] % 2:
                                rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
                            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                            frame.pts, frame.time_base, frame.colorspace = item[2], vstream.time_base, yuv_matrix(first)
                            out.mux(ovs.encode(frame))
                            done += 1
                            bar.update()
                        elif item[0] == "a":
                            item[1].stream = item[2]
                            out.mux(item[1])
                        else:
                            out.mux(item[2].encode(item[1]))
                    if not interrupted.is_set():
                        bar.total = bar.n  # the estimate (or the header's count) was off: end at 100%
                finally:
                    stop.set()
                    bar.close()
                    for stage in stages:
                        stage.join()
                errors = [s.error for s in stages if s.error is not None]
                if errors and not interrupted.is_set():
                    raise errors[0]
                for s in [ovs, *(s for s, copy in audio.values() if not copy)]:
                    out.mux(s.encode())
            finally:
                closing.set()
                if aborted.is_set():  # the stages stop within one batch: none may outlive the containers
                    for stage in stages:
                        if stage.ident is not None:
                            stage.finished.wait()
                out.close()
                inp.close()
                if aborted.is_set():
                    tmp.unlink(missing_ok=True)  # not finalised: no file rather than a broken one
            if interrupted.is_set():
                if not done:
                    tmp.unlink()  # nothing worth keeping: leave no file
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if aborted.is_set():
            print(f"\nrtstyle: interrupted twice: stopped at once; {dst} not written", file=sys.stderr)
        else:
            print(f"\nrtstyle: interrupted: {dst} holds the first {done} frames and plays" if done else
                  "\nrtstyle: interrupted before the first frame; nothing written", file=sys.stderr)
        raise
    except av.error.FFmpegError as e:
        raise RtstyleError(f"video processing failed: {e}") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return Report(done, time.perf_counter() - t0, timing[0])


# ---------------------------------------------------------------- commands

def _model_name(model: str, kind: str) -> str:
    from rtstyle.models import resolve

    return resolve(model, kind).stem


def video_command(src: str, output: str | None, model: str, kind: str = "style", backend: str = "auto",
                  precision: str = "fp32", device: str | None = None, options: Options | None = None,
                  codec: str | None = None, crf: int | None = None, batch: int = 1, overwrite: bool = False) -> Report:
    """``rtstyle video`` / ``rtstyle upscale VIDEO``: validate everything cheap first, then load and run."""
    src_path = Path(src)
    open_video(src_path).close()
    dst = Path(output) if output else default_output(src_path, _model_name(model, kind), ".mp4")
    check_output(src_path, dst, overwrite)
    net, meta = load(model, kind, backend, precision, device)
    report = run_video(src_path, dst, net, meta, options or Options(), codec, crf, batch, overwrite)
    print(f"rtstyle: wrote {dst}: {report}", file=sys.stderr)
    return report


def images_command(inputs: list[str], output: str | None, model: str, kind: str = "style", backend: str = "auto",
                   precision: str = "fp32", device: str | None = None, options: Options | None = None,
                   overwrite: bool = False) -> list[Path]:
    """``rtstyle stylize`` / ``rtstyle upscale IMAGE``."""
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise RtstyleError(f"input not found: {p}")
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTS and is_video(p):
            raise RtstyleError(f"{p} is a video: use `rtstyle video` (or `rtstyle upscale` for SR)")
    net, meta = load(model, kind, backend, precision, device)
    written = run_images(paths, Path(output) if output else None, net, meta, options or Options(), overwrite,
                         name=_model_name(model, kind))
    print(f"rtstyle: wrote {written[0]}" + (f" and {len(written) - 1} more" if len(written) > 1 else ""),
          file=sys.stderr)
    return written


def upscale_command(src: str, output: str | None, model: str, backend: str = "auto", precision: str = "fp32",
                    device: str | None = None, options: Options | None = None, codec: str | None = None,
                    crf: int | None = None, batch: int = 1, overwrite: bool = False) -> None:
    """Super-resolution of one image or video, decided by the file's content, not its name."""
    common = dict(backend=backend, precision=precision, device=device, options=options, overwrite=overwrite)
    if is_video(Path(src)):
        video_command(src, output, model, "sr", codec=codec, crf=crf, batch=batch, **common)
    else:
        images_command([src], output, model, "sr", **common)
