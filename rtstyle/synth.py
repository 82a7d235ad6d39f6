"""Synthetic test clips made with PyAV: moving shapes over a drifting gradient, an optional tone.

Used by ``make demo``, the tests and the fuzz suite, so no test depends on a downloaded video.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtstyle.writer import VideoWriter

# The audio codec each container accepts (a container's default may be an encoder PyAV lacks).
AUDIO_CODECS = {".mp4": "aac", ".mov": "aac", ".m4v": "aac", ".mkv": "aac", ".webm": "libopus", ".avi": "libmp3lame"}


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of the test pattern as HxWx3 uint8 RGB: a gradient, a square and a disc that move."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = index / 24
    img = np.stack([(xx / width + t * 0.2) % 1, yy / height, 0.5 + 0.5 * np.sin(xx / 9 + yy / 13 + t * 3)], -1)
    side = max(2, min(width, height) // 4)
    x0 = int((width - side) * (0.5 + 0.5 * np.sin(t * 2.0)))
    y0 = int((height - side) * (0.5 + 0.5 * np.cos(t * 1.3)))
    img[y0:y0 + side, x0:x0 + side] = (1.0, 0.9, 0.1)
    cx, cy = width * (0.5 + 0.35 * np.cos(t * 1.7)), height * (0.5 + 0.35 * np.sin(t * 2.3))
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < (side / 2) ** 2] = (0.1, 0.2, 0.9)
    return (img * 255).astype(np.uint8)


def vfr_durations(frames: int, fps: float, seed: int = 0) -> np.ndarray:
    """Irregular frame durations in seconds (0.5x to 2x the nominal one), e.g. a phone's variable rate."""
    return np.random.default_rng(seed).uniform(0.5, 2.0, frames) / fps


def make_clip(path: str | os.PathLike, frames: int = 48, size: tuple[int, int] = (320, 240), fps: int = 24,
              audio: bool = True, vfr: bool = False, pix_fmt: str = "yuv420p", codec: str = "libx264",
              rotate: int | None = None, sample_rate: int = 48000) -> Path:
    """Write a test clip and return its path.

    ``size`` is (width, height). With ``vfr`` the frame timestamps are irregular (time base 1/90000).
    ``audio`` adds a 440 Hz tone as long as the video. ``rotate`` (90/180/270) sets the display-matrix
    rotation that phones write, so players show the clip turned.
    """
    path = Path(path)
    width, height = size
    out = VideoWriter(path)
    try:
        video = out.add_video(codec, fps, width, height, Fraction(1, 90000) if vfr else Fraction(1, fps),
                              {"preset": "ultrafast", "crf": "23"} if codec == "libx264" else None, pix_fmt=pix_fmt)
        if rotate:
            video.set_display_rotation(rotate)
        tone = None
        if audio:
            tone = out.container.add_stream(AUDIO_CODECS.get(path.suffix.lower(), "aac"), rate=sample_rate, layout="mono")
        durations = vfr_durations(frames, fps) if vfr else np.full(frames, 1 / fps)
        starts = np.concatenate([[0.0], np.cumsum(durations)])
        for i in range(frames):
            out.write(pattern(i, width, height), round(starts[i] / video.time_base), video.time_base)
        out.finish()
        if tone is not None:
            _write_tone(out.container, tone, starts[-1], sample_rate)
    finally:
        out.close()
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float, rate: int) -> None:
    total = int(round(seconds * rate))
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (start + np.arange(n)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())

