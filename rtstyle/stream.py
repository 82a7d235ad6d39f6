"""Video and image files through a transform net.

Video: one thread decodes (PyAV, threaded decoding), one runs the net (``rtstyle.frames``), and the
calling thread encodes and muxes (``rtstyle.writer``); bounded queues between them give
back-pressure, so the slowest stage (the net, ideally) sets the pace. Everything the user did not
ask to change is kept: every frame and its timestamp, the rotation, the audio (copied when the
container takes it).

Read top to bottom: the commands (``video_command``...), then ``run_video`` and its pieces, then
the pipeline's stages.
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

from rtstyle import yuv
from rtstyle.errors import RtstyleError, progress as progress_bar, say, unreadable_input, warn
from rtstyle.frames import Options, output_shape, process
from rtstyle.imageio import (IMAGE_EXTS, encode_image, image_output, list_images, read_image, read_stdin_image,
                             write_image, write_stdout_png)
from rtstyle.interrupt import Interruption, graceful, received
from rtstyle.interrupt import name as signal_name
from rtstyle.models import Model, model_label, open_model, read_meta, resolve
from rtstyle.outputs import atomic_outputs, check_output, check_outputs
from rtstyle.stabilize import Stabilizer
from rtstyle.timeline import Monotonic, Timeline
from rtstyle.writer import VideoWriter, atomic_video, check_encoder, container_format, encoder_name, quality_options

# Audio codecs the MP4/MOV muxers take without "experimental" flags; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"}
MOV_AUDIO = MP4_AUDIO - {"flac", "opus"}  # FFmpeg writes these only in MP4
QUEUE_FRAMES = 8  # frames buffered between stages: enough to absorb jitter, little memory
REORDER = 8       # decode-order timestamps (AVI) are sorted over this many frames


@dataclass
class Report:
    frames: int
    seconds: float
    net_seconds: float
    output: Path | None = None
    model: str | None = None
    backend: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def net_fps(self) -> float:
        return self.frames / self.net_seconds if self.net_seconds else 0.0

    def as_dict(self) -> dict:
        """What ``--json`` prints."""
        return {"output": str(self.output) if self.output else None, "model": self.model, "backend": self.backend,
                "frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "net_fps": round(self.net_fps, 3)}

    def __str__(self) -> str:
        eff = f", efficiency {self.fps / self.net_fps:.0%}" if self.net_fps else ""
        return (f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.1f} fps end to end, "
                f"net {self.net_fps:.1f} fps{eff}")


# ---------------------------------------------------------------- commands

def video_command(src: str, output: str | None, model: str, kind: str = "style", backend: str = "auto",
                  precision: str = "fp32", device: str | None = None, options: Options | None = None,
                  codec: str | None = None, crf: int | None = None, batch: int = 1, overwrite: bool = False) -> Report:
    """``rtstyle video`` / ``rtstyle upscale VIDEO``: validate everything cheap first, then load and run."""
    src_path = Path(src)
    first = probe(src_path)
    path = resolve(model, kind)
    dst = Path(output) if output else default_output(src_path, model_label(model, path), ".mp4")
    check_video_output(src_path, dst, batch, overwrite, codec, crf)
    opened = open_model(model, kind, backend, device, precision)
    report = transcode(src_path, dst, opened, options or Options(), first, codec, crf, batch, overwrite=overwrite)
    report.output, report.model, report.backend = dst, opened.name, opened.backend.name
    say(f"wrote {dst}: {report}")
    return report


def images_command(inputs: list[str], output: str | None, model: str, kind: str = "style", backend: str = "auto",
                   precision: str = "fp32", device: str | None = None, options: Options | None = None,
                   overwrite: bool = False) -> dict:
    """``rtstyle stylize`` / ``rtstyle upscale IMAGE``; ``-`` is stdin (input) or stdout (output).
    Returns what ``--json`` prints: the outputs, the model, the backend."""
    if "-" in inputs or output == "-":
        return _stdio_image(inputs, output, model, kind, backend, precision, device, options or Options(), overwrite)
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise unreadable_input(p)
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTS and is_video(p):
            raise RtstyleError(f"{p} is a video: use `rtstyle video` (or `rtstyle upscale` for SR)")
    out = Path(output) if output else None
    label = model_label(model, resolve(model, kind))
    jobs = image_jobs(paths, out, label)
    check_outputs(jobs, overwrite)  # before loading anything
    opened = open_model(model, kind, backend, device, precision, frames=len(jobs))
    t0 = time.perf_counter()
    written = run_images(paths, out, opened, options or Options(), overwrite, name=label)
    say(f"wrote {written[0]}" + (f" and {len(written) - 1} more" if len(written) > 1 else ""))
    return {"outputs": [str(p) for p in written], "model": opened.name, "backend": opened.backend.name,
            "seconds": round(time.perf_counter() - t0, 3)}


def _stdio_image(inputs: list[str], output: str | None, model: str, kind: str, backend: str, precision: str,
                 device: str | None, options: Options, overwrite: bool) -> dict:
    """One image from stdin (``-``) or a file, to stdout (``-o -``, PNG) or a file."""
    if len(inputs) != 1:
        raise RtstyleError("- (standard input) takes one image, alone")
    src = inputs[0]
    rgb = read_stdin_image() if src == "-" else read_image(src)
    dest = image_output(src, output, lambda p: default_output(p, model_label(model, resolve(model, kind))), overwrite)
    opened = open_model(model, kind, backend, device, precision, frames=1)
    t0 = time.perf_counter()
    result = process(opened, rgb[None], options)[0]
    if dest is None:
        write_stdout_png(result)
    else:
        write_image(dest, result, overwrite)
        say(f"wrote {dest}")
    return {"outputs": [str(dest) if dest else "-"], "model": opened.name, "backend": opened.backend.name,
            "seconds": round(time.perf_counter() - t0, 3)}


def upscale_command(src: str, output: str | None, model: str, backend: str = "auto", precision: str = "fp32",
                    device: str | None = None, options: Options | None = None, codec: str | None = None,
                    crf: int | None = None, batch: int = 1, overwrite: bool = False,
                    scale: int | None = None) -> Report | dict:
    """Super-resolution of one image or video, decided by the file's content, not its name.

    ``scale``, when given, must be the model's (checked from its card, before anything is loaded)."""
    if src != "-" and not (Path(src).is_file() or Path(src).is_dir()):  # (a pipe must not be opened to look inside)
        raise unreadable_input(Path(src))
    path = resolve(model, "sr")
    if scale is not None and read_meta(path)["arch"].get("scale") != scale:
        raise RtstyleError(f"model {model} does not upscale x{scale}; drop --scale or pick another --model")
    common = dict(backend=backend, precision=precision, device=device, options=options, overwrite=overwrite)
    if src != "-" and is_video(Path(src)):
        return video_command(src, output, str(path), "sr", codec=codec, crf=crf, batch=batch, **common)
    return images_command([src], output, str(path), "sr", **common)


