"""Inputs rtstyle must survive: missing, disguised, truncated and corrupted files, odd geometries and
pixel formats, odd stream layouts, broken model files.

Every generator takes a folder and a ``numpy.random.Generator`` and writes its input there; the same
seed always gives the same bytes. ``case(seed)`` picks a generator and a command for one fuzz case,
so a failing case is reproduced from its seed alone.

A ``Sample`` says what a correct run does with the input: ``"output"`` (it must be processed),
``"error"`` (it must be refused) or ``"any"`` (broken data: a complete output of whatever the decoder
recovers, or a clean refusal).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from rtstyle.synth import make_clip, pattern

REAL_CLIPS = ("chaplin.mp4", "fire2.mp4", "megamind.avi", "big_buck_bunny_0_30.webm", "vtest.avi")
# Seconds of each real clip kept in an excerpt (stream copy): about ten frames, so that CI cases stay fast.
EXCERPT_SECONDS = {"chaplin.mp4": 0.4, "fire2.mp4": 0.4, "megamind.avi": 0.4, "big_buck_bunny_0_30.webm": 0.4,
                   "vtest.avi": 1.0}


@dataclass
class Sample:
    path: Path
    expect: str            # "output", "error" or "any"
    note: str = ""
    reference: object = None  # an oracle.Reference built from how the input was made (joined, raw streams)


# ---------------------------------------------------------------- writing clips

def write_clip(path: Path, frames: int = 6, size: tuple[int, int] = (32, 24), codec: str = "libx264",
               pix_fmt: str = "yuv420p", fps: int = 12, audio_tracks: int = 0, vfr_seed: int | None = None,
               rotate: int | None = None, fmt: str | None = None, metadata: dict | None = None) -> Path:
    """A clip of the moving test pattern in any codec/pixel format PyAV encodes, with 0-2 audio tracks.
    (``rtstyle.synth.make_clip`` covers the common case; this one reaches the odd corners.)"""
    width, height = size
    with av.open(str(path), "w", format=fmt) as out:
        out.metadata.update(metadata or {})
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.time_base = v.codec_context.time_base = Fraction(1, 90000) if vfr_seed is not None else Fraction(1, fps)
        if codec == "libx264":
            v.options = {"preset": "ultrafast"}
        if codec == "prores_ks":
            v.options = {"profile": "4444"}
        if rotate:
            v.set_display_rotation(rotate)
        tracks = []
        for i in range(audio_tracks):
            codec_a = {".webm": "libopus", ".avi": "libmp3lame"}.get(path.suffix.lower(), "aac")
            tracks.append(out.add_stream(codec_a, rate=48000, layout="mono" if i == 0 else "stereo"))
        if vfr_seed is not None:
            durations = np.random.default_rng(vfr_seed).uniform(0.5, 2.0, frames) / fps
        else:
            durations = np.full(frames, 1 / fps)
        starts = np.concatenate([[0.0], np.cumsum(durations)])
        for i in range(frames):
            rgb = pattern(i, width, height)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pix_fmt in ("argb", "rgba", "yuva444p10le", "yuva420p"):  # a real alpha channel: a fading ramp
                alpha = np.linspace(0, 255, width * height, dtype=np.float32).reshape(height, width).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(np.dstack([rgb, alpha]), format="rgba")
            frame.pts = round(starts[i] / v.time_base)
            frame.time_base = v.time_base
            out.mux(v.encode(frame))
        out.mux(v.encode())
        for i, track in enumerate(tracks):
            _tone(out, track, starts[-1], 440 * (i + 1))
    return path


def _tone(out, stream, seconds: float, hz: float, start: float = 0.0) -> None:
    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.layout.nb_channels
    total, chunk, offset = int(round(seconds * rate)), stream.codec_context.frame_size or 1024, start
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        wave = (0.2 * np.sin(2 * np.pi * hz * (start + np.arange(n)) / rate)).astype(np.float32)
        fmt = stream.codec_context.format  # the encoder's sample format: planar/packed, float/int16
        samples = np.repeat(wave[None], channels, 0)
        kind = fmt.name.rstrip("p")
        if kind in ("s16", "s32"):
            dtype = np.int16 if kind == "s16" else np.int32
            samples = (samples * np.iinfo(dtype).max).astype(dtype)
        elif kind == "dbl":
            samples = samples.astype(np.float64)
        if not fmt.is_planar:
            samples = samples.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format=fmt.name, layout=stream.codec_context.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, round(offset * rate) + start, Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        _tone(out, out.add_stream("aac", rate=48000, layout="mono"), seconds, 440)
    return path


def write_image(path: Path, size: tuple[int, int], channels: int = 3, depth: int = 8, exif_orientation: int | None = None) -> Path:
    """The test pattern as an image file (gray, RGB or RGBA; 8 or 16 bits), optionally with an EXIF orientation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    rgb = pattern(3, width, height)
    img = {1: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 3: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
           4: np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full((height, width), 128, np.uint8)])}[channels]
    if depth == 16:
        img = img.astype(np.uint16) * 257
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok, path
    data = buf.tobytes()
    if exif_orientation is not None:
        data = _with_exif_orientation(data, exif_orientation)
    path.write_bytes(data)
    return path


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only the orientation tag after the JPEG's SOI marker."""
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01"
            + orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00")
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def trim(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a clip by stream copy (same codecs), cut in decode order so every kept
    frame has its references."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for p in inp.demux([s for s in inp.streams if s.index in streams]):
            if p.dts is None or p.dts * p.time_base > seconds:
                continue
            p.stream = streams[p.stream.index]
            out.mux(p)
    return dst


def excerpt(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a real clip: its leading bytes for AVI (which plays without its index,
    so these are the real muxer's bytes; FFmpeg's AVI muxer refuses some of the codecs these AVIs
    hold), else ``trim``."""
    if src.suffix == ".avi":
        with av.open(str(src)) as c:
            duration = c.duration / 1e6
        data = src.read_bytes()
        dst.write_bytes(data[:int(len(data) * seconds / duration) + 16384])
        return dst
    return trim(src, dst, seconds)


# ---------------------------------------------------------------- stream layouts, timestamps, aspect

def write_layout(path: Path, layout: list[str], frames: int = 6, fps: int = 12, size: tuple[int, int] = (32, 24),
                 fmt: str | None = None, sar: Fraction | None = None, start: float = 0.0,
                 audio_codec: str = "aac") -> Path:
    """A clip whose streams come in the order ``layout`` names them: "video", "audio", "cover"
    (a still marked as an attached picture), "video2" (a second, smaller video) and "subtitle".
    ``start``: the clock's first timestamp in seconds (an MPEG-TS that starts at 10 hours);
    ``sar``: the sample aspect ratio (anamorphic video)."""
    width, height = size
    seconds = frames / fps
    srt = path.with_name("subtitles.srt")  # a subtitle stream is copied from it (encoders need an ASS header)
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nhello\n")
    with av.open(str(path), "w", format=fmt) as out, av.open(str(srt)) as subtitles:
        streams = []
        for kind in layout:
            if kind in ("video", "video2"):
                s = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
                s.width, s.height = (width, height) if kind == "video" else (16, 16)
                s.pix_fmt, s.time_base = "yuv420p", Fraction(1, 90000 if fmt == "mpegts" else fps)
                s.codec_context.time_base = Fraction(1, fps)
                if sar and kind == "video":
                    s.codec_context.sample_aspect_ratio = sar
            elif kind == "audio":
                s = out.add_stream(audio_codec, rate=48000, layout="stereo")
            elif kind == "cover":
                s = out.add_stream("mjpeg")
                s.width, s.height, s.pix_fmt = 16, 16, "yuvj420p"
                s.disposition = av.stream.Disposition.attached_pic
            else:
                s = out.add_stream_from_template(subtitles.streams[0])
            streams.append((kind, s))
        for kind, s in streams:
            if kind == "cover":
                frame = av.VideoFrame.from_ndarray(pattern(0, 16, 16), format="rgb24").reformat(format="yuvj420p")
                frame.pts = 0
                out.mux(s.encode(frame) + s.encode())
            elif kind in ("video", "video2"):
                for i in range(frames):
                    frame = av.VideoFrame.from_ndarray(pattern(i, s.width, s.height), format="rgb24")
                    frame.pts, frame.time_base = round(start * fps) + i, Fraction(1, fps)
                    out.mux(s.encode(frame))
                out.mux(s.encode())
            elif kind == "audio":
                _tone(out, s, seconds, 440, start)
            else:
                for packet in subtitles.demux():
                    if packet.size:
                        packet.stream = s
                        out.mux(packet)
    srt.unlink()
    return path


def write_raw(path: Path, fmt: str, codec: str, frames: int, fps: int) -> Path:
    """A raw elementary stream (no container, no timestamps: the frame rate is in the bitstream)."""
    return write_clip(path, frames=frames, fps=fps, codec=codec, size=(32, 24), fmt=fmt)


def join(parts: list[Path], dst: Path) -> Path:
    """Files joined byte for byte, as ``cat a.ts b.ts > joined.ts`` does."""
    dst.write_bytes(b"".join(p.read_bytes() for p in parts))
    return dst


# ---------------------------------------------------------------- byte-level damage

def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` cut at a random offset."""
    return data[:int(rng.integers(0, len(data)))]


def overwrite_runs(data: bytes, rng: np.random.Generator, runs: int | None = None) -> bytes:
    """``data`` with 1-4 runs of 1-512 random bytes overwritten in its middle 80% (headers and
    trailers mostly intact, so the demuxer reaches the damaged packets)."""
    buf = bytearray(data)
    n = len(buf)
    for _ in range(runs or int(rng.integers(1, 5))):
        length = int(rng.integers(1, 513))
        start = int(rng.integers(n // 10, max(n // 10 + 1, 9 * n // 10 - length)))
        buf[start:start + length] = rng.integers(0, 256, min(length, n - start), dtype=np.uint8).tobytes()
    return bytes(buf)


# ---------------------------------------------------------------- generators

Generator = Callable[[Path, np.random.Generator], Sample]
VIDEO: dict[str, Generator] = {}
IMAGE: dict[str, Generator] = {}


def video(fn: Generator) -> Generator:
    VIDEO[fn.__name__] = fn
    return fn


def image(fn: Generator) -> Generator:
    IMAGE[fn.__name__] = fn
    return fn


def shared_video() -> Path | None:
    root = os.environ.get("RTSTYLE_SHARED")
    folder = Path(root) / "data" / "video" if root else None
    return folder if folder and folder.is_dir() else None


@video
def missing(d: Path, rng) -> Sample:
    return Sample(d / "missing.mp4", "error")


@video
def directory(d: Path, rng) -> Sample:
    (d / "folder.mp4").mkdir()
    return Sample(d / "folder.mp4", "error")


@video
def zero_bytes(d: Path, rng) -> Sample:
    (d / "empty.mp4").write_bytes(b"")
    return Sample(d / "empty.mp4", "error")


@video
def text_as_mp4(d: Path, rng) -> Sample:
    words = ["frame", "video", "hello", "\n", "mdat", "moov", "ftyp", "0123"]
    (d / "notes.mp4").write_text(" ".join(rng.choice(words, int(rng.integers(1, 400)))))
    return Sample(d / "notes.mp4", "error")


@video
def random_bytes(d: Path, rng) -> Sample:
    (d / "noise.mkv").write_bytes(rng.integers(0, 256, int(rng.integers(1, 20000)), dtype=np.uint8).tobytes())
    return Sample(d / "noise.mkv", "any")  # (FFmpeg's probing may find a raw stream in noise)


@video
def jpeg_as_mp4(d: Path, rng) -> Sample:
    """A still image with a video name: processed as a one-frame video, or refused; either is fine."""
    path = write_image(d / "photo.jpg", (int(rng.integers(8, 48)), int(rng.integers(8, 48))))
    return Sample(path.rename(d / "photo.mp4"), "any")


@video
def audio_only(d: Path, rng) -> Sample:
    return Sample(write_audio_only(d / "song.mp4"), "error")


@video
def header_only(d: Path, rng) -> Sample:
    """A valid clip cut inside its container header."""
    suffix = str(rng.choice([".mp4", ".mkv", ".webm"]))
    full = write_clip(d / f"full{suffix}", frames=4, codec="libvpx" if suffix == ".webm" else "libx264")
    data = full.read_bytes()
    full.unlink()
    (d / f"head{suffix}").write_bytes(data[:int(rng.integers(1, 64))])
    return Sample(d / f"head{suffix}", "error")


@video
def one_frame(d: Path, rng) -> Sample:
    return Sample(write_clip(d / "one.mp4", frames=1, audio_tracks=int(rng.integers(0, 2))), "output")


def _geometry(size: tuple[int, int], codec: str = "libx264", pix_fmt: str = "yuv444p", suffix: str = ".mkv") -> Generator:
    def gen(d: Path, rng) -> Sample:
        path = write_clip(d / f"g{size[0]}x{size[1]}{suffix}", frames=int(rng.integers(2, 5)), size=size, codec=codec,
                          pix_fmt=pix_fmt)
        return Sample(path, "output", note=f"{size[0]}x{size[1]} {codec} {pix_fmt}")
    return gen


for _name, _args in {"tiny_1x1": ((1, 1), "ffv1", "yuv444p"), "tiny_2x2": ((2, 2),), "odd_7x13": ((7, 13),),
                     "odd_13x7_png_mov": ((13, 7), "png", "rgb24", ".mov"),
                     "wide_4097x17": ((4097, 17),), "tall_17x257": ((17, 257),)}.items():
    VIDEO[_name] = _geometry(*_args)


@video
def rotated(d: Path, rng) -> Sample:
    angle = int(rng.choice([90, 180, 270]))
    return Sample(make_clip(d / "phone.mp4", frames=4, size=(32, 16), rotate=angle, audio=bool(rng.integers(0, 2))),
                  "output", note=f"rotation {angle}")


def _pix_fmt(codec: str, pix_fmt: str, suffix: str) -> Generator:
    def gen(d: Path, rng) -> Sample:
        path = write_clip(d / f"{pix_fmt}{suffix}", frames=int(rng.integers(2, 6)), size=(24, 16), codec=codec,
                          pix_fmt=pix_fmt, audio_tracks=int(rng.integers(0, 2)))
        return Sample(path, "output", note=f"{codec} {pix_fmt}")
    return gen


for _name, _args in {"yuv420p10le": ("libx264", "yuv420p10le", ".mp4"), "hevc_10bit": ("libx265", "yuv420p10le", ".mkv"),
                     "yuv444p": ("libx264", "yuv444p", ".mp4"), "gray": ("libx264", "gray", ".mkv"),
                     "gray_ffv1": ("ffv1", "gray", ".mkv"), "rgba_qtrle": ("qtrle", "argb", ".mov"),
                     "rgba_prores4444": ("prores_ks", "yuva444p10le", ".mov"), "rgba_png_mov": ("png", "rgba", ".mov"),
                     "mjpeg_avi": ("mjpeg", "yuvj420p", ".avi"), "mpeg4_avi": ("mpeg4", "yuv420p", ".avi"),
                     "vp8_webm": ("libvpx", "yuv420p", ".webm"), "vp9_444_webm": ("libvpx-vp9", "yuv444p", ".webm")}.items():
    VIDEO[_name] = _pix_fmt(*_args)


@video
def vfr(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".mp4", ".mkv", ".mov"]))
    path = write_clip(d / f"vfr{suffix}", frames=int(rng.integers(3, 9)), vfr_seed=int(rng.integers(1 << 30)),
                      audio_tracks=int(rng.integers(0, 2)))
    return Sample(path, "output", note="VFR")


@video
def no_audio(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".mp4", ".mkv", ".mov", ".avi"]))
    return Sample(write_clip(d / f"silent{suffix}", frames=int(rng.integers(2, 7)), codec="mpeg4" if suffix == ".avi" else "libx264"),
                  "output")


