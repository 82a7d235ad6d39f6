import shutil

import pytest
import torch

from rtstyle import vgg
from rtstyle.errors import RtstyleError

# Content hash of the shared weights, from ../shared/assets/vgg16/MANIFEST.md
MANIFEST_HASH = "435de9508370f51ec0fdadd60aa554c0affcb74b9b560491bc93e2ba76a94181"


@pytest.fixture(scope="module")
def net(vgg_weights):
    return vgg.load_vgg16(vgg_weights)


def test_real_weights_load_frozen_with_manifest_hash(net):
    assert net.weights_hash == MANIFEST_HASH
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    # truncated after relu4_3 (index 22): nothing deeper is computed
    assert len(net.features) == 23


def test_activation_shapes(net):
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "relu1_2": (64, 64, 64), "relu2_2": (128, 32, 32), "relu3_3": (256, 16, 16), "relu4_3": (512, 8, 8)}
    assert all((v >= 0).all() for v in out.values())


def test_input_normalisation_is_torchvision(net):
    """conv1_1 on the normalised input equals the model's first activation."""
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = torch.relu(net.features[0]((x - torch.tensor(vgg.MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.STD).view(1, 3, 1, 1)))
        assert torch.allclose(net.features[1](net.features[0]((x - net.mean) / net.std)), ref)


def test_env_var_and_full_torchvision_layout(vgg_weights, tmp_path, monkeypatch):
    state = torch.load(vgg_weights, weights_only=True)
    full = {f"features.{k}": v for k, v in state.items()}
    full["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(full, tmp_path / "vgg16-full.pth")
    monkeypatch.setenv(vgg.ENV_VAR, str(tmp_path / "vgg16-full.pth"))
    net = vgg.load_vgg16(layers=("relu2_2",))
    assert net.weights_hash == MANIFEST_HASH
    assert len(net.features) == 9


def test_hub_cache_then_download(vgg_weights, tmp_path, monkeypatch):
    """Without a path, weights come from the torch hub cache, else from torchvision's URL."""
    monkeypatch.delenv(vgg.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    calls = []

    def fake_download(url, map_location=None, weights_only=False, progress=True):
        calls.append((url, weights_only))
        dest = vgg.hub_cache_path()
        dest.parent.mkdir(parents=True)
        shutil.copy(vgg_weights, dest)  # what torch.hub does: download into the cache, then load
        return torch.load(dest, map_location=map_location, weights_only=True)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    state, source = vgg.load_state()
    assert calls == [(vgg.VGG16_URL, True)] and source == vgg.VGG16_URL
    state, source = vgg.load_state()  # second time: from the cache, no download
    assert len(calls) == 1 and source == str(vgg.hub_cache_path())
    assert vgg.content_hash(state) == MANIFEST_HASH


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(RtstyleError, match="not found"):
        vgg.load_state(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RtstyleError, match="cannot load"):
        vgg.load_state(tmp_path / "junk.pth")
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "partial.pth")
    with pytest.raises(RtstyleError, match="not a VGG-16"):
        vgg.load_vgg16(tmp_path / "partial.pth")
