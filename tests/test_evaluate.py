import json
import math

import numpy as np
import pytest

from rtstyle import evaluate, metrics
from rtstyle.cli import main
from rtstyle.imageio import write_image

from conftest import make_model


def test_crossing():
    assert evaluate.crossing([0, 10, 20], [9.0, 5.0, 1.0], 3.0) == pytest.approx(15)
    assert evaluate.crossing([0, 10], [9.0, 5.0], 1.0) is None


def test_gray_file_is_scored_on_its_gray_values(tmp_path):
    import cv2

    gray = np.random.default_rng(2).integers(0, 250, (40, 40)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    write_image(tmp_path / "c.png", np.stack([gray] * 3, -1))
    assert evaluate.is_one_channel(tmp_path / "g.png") and not evaluate.is_one_channel(tmp_path / "c.png")
    hr = np.stack([gray] * 3, -1)
    sr = np.clip(hr.astype(int) + 3, 0, 255).astype(np.uint8)
    p_gray, _ = metrics.sr_scores(sr, hr, 4, gray=True)
    p_rgb, _ = metrics.sr_scores(sr, hr, 4, gray=False)
    assert p_rgb - p_gray == pytest.approx(20 * math.log10(255 / 219), abs=0.05)


def test_bicubic_set5_x4_reproduces_the_paper(shared):
    """Johnson et al. 2016 (and SRCNN): bicubic on Set5 x4 is 28.43 dB / 0.8114."""
    result = evaluate.eval_sr(str(shared / "data" / "sr" / "Set5"), 4)
    bicubic = result["methods"]["bicubic"]
    assert bicubic["psnr"] == pytest.approx(28.43, abs=0.05)
    assert bicubic["ssim"] == pytest.approx(0.8114, abs=0.002)
    assert result["images"] == 5


def test_cli_eval_sr_with_a_model(shared, tiny_sr, tmp_path, capsys):
    out = tmp_path / "sr.json"
    code = main(["eval", "sr", "--set", str(shared / "data" / "sr" / "Set5"), "--scale", "4",
                 "--model", str(tiny_sr), "-o", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "28.43 / 0.8114" in printed and "tiny" in printed
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"bicubic", "tiny"}
    assert len(result["methods"]["tiny"]["per_image"]) == 5
    assert 5 < result["methods"]["tiny"]["psnr"] < 40  # a random net: finite, measured, poor
    assert main(["eval", "sr", "--set", str(shared / "data" / "sr" / "Set5"), "-o", str(out)]) == 2  # exists


def test_cli_eval_sr_errors(shared, tiny_sr, tmp_path, capsys):
    set5 = str(shared / "data" / "sr" / "Set5")
    assert main(["eval", "sr", "--set", set5, "--scale", "3"]) == 2
    assert main(["eval", "sr", "--set", str(tmp_path / "missing")]) == 2
    assert main(["eval", "sr", "--set", str(tmp_path)]) == 2  # no images
    assert main(["eval", "sr", "--set", set5, "--scale", "8", "--model", str(tiny_sr)]) == 2  # x4 model
    err = capsys.readouterr().err
    assert "'3' is not one of '4', '8'" in err and "not found" in err and "no images" in err and "not x8" in err


def test_eval_style_against_gatys(shared, vgg_weights, tiny_style, tmp_path):
    content = tmp_path / "photos"
    content.mkdir()
    write_image(content / "a.png", (np.random.default_rng(3).random((40, 52, 3)) * 255).astype(np.uint8))
    style = shared / "data" / "styles" / "mosaic.jpg"
    out, plot = tmp_path / "style.json", tmp_path / "style.png"
    code = main(["eval", "style", "--style", str(tiny_style), "--content", str(content), "--size", "32",
                 "--gatys-iterations", "2,4", "--style-image", str(style), "-o", str(out), "--plot", str(plot),
                 "--vgg-weights", str(vgg_weights), "--device", "cpu"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["images"] == 1 and set(result["gatys_total"]) == {"2", "4"}
    row = result["per_image"][0]
    assert len(row["curve"]) == 4 and all(math.isfinite(v) for v in row["curve"])
    assert row["curve"][-1] < row["curve"][0]  # L-BFGS lowers the objective
    assert row["feed_forward"]["total"] > 0
    assert row["photo"]["content"] == 0 and row["photo"]["total"] == result["photo_total"] > 0  # the unchanged photo
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_style_refuses_the_training_folder(tmp_path, capsys):
    photos = tmp_path / "train"
    photos.mkdir()
    model = make_model(tmp_path / "m.safetensors", {"kind": "style", "width": 0.25}, name="m")
    from rtstyle.checkpoint import load_model, save_model

    net, meta = load_model(model)
    save_model(net, model, {**meta, "data": str(photos)}, overwrite=True)
    assert main(["eval", "style", "--style", str(model), "--content", str(photos)]) == 2
    (photos / "sub").mkdir()
    assert main(["eval", "style", "--style", str(model), "--content", str(photos / "sub")]) == 2
    assert capsys.readouterr().err.count("was trained on") == 2
    assert main(["eval", "style", "--style", str(model), "--content", str(photos), "--gatys-iterations", "a"]) == 2


def test_gallery_script(tmp_path, tiny_style):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gallery", Path(__file__).parents[1] / "benchmarks" / "gallery.py")
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)
    photos = []
    for i, (h, w) in enumerate([(50, 70), (90, 45)]):
        photos.append(write_image(tmp_path / f"p{i}.png", np.full((h, w, 3), 40 * i + 60, np.uint8)))
    out = tmp_path / "gallery.png"
    args = ["--styles", f"{tiny_style},{tiny_style}", "--cell", "32", "--out", str(out), "--device", "cpu", "--content"]
    assert gallery.main(args + [str(p) for p in photos]) == 0
    from rtstyle.imageio import read_image

    image = read_image(out)
    g, lab = gallery.GAP, gallery.LABEL_HEIGHT
    assert image.shape == (3 * 32 + lab + 2 * g, 3 * 32 + 2 * g, 3)  # header + labels, 2 photo rows; 3 columns
    assert (image[32 + lab + g:32 + lab + g + 32, :32] == 60).all()  # first photo, untouched, left column
    assert gallery.main(["--styles", str(tiny_style), "--cell", "30", "--content", str(photos[0])]) == 2