@video
def two_audio_tracks(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".mp4", ".mkv", ".mov"]))
    return Sample(write_clip(d / f"dual{suffix}", frames=int(rng.integers(3, 9)), audio_tracks=2), "output")


@video
def bad_metadata(d: Path, rng) -> Sample:
    """A clean clip whose title tag is not valid UTF-8 (PyAV's strict decoding used to raise)."""
    path = write_clip(d / "tagged.mp4", frames=3, metadata={"title": "Q" * 16})
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Q" * 16, bytes(rng.integers(0x80, 0x100, 16, dtype=np.uint8))))
    return Sample(path, "output")


# Stream orders: every audio track must be kept, wherever it is; cover art is not the video.
LAYOUTS = {".mp4": [["audio", "video"], ["audio", "audio", "video"], ["video", "cover", "audio"]],
           ".mov": [["audio", "video"]],
           ".mkv": [["audio", "video"], ["video", "subtitle", "audio"], ["video", "video2", "audio"],
                    ["subtitle", "audio", "video", "audio"], ["video2", "video", "audio"]]}


@video
def stream_order(d: Path, rng) -> Sample:
    suffix = str(rng.choice(sorted(LAYOUTS)))
    layout = LAYOUTS[suffix][int(rng.integers(len(LAYOUTS[suffix])))]
    path = write_layout(d / f"order{suffix}", layout, frames=int(rng.integers(2, 7)))
    return Sample(path, "output", note="streams: " + ", ".join(layout))


