"""Writing video files with PyAV: one place for the encoder set-up every writer shares.

``VideoWriter`` opens a container, adds a video stream (codec and its quality options, even frame
size, time base, the source's colour tags and display matrix), encodes RGB frames at the
timestamps it is given and flushes its encoders when finished. ``atomic_video`` writes it to a
temporary file beside the destination and renames it there once finalised, also after a Ctrl-C.
Used by the video pipeline (``rtstyle.stream``), the camera recorder, the benchmark's naive loop
and the synthetic test clips.
"""
from __future__ import annotations

import contextlib
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from rtstyle.errors import RtstyleError
from rtstyle.outputs import atomic_output

VIDEO_CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx",
                "av1": "libsvtav1"}
# Output containers. Not AVI: it has no presentation timestamps, so B-frames and variable frame
# rates come out in the wrong order or at the wrong times.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
RGB_MATRIX, BT601 = 0, 6
# Codecs with no aspect field in their bitstream: Matroska would need the stream's display size,
# which PyAV does not let a writer set.
NO_ASPECT = {"libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1", "librav1e", "av1_nvenc"}  # AVColorSpace: AVCOL_SPC_RGB, AVCOL_SPC_SMPTE170M


def container_format(dst: Path) -> str:
    """The FFmpeg muxer for an output file name; AVI and unknown extensions are refused."""
    fmt = CONTAINERS.get(dst.suffix.lower())
    if fmt is None:
        why = "AVI cannot keep the frames' timestamps" if dst.suffix.lower() == ".avi" else "unknown container"
        raise RtstyleError(f"output {dst}: {why}; use one of {', '.join(CONTAINERS)}")
    return fmt


def encoder_name(codec: str | None, fmt: str) -> str:
    """``h264``/``vp9``/... (or an FFmpeg encoder name) -> the encoder; the container's default if None."""
    return VIDEO_CODECS.get(codec or ("vp9" if fmt == "webm" else "h264"), codec)


# The constant-quality scale of each encoder (nvenc's cq: 0-51); values outside are refused, not clamped.
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (4, 63), "libsvtav1": (1, 63)}


def check_encoder(codec: str | None, crf: int | None, fmt: str) -> str:
    """The video encoder ``--codec`` names, checked before any work: it exists, encodes video, and
    ``--crf`` is on its scale.

    >>> check_encoder("hevc", 28, "mp4")
    'libx265'
    """
    encoder = encoder_name(codec, fmt)
    try:
        kind = av.codec.Codec(encoder, "w").type
    except ValueError:
        raise RtstyleError(f"unknown video encoder {codec!r}; use h264, hevc, vp9, av1 or an FFmpeg video "
                           "encoder name (ffmpeg -encoders)") from None
    if kind != "video":
        raise RtstyleError(f"--codec {codec} is an {kind} encoder; it takes a video one (h264, hevc, vp9, av1 ...); "
                           "audio is kept as it is")
    low, high = CRF_RANGE.get(encoder, (0, 51) if "nvenc" in encoder else (None, None))
    if crf is not None and low is not None and not low <= crf <= high:
        raise RtstyleError(f"--crf {crf} is outside {encoder}'s scale {low}-{high} (lower is better)")
    return encoder


def quality_options(codec: str, crf: int | None) -> dict[str, str]:
    """Fast encoder settings at constant quality ``crf`` (the encoder's default quality when None)."""
    if codec in ("libx264", "libx265"):
        return {"preset": "veryfast", "crf": str(crf if crf is not None else 18)}
    if codec.startswith("libvpx"):
        return {"deadline": "realtime", "cpu-used": "8", "b": "0", "crf": str(crf if crf is not None else 30)}
    if crf is not None:  # hardware encoders (nvenc) call their constant-quality mode cq
        return {"cq" if "nvenc" in codec else "crf": str(crf)}
    return {}


def yuv_matrix(first: av.VideoFrame) -> int:
    """The YUV matrix (AVColorSpace) of the output: the source's, or BT.601 (what FFmpeg converts
    with by default) for a source coded in RGB (PNG, QuickTime RLE...): tagging YUV as RGB would make
    players show wrong colours, and VP9 refuses it."""
    return BT601 if first.colorspace == RGB_MATRIX else first.colorspace


