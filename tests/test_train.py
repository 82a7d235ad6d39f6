import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from rtstyle import checkpoint, losses, train
from rtstyle.data import ImageFolder
from rtstyle.errors import RtstyleError
from rtstyle.imageio import read_image, to_tensor
from rtstyle.nets import build_net
from rtstyle.vgg import load_vgg16

ARCH = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25}
MANIFEST_HASH = "435de9508370f51ec0fdadd60aa554c0affcb74b9b560491bc93e2ba76a94181"


def _style_setup(shared, vgg_weights, size=64):
    vgg = load_vgg16(vgg_weights)
    style = torch.nn.functional.interpolate(to_tensor(read_image(shared / "data/styles/mosaic.jpg")), size=(128, 128))
    with torch.no_grad():
        grams = [losses.gram(f) for f in vgg(style).values()]
    loss_fn = train.style_objective(vgg, grams, losses.CONTENT_WEIGHT, losses.STYLE_WEIGHT, losses.TV_WEIGHT)
    data = ImageFolder(shared / "data/train", size, "style")
    return loss_fn, data


def test_bf16_autocast_on_a_cpu_only_with_amx(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert not train.cpu_has_amx(str(info))  # AVX512-BF16 alone: bf16 measured slower than fp32
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n")
    assert train.cpu_has_amx(str(info))
    assert not train.cpu_has_amx(str(tmp_path / "missing"))
    monkeypatch.setattr(train, "cpu_has_amx", lambda: False)
    assert train.autocast_dtype(torch.device("cpu")) is None


def test_short_training_lowers_the_loss_on_real_photos(shared, vgg_weights, tmp_path):
    loss_fn, data = _style_setup(shared, vgg_weights)
    fixed = torch.stack([data[i] for i in range(4)])
    torch.manual_seed(0)
    net = build_net(ARCH)
    with torch.no_grad():
        before = loss_fn(net, fixed)["total"].item()
    batches = iter([torch.stack([data[(7 * s + j) % len(data)] for j in range(4)]) for s in range(40)])
    meta = {"name": "t", "arch": ARCH, "recipe": {}}
    final = train.fit(net, loss_fn, batches, iterations=40, lr=3e-3, state_path=tmp_path / "s.pt", meta=meta,
                      resume=False, checkpoint_every=0, device=torch.device("cpu"), rank=0, world=1)
    with torch.no_grad():
        after = loss_fn(net.eval(), fixed)["total"].item()
    assert after < 0.6 * before, (before, after)
    assert set(final) == {"total", "content", "style", "tv"}


def test_train_style_checkpoints_and_resumes(shared, vgg_weights, tmp_path):
    out = tmp_path / "m.safetensors"
    kw = dict(image_size=32, style_size=64, batch_size=2, width=0.25, workers=0, vgg_weights=str(vgg_weights),
              out=str(out), checkpoint_every=2, device="cpu")
    style = str(shared / "data/styles/candy.jpg")
    train.train_style(style, str(shared / "data/train"), "m", iterations=4, **kw)
    state = checkpoint.load_training_state(out.with_suffix(".state.pt"))
    assert state["step"] == 4
    net, meta = checkpoint.load_model(out)
    assert meta["vgg16_sha256"] == MANIFEST_HASH
    assert meta["recipe"]["iterations"] == 4 and meta["style_image"] == "candy.jpg"
    assert set(meta["final_losses"]) == {"total", "content", "style", "tv"}
    for a, b in zip(net.state_dict().values(), state["model"].values()):
        assert torch.equal(a, b)
    # resume continues from step 4: only 2 more steps, starting from the saved weights
    train.train_style(style, str(shared / "data/train"), "m", iterations=6, resume=True, **kw)
    assert checkpoint.load_training_state(out.with_suffix(".state.pt"))["step"] == 6
    _, meta = checkpoint.load_model(out)
    assert meta["recipe"]["iterations"] == 6


def test_sigterm_to_the_process_group_saves_the_state(shared, vgg_weights, tmp_path):
    """SIGTERM to the whole process group, as systemd, SLURM and `timeout` send it, DataLoader
    workers included: training saves its state as on Ctrl-C (the workers leave it to the main
    process) and exits 143; --resume continues from it."""
    out = tmp_path / "m.safetensors"
    state = out.with_suffix(".state.pt")
    args = [sys.executable, "-m", "rtstyle", "train", "style", str(shared / "data/styles/candy.jpg"), "--data",
            str(shared / "data/train"), "--name", "m", "--iterations", "100000", "--image-size", "32", "--style-size",
            "64", "--batch-size", "2", "--width", "0.25", "--workers", "1", "--vgg-weights", str(vgg_weights), "--out",
            str(out), "--checkpoint-every", "1", "--device", "cpu"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.exists(), proc.communicate(timeout=30)
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr[-2000:]
    assert "state saved" in stdout, stdout
    assert checkpoint.load_training_state(state)["step"] >= 1 and not out.exists()


@pytest.mark.parametrize("loss", ["feat", "pixel"])
def test_train_sr_runs(shared, vgg_weights, tmp_path, loss):
    out = tmp_path / f"sr_{loss}.safetensors"
    train.train_sr(str(shared / "data/train"), "sr", scale=4, loss=loss, iterations=2, batch_size=2, patch_size=32,
                   width=0.25, workers=0, vgg_weights=str(vgg_weights), out=str(out), device="cpu")
    net, meta = checkpoint.load_model(out)
    assert meta["arch"]["scale"] == 4 and meta["recipe"]["loss"] == loss
    assert meta["recipe"]["pixel_weight"] == (1.0 if loss == "pixel" else 0.0)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_train_sr_from_a_model_with_the_shipped_recipe(shared, vgg_weights, tmp_path):
    """The shipped nets' options: tapered resize-convolution net, no normalisation, bicubic skip,
    cosine decay, feature loss plus a pixel term, starting from another model (--init)."""
    kw = dict(scale=4, iterations=2, batch_size=2, patch_size=32, width=0.25, norm="none", taper=True, residual=True,
              lr_decay="cosine", workers=0, vgg_weights=str(vgg_weights), device="cpu")
    first = tmp_path / "pixel.safetensors"
    train.train_sr(str(shared / "data/train"), "p", loss="pixel", out=str(first), **kw)
    second = tmp_path / "feat.safetensors"
    train.train_sr(str(shared / "data/train"), "f", loss="feat", pixel_weight=0.5, init=str(first), out=str(second), **kw)
    (net1, _), (net2, meta) = checkpoint.load_model(first), checkpoint.load_model(second)
    assert meta["arch"] == {"kind": "sr", "scale": 4, "norm": "none", "upsample": "resize", "width": 0.25,
                            "residual": True, "taper": True}
    assert meta["recipe"]["init"] == str(first) and meta["final_losses"]["feat"] > 0
    moved = [not torch.equal(a, b) for a, b in zip(net1.state_dict().values(), net2.state_dict().values())]
    assert any(moved)
    with pytest.raises(RtstyleError, match="architecture"):
        train.train_sr(str(shared / "data/train"), "g", loss="feat", init=str(first), out=str(tmp_path / "g.safetensors"),
                       **{**kw, "taper": False})
    with pytest.raises(RtstyleError, match="lr-decay"):
        train.SRRecipe("d", "n", lr_decay="step")
    with pytest.raises(RtstyleError, match="--norm"):
        train.SRRecipe("d", "n", norm="group")


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    r, w = train._distributed()
    torch.manual_seed(0)
    net = build_net(ARCH)
    gen = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    batches = iter([torch.rand(2, 3, 16, 16, generator=gen) for _ in range(3)])
    loss_fn = lambda model, x: {"total": ((model(x) - x.flip(-1)) ** 2).mean()}
    train.fit(net, loss_fn, batches, iterations=3, lr=1e-2, state_path=out_dir / "state.pt", meta={"name": "d", "arch": ARCH, "recipe": {}},
              resume=False, checkpoint_every=0, device=torch.device("cpu"), rank=r, world=w)
    torch.save(net.state_dict(), out_dir / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    mp.spawn(_ddp_worker, args=(2, 29517, tmp_path), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(0)
    start = build_net(ARCH).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], start[k]) for k in a)  # and they did train


def test_torchrun_launches_training(shared, vgg_weights, tmp_path):
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "rtstyle",
           "train", "style", str(shared / "data/styles/wave.jpg"), "--data", str(shared / "data/train"), "--name", "ddp",
           "--iterations", "2", "--image-size", "32", "--style-size", "64", "--batch-size", "1", "--width", "0.25",
           "--workers", "0", "--device", "cpu", "--vgg-weights", str(vgg_weights), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, meta = checkpoint.load_model(out)
    assert meta["recipe"]["world_size"] == 2 and meta["recipe"]["batch_size"] == 2


def test_multi_style_training_balanced_temporal_card_and_resume(shared, vgg_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_SHARED", str(shared))
    out = tmp_path / "zoo.safetensors"
    styles = [str(shared / f"data/styles/{n}.jpg") for n in ("candy", "the_scream")]
    kw = dict(image_size=32, style_size=64, batch_size=2, width=0.25, edge_kernel=5, balanced="total", style_weight=80.0,
              temporal_weight=500.0, workers=0, vgg_weights=str(vgg_weights), out=str(out), checkpoint_every=2,
              device="cpu")
    train.train_style(styles, str(shared / "data/train"), "zoo", iterations=2, **kw)
    net, meta = checkpoint.load_model(out)
    assert meta["arch"] == {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25, "edge_kernel": 5,
                            "styles": ["candy", "the_scream"]}
    assert meta["style_images"] == ["candy.jpg", "the_scream.jpg"]
    assert meta["recipe"]["temporal_weight"] == 500.0 and meta["recipe"]["balanced"] == "total"
    assert set(meta["final_losses"]) == {"total", "content", "style", "tv", "temporal"}
    assert "/" + shared.name + "/" not in str(meta)  # no machine paths on the card
    assert meta["data"] == "$RTSTYLE_SHARED/data/train"
    # candy's Grams are far further from a photo's than the_scream's: that is what the normalisers absorb
    norms = meta["style_norms"]
    assert sum(norms["candy"]) > 2 * sum(norms["the_scream"]) and min(norms["candy"] + norms["the_scream"]) > 0
    train.train_style(styles, str(shared / "data/train"), "zoo", iterations=3, resume=True, **kw)
    assert checkpoint.load_training_state(out.with_suffix(".state.pt"))["step"] == 3


def test_balanced_objective_scores_an_unchanged_photo_at_one_per_layer(shared, vgg_weights):
    vgg = load_vgg16(vgg_weights)
    with torch.no_grad():
        grams = [losses.gram(f) for f in vgg(losses.load_style_target(str(shared / "data/styles/wave.jpg"), 64)).values()]
        norms = train.photo_norms(vgg, grams, str(shared / "data/train"), 32, photos=2)
        r = train.StyleRecipe(str(shared / "data/styles/wave.jpg"), "", "w", image_size=32, balanced="layer")
        loss_fn = train.multi_style_objective(vgg, grams, norms, r, multi=False)
        photos = torch.stack([ImageFolder(shared / "data/train", 32, "style")[i] for i in range(2)])
        terms = loss_fn(lambda x: x, photos)  # the identity "net" on random crops of two photos
    assert terms["content"].item() == 0 and "temporal" not in terms
    assert 1 < terms["style"].item() < 16  # 4 layers at ~1 each (other crops than the normalisers')


def test_total_balancing_keeps_the_papers_layer_mix(shared, vgg_weights):
    vgg = load_vgg16(vgg_weights)
    with torch.no_grad():
        grams = [losses.gram(f) for f in vgg(losses.load_style_target(str(shared / "data/styles/wave.jpg"), 64)).values()]
    layer = train.photo_norms(vgg, grams, str(shared / "data/train"), 32, photos=2)
    total = train.photo_norms(vgg, grams, str(shared / "data/train"), 32, photos=2, by="total")
    assert layer.shape == total.shape == (1, 4) and layer.std() > 0
    assert torch.allclose(total, layer.mean().expand(1, 4))  # one divisor for all layers: their ratios stay the paper's
    assert torch.allclose((layer / total).sum(), torch.tensor(4.0))  # the unchanged photo still scores 4 in total


def test_recipe_balancing_reads_old_cards_and_refuses_unknown_modes():
    assert train.StyleRecipe("a.jpg", "", "a", balanced=True).balanced == "layer"  # cards written before "total"
    assert train.StyleRecipe("a.jpg", "", "a").balanced == ""
    with pytest.raises(RtstyleError, match="balanced"):
        train.StyleRecipe("a.jpg", "", "a", balanced="per-pixel")


def test_add_to_fine_tunes_only_the_new_styles_scales_and_shifts(shared, vgg_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_MODELS", str(tmp_path))
    styles = [str(shared / f"data/styles/{n}.jpg") for n in ("candy", "wave")]
    kw = dict(batch_size=1, workers=0, vgg_weights=str(vgg_weights), device="cpu")
    train.train_style(styles, str(shared / "data/train"), "base", iterations=1, image_size=32, style_size=64,
                      width=0.25, edge_kernel=5, balanced=True, style_weight=80.0, **kw)
    train.add_style(str(shared / "data/styles/starry_night_crop.jpg"), "base", str(shared / "data/train"), "more",
                    iterations=3, lr=0.05, **kw)
    base, base_meta = checkpoint.load_model(tmp_path / "base.safetensors")
    net, meta = checkpoint.load_model(tmp_path / "more.safetensors")
    assert meta["arch"]["styles"] == ["candy", "wave", "starry_night_crop"] and meta["base"]["name"] == "base"
    assert meta["recipe"]["image_size"] == 32 and meta["recipe"]["add_to"] == "base" and meta["recipe"]["balanced"]
    assert set(meta["style_norms"]) == {"candy", "wave", "starry_night_crop"}
    assert meta["style_images"] == ["candy.jpg", "wave.jpg", "starry_night_crop.jpg"]
    changed = 0
    for k, v in net.state_dict().items():
        old = base.state_dict()[k]
        if v.shape == old.shape:
            assert torch.equal(v, old), k  # shared convolutions frozen
        else:
            assert torch.equal(v[:2], old), k  # the base's styles untouched
            changed += not torch.allclose(v[2], old.mean(0))
    assert changed > 0  # the new style's parameters trained
    from rtstyle import models
    assert models.open_model("starry_night_crop", backend=None).meta["style_image"] == "starry_night_crop.jpg"