@video
def cover_art_audio(d: Path, rng) -> Sample:
    """An MP3 or M4A whose only picture is its cover: an audio file, refused."""
    suffix = str(rng.choice([".mp3", ".m4a"]))
    layout = ["audio", "cover"] if rng.random() < 0.5 else ["cover", "audio"]
    path = write_layout(d / f"song{suffix}", layout, fmt="mp3" if suffix == ".mp3" else "mp4",
                        audio_codec="libmp3lame" if suffix == ".mp3" else "aac")
    return Sample(path, "error", note="cover art only")


@video
def repeated_audio_timestamps(d: Path, rng) -> Sample:
    """Matroska audio whose millisecond timestamps repeat every few packets (what
    TrueHD's 0.83 ms frames rounded to milliseconds give; this PyAV has no TrueHD encoder): every
    packet is audio a player plays."""
    clean = write_clip(d / "clean.mkv", frames=int(rng.integers(4, 10)), audio_tracks=1)
    every = int(rng.integers(2, 7))
    dst = d / "repeats.mkv"
    with av.open(str(clean)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        audio_seen, last = 0, None
        for packet in inp.demux():
            if not packet.size:  # (Matroska video has no decode timestamps)
                continue
            if packet.stream.type == "audio":
                audio_seen += 1
                if audio_seen % every == 0 and last is not None:
                    packet.dts = packet.pts = last  # (the muxer refuses one that goes back)
                last = packet.dts
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    clean.unlink()
    return Sample(dst, "output", note=f"every {every}th audio packet at its predecessor's time")


@video
def anamorphic(d: Path, rng) -> Sample:
    sar = Fraction(str(rng.choice(["8/9", "32/27", "4/3", "10/11", "40/33", "64/45", "2/1"])))
    suffix = str(rng.choice([".mp4", ".mkv", ".mov"]))
    path = write_layout(d / f"anamorphic{suffix}", ["video", "audio"] if rng.random() < 0.5 else ["video"],
                        frames=int(rng.integers(2, 6)), sar=sar)
    return Sample(path, "output", note=f"SAR {sar}")


@video
def ts_clock(d: Path, rng) -> Sample:
    """An MPEG-TS whose clock does not start near 0: at 10 hours, or just before the 33-bit
    timestamps wrap (26.5 hours), so they wrap inside the clip."""
    start = float(rng.choice([3600.0 * 10, 2 ** 33 / 90000 - 0.25, 1.4]))
    path = write_layout(d / "broadcast.ts", ["video", "audio"], frames=int(rng.integers(4, 12)), fps=12, fmt="mpegts",
                        start=start)
    return Sample(path, "output", note=f"clock starts at {start:.2f} s")


@video
def joined_ts(d: Path, rng) -> Sample:
    """Two (or three) MPEG-TS files joined with ``cat``: the second plays after the first."""
    from fuzz.oracle import joined, reference

    with_audio = rng.random() < 0.5
    parts = [write_layout(d / f"part{i}.ts", ["video", "audio"] if with_audio else ["video"],
                          frames=8 * int(rng.integers(1, 3)), fps=15, fmt="mpegts",
                          start=float(rng.choice([0.0, 1.4, 7200.0])))
             for i in range(int(rng.integers(2, 4)))]
    refs = [reference(p) for p in parts]
    starts = [Fraction(av.open(str(p)).start_time, av.time_base) for p in parts]
    path = join(parts, d / "joined.ts")
    for p in parts:
        p.unlink()
    return Sample(path, "output", note=f"{len(parts)} parts joined, audio {with_audio}", reference=joined(refs, starts))


RAW = {".h264": ("h264", "libx264"), ".hevc": ("hevc", "libx265"), ".m2v": ("mpeg2video", "mpeg2video")}


@video
def raw_stream(d: Path, rng) -> Sample:
    """An elementary stream without a container: no timestamps, its frame rate in the bitstream."""
    from fuzz.oracle import Reference

    suffix, fps, frames = str(rng.choice(sorted(RAW))), int(rng.choice([24, 25, 30, 50])), int(rng.integers(3, 10))
    path = write_raw(d / f"raw{suffix}", *RAW[suffix], frames=frames, fps=fps)
    ref = Reference(frames, [Fraction(i, fps) for i in range(frames)], (32, 24), 0, [])
    return Sample(path, "output", note=f"{suffix} at {fps} fps", reference=ref)


def _real_excerpt(d: Path, rng, cache: Path | None = None) -> tuple[Path, bytes]:
    folder = shared_video()
    if folder is None:
        raise FileNotFoundError("RTSTYLE_SHARED/data/video not found")
    name = str(rng.choice(REAL_CLIPS))
    cache = cache or d
    path = cache / f"excerpt-{name}"
    if not path.is_file():
        excerpt(folder / name, path, EXCERPT_SECONDS[name])
    return path, path.read_bytes()


@video
def truncated_real(d: Path, rng) -> Sample:
    """A real clip (an excerpt of it, or with FUZZ_FULL_CLIPS=1 the whole file) cut at a random offset."""
    if os.environ.get("FUZZ_FULL_CLIPS") and shared_video():
        name = str(rng.choice(REAL_CLIPS))
        src, data = shared_video() / name, (shared_video() / name).read_bytes()
    else:
        src, data = _real_excerpt(d, rng, _cache_dir(d))
    dst = d / f"cut-{src.name.removeprefix('excerpt-')}"
    dst.write_bytes(truncate(data, rng))
    return Sample(dst, "any", note=f"{src.name} cut at {dst.stat().st_size} of {len(data)} bytes")


@video
def corrupted_real(d: Path, rng) -> Sample:
    src, data = _real_excerpt(d, rng, _cache_dir(d))
    dst = d / f"bad-{src.name.removeprefix('excerpt-')}"
    dst.write_bytes(overwrite_runs(data, rng))
    return Sample(dst, "any", note=f"{src.name} with random byte runs")


@video
def corrupted_synthetic(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".mp4", ".mkv", ".mov", ".webm", ".avi"]))
    codec = {".webm": "libvpx", ".avi": "mpeg4"}.get(suffix, "libx264")
    clean = write_clip(d / f"clean{suffix}", frames=int(rng.integers(4, 12)), size=(32, 24), codec=codec,
                       audio_tracks=int(rng.integers(0, 2)))
    data = clean.read_bytes()
    clean.unlink()
    dst = d / f"bad{suffix}"
    dst.write_bytes(overwrite_runs(data, rng) if rng.random() < 0.7 else truncate(data, rng))
    return Sample(dst, "any")


