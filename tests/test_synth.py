from fractions import Fraction

import av
import numpy as np
import pytest

from rtstyle.synth import make_clip, pattern


def read(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        pts = [f.pts * v.time_base for f in frames]
        c.seek(0)
        audio = [(s.codec_context.codec.canonical_name, s.codec_context.sample_rate) for s in c.streams.audio]
        samples = sum(f.samples for f in c.decode(audio=0)) if audio else 0
    return frames, pts, audio, samples


def test_pattern_moves():
    a, b = pattern(0, 64, 48), pattern(5, 64, 48)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b).mean() > 5


def test_cfr_clip_with_audio(tmp_path):
    path = make_clip(tmp_path / "c.mp4", frames=12, size=(64, 48), fps=12)
    frames, pts, audio, samples = read(path)
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (64, 48)
    assert pts == [Fraction(i, 12) for i in range(12)]
    assert audio == [("aac", 48000)]
    assert abs(samples / 48000 - 1.0) <= 1024 / 48000  # as long as the video, within one AAC frame


def test_vfr_clip_has_irregular_timestamps(tmp_path):
    _, pts, _, _ = read(make_clip(tmp_path / "v.mp4", frames=10, size=(32, 32), vfr=True, audio=False))
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert len(pts) == 10 and len(steps) > 3 and all(s > 0 for s in steps)


def test_rotation_is_written(tmp_path):
    frames, _, _, _ = read(make_clip(tmp_path / "r.mp4", frames=3, size=(32, 32), rotate=90, audio=False))
    assert frames[0].rotation == 90


@pytest.mark.parametrize("name, codec, audio_codec", [("w.webm", "libvpx", "opus"), ("x.avi", "mpeg4", "mp3"),
                                                      ("k.mkv", "libx264", "aac")])
def test_other_containers(tmp_path, name, codec, audio_codec):
    frames, _, audio, _ = read(make_clip(tmp_path / name, frames=6, size=(48, 32), codec=codec))
    assert len(frames) == 6 and audio[0][0] == audio_codec