def default_output(src: Path, name: str, suffix: str | None = None) -> Path:
    """``in.mp4`` styled with ``muse`` -> ``in.muse.mp4`` beside it."""
    return src.with_name(f"{src.stem}.{name}{suffix if suffix is not None else src.suffix}")


def is_video(path: Path) -> bool:
    """Decided by content: a file PyAV opens as a moving-picture container (not a still-image
    demuxer). An audio file with cover art counts: the video command then says what it is."""
    try:
        with av.open(str(path), metadata_errors="replace") as c:
            still = c.format.name == "image2" or c.format.name.endswith("_pipe")
            return bool(c.streams.video) and not still
    except (av.error.FFmpegError, UnicodeDecodeError):
        return False


# ---------------------------------------------------------------- images

def run_images(inputs: list[Path], output: Path | None, model: Model, options: Options,
               overwrite: bool = False, progress: bool = True, name: str | None = None) -> list[Path]:
    """Process image files and folders of images. Default output: ``STEM.NAME.EXT`` beside each file;
    a folder ``DIR`` goes to ``DIR.NAME/``. With several images, ``output`` is a folder.

    All or nothing: every output is checked before the first image is read, written to a temporary
    file, and published once all are done; an unreadable image (or Ctrl-C) leaves every
    destination as it was, so the rerun needs no ``--overwrite``."""
    jobs = check_outputs(image_jobs(inputs, output, name or model.name), overwrite)
    for _, dest in jobs:
        if dest.suffix.lower() not in IMAGE_EXTS:
            raise RtstyleError(f"output {dest} needs an image extension ({', '.join(IMAGE_EXTS)})")
    with atomic_outputs(overwrite) as batch:
        for src, dest in progress_bar(jobs, unit="image", disable=not progress or len(jobs) < 2):
            data = encode_image(process(model, read_image(src), options), dest.suffix)
            batch.path(dest).write_bytes(data)
    return [dest for _, dest in jobs]