def _cache_dir(d: Path) -> Path:
    """Excerpts are made once per session: FUZZ_CACHE names the folder (the test suite sets it)."""
    folder = Path(os.environ.get("FUZZ_CACHE", d))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- images

def _img(name: str, size: tuple[int, int], channels: int = 3, depth: int = 8, suffix: str = ".png",
         expect: str = "output", orientation: int | None = None) -> Generator:
    def gen(d: Path, rng) -> Sample:
        return Sample(write_image(d / f"{name}{suffix}", size, channels, depth, orientation), expect)
    return gen


for _name, _args in {"img_1x1": ((1, 1),), "img_2x2": ((2, 2),), "img_7x13": ((7, 13), 3, 8, ".jpg"),
                     "img_4097x17": ((4097, 17),), "img_gray": ((20, 12), 1), "img_rgba": ((20, 12), 4),
                     "img_16bit": ((20, 12), 3, 16), "img_gray16": ((12, 20), 1, 16), "img_bmp": ((9, 5), 3, 8, ".bmp"),
                     "img_webp": ((16, 16), 3, 8, ".webp"), "img_tiff_rgba": ((10, 6), 4, 8, ".tif"),
                     "img_exif_rotated": ((24, 12), 3, 8, ".jpg", "output", 6)}.items():
    IMAGE[_name] = _img(_name, *_args)


