"""The video pipeline end to end: real clips of every container/codec pair in the shared data, and
synthetic ones (VFR, rotated, odd-sized, with subtitles); images; Ctrl-C."""
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fuzz.generators import trim
from rtstyle.cli import main
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image
from rtstyle.stream import is_video, video_command
from rtstyle.synth import make_clip, pattern

FAST = ["--backend", "torch", "--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The pipeline's decode and encode threads share the CPU with the net: one torch thread keeps
    OpenMP from spin-waiting on a loaded CI machine (10x slower there otherwise)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def probe(path: Path) -> dict:
    """Everything the pipeline must keep: decoded frame count, display timestamps (seconds), rotation,
    size, and per audio stream its decoded length and frame size (corrupt source packets skipped)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))  # raises on undecodable data: "decodable to the end"
        info = {"n": len(frames), "pts": [f.pts * v.time_base for f in frames], "rotation": frames[0].rotation,
                "size": (frames[0].width, frames[0].height), "audio": []}
    with av.open(str(path)) as c:
        for s in c.streams.audio:
            samples, longest = 0, 0
            for packet in c.demux(s):
                try:
                    for f in packet.decode():
                        samples, longest = samples + f.samples, max(longest, f.samples)
                except av.error.InvalidDataError:
                    pass
            info["audio"].append((samples / s.codec_context.sample_rate, longest / s.codec_context.sample_rate))
        info["subtitles"] = len(c.streams.subtitles)
    return info


def assert_kept(src: Path, dst: Path, scale: int = 1) -> dict:
    a, b = probe(src), probe(dst)
    assert b["n"] == a["n"] > 0
    # AVI stores decode-order timestamps; the display order is their sorted order. MP4 keeps them
    # exactly (same time base); Matroska/WebM count in milliseconds, so they round to the nearest.
    tol = Fraction(1, 2000) if dst.suffix in (".mkv", ".webm") else 0
    assert all(abs(x - y) <= tol for x, y in zip(b["pts"], sorted(a["pts"])))
    assert all(x < y for x, y in zip(b["pts"], b["pts"][1:]))
    assert b["rotation"] == a["rotation"]
    w, h = a["size"]
    assert b["size"] == (scale * w + scale * w % 2, scale * h + scale * h % 2)
    assert len(b["audio"]) == len(a["audio"]) >= 1
    for (da, fa), (db, fb) in zip(a["audio"], b["audio"]):
        assert abs(da - db) <= max(fa, fb), (da, db)  # same length within one audio frame
    return b


def run(*args) -> int:
    return main([str(a) for a in args])


# ---------------------------------------------------------------- real clips

REAL = {  # clip: seconds kept (stream copy), so that every container/codec pair is covered quickly
    "chaplin.mp4": 2.0,              # H.264 + MP3 in MP4 (audio copied)
    "fire2.mp4": None,               # VFR H.264 + AAC, whole (25 frames), rotated 180
    "megamind.avi": None,            # XVID + AC-3 in AVI (decode-order timestamps), whole: PyAV
    "big_buck_bunny_0_30.webm": 1.5,  # VP8 + Vorbis (Vorbis re-encoded to AAC for MP4)
    "vtest.avi": None,               # H.264 + AAC in AVI, whole (AVI remuxes lose audio timestamps)
}


@pytest.mark.parametrize("clip", REAL)
def test_real_clips_keep_frames_timestamps_rotation_audio(shared, tiny_style, tmp_path, clip):
    src = shared / "data" / "video" / clip
    if REAL[clip]:
        src = trim(src, tmp_path / clip, REAL[clip])
    dst = tmp_path / "out.mp4"
    assert run("video", src, "-o", dst, "--style", tiny_style, "--max-side", 64, *FAST) == 0
    info = assert_kept(src, dst)
    if clip == "fire2.mp4":
        assert info["n"] == 25 and len({b - a for a, b in zip(info["pts"], info["pts"][1:])}) > 1  # still VFR


# ---------------------------------------------------------------- synthetic clips

@pytest.mark.parametrize("name, kwargs, extra", [
    ("cfr.mp4", {}, ["--batch", "3"]),
    ("vfr.mkv", {"vfr": True}, ["--preserve-color", "--strength", "0.5"]),
    ("rot.mp4", {"rotate": 90}, []),
    ("odd.mov", {"size": (45, 27), "pix_fmt": "yuv444p"}, []),  # odd sizes need 4:4:4; output is padded to even
])
def test_synthetic_clips(tiny_style, tmp_path, name, kwargs, extra):
    src = make_clip(tmp_path / name, frames=14, **{"size": (64, 48), **kwargs})
    dst = tmp_path / "out.mp4"
    assert run("video", src, "-o", dst, "--style", tiny_style, *FAST, *extra) == 0
    assert_kept(src, dst)


def test_default_output_name_codec_and_webm(tiny_style, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=8, size=(48, 32))
    assert run("video", src, "--style", tiny_style, *FAST) == 0
    assert_kept(src, tmp_path / "in.tiny.mp4")
    dst = tmp_path / "out.webm"  # VP9 + AAC re-encoded to Opus
    assert run("video", src, "-o", dst, "--style", tiny_style, "--crf", 40, *FAST) == 0
    assert_kept(src, dst)
    with av.open(str(dst)) as c:
        assert [s.codec_context.name for s in c.streams] == ["vp9", "opus"]


def test_colours_and_colour_tags_are_kept(tiny_style, tmp_path):
    src = tmp_path / "709.mp4"
    with av.open(str(src), "w") as out:  # a BT.709-tagged clip, as HD cameras write
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.colorspace = v.codec_context.color_primaries = v.codec_context.color_trc = 1
        for i in range(4):
            f = av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24")
            f.colorspace, f.pts = 1, i
            out.mux(v.encode(f))
        out.mux(v.encode())
    dst = tmp_path / "out.mp4"
    assert run("video", src, "-o", dst, "--style", tiny_style, "--strength", 0, *FAST) == 0

    def decoded(path):
        with av.open(str(path)) as c:
            cc = c.streams.video[0].codec_context
            tags = (cc.colorspace, cc.color_primaries, cc.color_trc)
            return tags, np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)
    (tags_in, rgb_in), (tags_out, rgb_out) = decoded(src), decoded(dst)
    assert tags_out == tags_in == (1, 1, 1)
    assert np.abs(rgb_out - rgb_in).mean() < 4  # strength 0: the source again, up to compression


def test_side_by_side_doubles_the_width(tiny_style, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    dst = tmp_path / "out.mkv"
    assert run("video", src, "-o", dst, "--style", tiny_style, "--side-by-side", *FAST) == 0
    info = probe(dst)
    assert info["size"] == (64, 24) and info["n"] == 4 and info["audio"] == []


def test_subtitles_are_dropped_with_a_warning(tiny_style, tmp_path, capsys):
    base = make_clip(tmp_path / "base.mkv", frames=6, size=(32, 32))
    src = tmp_path / "sub.mkv"
    with av.open(str(base)) as inp, av.open(str(src), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        sub = out.add_stream("ass")
        sub.time_base = Fraction(1, 1000)
        for p in inp.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                out.mux(p)
        p = av.Packet(b"0,0,Default,,0,0,0,,hello")
        p.pts, p.dts, p.duration, p.time_base, p.stream = 0, 0, 500, Fraction(1, 1000), sub
        out.mux(p)
    assert probe(src)["subtitles"] == 1
    dst = tmp_path / "out.mkv"
    assert run("video", src, "-o", dst, "--style", tiny_style, *FAST) == 0
    assert "dropping 1 stream(s) (subtitle)" in capsys.readouterr().err
    assert assert_kept(src, dst)["subtitles"] == 0


def test_upscale_video_by_content(tiny_sr, tmp_path):
    disguised = make_clip(tmp_path / "clip.mkv", frames=5, size=(24, 16)).rename(tmp_path / "clip.png")  # the name lies; the content decides
    assert is_video(disguised)
    dst = tmp_path / "up.mp4"
    assert run("upscale", disguised, "-o", dst, "--model", tiny_sr, *FAST) == 0
    assert_kept(disguised, dst, scale=4)


# ---------------------------------------------------------------- images

def test_stylize_images_and_folders(shared, tiny_style, tmp_path):
    content = shared / "data" / "content"
    out = tmp_path / "one.png"
    assert run("stylize", content / "chicago.jpg", "-o", out, "--style", tiny_style, "--max-side", 96, *FAST) == 0
    assert read_image(out).shape == read_image(content / "chicago.jpg").shape
    folder = tmp_path / "dir"
    assert run("stylize", content, "-o", folder, "--style", tiny_style, "--max-side", 64, "--side-by-side", *FAST) == 0
    written = sorted(p.name for p in folder.iterdir())
    assert written == sorted(p.name for p in content.iterdir() if p.suffix == ".jpg")
    h, w, _ = read_image(content / "amber.jpg").shape
    assert read_image(folder / "amber.jpg").shape == (h, 2 * w, 3)


def test_upscale_image_in_tiles(shared, tiny_sr, tmp_path):
    src = shared / "data" / "content" / "hoovertowernight.jpg"
    small = tmp_path / "small.png"
    import cv2
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(src)), (95, 50), interpolation=cv2.INTER_AREA))
    assert not is_video(small)
    assert run("upscale", small, "--model", tiny_sr, "--tile", 32, *FAST) == 0
    assert read_image(tmp_path / "small.tiny_sr.png").shape == (200, 380, 3)


# ---------------------------------------------------------------- errors and Ctrl-C

def test_bad_inputs_are_one_line_errors(tiny_style, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32), audio=False)
    cases = [
        (["video", tmp_path / "missing.mp4"], "input not found"),
        (["video", src, "-o", src], "is the input file"),
        (["video", src, "-o", tmp_path / "out.xyz"], "unknown container"),
        (["video", tmp_path / "in.mp4", "--strength", "2"], "strength"),
        (["video", src, "-o", tmp_path / "o.mp4", "--codec", "nosuchcodec"], "not a video encoder"),
    ]
    (tmp_path / "notvideo.mp4").write_bytes(b"not a video at all")
    cases.append((["video", tmp_path / "notvideo.mp4"], "not a readable video"))
    for args, message in cases:
        assert run(*args, "--style", tiny_style, *FAST) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("rtstyle: error:"), err
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".*.part"))
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    assert run("video", src, "-o", tmp_path / "exists.mp4", "--style", tiny_style, *FAST) == 2
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"
    with pytest.raises(RtstyleError, match="is a video"):
        from rtstyle.stream import images_command
        images_command([str(src)], None, str(tiny_style))


def test_ctrl_c_finalises_a_playable_file(tiny_style, tmp_path):
    src = make_clip(tmp_path / "long.mp4", frames=400, size=(160, 120))
    dst = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", "video", str(src), "-o", str(dst), "--style",
                             str(tiny_style), *FAST], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait until frames are being written
        parts = list(tmp_path.glob(".out.mp4.*.part"))
        if parts and parts[0].stat().st_size > 20_000:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "plays" in err
    info = probe(dst)  # decodes to the end
    assert 0 < info["n"] < 400
    assert info["pts"] == [Fraction(i, 24) for i in range(info["n"])]
    assert len(info["audio"]) == 1
    assert not list(tmp_path.glob(".*.part"))
