"""`rtstyle cam` against a real network stream: a background process serves a synthetic clip as
MPEG-TS over UDP on 127.0.0.1 at real-time pace (there is no /dev/video here)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from rtstyle.camera import Latest, Styles, View, backoff, camera_device, handle_key, is_live
from rtstyle.cli import main

# A bounded UDP server: `python -c SERVER PORT SECONDS` streams H.264 in MPEG-TS for SECONDS, then exits.
SERVER = r"""
import sys, time, av
from rtstyle.synth import pattern
port, seconds, fps = int(sys.argv[1]), float(sys.argv[2]), 30
out = av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts")
video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency", "g": "10"})
video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
start = time.monotonic()
for i in range(int(seconds * fps)):
    frame = av.VideoFrame.from_ndarray(pattern(i, 160, 96), format="rgb24")
    frame.pts = i
    out.mux(video.encode(frame))
    time.sleep(max(0.0, start + (i + 1) / fps - time.monotonic()))
out.mux(video.encode())
out.close()
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve():
    """Start UDP servers (killed at teardown at the latest): ``serve(port, seconds) -> Popen``.

    With ``wait`` (the default) it returns once the stream is flowing, so a loaded machine's slow
    server start-up is not mistaken for an unavailable source.
    """
    procs = []

    def start(port: int, seconds: float, wait: bool = True) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(seconds)])
        procs.append(proc)
        if wait:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
                s.settimeout(60)
                s.recv(65536)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# ---------------------------------------------------------------- units

def test_source_kinds():
    assert camera_device("0") == 0 and camera_device("12") == 12
    assert camera_device("/dev/video2") == "/dev/video2"
    assert camera_device("udp://127.0.0.1:5000") is None and camera_device("clip.mp4") is None
    assert is_live("0") and is_live("rtsp://cam/x") and is_live("udp://127.0.0.1:1")
    assert not is_live("clip.mp4") and not is_live("file:clip.mp4")


