"""Robustness: whatever the input, rtstyle writes a correct output or stops with one clean error line
(exit code 2), never a traceback, never a partial or temporary file, never a modified input.

The inputs come from tests/fuzz/generators.py (seeded): broken and disguised files, truncated and
corrupted real clips, odd geometries and pixel formats, odd stream layouts, broken model and cache
files. Most cases run in-process through ``rtstyle.cli.main``; a subprocess only where the process
itself is the subject (SIGINT, RLIMIT_FSIZE for a full disk, RLIMIT_AS for memory).

CI runs a fixed set; ``make fuzz`` adds FUZZ_CASES random cases drawn from FUZZ_SEED. The count of
cases and how they ended is printed at the end of the run.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_model
from fuzz import generators as G
from fuzz import oracle as O
from rtstyle.backends import cache
from rtstyle.backends import tensorrt as E
from rtstyle.checkpoint import save_training_state
from rtstyle.cli import main
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image
from rtstyle.nets import build_net
from rtstyle.synth import make_clip

FAST = ["--backend", "torch", "--device", "cpu"]
CI_CASES = 150  # seeded random cases in CI, on top of one case per generator and the explicit ones
TALLY: Counter = Counter()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True, scope="module")
def setup(tmp_path_factory, request):
    """One torch thread (the pipeline's decode and encode threads share 2 loaded cores with the net;
    OpenMP spin-waiting makes every frame 10x slower there); excerpts of the real clips made once;
    at the end, the count of cases and how they ended."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUZZ_CACHE", str(tmp_path_factory.mktemp("excerpts")))
        mp.setenv(cache.ENGINE_DIR_ENV, str(tmp_path_factory.mktemp("engines")))
        yield
    torch.set_num_threads(before)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if TALLY and reporter and capture:
        with capture.global_and_fixture_disabled():  # (output of a fixture's teardown is captured otherwise)
            reporter.write(f"\nrobustness: {TALLY['output'] + TALLY['error']} cases passed: {TALLY['output']} valid "
                           f"outputs, {TALLY['error']} clean errors (no traceback, leftover or modified input)\n")


@pytest.fixture(scope="module")
def models(tiny_style, tiny_sr) -> dict:
    return {"style": str(tiny_style), "sr": str(tiny_sr)}


# ---------------------------------------------------------------- the contract

BAR = re.compile(r"\d+%\||\d(frame|image|it)s? \[|(frame|image|it)/s\]|s/(frame|image|it)\]")


def stderr_lines(err: str) -> list[str]:
    """What stderr says once progress bars are set aside (a terminal shows the text after the last \\r)."""
    lines = [line.split("\r")[-1].strip() for line in err.split("\n")]
    return [line for line in lines if line and not BAR.search(line)]


def clean_error(code: int, err: str, context: str = "") -> str:
    """Exit code 2 and exactly one line on stderr (progress bars aside), the error; returns it."""
    lines = stderr_lines(err)
    assert "Traceback" not in err and "internal error" not in err, f"{err[-3000:]}\n{context}"
    assert code == 2, f"exit code {code}: {err[-2000:]}\n{context}"
    assert len(lines) == 1 and lines[0].startswith("rtstyle: error: "), f"not one error line: {lines}\n{context}"
    TALLY["error"] += 1
    return lines[0]


def cli(capfd, *args) -> tuple[int, str]:
    """Run ``rtstyle ARGS`` in this process; (exit code, everything written to fd 2, FFmpeg's included)."""
    capfd.readouterr()
    code = main([str(a) for a in args])
    return code, capfd.readouterr().err


def listing(*folders: Path) -> set[str]:
    return {str(p) for f in folders for p in f.rglob("*")}


def unchanged(before: dict, folder: Path) -> bool:
    after = O.digest(folder)
    return {k: after.get(k) for k in before} == before


def refused(c: G.Case) -> bool:
    """Outputs refused whatever the input: AVI (it cannot keep the timestamps); WebP beyond its
    16383-pixel limit (x4 of a 4097-pixel-wide image)."""
    return bool(c.output) and (c.output.endswith(".avi") or (c.output.endswith(".webp") and c.command == "upscale"
                                                             and c.generator == "img_4097x17"))


def run_case(c: G.Case, root: Path, models: dict, capfd) -> str:
    """Run one fuzz case and check the contract; returns "output" or "error"."""
    inp, out_dir = root / "in", root / "out"
    inp.mkdir()
    out_dir.mkdir()
    sample = G.generate(c, inp)
    before, hashes = listing(inp, out_dir), O.digest(inp)
    dst = out_dir / c.output if c.output else None
    model = ["--model", models["sr"]] if c.command == "upscale" else ["--style", models["style"]]
    args = [c.command, sample.path, *(["-o", dst] if dst else []), *model, *FAST, *c.options]
    code, err = cli(capfd, *args)
    context = f"{c} ({sample.note})\n`rtstyle {' '.join(map(str, args))}`\nstderr: {err[-3000:]}"
    assert unchanged(hashes, inp), f"input modified: {context}"
    assert not O.leftovers(root), f"temporary files left: {O.leftovers(root)}; {context}"
    new = listing(inp, out_dir) - before
    if code != 0:
        clean_error(code, err, context)
        assert not new, f"output left after an error: {new}; {context}"
        assert sample.expect != "output" or refused(c), f"refused a valid input: {context}"
        return "error"
    assert "Traceback" not in err and "rtstyle: error" not in err and "internal error" not in err, context
    assert sample.expect != "error" and not refused(c), f"processed an input that must be refused: {context}"
    assert len(new) == 1, f"expected one output, got {new}; {context}"
    written = Path(new.pop())
    scale, sbs = (4 if c.command == "upscale" else 1), "--side-by-side" in c.options
    try:
        if written.suffix in (".png", ".jpg", ".webp", ".bmp", ".tif"):
            O.check_image(sample.path, written, scale, sbs)
        else:
            ref = sample.reference or O.reference(sample.path)
            assert ref is not None, "a video was written from an input the reference decoder finds no frame in"
            O.check_video(ref, written, scale, sbs, exact=sample.expect == "output")
    except Exception as e:
        raise AssertionError(f"bad output {written.name}: {e}\n{context}") from None
    TALLY["output"] += 1
    return "output"