def image_jobs(inputs: list[Path], output: Path | None, name: str) -> list[tuple[Path, Path]]:
    """(source, destination) of every image to process."""
    jobs: list[tuple[Path, Path]] = []
    for src in inputs:
        if src.is_dir():
            files = list_images(src)
            if not files:
                raise RtstyleError(f"no images in folder {src}")
            folder = src.resolve()  # `.` and `..` have a name only once resolved
            if output is None and folder.name == "":
                raise RtstyleError(f"{src} has no name to derive an output folder from; pass -o FOLDER")
            root = output or folder.with_name(f"{folder.name}.{name}")
            jobs += [(f, root / f.relative_to(src)) for f in files]
        elif src.is_file():
            many = len(inputs) > 1 or (output is not None and output.is_dir())
            dest = (output / src.name if many else output) if output else default_output(src, name)
            jobs.append((src, dest))
        else:
            raise unreadable_input(src)
    return jobs


# ---------------------------------------------------------------- video

def run_video(src: Path, dst: Path, model: Model, options: Options, codec: str | None = None,
              crf: int | None = None, batch: int = 1, overwrite: bool = False, progress: bool = True,
              device_yuv: bool | None = None) -> Report:
    """Process every frame of ``src`` into ``dst`` (checked first). On Ctrl-C the frames done so far
    are finalised into a playable ``dst`` and KeyboardInterrupt is re-raised. ``device_yuv``: convert
    YUV to RGB on the inference device (``rtstyle.yuv``; default: on CUDA)."""
    check_video_output(src, dst, batch, overwrite, codec, crf)
    return transcode(src, dst, model, options, probe(src), codec, crf, batch, progress, device_yuv, overwrite)


def check_video_output(src: Path, dst: Path, batch: int, overwrite: bool, codec: str | None = None,
                       crf: int | None = None) -> None:
    """Everything about the output that can be refused before any work: container, encoder and
    --crf, --batch, overwriting."""
    check_output(src, dst, overwrite)
    check_encoder(codec, crf, container_format(dst))
    if batch < 1:
        raise RtstyleError(f"--batch must be at least 1, not {batch}")


