"""Multi-style files: each style found by its name, blends of styles, and the plain net they bake into."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from rtstyle import models
from rtstyle.checkpoint import save_model
from rtstyle.cli import main
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image, to_tensor, write_image
from rtstyle.nets import CondInstanceNorm2d, build_net, one_hot

ARCH = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25, "edge_kernel": 5,
        "styles": ["aa", "bb", "cc"]}


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A 3-style file in the user model folder, with distinct per-style scales and shifts."""
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path / "models"))
    monkeypatch.setenv("RTSTYLE_ENGINE_DIR", str(tmp_path / "engines"))
    torch.manual_seed(0)
    net = build_net(ARCH)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, CondInstanceNorm2d):
                m.weight.normal_(1, 0.5)
                m.bias.normal_(0, 0.5)
    meta = {"name": "myzoo", "arch": ARCH, "styles": ARCH["styles"], "style_images": ["aa.jpg", "bb.png", "cc.jpg"]}
    save_model(net, tmp_path / "models" / "myzoo.safetensors", meta)
    return net.eval()


def test_each_style_resolves_by_name_and_is_a_plain_net(zoo):
    listed = {name: path.name for name, path, _ in models.list_models("style")}
    assert {"aa", "bb", "cc"} <= set(listed) and listed["bb"] == "myzoo.safetensors"
    x = torch.rand(1, 3, 32, 36)
    m = models.open_model("bb", backend="torch", device="cpu")
    assert m.name == "bb" and m.meta["style_image"] == "bb.png" and "styles" not in m.meta["arch"]
    assert not any(isinstance(k, CondInstanceNorm2d) for k in m.net.modules())
    with torch.no_grad():
        assert torch.allclose(m.backend(x), zoo(x, one_hot(1, 3)), atol=1e-5)


def test_blend_interpolates_the_per_style_parameters(zoo):
    x = torch.rand(1, 3, 32, 36)
    m = models.open_model("aa:1,cc:3", backend="torch", device="cpu")
    assert m.meta["multi_style"]["blend"] == {"aa": 0.25, "cc": 0.75}
    with torch.no_grad():
        blended = m.backend(x)
        assert torch.allclose(blended, zoo(x, torch.tensor([[0.25, 0.0, 0.75]])), atol=1e-5)
        assert (blended - zoo(x, one_hot(0, 3))).abs().max() > 0.01


@pytest.mark.parametrize("spec,message", [
    ("aa:0.5,zz:0.5", "unknown style model 'zz'"),
    ("aa:-1,bb:2", "positive weights"),
    ("aa:x", "positive weights"),
    ("aa:1,aa:2", "twice"),
    ("myzoo", "holds 3 styles"),
])
def test_bad_style_specs_are_one_clear_error(zoo, spec, message):
    with pytest.raises(RtstyleError, match=message):
        models.open_model(spec, backend=None)


def test_blends_across_files_are_refused(zoo, tmp_path):
    save_model(build_net({**ARCH, "styles": ["dd"]}), tmp_path / "models" / "other.safetensors",
               {"arch": {**ARCH, "styles": ["dd"]}})
    with pytest.raises(RtstyleError, match="one multi-style model"):
        models.resolve("aa:0.5,dd:0.5")


def test_stylize_with_a_blend_and_export_it_to_onnx(zoo, shared, tmp_path, capsys):
    photo = tmp_path / "p.png"
    write_image(photo, read_image(shared / "data/content/amber.jpg")[:64, :80])
    assert main(["stylize", str(photo), "--style", "aa:0.5,bb:0.5", "--backend", "torch"]) == 0
    out = tmp_path / "p.aa+bb.png"
    x = to_tensor(read_image(photo))
    with torch.no_grad():
        expected = (zoo(x, torch.tensor([[0.5, 0.5, 0.0]]))[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(read_image(out).astype(float) - expected).max() <= 2
    onnx_path = tmp_path / "cc.onnx"
    assert main(["export", "--style", "cc", "--format", "onnx", "-o", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] and len(session.get_inputs()) == 1  # no style input
    y = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(y - zoo(x, one_hot(2, 3)).numpy()).max() < 1e-3


def test_shipped_cards_name_no_machine_paths():
    """A shipped card (JSON and the safetensors header) names its inputs, not where they lay."""
    from safetensors import safe_open

    for card in sorted(models.SHIPPED_DIR.glob("*.json")):
        with safe_open(str(card.with_suffix(".safetensors")), "pt") as f:
            header = json.dumps(f.metadata())
        for text in (card.read_text(), header):
            assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, card.name