def skip_without_clips(c: G.Case) -> None:
    if "real" in c.generator and G.shared_video() is None:
        pytest.skip("real clips not found: set RTSTYLE_SHARED")


# ---------------------------------------------------------------- every generator, then seeded random cases

EVERY = [G.Case(0, name, "stylize" if name in G.IMAGE else "video", "out.png" if name in G.IMAGE else "out.mp4", [])
         for name in sorted(G.VIDEO) + sorted(G.IMAGE)]


@pytest.mark.parametrize("c", EVERY, ids=lambda c: c.generator)
def test_every_generator(c, tmp_path, models, capfd):
    skip_without_clips(c)
    run_case(c, tmp_path, models, capfd)


@pytest.mark.parametrize("seed", range(CI_CASES))
def test_random_case(seed, tmp_path, models, capfd):
    c = G.case(seed)
    skip_without_clips(c)
    run_case(c, tmp_path, models, capfd)


@pytest.mark.fuzz
@pytest.mark.parametrize("index", range(int(os.environ.get("FUZZ_CASES", "0"))))
def test_fuzz(index, tmp_path, models, capfd):
    """`make fuzz`: FUZZ_CASES more random cases from FUZZ_SEED, from the generators named in
    FUZZ_GENERATORS (comma-separated; default all). A failing case prints its seed: ``G.case(seed)``."""
    names = [n for n in os.environ.get("FUZZ_GENERATORS", "").split(",") if n] or None
    c = G.case(int(os.environ.get("FUZZ_SEED", "1")) * 1_000_003 + index, names)
    skip_without_clips(c)
    run_case(c, tmp_path, models, capfd)


def test_exif_orientation_is_applied(tmp_path, models, capfd):
    """A phone photo stored landscape with "rotate 90" in its EXIF is styled as it is shown: portrait."""
    src = G.write_image(tmp_path / "phone.jpg", (24, 12), exif_orientation=6)
    code, err = cli(capfd, "stylize", src, "-o", tmp_path / "out.png", "--style", models["style"], *FAST)
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == (24, 12, 3)
    TALLY["output"] += 1


# ---------------------------------------------------------------- never over the input, never over a file unasked

COMMANDS = {  # name: (input kind, command and model option, output suffix, default output name)
    "video": ("video", ["video", "--style", "style"], ".mp4", "in.tiny.mp4"),
    "upscale-video": ("video", ["upscale", "--model", "sr"], ".mp4", "in.tiny_sr.mp4"),
    "upscale-image": ("image", ["upscale", "--model", "sr"], ".png", "in.tiny_sr.png"),
    "stylize": ("image", ["stylize", "--style", "style"], ".png", "in.tiny.png"),
}
SITUATIONS = ["same-path", "same-path+overwrite", "symlink", "symlink+overwrite", "hardlink", "hardlink+overwrite",
              "input-is-symlink", "exists", "exists+overwrite", "default-exists", "output-is-folder",
              "output-folder-is-input-folder", "missing-folder"]


@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("command", COMMANDS)
def test_output_safety(command, situation, tmp_path, models, capfd):
    kind, (cmd, opt, model), suffix, default = COMMANDS[command]
    inp = tmp_path / "in"
    inp.mkdir()
    src = make_clip(inp / "in.mp4", frames=3, size=(24, 16)) if kind == "video" else G.write_image(inp / "in.png", (20, 12))
    out = tmp_path / f"out{suffix}"
    extra = ["--overwrite"] if situation.endswith("+overwrite") else []
    expect, message = "error", "is the input file"
    target = src  # what -o names
    if situation.startswith("symlink"):
        target = tmp_path / f"link{suffix}"
        target.symlink_to(src)
    elif situation.startswith("hardlink"):
        target = tmp_path / f"hard{suffix}"
        os.link(src, target)
    elif situation == "input-is-symlink":
        (tmp_path / f"alias{src.suffix}").symlink_to(src)
        src = tmp_path / f"alias{src.suffix}"
        target = inp / src.resolve().name
    elif situation.startswith("exists"):
        target = out
        out.write_bytes(b"precious")
        expect, message = ("output", "") if extra else ("error", "exists; pass --overwrite")
    elif situation == "default-exists":
        target = None
        (inp / default).write_bytes(b"precious")
        message = "exists; pass --overwrite"
    elif situation == "output-is-folder":
        target = tmp_path / "folder"
        target.mkdir()
        expect, message = ("output", "") if kind == "image" else ("error", "is a directory")  # images go into it
    elif situation == "output-folder-is-input-folder":
        target = inp
        message = "is the input file" if kind == "image" else "is a directory"
    elif situation == "missing-folder":
        target = tmp_path / "nowhere" / f"out{suffix}"
        expect, message = ("output", "") if kind == "image" else ("error", "does not exist")  # images: folders made
    before, hashes = listing(tmp_path), O.digest(tmp_path)
    code, err = cli(capfd, cmd, src, *(["-o", target] if target else []), opt, models[model], *FAST, *extra)
    after = O.digest(tmp_path)
    assert not O.leftovers(tmp_path), O.leftovers(tmp_path)
    if expect == "error":
        assert message in clean_error(code, err, f"{command} {situation}")
        assert after == hashes and listing(tmp_path) == before  # nothing written, nothing touched
        return
    assert code == 0, err
    written = out if situation.startswith("exists") else (target / src.name if situation == "output-is-folder" else target)
    assert {k: after[k] for k in hashes if k != written.relative_to(tmp_path).as_posix()} == \
        {k: v for k, v in hashes.items() if k != written.relative_to(tmp_path).as_posix()}
    scale = 4 if cmd == "upscale" else 1
    if kind == "image":
        O.check_image(src, written, scale)
    else:
        O.check_video(O.reference(src), written, scale)
    TALLY["output"] += 1


