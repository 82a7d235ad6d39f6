"""`rtstyle bench --quick`: the tables' structure, and speedups computed from the measured times."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from rtstyle import bench
from rtstyle.cli import main


@pytest.fixture(scope="module")
def quick(request, tmp_path_factory):
    """One `rtstyle bench --quick` run shared by the tests: (results, stdout, output folder)."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--quick", "-o", str(out / "r.json"), "--plot", str(out / "r.png")]
    try:
        shared = request.getfixturevalue("shared")
        args += ["--clip", str(shared / "data" / "video" / "chaplin.mp4")]
    except pytest.skip.Exception:
        args += ["--resolutions", "none"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(args)
    assert rc == 0, stderr.getvalue()[-2000:]
    return json.loads((out / "r.json").read_text()), stdout.getvalue(), out


def test_table1_has_the_papers_layout_and_marks_projections(quick):
    results, _, _ = quick
    assert [r["size"] for r in results["table1"]] == [64, 256]
    k = results["settings"]["measured_iterations"]
    for r in results["table1"]:
        cells = r["gatys"]["iterations"]
        assert list(cells) == ["100", "300", "500"]
        assert all(c["projected"] == (int(n) > k) for n, c in cells.items())
        assert r["gatys"]["timed_iterations"] == k
    paper = results["table1"][1]["paper"]
    assert paper["ours"] == 0.015 and paper["speedup"] == {"100": 212, "300": 636, "500": 1060}
    assert results["table1"][0]["paper"] is None  # the paper has no 64x64 row


def test_speedups_are_gatys_time_over_the_measured_forward_time(quick):
    results, _, _ = quick
    for r in results["table1"]:
        ff = next(b for b in results["backends"]
                  if b["size"] == r["size"] and b["backend"] == "torch" and b["precision"] == "fp32")
        assert r["ours_seconds"] == ff["seconds"] == sorted(ff["samples"])[1]  # median of 3
        for n, cell in r["gatys"]["iterations"].items():
            assert r["speedup"][n] == pytest.approx(cell["seconds"] / r["ours_seconds"], rel=1e-12)
            assert cell["seconds"] == pytest.approx(r["gatys"]["seconds_per_iteration"] * int(n), rel=1e-12)


def test_backend_rows_are_measured_or_say_why_not(quick):
    results, _, _ = quick
    rows = {(r["size"], r["backend"], r["precision"]): r for r in results["backends"]}
    assert set(rows) == {(s, "torch", p) for s in (64, 256) for p in ("fp32", "fp16")}
    fp16 = rows[(64, "torch", "fp16")]
    if not torch.cuda.is_available():
        assert "CUDA" in fp16["skipped"]
    assert rows[(64, "torch", "fp32")]["fps"] == pytest.approx(1 / rows[(64, "torch", "fp32")]["seconds"])


def test_pipeline_rows_compare_rtstyle_with_the_naive_loop(quick):
    results, _, _ = quick
    pipeline = results["pipeline"]
    if "skipped" in pipeline:
        pytest.skip(f"pipeline section skipped: {pipeline['skipped']}")
    assert [r["resolution"] for r in pipeline["rows"]] == ["160x96", "320x180"]
    assert [r["frames"] for r in pipeline["rows"]] == [6, 6]  # 2 at 1080p, at most 3x that when smaller
    for r in pipeline["rows"]:
        assert r["naive_fps"] == pytest.approx(r["frames"] / r["naive_seconds"])
        assert r["rtstyle_fps"] == pytest.approx(r["frames"] / r["rtstyle_seconds"])
        assert r["ratio"] == pytest.approx(r["rtstyle_fps"] / r["naive_fps"])


def test_outputs_terminal_markdown_and_chart(quick):
    results, stdout, out = quick
    assert "Table 1: Gatys et al." in stdout and "paper (Titan X)" in stdout and "projected" in stdout
    assert "random (He-initialised)" in stdout
    md = (out / "r.md").read_text()
    assert "| size |  | Gatys 100 | Gatys 300 | Gatys 500 | ours | speedup 100 | speedup 300 | speedup 500 |" in md
    assert "| 256x256 | paper (Titan X) | 3.17 s | 9.52 s | 15.86 s | 0.015 s | 212x | 636x | 1060x |" in md
    assert results["torch"] == torch.__version__ and results["device"] and results["date"]
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class Identity:
    """A backend that does nothing, counting its calls."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def test_smaller_resolutions_get_more_frames():
    assert [bench.frames_at(w, h, 3) for w, h in bench.RESOLUTIONS] == [9, 7, 3]
    assert bench.frames_at(3840, 2160, 3) == 3


def test_projection_and_median_use_the_clock(monkeypatch):
    """With a clock that advances 1 s per reading, K timed iterations give exactly 1 s each."""
    ticks = iter(range(10 ** 6))
    monkeypatch.setattr(bench, "clock", lambda: float(next(ticks)))
    g = bench.time_gatys(16, [1, 2, 100], measured=2, warmup=1, full=False, device=torch.device("cpu"))
    assert g["seconds_per_iteration"] == 1.0
    assert g["iterations"] == {1: {"seconds": 1.0, "projected": False}, 2: {"seconds": 2.0, "projected": False},
                               100: {"seconds": 100.0, "projected": True}}
    backend = Identity()
    ff = bench.time_feedforward(backend, 16, warmup=2, repeats=3)
    assert backend.calls == 5
    assert ff == {"seconds": 1.0, "samples": [1.0, 1.0, 1.0], "warmup_seconds": 1.0}
    assert bench.speedups(g, ff["seconds"]) == {1: 1.0, 2: 2.0, 100: 100.0}


@pytest.mark.parametrize("args, message", [
    (["--sizes", "30"], "multiples of 4"),
    (["--sizes", "a,b"], "comma-separated integers"),
    (["--backend", "cuda-magic"], "unknown backend"),
    (["--resolutions", "640by360"], "--resolutions"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    assert main(["bench", "--quick", "-o", str(tmp_path / "r.json"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