def open_video(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise unreadable_input(path)
    try:
        c = av.open(str(path), metadata_errors="replace")  # a damaged tag is not worth refusing the video
    except av.error.FFmpegError as e:
        raise RtstyleError(f"{path} is not a readable video ({e.strerror or e})") from None
    if not c.streams.video:
        c.close()
        raise RtstyleError(f"{path} has no video stream")
    if video_stream(c) is None:
        c.close()
        raise RtstyleError(f"{path} is an audio file: its only picture is cover art, not a video")
    return c


def video_stream(c: av.container.InputContainer) -> av.VideoStream | None:
    """The video to process: the first video stream that is not a still attached to audio (cover
    art: an MP3's or M4A's picture, which demuxers list as a one-frame video stream)."""
    return next((s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def probe(path: Path) -> av.VideoFrame:
    """The first decodable frame (a readable video is checked by finding it): its size and display
    matrix decide the output stream's. The pipeline opens the file afresh: seeking back is not
    exact in every container, and the first frame must not be lost."""
    with open_video(path) as c:
        try:
            for frame in c.decode(video_stream(c)):
                return frame
        except av.error.FFmpegError as e:
            raise RtstyleError(f"{path}: cannot decode video ({e.strerror or e})") from None
    raise RtstyleError(f"{path} has no decodable video frames")


def transcode(src: Path, dst: Path, model: Model, options: Options, first: av.VideoFrame, codec: str | None = None,
              crf: int | None = None, batch: int = 1, progress: bool = True, device_yuv: bool | None = None,
              overwrite: bool = False) -> Report:
    """The pipeline from ``src`` to an atomically published ``dst``; the output was checked by the
    caller (and is checked again when published: another run may have written it meanwhile)."""
    fmt = container_format(dst)
    inp = open_video(src)
    vstream = video_stream(inp)
    vstream.thread_type = "AUTO"
    _warn_dropped(inp, vstream)
    pipe = _Pipeline()
    interrupt = Interruption(on_request=pipe.stop.set)
    height, width = output_shape(model, first.height, first.width, options)
    encoder = encoder_name(codec, fmt)
    t0 = time.perf_counter()
    try:
        with graceful(interrupt):
            with atomic_video(dst, fmt, _mux_options(fmt, vstream), overwrite) as (writer, tmp):
                try:
                    writer.add_video(encoder, frame_rate(inp, vstream), width + width % 2,
                                     height + height % 2, vstream.time_base, quality_options(encoder, crf), like=first,
                                     sar=vstream.sample_aspect_ratio)
                    audio = _add_audio_streams(inp, writer)
                    writer.container.start_encoding()  # the header: output time bases are final from here
                    pipe.start(inp, vstream, audio, model, options, batch,
                               yuv.use_device_yuv(model.backend.device, device_yuv))
                    _encode(writer, pipe, _total_frames(inp, vstream), progress, interrupt)
                    writer.finish()
                finally:
                    _close(pipe, interrupt, writer, inp, tmp)
                if interrupt.requested.is_set():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        _say_interrupted(dst, pipe.done, interrupt)
        raise
    except av.error.FFmpegError as e:
        raise RtstyleError(f"video processing failed: {e}") from None
    return Report(pipe.done, time.perf_counter() - t0, pipe.timing[0])


def frame_rate(inp, vstream) -> Fraction:
    """The video's frame rate as ffmpeg takes it: a raw elementary stream (H.264, HEVC, MPEG-2 ...)
    has no timestamps, and its rate is the bitstream's (H.264 VUI timing), which FFmpeg's guess
    reads while the demuxer's average is its 25 fps default."""
    raw = inp.format.flags & av.format.Flags.no_timestamps.value
    rates = (vstream.guessed_rate, vstream.average_rate) if raw else (vstream.average_rate, vstream.guessed_rate)
    return next((Fraction(r) for r in rates if r), Fraction(25))


def _mux_options(fmt: str, vstream) -> dict:
    """MP4 edit lists count in the movie timescale (default 1000): use the video's, so a stream that
    does not start at 0 keeps its exact first timestamp."""
    return {"movie_timescale": str(vstream.time_base.denominator)} if fmt in ("mp4", "mov") else {}


def _warn_dropped(inp, vstream) -> None:
    dropped = [s for s in inp.streams if s.type != "audio" and s is not vstream]
    if dropped:
        kinds = ", ".join(sorted({"cover art" if s.disposition & av.stream.Disposition.attached_pic else s.type
                                  for s in dropped}))
        warn(f"dropping {len(dropped)} stream(s) ({kinds}) not supported in the output")


def _total_frames(inp, vstream) -> int | None:
    """The frame count for the progress bar: the header's, else estimated (Matroska has no count)."""
    if vstream.frames:
        return vstream.frames
    return round(inp.duration / 1e6 * vstream.average_rate) if inp.duration and vstream.average_rate else None


def _add_audio_streams(inp, writer: VideoWriter) -> dict:
    """{input stream index: (output stream, copy?)} for every audio stream, wherever it is in the
    file's stream order: copied when the container takes the codec, else re-encoded (AAC; Opus in WebM)."""
    out = writer.container
    streams = {}
    allowed = {"mp4": MP4_AUDIO, "mov": MOV_AUDIO}.get(out.format.name)
    for s in inp.streams.audio:
        if not _decodable(s):
            continue
        name = s.codec_context.codec.canonical_name
        if name in out.supported_codecs and (allowed is None or name in allowed):
            streams[s.index] = (out.add_stream_from_template(s), True)
        else:
            rate = s.codec_context.sample_rate or 48000
            layout = s.codec_context.layout.name if s.codec_context.layout else "stereo"
            codec = "libopus" if out.format.name == "webm" else "aac"
            ostream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout=layout)
            writer.add_encoder(ostream)
            streams[s.index] = (ostream, False)
    return streams


def _decodable(stream) -> bool:
    """Whether an audio track's decoder opens: one whose header is damaged (its codec setup, Vorbis's
    say) would be copied into a track no player opens. It is dropped with a warning."""
    try:
        stream.codec_context.open()
        return True
    except av.error.FFmpegError as e:
        warn(f"dropping audio track {stream.index}: it cannot be decoded ({e.strerror or e})")
        return False


def _encode(writer: VideoWriter, pipe: _Pipeline, total: int | None, progress: bool, interrupt: Interruption) -> None:
    """Mux what the stages deliver, in order: video frames encoded, audio packets copied or re-encoded."""
    bar = progress_bar(total=total, unit="frame", disable=not progress)
    order, moved = Monotonic(strict=writer.container.format.name not in ("matroska", "webm")), 0
    try:
        while (item := _get(pipe.out, pipe.stop)) is not None:
            if item[0] == "v":
                writer.write(item[1], item[2])
                pipe.done += 1
                bar.update()
            elif item[0] == "a":
                item[1].stream = item[2]
                if order.fix(item[1], item[2].time_base):
                    moved += 1
                writer.mux(item[1])
            else:
                writer.mux(item[2].encode(item[1]))
        if not interrupt.requested.is_set():
            bar.total = bar.n  # the estimate (or the header's count) was off: end at 100%
    finally:
        pipe.stop.set()
        bar.close()
        pipe.join()
    if moved:
        warn(f"moved {moved} copied audio packet(s) whose timestamps went back or repeated "
             "just after their predecessors, as ffmpeg does")
    errors = [s.error for s in pipe.stages if s.error is not None]
    if errors and not interrupt.requested.is_set():
        raise errors[0]


def _close(pipe: _Pipeline, interrupt: Interruption, writer: VideoWriter, inp, tmp: Path) -> None:
    """Close both files (no stage may outlive them) and leave no file that is not worth keeping."""
    interrupt.closing.set()
    if interrupt.aborted.is_set():  # the stages stop within one batch
        pipe.wait_finished()
    writer.close()
    inp.close()
    if interrupt.aborted.is_set() or (interrupt.requested.is_set() and not pipe.done):
        tmp.unlink(missing_ok=True)  # not finalised, or nothing in it: no file rather than a broken one


def _say_interrupted(dst: Path, done: int, interrupt: Interruption) -> None:
    how = "" if received() == signal.SIGINT else f" ({signal_name()})"
    if interrupt.aborted.is_set():
        print(f"\nrtstyle: interrupted twice{how}: stopped at once; {dst} not written", file=sys.stderr)
    else:
        print(f"\nrtstyle: interrupted{how}: {dst} holds the first {done} frames and plays" if done else
              f"\nrtstyle: interrupted{how} before the first frame; nothing written", file=sys.stderr)


# ---------------------------------------------------------------- pipeline stages

class _Pipeline:
    """The decode and inference threads, the queues between them and the calling thread, and the
    event that stops them all."""

    def __init__(self):
        self.stop = threading.Event()
        self.decoded, self.out = queue.Queue(QUEUE_FRAMES), queue.Queue(QUEUE_FRAMES)
        self.stages: list[_Stage] = []
        self.timing, self.done = [0.0], 0  # seconds in the net; frames encoded

    def start(self, inp, vstream, audio: dict, model: Model, options: Options, batch: int, planes: bool) -> None:
        self.stages = [_Stage(lambda: _decode(inp, vstream, audio, self.decoded, self.stop, planes), self.decoded,
                              self.stop),
                       _Stage(lambda: _infer(model, options, batch, self.decoded, self.out, self.stop, self.timing),
                              self.out, self.stop)]
        for stage in self.stages:
            stage.start()

    def join(self) -> None:
        for stage in self.stages:
            stage.join()

    def wait_finished(self) -> None:
        for stage in self.stages:
            if stage.ident is not None:
                stage.finished.wait()


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


def _decode(inp, vstream, audio: dict, q: queue.Queue, stop: threading.Event, planes: bool = False) -> None:
    """Demux and decode, every packet moved onto the output's timeline (``rtstyle.timeline``): video
    frames as RGB arrays (or YUV planes, ``planes``) with display timestamps; audio packets to copy
    or frames to re-encode, in file order."""
    timeline, skipped = Timeline(inp), Counter()
    frame_time = 1 / frame_rate(inp, vstream)
    video, sound = _Reorder(vstream, frame_time, q, stop, planes), _Audio(audio, q, stop, skipped)
    for packet in inp.demux([vstream, *(inp.streams[i] for i in audio)]):
        if stop.is_set():
            return
        timeline.shift(packet, frame_time if packet.stream is vstream else Fraction(0))
        if not (video.add(packet, skipped) if packet.stream is vstream else sound.add(packet)):
            return
    video.emit(final=True)
    if skipped:
        counts = ", ".join(f"{n} {why}" for why, n in skipped.items())
        warn(f"skipped {counts} packet(s), as players do")


class _Reorder:
    """Video frames to the next stage in display order: decode-order timestamps (AVI) are sorted over
    ``REORDER`` frames; a frame without a timestamp (raw streams) gets the next one at the frame rate."""

    def __init__(self, vstream, frame_time: Fraction, q: queue.Queue, stop: threading.Event, planes: bool):
        self.q, self.stop, self.planes = q, stop, planes
        self.heap, self.pending, self.last, self.guess = [], deque(), None, 0
        self.step = max(1, round(frame_time / vstream.time_base))

    def add(self, packet: av.Packet, skipped: Counter) -> bool:
        frames = _decode_packet(packet)
        if frames is None:
            skipped["corrupt video"] += 1
        for frame in frames or []:
            t = frame.pts if frame.pts is not None else frame.dts
            t = self.guess if t is None else t
            self.guess = max(self.guess, t + self.step)
            heapq.heappush(self.heap, t)
            self.pending.append(yuv.host_frame(frame, self.planes))
        return self.emit(final=False)

    def emit(self, final: bool) -> bool:
        while self.pending and (final or len(self.pending) > REORDER):
            t = heapq.heappop(self.heap)
            self.last = t = t if self.last is None or t > self.last else self.last + 1
            if not _put(self.q, ("v", self.pending.popleft(), t), self.stop):
                return False
        return True


class _Audio:
    """Audio packets to copy (decoded too: a corrupt one copied would leave an output that does not
    decode) or frames to re-encode, whose timestamps never go back (an overlap at a join is played
    after what precedes it, as the samples of a copied packet are)."""

    def __init__(self, audio: dict, q: queue.Queue, stop: threading.Event, skipped: Counter):
        self.audio, self.q, self.stop, self.skipped = audio, q, stop, skipped
        self.next: dict[int, int] = {}  # per re-encoded stream: the next sample's timestamp

    def add(self, packet: av.Packet) -> bool:
        ostream, copy = self.audio[packet.stream.index]
        if copy and packet.dts is None:  # the demuxer's end-of-stream marker
            return True
        frames = _decode_packet(packet)
        if frames is None:
            self.skipped["corrupt audio"] += 1
            return True
        items = [("a", packet, ostream)] if copy else [("af", self._continuous(f, ostream.index), ostream)
                                                        for f in frames]
        return all(_put(self.q, item, self.stop) for item in items)

    def _continuous(self, frame: av.AudioFrame, index: int) -> av.AudioFrame:
        frame = _in_samples(frame)
        if frame.pts is not None:
            frame.pts = max(frame.pts, self.next.get(index, frame.pts))
            self.next[index] = frame.pts + frame.samples
        return frame


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


def _infer(model: Model, options: Options, batch: int, q_in: queue.Queue, q_out: queue.Queue,
           stop: threading.Event, timing: list) -> None:
    """Run the net on batches of frames; audio items pass straight through."""
    frames: list = []
    stabilizer = Stabilizer() if options.stabilize else None

    def flush() -> bool:
        t0 = time.perf_counter()
        out = process(model, yuv.batch([f for f, _ in frames]), options, stabilizer)
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