@pytest.mark.skipif(not Path("/proc/self").is_dir() or not Path("/sys/kernel").is_dir(), reason="needs Linux /proc and /sys")
@pytest.mark.parametrize("output", ["/proc/rtstyle-out{}", "/sys/rtstyle-out{}", "/sys/rtstyle-dir/out{}"])
@pytest.mark.parametrize("command", ["video", "stylize"])
def test_unwritable_output_location(command, output, tmp_path, models, capfd):
    """A folder nobody may write in (/proc, /sys, even as root): one clear line, nothing written."""
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(16, 16)) if command == "video" else G.write_image(tmp_path / "in.png", (16, 12))
    hashes = O.digest(tmp_path)
    code, err = cli(capfd, command, src, "-o", output.format(src.suffix), "--style", models["style"], *FAST)
    assert "cannot" in clean_error(code, err, output) or "does not exist" in err
    assert O.digest(tmp_path) == hashes and not Path(output.format(src.suffix)).exists()


# ---------------------------------------------------------------- full disk, Ctrl-C, memory (subprocesses)

def limited(**limits):
    """preexec_fn setting resource limits in the child (RLIMIT_FSIZE: a full disk; RLIMIT_AS: memory)."""
    def apply():
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), (value, value))
    return apply


def rtstyle(*args, limits: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtstyle", *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=timeout, preexec_fn=limited(**limits) if limits else None)


@pytest.mark.parametrize("command, output", [("video", "out.mp4"), ("video", "out.mkv"), ("stylize", "out.png"),
                                             ("upscale", "out.png"), ("video", "taken.mp4")])
def test_full_disk_leaves_no_partial_file(command, output, tmp_path, models):
    """A write beyond RLIMIT_FSIZE fails with EFBIG, as on a full disk: one clear line, no partial
    file, no temporary file, and an existing output replaced with --overwrite is kept intact."""
    src = (make_clip(tmp_path / "in.mp4", frames=12, size=(96, 64)) if command == "video"
           else G.write_image(tmp_path / "in.png", (64, 48)))
    model = ["--model", models["sr"]] if command == "upscale" else ["--style", models["style"]]
    extra = []
    if output == "taken.mp4":
        (tmp_path / output).write_bytes(b"precious")
        extra = ["--overwrite"]
    before, hashes = listing(tmp_path), O.digest(tmp_path)
    run = rtstyle(command, src, "-o", tmp_path / output, *model, *FAST, *extra,
                  limits={"RLIMIT_FSIZE": max(4096, src.stat().st_size // 4)})
    assert "no space left" in clean_error(run.returncode, run.stderr)
    assert listing(tmp_path) == before and O.digest(tmp_path) == hashes


def test_full_disk_while_recording_the_camera(tmp_path, models):
    """`rtstyle cam --record` on a full disk: one clear line, no file (it used to publish a recording
    without its trailer and exit 0)."""
    src = make_clip(tmp_path / "in.mp4", frames=24, size=(96, 64), audio=False)
    before = listing(tmp_path)
    run = rtstyle("cam", "--source", src, "--record", tmp_path / "rec.mp4", "--no-window", "--style", models["style"],
                  *FAST, limits={"RLIMIT_FSIZE": 8192})
    assert "no space left" in clean_error(run.returncode, run.stderr)
    assert listing(tmp_path) == before


def wait_for_frames(folder: Path, proc: subprocess.Popen, size: int = 20_000) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        parts = list(folder.glob(".out.*.part"))
        if parts and parts[0].stat().st_size > size:
            return
        time.sleep(0.1)
    raise AssertionError(f"no frames being written: {proc.communicate(timeout=30)[1][-2000:]}")


@pytest.mark.parametrize("sig, command", [(signal.SIGINT, "video"), (signal.SIGTERM, "video"), (signal.SIGHUP, "video"),
                                         (signal.SIGTERM, "upscale")])
def test_stop_signal_leaves_a_playable_file(sig, command, tmp_path, models):
    """Ctrl-C, SIGTERM (docker stop, systemd, SLURM, CI) and SIGHUP (a closed terminal) all finalise
    the frames done into a playable file and exit with 128 + the signal's number."""
    src = make_clip(tmp_path / "long.mkv", frames=300, size=(160, 120) if command == "video" else (64, 48))
    dst = tmp_path / ("out.mkv" if command == "video" else "out.mp4")  # (MP4: frames reach the file at once)
    model = ["--style", models["style"]] if command == "video" else ["--model", models["sr"], "--crf", "0"]  # (bytes soon)
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", command, src, "-o", dst, *model, *FAST],
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for_frames(tmp_path, proc, size=20_000 if command == "video" else 2_000)
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig and "Traceback" not in err, err
    got = O.decode_strictly(dst)  # decodes to the end
    assert 0 < got["frames"] < 300 and f"holds the first {got['frames']} frames" in err
    ref = O.reference(src)
    assert got["times"] == pytest.approx(ref.times[:got["frames"]], abs=1e-3)
    assert len(got["audio"]) == 1 and not O.leftovers(tmp_path)
    TALLY["output"] += 1


def test_sigkill_temporary_is_cleaned_by_the_next_run(tmp_path, models, capfd):
    """SIGKILL leaves the temporary file (nothing can run then); the next run to the same destination
    removes it, and only the temporaries of dead runs: a live run's (this process's) stays."""
    from rtstyle.outputs import _owner

    src = make_clip(tmp_path / "long.mkv", frames=300, size=(160, 120), audio=False)
    dst = tmp_path / "out.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", "video", src, "-o", dst, "--style", models["style"], *FAST],
                            stderr=subprocess.DEVNULL, env=ENV)
    try:
        wait_for_frames(tmp_path, proc, size=1)
    finally:
        proc.kill()
        proc.wait()
    (killed,) = O.leftovers(tmp_path)
    live = tmp_path / f".out.mkv.{_owner(os.getpid())}.x.part"
    live.write_bytes(b"a live run's")
    clip = make_clip(tmp_path / "short.mp4", frames=3, size=(32, 24))
    code, err = cli(capfd, "video", clip, "-o", dst, "--style", models["style"], *FAST)
    assert code == 0, err
    assert O.leftovers(tmp_path) == [live.name] and killed != live.name
    O.check_video(O.reference(clip), dst)
    TALLY["output"] += 1


def test_second_sigint_stops_at_once(tmp_path, models):
    """Ctrl-C twice: the second one does not wait for the frames in hand to be finished and encoded;
    the process ends at once and leaves no file rather than an unfinalised one."""
    src = make_clip(tmp_path / "long.mp4", frames=300, size=(480, 360), audio=False)
    dst = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", "video", src, "-o", dst, "--style", models["style"],
                             "--batch", "4", *FAST], stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for_frames(tmp_path, proc, size=1000)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        err = proc.communicate(timeout=60)[1]
        seconds = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not O.leftovers(tmp_path)
    if "interrupted twice" in err:
        assert not dst.exists() and seconds < 10, (seconds, err)
    else:  # the second signal came after the file was finalised: it must then be complete
        assert O.decode_strictly(dst)["frames"] > 0
    TALLY["error" if "interrupted twice" in err else "output"] += 1


@pytest.mark.parametrize("command, extra, outcome", [
    ("upscale", [], "--tile"),             # x4 of 1000x750 at once does not fit: the error names --tile
    ("upscale", ["--tile", "96"], None),   # in tiles it does
    ("video", [], "--max-side"),           # a 4K clip through a style net at full size: names --max-side
])
def test_beyond_memory_tiles_or_names_the_option(command, extra, outcome, tmp_path, models):
    """Frames too large for the memory (RLIMIT_AS: 2 GiB of address space) give a clear error naming
    the option that bounds memory, or an output when that option is used."""
    if command == "video":
        src = G.write_clip(tmp_path / "uhd.mp4", frames=2, size=(3840, 2160))
        model = ["--style", models["style"]]
    else:
        src = G.write_image(tmp_path / "big.png", (1000, 750))
        model = ["--model", models["sr"]]
    dst = tmp_path / f"out{src.suffix}"
    run = rtstyle(command, src, "-o", dst, *model, *FAST, *extra, limits={"RLIMIT_AS": 2 << 30}, timeout=300)
    assert not O.leftovers(tmp_path)
    if outcome:
        line = clean_error(run.returncode, run.stderr)
        assert "out of memory" in line and outcome in line and not dst.exists()
    else:
        assert run.returncode == 0, run.stderr
        O.check_image(src, dst, 4)
        TALLY["output"] += 1


# ---------------------------------------------------------------- model files

def test_malicious_pickle_runs_no_code(tmp_path, models, capfd):
    """Crafted pickles under every checkpoint name are refused by every command, and nothing runs;
    the same files do run their code when unpickled (so the test would catch a regression)."""
    marker = tmp_path / "PWNED"
    files = G.malicious_checkpoints(tmp_path, marker)
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(16, 16), audio=False)
    image = G.write_image(tmp_path / "in.png", (16, 16))
    for path in files:
        for args in (["stylize", image, "--style", path], ["video", clip, "--style", path],
                     ["upscale", image, "--model", path], ["cam", "--source", clip, "--style", path, "--no-window"]):
            code, err = cli(capfd, *args, "--backend", "torch")
            clean_error(code, err, f"{path.name}: {args[0]}")
            assert not marker.exists(), f"{path.name} ran code through `rtstyle {args[0]}`"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.mp4", "in.png", *(p.name for p in files)])
    import pickle
    pickle.loads((tmp_path / "evil.pth").read_bytes())
    assert marker.exists()  # the payload is real