class VideoWriter:
    """One output container with one encoded video stream (and whatever streams callers add)."""

    def __init__(self, path: str | Path, fmt: str | None = None, options: dict | None = None):
        self.container = av.open(str(path), "w", format=fmt, options=options or {})
        self.stream: av.VideoStream | None = None
        self.encoders: list = []  # streams this writer encodes into, flushed by ``finish``
        self.colorspace: int | None = None
        self.frames = 0
        self.closed = False

    def add_video(self, codec: str, rate, width: int, height: int, time_base: Fraction, options: dict | None = None,
                  like: av.VideoFrame | None = None, pix_fmt: str = "yuv420p",
                  sar: Fraction | None = None) -> av.VideoStream:
        """A ``width`` x ``height`` stream (yuv420p needs even sizes: frames smaller than the stream are
        edge-padded); ``like``, a source frame, lends its colour tags and display matrix (rotation);
        ``sar``, the source's sample aspect ratio, keeps an anamorphic video's display shape."""
        if codec not in av.codecs_available:
            raise RtstyleError(f"video encoder {codec!r} is not available in this PyAV build")
        try:
            s = self.container.add_stream(codec, rate=rate, options=options or {})
        except (ValueError, av.error.FFmpegError) as e:
            raise RtstyleError(f"cannot encode {codec} into {self.container.format.name}: {e}") from None
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if sar and sar != 1:  # written in the bitstream (H.264/HEVC VUI) and by the MP4 muxer (pasp)
            s.codec_context.sample_aspect_ratio = sar
            if s.codec_context.name in NO_ASPECT:
                print(f"rtstyle: warning: {s.codec_context.name} in {self.container.format.name} cannot keep the source's "
                      f"sample aspect ratio {sar.numerator}:{sar.denominator}: the output shows with square pixels "
                      "(use H.264 or HEVC to keep it)", file=sys.stderr)
        s.time_base = s.codec_context.time_base = time_base
        self.time_base = time_base  # the muxer may change the stream's when it writes the header
        if like is not None:
            # The source's colour tags: frames are converted back to YUV with the matrix they were decoded with.
            cc = s.codec_context
            self.colorspace = cc.colorspace = yuv_matrix(like)
            cc.color_primaries, cc.color_trc = like.color_primaries, like.color_trc
            side = like.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX) if like.side_data else None
            if side is not None:
                s.set_display_matrix(np.frombuffer(bytes(side), dtype="<i4").tolist())
        self.stream = s
        self.encoders.append(s)
        return s

    def add_encoder(self, stream) -> None:
        """Another stream this writer encodes into (re-encoded audio): flushed by ``finish`` too."""
        self.encoders.append(stream)

    def write(self, rgb: np.ndarray, pts: int, time_base: Fraction | None = None) -> None:
        """Encode one HxWx3 uint8 RGB frame at ``pts``, in ``time_base`` (default: the one the stream
        was added with), edge-padded to the stream's size."""
        s = self.stream
        ph, pw = s.height - rgb.shape[0], s.width - rgb.shape[1]
        if ph or pw:
            rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, time_base or self.time_base
        if self.colorspace is not None:
            frame.colorspace = self.colorspace
        self.container.mux(s.encode(frame))
        self.frames += 1

    def mux(self, packets) -> None:
        self.container.mux(packets)

    def finish(self) -> None:
        """Flush every encoder: the frames they still hold reach the file."""
        for s in self.encoders:
            self.container.mux(s.encode())

    def close(self) -> None:
        """Write the trailer and close the file (after ``finish``, or to abandon it); once."""
        if not self.closed:
            self.closed = True
            self.container.close()


@contextlib.contextmanager
def atomic_video(dst: Path, fmt: str, options: dict | None = None,
                 overwrite: bool = False) -> Iterator[tuple[VideoWriter, Path]]:
    """(writer, temporary path): the file is published as ``dst`` when the block completes, also on a
    Ctrl-C once the caller has finished a shorter file; it is closed in every case. A caller that
    wants no file (nothing worth keeping) unlinks the temporary path before leaving. An existing
    ``dst`` is replaced only with ``overwrite``."""
    with atomic_output(dst, overwrite, keep_partial_on_interrupt=True) as tmp:
        writer = VideoWriter(tmp, fmt, options)
        try:
            yield writer, tmp
        finally:
            writer.close()