@image
def img_zero_bytes(d: Path, rng) -> Sample:
    (d / "empty.png").write_bytes(b"")
    return Sample(d / "empty.png", "error")


@image
def img_text(d: Path, rng) -> Sample:
    (d / "text.jpg").write_text("not an image " * int(rng.integers(1, 50)))
    return Sample(d / "text.jpg", "error")


@image
def img_truncated(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".png", ".jpg", ".webp"]))
    data = write_image(d / f"full{suffix}", (32, 24)).read_bytes()
    (d / f"full{suffix}").unlink()
    (d / f"cut{suffix}").write_bytes(truncate(data, rng))
    return Sample(d / f"cut{suffix}", "any")


@image
def img_corrupted(d: Path, rng) -> Sample:
    suffix = str(rng.choice([".png", ".jpg", ".bmp"]))
    data = write_image(d / f"full{suffix}", (32, 24)).read_bytes()
    (d / f"full{suffix}").unlink()
    (d / f"bad{suffix}").write_bytes(overwrite_runs(data, rng, runs=1))
    return Sample(d / f"bad{suffix}", "any")


@image
def img_animated(d: Path, rng) -> Sample:
    """An animated WebP, GIF or APNG: never styled as its first frame alone. ``stylize`` refuses
    it; ``upscale`` (by content) makes a video of a GIF or APNG, which FFmpeg decodes."""
    from PIL import Image

    suffix = str(rng.choice([".webp", ".gif", ".png"]))
    frames = [Image.fromarray(pattern(i, 24, 16)) for i in range(int(rng.integers(2, 5)))]
    path = d / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Sample(path, "error" if suffix == ".webp" else "any", note=f"animated {suffix}")