@pytest.mark.parametrize("command", ["stylize", "video", "upscale"])
def test_model_with_nan_weights_is_refused(command, tmp_path, capfd):
    """A model saved from a diverged training (NaN weights) would write black frames and exit 0:
    a one-line error instead, and no output."""
    kind = "sr" if command == "upscale" else "style"
    arch = ({"kind": "sr", "scale": 4, "norm": "batch", "upsample": "deconv", "width": 0.25} if kind == "sr" else
            {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25})
    net = build_net(arch)
    with torch.no_grad():
        next(net.parameters())[0].fill_(float("nan"))
    from rtstyle.checkpoint import save_model

    model = save_model(net, tmp_path / "diverged.safetensors", {"name": "diverged", "arch": arch})
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(16, 16)) if command == "video" else G.write_image(tmp_path / "in.png", (16, 12))
    out = tmp_path / f"out{src.suffix}"
    code, err = cli(capfd, command, src, "-o", out, "--style" if kind == "style" else "--model", model, *FAST)
    assert "NaN" in clean_error(code, err, command) and not out.exists() and not O.leftovers(tmp_path)


def test_non_finite_output_is_an_error(tiny_style, capfd):
    """Finite weights can still give NaN (an fp16 overflow): refused, not written as black."""
    from rtstyle.frames import process
    from rtstyle.models import open_model

    model = open_model(str(tiny_style), "style", "torch", "cpu", "fp32")
    net = model.backend
    model.backend = type("Nan", (), {"device": net.device, "dtype": net.dtype,
                                     "__call__": lambda self, x: net(x) * float("nan")})()
    with pytest.raises(RtstyleError, match="not finite"):
        process(model, np.zeros((16, 16, 3), np.uint8))
    TALLY["error"] += 1