def test_backoff_doubles_and_is_capped():
    assert [backoff(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_latest_keeps_only_the_newest_frame():
    latest, converted = Latest(), []

    def frame(i):
        return lambda: converted.append(i) or np.full((2, 2, 3), i, np.uint8)

    for i in range(5):
        latest.put(frame(i))
    seq, _, rgb = latest.get(0, timeout=0)
    assert seq == 5 and rgb()[0, 0, 0] == 4         # frames 1-4 were stale: dropped...
    assert converted == [4]                         # ...without ever being converted
    assert latest.get(seq, timeout=0.01) is None    # nothing newer yet
    threading.Timer(0.05, latest.put, [frame(5)]).start()
    assert latest.get(seq, timeout=2)[0] == 6       # a waiting consumer wakes on the next frame
    latest.end("lost")
    assert latest.get(6, timeout=5) is None and latest.error == "lost"  # returns at once once ended


def test_keys(tiny_style, tmp_path, monkeypatch):
    import rtstyle.models
    from rtstyle.checkpoint import read_meta, save_model
    from rtstyle.models import load

    installed = []
    for name in "ab":
        net, meta = load(str(tiny_style))
        path = save_model(net, tmp_path / f"{name}.safetensors", {**meta, "name": name})
        installed.append((name, path, read_meta(path)))
    monkeypatch.setattr(rtstyle.models, "list_models", lambda kind=None: installed)
    styles, view = Styles(str(tiny_style), "torch", "fp32", "cpu"), View()
    shown = np.random.default_rng(0).integers(0, 256, (12, 16, 3), np.uint8)
    assert styles.name == "tiny"
    assert handle_key(ord("2"), view, styles, shown, tmp_path) == "style 2: b" and styles.name == "b"
    assert "no style 7" in handle_key(ord("7"), view, styles, shown, tmp_path) and styles.name == "b"
    handle_key(ord(" "), view, styles, shown, tmp_path)
    assert view.original
    message = handle_key(ord("s"), view, styles, shown, tmp_path)
    saved = list(tmp_path.glob("rtstyle-original-*.png"))
    assert len(saved) == 1 and str(saved[0]) in message and not leftovers(tmp_path)
    from rtstyle.imageio import read_image
    assert np.array_equal(read_image(saved[0]), shown)
    assert handle_key(-1, view, styles, shown, tmp_path) is None and not view.quit
    handle_key(ord("q"), view, styles, shown, tmp_path)
    assert view.quit


def test_window_loop_with_scripted_keys(tiny_style, tmp_path, monkeypatch, capfd):
    """The preview loop, with OpenCV's window calls replaced (no display here): keys act on the live loop."""
    import cv2

    from rtstyle.synth import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=72, size=(160, 96), audio=False)
    with av.open(str(clip)) as c:
        source_frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    shown, keys = [], {2: " ", 4: "s", 6: "q"}                     # after frame 2: original; 4: snapshot; 6: quit
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, bgr: shown.append(bgr.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: ord(keys.pop(len(shown))) if len(shown) in keys else -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    monkeypatch.chdir(tmp_path)
    code = main(["cam", "--source", str(clip), "--style", str(tiny_style), "--backend", "torch"])
    err = capfd.readouterr().err
    assert code == 0 and "rtstyle cam: 6 frames" in err, err
    assert all(f.shape == (96, 160, 3) for f in shown)
    snapshot = next(tmp_path.glob("rtstyle-original-*.png"))      # taken while the original was shown
    from rtstyle.imageio import read_image
    assert any(np.array_equal(read_image(snapshot), f) for f in source_frames)
    assert f"saved {snapshot.name}" in err


# ---------------------------------------------------------------- end to end over UDP

@pytest.fixture(autouse=True)
def one_torch_thread():
    """The net shares 2 CPU cores with the grabber and the encoder here: more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cam_command(port: int, model: Path, *args: str) -> list[str]:
    return ["cam", "--source", f"udp://127.0.0.1:{port}", "--style", str(model), "--backend", "torch",
            "--no-window", *args]


def recording_started(folder: Path, running, timeout: float = 30) -> bool:
    """Wait until the temporary recording holds encoded frames (the encoder writes after a few frames),
    as long as ``running()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running():
        if any(p.stat().st_size > 0 for p in folder.glob(".*.part")):
            return True
        time.sleep(0.05)
    return False


class Cam(threading.Thread):
    """``rtstyle cam ARGS`` in a thread of this process, so the test can act on the stream meanwhile."""

    def __init__(self, args: list[str]):
        super().__init__(daemon=True)
        self.args, self.code = args, None
        self.start()

    def run(self):
        self.code = main(self.args)


def test_records_a_udp_stream(serve, tiny_style, tmp_path):
    port = free_udp_port()
    serve(port, 60)
    out = tmp_path / "out.mp4"
    run = subprocess.run([sys.executable, "-m", "rtstyle", *cam_command(port, tiny_style, "--frames", "30", "--record", str(out))],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    frames = decoded_frames(out)
    assert len(frames) == 30 and (frames[0].width, frames[0].height) == (160, 96)
    times = [f.time for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))          # capture times, strictly increasing
    assert 0.5 < times[-1] < 30                                    # real time: at most 30 fps, so at least 1 s
    assert "rtstyle cam: 30 frames" in run.stderr and "Traceback" not in run.stderr
    assert not leftovers(tmp_path)


def test_reconnects_when_the_server_comes_back(serve, tiny_style, tmp_path, capfd):
    port = free_udp_port()
    first = serve(port, 60)
    out = tmp_path / "out.mp4"
    cam = Cam(cam_command(port, tiny_style, "--frames", "40", "--record", str(out), "--timeout", "1", "--retries", "4"))
    assert recording_started(tmp_path, cam.is_alive), capfd.readouterr().err
    first.kill()                                                   # the stream drops mid-way...
    err, deadline = "", time.monotonic() + 20
    while "reconnecting" not in err and time.monotonic() < deadline:
        time.sleep(0.1)
        err += capfd.readouterr().err
    serve(port, 60, wait=False)                                    # ...and comes back on the same port
    cam.join(60)
    err += capfd.readouterr().err
    assert cam.code == 0, err
    assert "dropped" in err and "attempt 1 of 4" in err
    assert len(decoded_frames(out)) == 40 and not leftovers(tmp_path)


def test_gives_up_after_bounded_retries_and_keeps_the_recording(serve, tiny_style, tmp_path, capfd):
    port = free_udp_port()
    server = serve(port, 60)
    out = tmp_path / "out.mp4"
    cam = Cam(cam_command(port, tiny_style, "--record", str(out), "--timeout", "0.5", "--retries", "2"))
    assert recording_started(tmp_path, cam.is_alive), capfd.readouterr().err
    server.kill()
    killed = time.monotonic()
    cam.join(60)
    seconds = time.monotonic() - killed
    err = capfd.readouterr().err
    assert cam.code == 2, err
    final = [line for line in err.splitlines() if line.startswith("rtstyle: error:")]
    assert len(final) == 1 and "gave up after 2 reconnect attempts" in final[0] and "Traceback" not in err
    assert err.count("reconnecting in") == 2
    assert seconds < 10                                            # bounded: 0.5 s read timeout + 2 x (backoff + 0.5 s open)
    frames = decoded_frames(out)                                   # finalised: decodes to the end
    assert len(frames) > 0 and f"; {len(frames)} frames in" in final[0] and not leftovers(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_finalises_the_recording(sig, serve, tiny_style, tmp_path):
    """Ctrl-C, or SIGTERM (docker stop, systemd): the recording is kept, finalised."""
    port = free_udp_port()
    serve(port, 60)
    out = tmp_path / "out.mp4"
    # as from a terminal: a shell without job control starts background jobs (CI runners, `cmd &`)
    # with SIGINT ignored, and Python keeps it ignored
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", *cam_command(port, tiny_style, "--record", str(out))], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert recording_started(tmp_path, lambda: proc.poll() is None), proc.communicate(timeout=30)[1]
        proc.send_signal(sig)
        err = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    frames = decoded_frames(out)
    assert len(frames) > 0 and f"recorded {len(frames)} frames" in err and not leftovers(tmp_path)


@pytest.mark.parametrize("source", ["udp://127.0.0.1:{port}", "rtsp://127.0.0.1:{port}/live", "missing.mp4", "9", "/dev/video9"])
def test_unavailable_source_is_a_one_line_error(source, tiny_style, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = source.format(port=free_udp_port())
    start = time.monotonic()
    code = main(["cam", "--source", source, "--style", str(tiny_style), "--backend", "torch", "--no-window", "--frames", "5",
                 "--record", "out.mp4", "--timeout", "0.5"])
    err = capfd.readouterr().err
    assert code == 2 and time.monotonic() - start < 10
    assert err.startswith("rtstyle: error: cannot open") and err.count("\n") == 1 and source in err, err
    assert os.listdir(tmp_path) == []                              # no recording, no temporary file


def test_bad_arguments_fail_before_opening_anything(tiny_style, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (tmp_path / "taken.mp4").write_bytes(b"keep")
    for args, message in [(["--frames", "5", "--record", str(tmp_path / "taken.mp4")], "exists; pass --overwrite"),
                          (["--frames", "5", "--record", str(tmp_path / "x.avi")], "--record must end in"),
                          (["--frames", "0"], "--frames must be at least 1"),
                          (["--window"], "no display"),
                          (["--style", str(tmp_path / "nope.safetensors")], "model file not found")]:
        base = ["cam", "--source", "udp://127.0.0.1:9", "--style", str(tiny_style), "--backend", "torch", "--no-window"]
        code = main(base + args)
        err = capfd.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    assert (tmp_path / "taken.mp4").read_bytes() == b"keep"
