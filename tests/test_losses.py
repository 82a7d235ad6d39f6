import numpy as np
import torch

from rtstyle import losses

rng = np.random.default_rng(0)


def test_feature_loss_matches_formula():
    a, b = rng.normal(size=(2, 5, 4, 3)), rng.normal(size=(2, 5, 4, 3))
    expected = np.mean([((a[i] - b[i]) ** 2).sum() / (5 * 4 * 3) for i in range(2)])
    assert np.isclose(losses.feature_loss(torch.tensor(a), torch.tensor(b)).item(), expected)


def test_gram_matches_formula_and_is_symmetric_psd():
    phi = rng.normal(size=(1, 6, 4, 5))
    psi = phi[0].reshape(6, 20)
    g = losses.gram(torch.tensor(phi))[0].double().numpy()
    assert np.allclose(g, psi @ psi.T / (6 * 4 * 5), atol=1e-6)
    assert np.allclose(g, g.T)
    assert np.linalg.eigvalsh(g).min() > -1e-6


def test_style_loss_matches_frobenius_sum():
    f1 = [rng.normal(size=(2, c, 4, 4)) for c in (3, 5)]
    f2 = [rng.normal(size=(1, c, 6, 6)) for c in (3, 5)]
    gram = lambda x: np.einsum("bchw,bdhw->bcd", x, x) / np.prod(x.shape[1:])
    expected = sum(np.mean([((gram(a)[i] - gram(b)[0]) ** 2).sum() for i in range(2)]) for a, b in zip(f1, f2))
    got = losses.style_loss([losses.gram(torch.tensor(a)) for a in f1], [losses.gram(torch.tensor(b)) for b in f2])
    assert np.isclose(got.item(), expected, rtol=1e-5)


def test_style_loss_ignores_spatial_permutation_but_feature_loss_does_not():
    phi = torch.randn(1, 8, 6, 6)
    target = torch.randn(1, 8, 6, 6)
    perm = torch.randperm(36)
    shuffled = phi.reshape(1, 8, 36)[:, :, perm].reshape(1, 8, 6, 6)
    g_t = [losses.gram(target)]
    assert torch.isclose(losses.style_loss([losses.gram(phi)], g_t), losses.style_loss([losses.gram(shuffled)], g_t))
    assert not torch.isclose(losses.feature_loss(phi, target), losses.feature_loss(shuffled, target))


def test_tv_and_pixel_loss():
    y = rng.random((1, 3, 5, 7))
    tv = np.abs(np.diff(y, axis=3)).mean() + np.abs(np.diff(y, axis=2)).mean()
    assert np.isclose(losses.tv_loss(torch.tensor(y)).item(), tv)
    assert losses.tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0
    z = rng.random((1, 3, 5, 7))
    assert np.isclose(losses.pixel_loss(torch.tensor(y), torch.tensor(z)).item(), ((y - z) ** 2).sum() / (3 * 5 * 7))


def test_style_transfer_loss_combines_terms_with_weights():
    y = torch.rand(1, 3, 8, 8)
    feats = {"relu1_2": torch.rand(1, 4, 8, 8), "relu3_3": torch.rand(1, 6, 4, 4)}
    target, grams = torch.rand(1, 6, 4, 4), [losses.gram(torch.rand(1, 4, 8, 8)), losses.gram(torch.rand(1, 6, 4, 4))]
    t = losses.style_transfer_loss(y, feats, target, grams, 2.0, 3.0, 5.0)
    assert torch.isclose(t["total"], 2 * t["content"] + 3 * t["style"] + 5 * t["tv"])
    assert torch.isclose(t["content"], losses.feature_loss(feats["relu3_3"], target))


def test_balanced_style_loss_scores_one_per_layer_at_the_normaliser():
    g = [torch.rand(3, 4, 4), torch.rand(3, 8, 8)]
    s = [torch.rand(1, 4, 4), torch.rand(1, 8, 8)]
    dist = losses.layer_distances(g, s)
    assert dist.shape == (3, 2)
    assert torch.allclose(dist.sum(1).mean(), losses.style_loss(g, s))
    assert torch.allclose(losses.balanced_style_loss(g, s, dist), torch.tensor(2.0))   # 1 per layer
    assert torch.allclose(losses.balanced_style_loss(g, s, dist.mean(0, keepdim=True) * 2),
                          torch.tensor(1.0))


def test_random_warp_moves_by_a_few_pixels_and_temporal_loss_sees_it():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    smooth = torch.nn.functional.avg_pool2d(x, 9, 1, 4)
    grid, moved = losses.random_warp(smooth, torch.Generator().manual_seed(1), shift=3.0)
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3).expand(2, 2, 3), (2, 1, 64, 64), align_corners=False)
    pixels = ((grid - identity) * 32).abs().amax()   # grid units -> pixels (64 px span 2)
    assert 0.1 < pixels < 3 + 64 * 0.02 + 64 * 0.02 + 0.5
    # an output that moves with its input has no temporal loss; one that stays put has some
    assert losses.temporal_loss(moved, smooth, grid) < 1e-10
    assert losses.temporal_loss(smooth, smooth, grid) > 1e-4