@pytest.mark.parametrize("seed", range(30))
def test_damaged_model_file(seed, tmp_path, capfd):
    """A truncated, overwritten, emptied or lying model file (safetensors or a training state): a clean
    error, or (when only weight bytes were hit) a complete output."""
    rng = np.random.default_rng(seed)
    kind = "sr" if seed % 3 == 0 else "style"
    arch = ({"kind": "sr", "scale": 4, "norm": "batch", "upsample": "deconv", "width": 0.25} if kind == "sr" else
            {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25})
    src = make_model(tmp_path / "m.safetensors", arch)
    if seed % 5 == 4:  # a `--resume` training state is also loadable as a model
        net = build_net(arch)
        src = save_training_state(tmp_path / "m.pt", {"model": net.state_dict(), "meta": {"arch": arch}, "step": 3})
    model = G.damaged_model(src, tmp_path, rng)
    image = G.write_image(tmp_path / "in.png", (16, 12))
    out = tmp_path / "out.png"
    code, err = cli(capfd, "upscale" if kind == "sr" else "stylize", image, "-o", out,
                    "--model" if kind == "sr" else "--style", model, *FAST)
    assert not O.leftovers(tmp_path)
    if code:
        clean_error(code, err, model.name)
        assert not out.exists()
    else:
        O.check_image(image, out, 4 if kind == "sr" else 1)
        TALLY["output"] += 1


