import pytest
import torch

from rtstyle.nets import CondInstanceNorm2d, SRNet, TransformNet, bake, build_net, one_hot


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def norm(c: int) -> int:  # affine instance norm or batch norm: a scale and a shift per channel
    return 2 * c


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_transform_net_parameter_count_matches_paper_table():
    expected = (
        conv(9, 3, 32) + norm(32) + conv(3, 32, 64) + norm(64) + conv(3, 64, 128) + norm(128)
        + 5 * (2 * conv(3, 128, 128) + 2 * norm(128))
        + conv(3, 128, 64) + norm(64) + conv(3, 64, 32) + norm(32)
        + conv(9, 32, 3)
    )
    assert expected == 1_679_235
    assert n_params(TransformNet()) == expected
    # the paper's fractionally-strided convs have the same weight count (in x out x 3 x 3 + out)
    assert n_params(TransformNet(upsample_mode="deconv")) == expected


def test_sr_net_parameter_counts():
    x4 = conv(9, 3, 64) + norm(64) + 4 * (2 * conv(3, 64, 64) + 2 * norm(64)) + 2 * (conv(3, 64, 64) + norm(64)) + conv(9, 64, 3)
    assert n_params(SRNet(4)) == x4 == 401_859
    assert n_params(SRNet(8)) == x4 + conv(3, 64, 64) + norm(64)


@pytest.mark.parametrize("upsample", ["resize", "deconv"])
@pytest.mark.parametrize("norm_kind", ["instance", "batch"])
def test_transform_net_shape_and_range(upsample, norm_kind):
    net = TransformNet(norm_kind, upsample, width=0.25).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, 36, 52))
    assert y.shape == (2, 3, 36, 52)
    assert 0 <= y.min() and y.max() <= 1


def test_width_multiplier_makes_a_lighter_net():
    assert n_params(TransformNet(width=0.5)) < n_params(TransformNet()) / 3


@pytest.mark.parametrize("scale,size", [(4, 72), (8, 36)])
def test_sr_net_output_is_288(scale, size):
    with torch.no_grad():
        y = SRNet(scale, width=0.25).eval()(torch.rand(1, 3, size, size))
    assert y.shape == (1, 3, 288, 288)


def test_build_net_from_arch_and_bad_options():
    assert isinstance(build_net({"kind": "style", "width": 0.5}), TransformNet)
    assert build_net({"kind": "sr", "scale": 8}).scale == 8
    with pytest.raises(ValueError):
        TransformNet(norm="group")
    with pytest.raises(ValueError):
        SRNet(3)


def test_residual_sr_net_starts_as_bicubic_with_the_same_parameters():
    net = SRNet(4, width=0.25, residual=True).eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        y = net(x)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 1)
    assert torch.allclose(y, bicubic, atol=1e-6)
    assert n_params(net) == n_params(SRNet(4, width=0.25))
    assert build_net({"kind": "sr", "scale": 4, "residual": True}).residual


def test_edge_kernel_sets_the_first_and_last_conv():
    net = TransformNet(width=0.25, edge_kernel=5)
    assert net.body[0][0][1].kernel_size == (5, 5) and net.body[-1][1].kernel_size == (5, 5)
    c1 = 8  # width 0.25: 32 -> 8 channels around the edges
    assert n_params(TransformNet(width=0.25)) - n_params(net) == (81 - 25) * (3 * c1 + c1 * 3)
    assert n_params(net) == 106_083
    assert build_net({"kind": "style", "width": 0.25, "edge_kernel": 5}).body[-1][1].kernel_size == (5, 5)
    with pytest.raises(ValueError):
        TransformNet(edge_kernel=4)


def _multi(styles=3, seed=0) -> TransformNet:
    torch.manual_seed(seed)
    net = TransformNet(width=0.25, edge_kernel=5, styles=styles).eval()
    with torch.no_grad():  # distinct per-style scales and shifts (they start at 1 and 0)
        for m in net.modules():
            if isinstance(m, CondInstanceNorm2d):
                m.weight.normal_(1, 0.5)
                m.bias.normal_(0, 0.5)
    return net


def test_multi_style_net_shares_convs_and_keeps_a_scale_and_shift_per_style():
    single, multi = TransformNet(width=0.25, edge_kernel=5), TransformNet(width=0.25, edge_kernel=5, styles=10)
    norms = sum(2 * c for c in (8, 16, 32) + (32,) * 10 + (16, 8))
    assert n_params(multi) - n_params(single) == 9 * norms
    net, x = _multi(), torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        a, b = net(x, one_hot(0, 3)), net(x, one_hot(1, 3))
        both = net(x, one_hot(torch.tensor([0, 1]), 3))  # a style per image
    assert (a - b).abs().max() > 0.05
    assert torch.allclose(both[0], a[0], atol=1e-6) and torch.allclose(both[1], b[1], atol=1e-6)
    with pytest.raises(RuntimeError, match="style weights"):
        TransformNet(width=0.25, styles=2)(x)


def test_bake_gives_a_plain_net_equal_to_the_multi_style_net_at_that_blend():
    net = _multi()
    arch = {"kind": "style", "norm": "instance", "upsample": "resize", "width": 0.25, "edge_kernel": 5,
            "styles": ["a", "b", "c"]}
    x = torch.rand(1, 3, 36, 44)
    for mix in (torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.5, 0.0, 0.5])):
        plain = bake(net, arch, mix)
        assert plain.styles == 0 and not any(isinstance(m, CondInstanceNorm2d) for m in plain.modules())
        with torch.no_grad():
            assert torch.allclose(plain(x), net(x, mix[None]), atol=1e-5)
    assert n_params(plain) == n_params(TransformNet(width=0.25, edge_kernel=5))


def test_tapered_sr_net_halves_channels_at_each_upsampling():
    for scale, widths in [(4, [64, 32, 16]), (8, [64, 32, 16, 16])]:
        net = SRNet(scale, "none", "resize", residual=True, taper=True).eval()
        ups = [m for m in net.body if isinstance(m, torch.nn.Sequential) and isinstance(m[0], torch.nn.Upsample)]
        assert [u[1][0][1].in_channels for u in ups] + [ups[-1][1][0][1].out_channels] == widths
        with torch.no_grad():
            assert net(torch.rand(1, 3, 9, 7)).shape == (1, 3, 9 * scale, 7 * scale)
    assert n_params(SRNet(4, taper=True)) < n_params(SRNet(4))
    assert build_net({"kind": "sr", "scale": 4, "taper": True}).body[-1][1].in_channels == 16
    assert build_net({"kind": "sr", "scale": 4}).body[-1][1].in_channels == 64  # models saved before taper