@image
def img_missing(d: Path, rng) -> Sample:
    return Sample(d / "nothing.png", "error")


@image
def img_video_named_png(d: Path, rng) -> Sample:
    """A video with an image's name: `stylize` refuses it (pointing to `rtstyle video`)."""
    path = make_clip(d / "clip.mp4", frames=3, size=(16, 16), audio=False)
    return Sample(path.rename(d / "clip.png"), "error")


# ---------------------------------------------------------------- inputs that are not plain files, bombs

@image
def img_header_bomb(d: Path, rng) -> Sample:
    """A small valid image whose header claims 20000-65535 pixels a side (a decompression bomb):
    refused by its header, before any decoding."""
    suffix = str(rng.choice([".png", ".jpg", ".bmp"]))
    w, h = (int(v) for v in rng.integers(20000, 65536, 2))
    data = bytearray(write_image(d / f"small{suffix}", (16, 12)).read_bytes())
    (d / f"small{suffix}").unlink()
    if suffix == ".png":
        data[16:24] = w.to_bytes(4, "big") + h.to_bytes(4, "big")
    elif suffix == ".bmp":
        data[18:26] = w.to_bytes(4, "little") + h.to_bytes(4, "little")
    else:
        sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5:sof + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    (d / f"bomb{suffix}").write_bytes(bytes(data))
    return Sample(d / f"bomb{suffix}", "error", f"claims {w}x{h}")


def _fifo(d: Path, name: str) -> Sample:
    os.mkfifo(d / name)  # nobody writes to it: opening it to read would hang, so it must be refused unopened
    return Sample(d / name, "error", "a pipe")


def _pattern(d: Path, name: str, rng) -> Sample:
    for i in range(1, int(rng.integers(2, 4))):
        write_image(d / (name % i), (16, 12))
    return Sample(d / name, "error", "an image-sequence pattern whose files exist")


@image
def img_fifo(d: Path, rng) -> Sample:
    return _fifo(d, "pipe.png")


@video
def fifo(d: Path, rng) -> Sample:
    return _fifo(d, "pipe.mp4")


@image
def img_sequence_pattern(d: Path, rng) -> Sample:
    return _pattern(d, str(rng.choice(["img%03d.png", "frame%d.jpg"])), rng)


@video
def sequence_pattern(d: Path, rng) -> Sample:
    return _pattern(d, "img%03d.png", rng)


# ---------------------------------------------------------------- paths, outputs and command lines