@pytest.mark.parametrize("meta, message", [
    ({"arch": {"kind": "gan"}}, "does not match"),
    ({"name": "no arch"}, "does not match"),
    ({"arch": {"kind": "style", "width": 0.5}}, "does not match"),           # weights of a width-0.25 net
    ({"arch": {"kind": "sr", "scale": 4}}, "does not match"),
    ({"arch": "style"}, "does not match"),
    ([1, 2, 3], "does not match"),
    (None, "not a style model"),                                              # an SR model given as --style
])
def test_model_metadata_that_lies(meta, message, tmp_path, models, capfd):
    from safetensors.torch import save_file

    net = build_net({"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25})
    path = tmp_path / "liar.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"rtstyle": json.dumps(meta)})
    if meta is None:
        path = models["sr"]
    image = G.write_image(tmp_path / "in.png", (16, 12))
    code, err = cli(capfd, "stylize", image, "-o", tmp_path / "out.png", "--style", path, *FAST)
    assert message in clean_error(code, err, str(meta))
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------- engine and backend caches

def sidecars(rng: np.random.Generator, good: dict) -> list:
    """Damaged engine sidecars: not JSON, not an object, fields missing or of the wrong type."""
    bad_profiles = ["x", None, [], {"min": [1, 32, 32]}, {"min": "a", "max": "b"}, {"min": [1], "max": [None]}]
    return ["", "{", "null", "[]", "42", "\"engine\"", b"\xff\xfe\x00garbage",
            *({**good, "profile": p} for p in bad_profiles),
            {k: v for k, v in good.items() if k != "sha256"}, {**good, "sha256": 7},
            {**good, "tensorrt": "0.0.1"}, {**good, "gpu": "another-gpu"},
            json.dumps(good)[:int(rng.integers(1, len(json.dumps(good))))]]


def test_damaged_engine_sidecars_mean_rebuild(tmp_path):
    """The engine cache's validity check never raises: every damaged, foreign (other GPU, other
    TensorRT version) or truncated entry is reported stale, which makes ensure_engine rebuild it."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized engine bytes")
    import hashlib

    expected = {"model_hash": "abc", "precision": "fp16", "gpu": "h100", "tensorrt": "10.13"}
    prof = {"min": [1, 32, 32], "opt": [1, 64, 64], "max": [2, 128, 128]}
    good = {**expected, "profile": prof, "sha256": hashlib.sha256(engine.read_bytes()).hexdigest()}
    engine.with_suffix(".json").write_text(json.dumps(good))
    assert E.engine_is_valid(engine, expected, prof) == (True, "")
    cases = sidecars(np.random.default_rng(0), good)
    for side in cases:
        engine.with_suffix(".json").write_bytes(side if isinstance(side, bytes) else
                                                (side if isinstance(side, str) else json.dumps(side)).encode())
        ok, why = E.engine_is_valid(engine, expected, prof)
        assert not ok and why, side
    engine.with_suffix(".json").write_text(json.dumps(good))
    for data in (b"", b"serialized engine", b"serialized engine bytes!"):  # truncated, extended
        engine.write_bytes(data)
        assert E.engine_is_valid(engine, expected, prof) == (False, "its bytes do not match its checksum (corrupt or truncated)")
    TALLY["error"] += len(cases) + 3


@pytest.mark.skipif(E.import_tensorrt() is None, reason="no TensorRT or TensorRT-RTX module (pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings, or make tensorrt-rtx)")
def test_corrupt_engine_with_garbage_sidecar_is_rebuilt(tiny_style, capfd):
    """With TensorRT-RTX (builds on the CPU): a truncated engine whose sidecar is garbage is rebuilt."""
    from rtstyle.checkpoint import load_model

    net, meta = load_model(tiny_style)
    meta.setdefault("name", "tiny")
    prof = E.profile(meta, {"opt": "64x64", "max": "64x64"}, 1)
    path = E.ensure_engine(net, meta, "fp16", prof)
    path.write_bytes(path.read_bytes()[:1000])
    path.with_suffix(".json").write_text("[not, json")
    capfd.readouterr()
    assert E.ensure_engine(net, meta, "fp16", prof) == path
    assert "sidecar is unreadable" in capfd.readouterr().err
    assert E.engine_is_valid(path, {"precision": "fp16"}, prof)[0]
    TALLY["output"] += 1


@pytest.mark.parametrize("content", ["[1, 2]", "null", "{", "\x00\xff", '{"key": {"torch": "fast"}}', "ALL:str",
                                     "ALL:list", "ALL:partial"])
def test_damaged_backend_choice_file_means_measure_again(content, tmp_path, models, capfd):
    """--backend auto remembers which CPU backend was faster in cpu-backend.json (in the engine
    folder, shared by this module's tests so that the model is exported to ONNX once); a damaged
    file means measuring again on a long job, and eager PyTorch on a one-photo job, never a crash."""
    from rtstyle.backends import CPU_CHOICE_FILE, load_backend
    from rtstyle.checkpoint import load_model

    net, meta = load_model(models["style"])
    image = G.write_image(tmp_path / "in.png", (16, 12))
    choice = cache.engine_dir() / CPU_CHOICE_FILE
    if content.startswith("ALL:"):  # every remembered entry damaged the same way
        load_backend(net, meta, "auto")  # measured now, or remembered from an earlier case
        known = json.loads(choice.read_text())
        bad = {"ALL:str": "fast", "ALL:list": [1, 2], "ALL:partial": {"torch": 1.0}}[content]
        choice.write_text(json.dumps({k: bad for k in known}))
    else:
        choice.parent.mkdir(parents=True, exist_ok=True)
        choice.write_text(content)
    code, err = cli(capfd, "stylize", image, "-o", tmp_path / "out.png", "--style", models["style"])
    assert code == 0 and "backend auto: torch (1 frame" in err, err
    O.check_image(image, tmp_path / "out.png")
    if not content.startswith("ALL:"):
        choice.write_text(content)  # the one-photo job must not have repaired it
    load_backend(net, meta, "auto")  # a long job (frames unknown)
    assert "measured now" in capfd.readouterr().err
    TALLY["output"] += 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "zeroed"])
def test_damaged_cached_onnx_is_exported_again(damage, tmp_path, models, capfd):
    image = G.write_image(tmp_path / "in.png", (16, 12))
    args = ["stylize", image, "--style", models["style"], "--backend", "onnxruntime"]
    assert cli(capfd, *args, "-o", tmp_path / "first.png")[0] == 0
    onnx_file = next(cache.engine_dir().glob("tiny-*-fp32.onnx"))
    data = onnx_file.read_bytes()
    onnx_file.write_bytes({"truncated": data[:len(data) // 3], "empty": b"",
                           "zeroed": data[:64] + bytes(len(data) // 2) + data[64 + len(data) // 2:]}[damage])
    code, err = cli(capfd, *args, "-o", tmp_path / "out.png")
    assert code == 0 and "exporting" in err, err
    O.check_image(image, tmp_path / "out.png")
    TALLY["output"] += 1


# ---------------------------------------------------------------- same file, collisions, races, folders, command lines

SAFETY_CI = 6  # seeded cases per class in CI; `make fuzz` adds FUZZ_CASES of each (tests named test_fuzz_*)


def fuzz_seeds(ci: int) -> list[int]:
    """CI's fixed seeds, then (under -m fuzz) FUZZ_CASES seeds from FUZZ_SEED."""
    return list(range(ci))


def _fuzz_index(index: int) -> int:
    return int(os.environ.get("FUZZ_SEED", "1")) * 1_000_003 + index


FUZZ_RANGE = range(int(os.environ.get("FUZZ_CASES", "0")))
SAME_FILE_COMMANDS = ["video", "upscale-video", "upscale-image", "stylize", "cam", "export", "train", "gatys", "eval"]


def same_file_case(seed: int, root: Path, models: dict, capfd, monkeypatch) -> None:
    """A command told to write over its own input, spelled another way (relative, symlink, hard
    link, a symlinked folder, doubled slashes, a file: URL as the camera source ...): refused with
    one line, --overwrite or not, and the input untouched."""
    rng = np.random.default_rng([seed, 7])
    command = str(rng.choice(SAME_FILE_COMMANDS))
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    data = root / "data"
    data.mkdir()
    image = G.write_image(data / "in.png", (16, 12))
    clip = make_clip(root / "in.mp4", frames=2, size=(16, 16), audio=False)
    video = command in ("video", "upscale-video", "cam")
    target = {"export": Path(models["style"]), "train": image, "gatys": image, "eval": image}.get(
        command, clip if video else image)
    if command == "export":  # the model file itself, in this folder
        target = Path(shutil.copy(models["style"], root / "m.safetensors"))
    spellings = G.path_spellings(target, root, rng, urls=command == "cam")
    source = spellings[0] if command == "cam" else str(target)
    output = next(s for s in spellings[1:] if not s.startswith(("file:", "cache:")))
    overwrite = ["--overwrite"] if rng.random() < 0.6 else []
    args = {"video": ["video", clip, "-o", output, "--style", models["style"], *FAST],
            "upscale-video": ["upscale", clip, "-o", output, "--model", models["sr"], *FAST],
            "upscale-image": ["upscale", image, "-o", output, "--model", models["sr"], *FAST],
            "stylize": ["stylize", image, "-o", output, "--style", models["style"], *FAST],
            "cam": ["cam", "--source", source, "--record", output, "--no-window", "--style", models["style"], *FAST],
            "export": ["export", "--style", target, "-o", output],
            "train": ["train", "style", image, "--data", data, "--name", "t", "--out", output, "--device", "cpu"],
            "gatys": ["gatys", image, "--style-image", image, "-o", output, "--device", "cpu"],
            "eval": ["eval", "sr", "--set", data, "--json", output]}[command]
    args += overwrite if command != "train" else ["--overwrite"] * bool(overwrite)
    hashes, before = O.digest(root), listing(root)
    code, err = cli(capfd, *args)
    context = f"seed {seed}: rtstyle {' '.join(map(str, args))}"
    line = clean_error(code, err, context)
    assert "input" in line or "exists" in line or "names an image" in line, context
    assert O.digest(root) == hashes and listing(root) == before and not O.leftovers(root), context


@pytest.mark.parametrize("seed", fuzz_seeds(SAFETY_CI * 2))
def test_same_file_however_spelled(seed, tmp_path, models, capfd, monkeypatch):
    same_file_case(seed, tmp_path / "w", models, capfd, monkeypatch)


@pytest.mark.fuzz
@pytest.mark.parametrize("index", FUZZ_RANGE)
def test_fuzz_same_file(index, tmp_path, models, capfd, monkeypatch):
    same_file_case(_fuzz_index(index), tmp_path / "w", models, capfd, monkeypatch)


def collision_case(seed: int, root: Path, models: dict, capfd, monkeypatch) -> None:
    """Several images into one -o folder: distinct sources sharing an output name are refused
    before anything is written; otherwise every distinct source has its own complete output."""
    rng = np.random.default_rng([seed, 8])
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    inputs, collides = G.collision_tree(root, rng)
    out = root / "out"
    code, err = cli(capfd, "stylize", *inputs, "-o", out, "--style", models["style"], *FAST)
    context = f"seed {seed}: {inputs} collides={collides}\n{err[-2000:]}"
    assert not O.leftovers(root), context
    if collides:
        assert "would both be written to" in clean_error(code, err, context)
        assert not out.exists(), context
        return
    assert code == 0, context
    files = sorted(p for p in out.rglob("*") if p.is_file())
    sources = {os.stat(p).st_ino: p for p in inputs if p.is_file()} | \
              {os.stat(p).st_ino: p for f in inputs if f.is_dir() for p in f.rglob("*.png")}
    assert len(files) == len(sources), (files, sources, context)
    for src in sources.values():
        O.check_image(src, next(f for f in files if f.name == src.name))
    TALLY["output"] += 1


@pytest.mark.parametrize("seed", fuzz_seeds(SAFETY_CI * 2))
def test_collisions_refused_or_kept_apart(seed, tmp_path, models, capfd, monkeypatch):
    collision_case(seed, tmp_path / "w", models, capfd, monkeypatch)


@pytest.mark.fuzz
@pytest.mark.parametrize("index", FUZZ_RANGE)
def test_fuzz_collisions(index, tmp_path, models, capfd, monkeypatch):
    collision_case(_fuzz_index(index), tmp_path / "w", models, capfd, monkeypatch)


def test_case_only_collision_on_a_case_insensitive_filesystem(tmp_path, models, capfd, monkeypatch):
    """Where the output folder ignores case (macOS, Windows, FAT; probed by ``case_insensitive``,
    faked here: this machine's filesystems are case-sensitive), p.png and P.png share a name."""
    from rtstyle import outputs

    assert outputs.case_insensitive(tmp_path) is False  # the probe itself, on this filesystem
    monkeypatch.setattr(outputs, "case_insensitive", lambda folder: True)
    a, b = G.write_image(tmp_path / "a" / "p.png", (8, 8)), G.write_image(tmp_path / "b" / "P.png", (8, 8))
    code, err = cli(capfd, "stylize", a, b, "-o", tmp_path / "out", "--style", models["style"], *FAST)
    assert "would both be written to" in clean_error(code, err)
    assert not (tmp_path / "out").exists()


def unreadable_case(seed: int, root: Path, models: dict, capfd) -> None:
    """A folder run that meets an unreadable image: one error line and every destination as it
    was (absent, or an existing folder with its files), so the same command reruns as it is."""
    rng = np.random.default_rng([seed, 9])
    root.mkdir(exist_ok=True)
    folder = G.folder_with_unreadable(root, rng)
    dest = root / "photos.tiny"
    extra = []
    if rng.random() < 0.5:  # an earlier result there, replaced with --overwrite
        G.write_image(dest / "00.png", (8, 8))
        (dest / "notes.txt").write_text("mine")
        extra = ["--overwrite"]
    out = ["-o", dest] if rng.random() < 0.5 else []
    hashes, before = O.digest(root), listing(root)
    code, err = cli(capfd, "stylize", folder, *out, "--style", models["style"], *FAST, *extra)
    clean_error(code, err, f"seed {seed}")
    assert O.digest(root) == hashes and listing(root) == before and not O.leftovers(root), f"seed {seed}"


@pytest.mark.parametrize("seed", fuzz_seeds(SAFETY_CI))
def test_folder_with_an_unreadable_image_changes_nothing(seed, tmp_path, models, capfd):
    unreadable_case(seed, tmp_path / "w", models, capfd)


@pytest.mark.fuzz
@pytest.mark.parametrize("index", FUZZ_RANGE)
def test_fuzz_unreadable_in_folder(index, tmp_path, models, capfd):
    unreadable_case(_fuzz_index(index), tmp_path / "w", models, capfd)


def invocation_case(template: list[str], fragment: str, root: Path, models: dict, capfd, monkeypatch) -> None:
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    data = root / "data"
    values = {"image": G.write_image(data / "in.png", (16, 12)), "dir": data, "style": models["style"],
              "sr": models["sr"], "clip": make_clip(root / "in.mp4", frames=2, size=(16, 16), audio=False)}
    args = [a.format(**values) for a in template]
    hashes, before = O.digest(root), listing(root)
    code, err = cli(capfd, *args)
    line = clean_error(code, err, f"rtstyle {' '.join(args)}")
    assert fragment in line, (fragment, line)
    assert O.digest(root) == hashes and listing(root) == before and not O.leftovers(root), args


@pytest.mark.parametrize("template, fragment", G.BAD_INVOCATIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_command_lines_are_one_line_errors(template, fragment, tmp_path, models, capfd, monkeypatch):
    invocation_case(template, fragment, tmp_path / "w", models, capfd, monkeypatch)


@pytest.mark.fuzz
@pytest.mark.parametrize("index", FUZZ_RANGE)
def test_fuzz_invocations(index, tmp_path, models, capfd, monkeypatch):
    """A bad command line drawn from G.BAD_INVOCATIONS, with a few valid options added around it."""
    rng = np.random.default_rng([_fuzz_index(index), 10])
    template, fragment = G.BAD_INVOCATIONS[int(rng.integers(len(G.BAD_INVOCATIONS)))]
    invocation_case(template, fragment, tmp_path / "w", models, capfd, monkeypatch)


def test_stylize_dot_names_the_folder(tmp_path, models, capfd, monkeypatch):
    """`rtstyle stylize .` writes the folder's results to ../NAME.STYLE/ (it used to be an internal error)."""
    photos = tmp_path / "photos"
    G.write_image(photos / "a.png", (12, 8))
    monkeypatch.chdir(photos)
    code, err = cli(capfd, "stylize", ".", "--style", models["style"], *FAST)
    assert code == 0, err
    O.check_image(photos / "a.png", tmp_path / "photos.tiny" / "a.png")
    TALLY["output"] += 1


def test_publish_never_replaces_a_file_that_appeared(tmp_path):
    """The race itself, made deterministic: another run writes the output while this one works.
    Without --overwrite this one stops with one line and the other run's file stays whole."""
    from rtstyle.errors import RtstyleError
    from rtstyle.outputs import atomic_output, atomic_outputs, write_atomic

    dest = tmp_path / "out.png"
    with pytest.raises(RtstyleError, match="appeared while this run was writing it"):
        with atomic_output(dest, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            dest.write_bytes(b"theirs")
    assert dest.read_bytes() == b"theirs" and not O.leftovers(tmp_path)
    with pytest.raises(RtstyleError):
        write_atomic(dest, lambda tmp: tmp.write_bytes(b"mine"), overwrite=False)
    with pytest.raises(RtstyleError):  # a batch: nothing of it stays when one of its names is taken
        with atomic_outputs(overwrite=False) as batch:
            batch.path(tmp_path / "new" / "1.png").write_bytes(b"1")
            batch.path(dest).write_bytes(b"2")
    assert dest.read_bytes() == b"theirs" and not (tmp_path / "new").exists() and not O.leftovers(tmp_path)
    write_atomic(dest, lambda tmp: tmp.write_bytes(b"mine"), overwrite=True)
    assert dest.read_bytes() == b"mine"


def test_two_runs_racing_for_one_output(tmp_path, models):
    """Two processes write the same new output at once: one writes it, the other says why not
    (exit 2, one line), and the file is one run's complete image."""
    src = G.write_image(tmp_path / "in.png", (48, 32))
    dst = tmp_path / "out.png"
    cmd = [sys.executable, "-m", "rtstyle", "stylize", src, "-o", dst, "--style", models["style"], *FAST]
    procs = [subprocess.Popen(list(map(str, cmd)), stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    line = clean_error(*next(r for r in results if r[0]))
    assert "exists" in line or "appeared" in line, line
    O.check_image(src, dst)
    assert not O.leftovers(tmp_path)


def test_closed_stderr_and_unwritable_stdout(tmp_path, models):
    """`2>&-`: errors exit 2, successes 0, and FFmpeg's messages do not land in the output file
    (it would take descriptor 2); `styles > /dev/full` and a closed pipe: one line, exit 2."""
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24))
    run = lambda args, **kw: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "rtstyle", *map(str, args)], env=ENV, timeout=120, **kw)
    assert run(["nosuchcommand"], preexec_fn=lambda: os.close(2)).returncode == 2  # (before torch is imported: fast)
    ok = run(["video", clip, "-o", tmp_path / "out.mp4", "--style", models["style"], *FAST],
             preexec_fn=lambda: os.close(2))
    assert ok.returncode == 0
    O.check_video(O.reference(clip), tmp_path / "out.mp4")
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            res = run(["styles"], stdout=full, stderr=subprocess.PIPE, text=True)
        assert "cannot write the output stream" in clean_error(res.returncode, res.stderr)
    TALLY["output"] += 1


@pytest.mark.parametrize("name", ["tiny.ckpt", "tiny.pt", "tiny", "tiny.bin"])
def test_a_model_file_loads_back_whatever_its_name(name, tmp_path, models, capfd):
    """The format is decided by content: a safetensors file rtstyle wrote as `--out tiny.ckpt` is
    read as safetensors (it used to be refused as a pickle), and a training state named
    .safetensors is read with weights_only."""
    import shutil as sh

    model = Path(sh.copy(models["style"], tmp_path / name))
    image = G.write_image(tmp_path / "in.png", (16, 12))
    code, err = cli(capfd, "stylize", image, "-o", tmp_path / "out.png", "--style", model, *FAST)
    assert code == 0, err
    O.check_image(image, tmp_path / "out.png")
    arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25}
    state = save_training_state(tmp_path / "state.safetensors", {"model": build_net(arch).state_dict(),
                                                                 "meta": {"arch": arch}, "step": 1})
    code, err = cli(capfd, "stylize", image, "-o", tmp_path / "out2.png", "--style", state, *FAST)
    assert code == 0, err
    TALLY["output"] += 2


def test_unwritable_engine_folder_costs_a_cache_not_the_run(tmp_path, capfd, monkeypatch):
    """An engine folder that cannot be made (a file in the way; `--backend onnxruntime` used to
    stop there with an internal error): a warning, and a temporary folder for this run's exports
    and measurements. (Checked on the folder itself: an ONNX export into an empty cache costs a
    minute on a loaded CI machine; the CLI path was run by hand, see the README.)"""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(cache.ENGINE_DIR_ENV, str(tmp_path / "file" / "engines"))
    capfd.readouterr()
    folder = cache.engine_dir()
    assert folder.is_dir() and os.access(folder, os.W_OK) and not str(folder).startswith(str(tmp_path))
    assert "cannot be written (not a directory)" in capfd.readouterr().err
    assert cache.engine_dir() == folder and not capfd.readouterr().err  # said once
    assert cache.remember_cpu_choices({"k": {"torch": 1.0, "onnxruntime": 2.0}}).startswith("remembered")
    assert cache.read_cpu_choices() == {"k": {"torch": 1.0, "onnxruntime": 2.0}}


def test_memory_advice_never_repeats_the_given_bound():
    """Out-of-memory advice names only options that can still shrink: --max-side 8 is not told to
    use --max-side 8."""
    from rtstyle.frames import Options, memory_advice
    from rtstyle.models import Model

    style, sr = Model.wrap(None, {"arch": {"kind": "style"}}), Model.wrap(None, {"arch": {"kind": "sr", "scale": 4}})
    assert "--max-side 1280" in memory_advice(style, Options(), 1)
    assert "--max-side 32" in memory_advice(style, Options(max_side=64), 1)
    assert "--max-side" not in memory_advice(style, Options(max_side=8), 1)
    assert memory_advice(style, Options(max_side=8), 4) == "bound the memory with --batch 1"
    assert "--tile" not in memory_advice(sr, Options(tile=16), 1)
