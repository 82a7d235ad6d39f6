import os
import pickle

import pytest
import torch

from rtstyle import checkpoint, models
from rtstyle.errors import RtstyleError
from rtstyle.nets import build_net

ARCH = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25}


def test_model_round_trip_fp32_and_fp16(tmp_path):
    net = build_net(ARCH)
    checkpoint.save_model(net, tmp_path / "m.safetensors", {"arch": ARCH, "name": "m"})
    loaded, meta = checkpoint.load_model(tmp_path / "m.safetensors")
    assert meta == {"arch": ARCH, "name": "m"}
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    checkpoint.save_model(net, tmp_path / "h.safetensors", {"arch": ARCH}, half=True)
    assert os.path.getsize(tmp_path / "h.safetensors") < 0.6 * os.path.getsize(tmp_path / "m.safetensors")
    half, _ = checkpoint.load_model(tmp_path / "h.safetensors")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (half(x) - net.eval()(x)).abs().max() < 1e-2


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/rtstyle-pwned",))


def test_malicious_pickle_is_rejected(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit(), "meta": {}}, f)
    torch.save({"model": Exploit(), "meta": {}}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(RtstyleError, match="cannot load checkpoint"):
            checkpoint.load_model(p)
    assert not os.path.exists("/tmp/rtstyle-pwned")


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    checkpoint.save_model(build_net(ARCH), tmp_path / "m.safetensors", {"arch": ARCH})
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.safetensors").write_bytes(b"")
    for name in ("cut.safetensors", "empty.safetensors"):
        with pytest.raises(RtstyleError):
            checkpoint.load_model(tmp_path / name)
    bad_arch = dict(ARCH, width=0.5)
    checkpoint.save_model(build_net(ARCH), tmp_path / "lie.safetensors", {"arch": bad_arch})
    with pytest.raises(RtstyleError, match="does not match"):
        checkpoint.load_model(tmp_path / "lie.safetensors")
    with pytest.raises(RtstyleError, match="not found"):
        checkpoint.load_model(tmp_path / "nope.safetensors")


def test_models_resolve_by_name_and_kind(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_VAR, str(tmp_path))
    checkpoint.save_model(build_net(ARCH), tmp_path / "mine.safetensors", {"arch": ARCH})
    net, meta = models.load("mine")
    assert meta["name"] == "mine"
    assert "mine" in [name for name, _, _ in models.list_models("style")]
    with pytest.raises(RtstyleError, match="not a sr model"):
        models.load("mine", kind="sr")
    with pytest.raises(RtstyleError, match="unknown style model 'nosuch'"):
        models.load("nosuch")