def path_spellings(target: Path, d: Path, rng, urls: bool = False) -> list[str]:
    """Ways to name the existing file ``target`` (in or below ``d``; the caller's working folder is
    ``d``): relative, absolute, ``./``, ``x/../``, doubled slashes, a symlink, a symlinked folder,
    a hard link and, with ``urls``, FFmpeg URLs (``file:`` absolute, relative, percent-escaped,
    inside ``cache:``). Shuffled by ``rng``."""
    rel = os.path.relpath(target, d)
    (d / "sub").mkdir(exist_ok=True)
    link, hard, folder_link = d / f"link{target.suffix}", d / f"hard{target.suffix}", d / "folder-link"
    for alias, make in ((link, lambda: link.symlink_to(target)), (hard, lambda: os.link(target, hard)),
                        (folder_link, lambda: folder_link.symlink_to(target.parent, target_is_directory=True))):
        if not alias.exists():
            make()
    names = [rel, str(target), f"./{rel}", f"sub/../{rel}", str(target).replace("/", "//"), link.name, hard.name,
             f"{folder_link.name}/{target.name}", str(link)]
    if urls:
        escaped = str(target).replace(target.name, "".join(f"%{b:02X}" if i == 0 else chr(b)
                                                           for i, b in enumerate(target.name.encode())))
        names += [f"file://{target}", f"file:{rel}", f"file:{target}", f"file://{escaped}", f"cache:file:{target}",
                  f"file://{link}"]
    return [str(n) for n in rng.permutation(names)]


def collision_tree(d: Path, rng) -> tuple[list[Path], bool]:
    """Image inputs for one ``-o FOLDER`` run and whether two distinct sources would share an output
    name (then the run must be refused before writing anything): two folders holding the same
    names (nested too), the same file twice, a file beside its own folder, names differing only
    in case (distinct outputs on a case-sensitive filesystem), or no collision at all."""
    kind = str(rng.choice(["same-names", "nested", "twice", "file-and-folder", "case", "distinct", "files"]))
    a, b = d / "a", d / "b"
    for folder in (a, b):
        folder.mkdir()
    size = lambda: (int(rng.integers(8, 24)), int(rng.integers(8, 24)))  # noqa: E731
    if kind in ("same-names", "nested"):
        sub = "x/y/" if kind == "nested" else ""
        for folder in (a, b):
            write_image(folder / f"{sub}p.png", size())
            write_image(folder / f"only-{folder.name}.png", size())
        return [a, b], True
    if kind == "files":  # a/p.png b/p.png as files: one output name
        return [write_image(a / "p.png", size()), write_image(b / "p.png", size())], True
    first = write_image(a / "p.png", size())
    if kind == "twice":
        return [first, Path(os.path.relpath(first, d))], False
    if kind == "file-and-folder":
        write_image(a / "q.png", size())
        return [a, first], False
    if kind == "case":
        return [first, write_image(b / "P.png", size())], False
    return [first, write_image(b / "q.png", size())], False


def folder_with_unreadable(d: Path, rng) -> Path:
    """A folder of 2-5 good images and one that cannot be read (truncated, garbage, empty) at a
    random place in the listing order."""
    folder = d / "photos"
    n = int(rng.integers(2, 6))
    bad = int(rng.integers(0, n + 1))
    for i in range(n + 1):
        path = folder / f"{i:02d}.png"
        if i == bad:
            folder.mkdir(parents=True, exist_ok=True)
            data = write_image(path, (16, 12)).read_bytes()
            path.write_bytes([b"", data[:int(rng.integers(8, 60))], b"garbage" * 9][int(rng.integers(0, 3))])
        else:
            write_image(path, (int(rng.integers(8, 24)), int(rng.integers(8, 24))))
    return folder


# Command lines that must end in one error line (exit 2), never a traceback, whatever the rest:
# each is (arguments with {image}, {clip}, {dir}, {style}, {sr} to fill in, a fragment of the message).
BAD_INVOCATIONS = [
    (["stylize", "{image}", "--style", "{style}", "--device", "cuda"], "cuda"),
    (["stylize", "{image}", "--style", "{style}", "--device", "cuda:7"], "cuda"),
    (["stylize", "{image}", "--style", "{style}", "--device", "foo"], "unknown device"),
    (["video", "{clip}", "--style", "{style}", "--device", "mps"], "mps"),
    (["upscale", "{image}", "--model", "{sr}", "--device", "gpu0"], "unknown device"),
    (["train", "style", "{image}", "--data", "{dir}", "--name", "t", "--batch-size", "0", "--out", "{dir}/t.safetensors"],
     "--batch-size"),
    (["train", "sr", "--data", "{dir}", "--iterations", "0", "--out", "{dir}/t.safetensors"], "--iterations"),
    (["train", "style", "{image}", "--data", "{dir}", "--name", "t", "--out", "{dir}"], "is a directory"),
    (["train", "style", "{image}", "--data", "{dir}", "--name", "t", "--out", "{image}"], "image"),
    (["train", "style", "{image}", "--data", "{dir}", "--name", "t", "--out", "{style}"], "exists"),
    (["train", "style", "{image}", "--data", "{dir}", "--name", "t", "--device", "cuda", "--out", "{dir}/t.safetensors"],
     "cuda"),
    (["video", "{clip}", "--style", "{style}", "--codec", "aac"], "not a video encoder"),
    (["video", "{clip}", "--style", "{style}", "--codec", "nope"], "encoder"),
    (["video", "{clip}", "--style", "{style}", "--crf", "99"], "--crf"),
    (["video", "{clip}", "-o", "{dir}/o.webm", "--style", "{style}", "--crf", "64"], "--crf"),
    (["upscale", "{clip}", "--model", "{sr}", "--crf", "-3"], "--crf"),
    (["video", "{clip}", "--style", "{style}", "--bogus"], "--bogus"),
    (["video", "--style", "{style}"], "Missing argument"),
    (["video", "{clip}", "--style", "{style}", "--batch", "two"], "--batch"),
    (["stylize", "{image}"], "--style"),
    (["nosuchcommand"], "nosuchcommand"),
    (["export", "--style", "{style}", "--format", "onnx", "-o", "{style}", "--overwrite"], "is the input"),
    (["eval", "sr", "--set", "{dir}", "-o", "{image}", "--overwrite"], "is the input"),
    (["gatys", "{image}", "--style-image", "{image}", "-o", "{image}", "--overwrite"], "is the input"),
    (["bench", "--quick", "--clip", "{clip}", "-o", "{clip}"], "is the input"),
    (["cam", "--source", "file:{clip}", "--record", "{clip}", "--overwrite", "--no-window", "--style", "{style}"],
     "is the input"),
]


