"""The command line's conventions: --version, -h, choices checked by the parser, one-line usage
errors, --json, - for stdin/stdout, -q, the overwrite rule checked before any work, `rtstyle info`."""
from __future__ import annotations

import json
import subprocess
import sys
import typing

import pytest
import torch

import rtstyle
from rtstyle import cli
from rtstyle.backends import BACKENDS
from rtstyle.cli import main
from rtstyle.imageio import decode_image, encode_image, read_image, write_image
from rtstyle.synth import pattern

FAST = ["--backend", "torch", "--device", "cpu"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtstyle: error: "), err
    return err[0]


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rtstyle {rtstyle.__version__}"
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    assert "--show-completion" in out and "stylize" in out and "info" in out  # completion is not disabled
    assert main(["video", "-h"]) == 0
    out = capsys.readouterr().out
    for option in ("-s, --style", "-o, --output", "-q, --quiet", "--no-progress", "--json",
                   "<auto|tensorrt|compile|onnxruntime|torch>", "[default: auto]"):
        assert option in out, option


def test_parser_choices_are_the_packages():
    assert typing.get_args(cli.Backend) == BACKENDS


@pytest.mark.parametrize("args, message", [
    (["video", "in.mp4", "-s", "candy", "--backend", "fast"], "'fast' is not one of"),
    (["stylize", "a.png", "-s", "candy", "--precision", "fp8"], "'fp8' is not one of"),
    (["upscale", "a.png", "--scale", "3"], "'3' is not one of"),
    (["video", "in.mp4", "-s", "candy", "--codec", "nosuchcodec"], "not a video encoder"),
    (["train", "style", "s.jpg", "--data", ".", "--name", "x", "--norm", "group"], "'group' is not one of"),
    (["video", "in.mp4", "--bogus"], "No such option: --bogus"),
    (["video"], "Missing argument"),
    (["stylize", "a.png", "-s", "candy", "--device", "tpu:0"], "tpu:0"),
])
def test_usage_errors_are_one_line(capsys, args, message):
    assert main(args) == 2
    line = one_error_line(capsys)
    assert message in line and f"rtstyle {args[0]}" in line, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(capsys, tiny_style, tmp_path):
    src = write_image(tmp_path / "a.png", pattern(0, 32, 32))
    assert main(["stylize", str(src), "-s", str(tiny_style), "--device", "cuda"]) == 2
    line = one_error_line(capsys)
    assert "--device cuda" in line and "CUDA" in line.split("--device cuda", 1)[1], line
    assert not (tmp_path / "a.tiny.png").exists()


def test_styles_json(capsys):
    assert main(["styles", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert {"candy", "sr_x4_feat"} <= {m["name"] for m in models}
    assert all(m["kind"] in ("style", "sr") for m in models)


def test_stylize_json_and_quiet(capsys, tiny_style, tmp_path):
    src = write_image(tmp_path / "a.png", pattern(0, 40, 32))
    assert main(["stylize", str(src), "-s", str(tiny_style), "--json", "-q", *FAST]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["outputs"] == [str(tmp_path / "a.tiny.png")] and result["backend"] == "torch"
    assert read_image(tmp_path / "a.tiny.png").shape == (32, 40, 3)
    assert captured.err == ""  # -q: no "wrote ..." notice
    assert main(["stylize", str(src), "-s", str(tiny_style), *FAST]) == 2  # exists: the overwrite rule
    assert "--overwrite" in one_error_line(capsys)


def test_video_json(capsys, tiny_style, tmp_path):
    from rtstyle.synth import make_clip

    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32), audio=False)
    assert main(["video", str(src), "-s", str(tiny_style), "-o", str(tmp_path / "o.mp4"), "--json", *FAST]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 3 and result["output"] == str(tmp_path / "o.mp4") and result["fps"] > 0


def test_stdin_to_stdout(tiny_style, tmp_path):
    """`rtstyle stylize - -o -`: an encoded image in, a PNG out, in a real pipe."""
    rgb = pattern(3, 48, 32)
    done = subprocess.run([sys.executable, "-m", "rtstyle", "stylize", "-", "-o", "-", "-s", str(tiny_style), *FAST],
                          input=encode_image(rgb, ".jpg"), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = decode_image(done.stdout)
    assert out.shape == (32, 48, 3) and out.std() > 0
    assert done.stdout[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command, scale", [("upscale", 4), ("sheet", None)])
def test_upscale_and_sheet_read_stdin_and_write_stdout(command, scale, tiny_style, tiny_sr):
    """The other image commands take ``-`` too: `rtstyle upscale - -o -`, `rtstyle sheet - -o -`."""
    rgb = pattern(4, 40, 32)
    args = ["-m", str(tiny_sr), *FAST] if command == "upscale" else ["-s", str(tiny_style), "--cell", "40",
                                                                     "--columns", "2", "--device", "cpu"]
    done = subprocess.run([sys.executable, "-m", "rtstyle", command, "-", "-o", "-", *args],
                          input=encode_image(rgb, ".png"), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = decode_image(done.stdout)
    if scale:
        assert out.shape == (32 * scale, 40 * scale, 3)
    else:  # original | style, each 40 wide and 32 high, a label strip under each, a gap between
        assert out.shape == (32 + 28, 40 + 4 + 40, 3)
        assert not (out[:32, :40].astype(int) - rgb).any()


def test_stdin_to_file_and_json_conflict(capsys, monkeypatch, tiny_style, tmp_path):
    class Stdin:
        buffer = __import__("io").BytesIO(encode_image(pattern(1, 32, 32), ".png"))

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert main(["stylize", "-", "-o", str(tmp_path / "o.png"), "-s", str(tiny_style), *FAST]) == 0
    assert read_image(tmp_path / "o.png").shape == (32, 32, 3)
    capsys.readouterr()
    assert main(["stylize", "-", "-o", "-", "--json", "-s", str(tiny_style), *FAST]) == 2
    assert "stdout" in one_error_line(capsys)


def test_train_refuses_an_existing_output_before_any_work(capsys, tmp_path):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"keep")
    style = write_image(tmp_path / "style.png", pattern(2, 32, 32))
    (tmp_path / "photos").mkdir()
    write_image(tmp_path / "photos" / "a.png", pattern(0, 64, 64))
    assert main(["train", "style", str(style), "--data", str(tmp_path / "photos"),
                 "--name", "m", "-o", str(out), "--device", "cpu"]) == 2
    assert "--overwrite" in one_error_line(capsys) and out.read_bytes() == b"keep"


def test_bench_refuses_an_existing_output_before_any_work(capsys, tmp_path):
    (tmp_path / "r.json").write_text("{}")
    assert main(["bench", "--quick", "-o", str(tmp_path / "r.json"), "--resolutions", "none"]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert (tmp_path / "r.json").read_text() == "{}"


def test_info(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["backends"]) == set(BACKENDS) and report["backends"]["torch"]["available"]
    assert report["rtstyle"] == rtstyle.__version__ and report["devices"][0]["device"] == "cpu"
    assert main(["info"]) == 0
    assert "backends (--backend):" in capsys.readouterr().out


def test_opencv_is_headless():
    """The default install is opencv-python-headless: no GUI toolkit, no system libGL needed. (An old
    venv that once had opencv-python installed can still report its GUI: check in a fresh one.)"""
    import importlib.metadata as md

    from rtstyle.info import opencv

    try:
        md.version("opencv-python")
    except md.PackageNotFoundError:
        assert opencv()["headless"], opencv()
    else:
        pytest.skip("opencv-python (the GUI build, the [gui] extra) is installed in this environment")


def test_no_progress_bar_in_a_log(tmp_path, tiny_style):
    """stderr that is not a terminal gets no progress bar (a log file would fill with them)."""
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", pattern(i, 32, 32))
    done = subprocess.run([sys.executable, "-m", "rtstyle", "stylize", str(tmp_path / "in"), "-s", str(tiny_style),
                           *FAST], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "image/s" not in done.stderr and "it/s" not in done.stderr and "\r" not in done.stderr
    assert read_image(tmp_path / "in.tiny" / "0.png").shape == (32, 32, 3)