# ---------------------------------------------------------------- model files

class Payload:
    """A pickle that runs ``touch MARKER`` when unpickled: a model file must never do that."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_checkpoints(d: Path, marker: Path) -> list[Path]:
    """Crafted files that execute code when unpickled, under every name a checkpoint may have."""
    import torch

    files = []
    for name in ("evil.pt", "evil.pth", "evil.ckpt", "evil.safetensors"):
        path = d / name
        if name.endswith(".pt"):  # a torch.save zip holding the payload beside real tensors
            torch.save({"model": {"w": torch.zeros(1)}, "meta": Payload(marker)}, path)
        else:
            path.write_bytes(pickle.dumps({"model": Payload(marker), "meta": {}}))
        files.append(path)
    return files


def damaged_model(src: Path, d: Path, rng) -> Path:
    """A copy of the model file ``src`` truncated, overwritten, emptied or with a lying header."""
    data = src.read_bytes()
    kind = int(rng.choice([0, 1, 2, 3, 4] if src.suffix == ".safetensors" else [0, 1, 4]))  # 2, 3: safetensors' header
    if kind == 0:
        data = truncate(data, rng)
    elif kind == 1:
        data = overwrite_runs(data, rng)
    elif kind == 2:  # the safetensors header length field (first 8 bytes) says something absurd
        data = int(rng.integers(1, 1 << 62)).to_bytes(8, "little") + data[8:]
    elif kind == 3:
        header_len = int.from_bytes(data[:8], "little")
        cut = int(rng.integers(8, 8 + header_len))
        data = data[:cut] + rng.integers(32, 127, 8 + header_len - cut, dtype=np.uint8).tobytes() + data[8 + header_len:]
    else:
        data = b""
    path = d / f"damaged{kind}{src.suffix}"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- one fuzz case from a seed

VIDEO_OUTPUTS = (".mp4", ".mkv", ".mov", ".webm", ".avi")


@dataclass
class Case:
    seed: int
    generator: str
    command: str            # "video", "upscale" or "stylize"
    output: str | None      # output file name, or None for the default name beside the input
    options: list[str]


def case(seed: int, generators: list[str] | None = None) -> Case:
    """The fuzz case for ``seed``: an input generator, a command fit for it, an output and options."""
    rng = np.random.default_rng([seed, 1])
    names = generators or sorted(VIDEO) + sorted(IMAGE)
    name = str(rng.choice(names))
    options = []
    if name == "img_video_named_png":  # (`upscale` decides by content: it processes the video)
        command, output = "stylize", None
    elif name in IMAGE:
        command = "upscale" if rng.random() < 0.3 else "stylize"
        output = None if rng.random() < 0.3 else f"out{rng.choice(['.png', '.jpg', '.webp', '.bmp'])}"
    else:
        big = name in ("wide_4097x17", "tall_17x257") or "real" in name
        command = "upscale" if not big and rng.random() < 0.25 else "video"
        output = None if rng.random() < 0.2 else f"out{rng.choice(VIDEO_OUTPUTS)}"
        if command == "video":
            options += ["--batch", str(int(rng.integers(1, 4)))]
    if command != "upscale":
        for opt, values in (("--max-side", ["16", "24", "64"]), ("--strength", ["0", "0.5"]), ("--size", ["16x8", "9x9"])):
            if rng.random() < 0.2:
                options += [opt, str(rng.choice(values))]
        for flag in ("--preserve-color", "--side-by-side"):
            if rng.random() < 0.15:
                options.append(flag)
    elif rng.random() < 0.3:
        options += ["--tile", str(int(rng.integers(16, 40)))]
    return Case(seed, name, command, output, options)


def generate(c: Case, d: Path) -> Sample:
    """Write the case's input into ``d``."""
    rng = np.random.default_rng([c.seed, 2])
    return (VIDEO.get(c.generator) or IMAGE[c.generator])(d, rng)
