"""Feed-forward transform nets of Johnson et al. 2016 (supplementary material, tables 1-2).

Both nets take RGB images in [0, 1] (NCHW) and return RGB images in [0, 1]: the output layer is
the paper's scaled tanh, mapped to [0, 1] instead of [0, 255].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")
UPSAMPLES = ("resize", "deconv")


class CondInstanceNorm2d(nn.Module):
    """Conditional instance normalisation (Dumoulin et al. 2017): one scale and shift per style.

    ``weight``/``bias`` are (styles, channels); ``mix`` (set by ``TransformNet.forward``) is a
    (batch or 1, styles) tensor of style weights: one-hot picks a style, a convex mix blends them.
    The same state-dict keys as an ``InstanceNorm2d(affine=True)`` at the same place, with a styles
    axis in front, so ``bake`` can turn any mix into a plain single-style net.
    """

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.mix: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise RuntimeError("a multi-style net needs its style weights: net(x, style)")
        mix = self.mix.to(self.weight.dtype)
        scale, shift = (mix @ self.weight)[:, :, None, None], (mix @ self.bias)[:, :, None, None]
        return F.instance_norm(x) * scale + shift


def _norm(kind: str, channels: int, styles: int = 0) -> nn.Module:
    if kind == "instance" and styles:
        return CondInstanceNorm2d(channels, styles)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; choose from {', '.join(NORMS)}")


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Convolution with reflection padding, so borders carry no zero-padding artefacts."""
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


def conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int, norm: str, styles: int = 0) -> nn.Sequential:
    return nn.Sequential(conv(c_in, c_out, kernel, stride), _norm(norm, c_out, styles), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with the identity added back (He et al. 2016; paper's Figure 1 of the supplement)."""

    def __init__(self, channels: int, norm: str, styles: int = 0):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3), _norm(norm, channels, styles), nn.ReLU(inplace=True),
            conv(channels, channels, 3), _norm(norm, channels, styles),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upsample(c_in: int, c_out: int, mode: str, norm: str, styles: int = 0) -> nn.Sequential:
    """A x2 upsampling stage.

    ``deconv`` is the paper's fractionally-strided convolution; ``resize`` (nearest x2, then a
    3x3 conv) avoids its checkerboard artefacts (Odena et al. 2016) at the same cost.
    """
    if mode == "deconv":
        layer = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
        return nn.Sequential(layer, _norm(norm, c_out, styles), nn.ReLU(inplace=True))
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_relu(c_in, c_out, 3, 1, norm, styles))
    raise ValueError(f"unknown upsampling {mode!r}; choose from {', '.join(UPSAMPLES)}")


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(x) + 1) / 2


class TransformNet(nn.Module):
    """Style transfer net: 9x9 conv, two stride-2 convs, 5 residual blocks, two x2 upsamplings, 9x9 conv.

    ``width`` scales every channel count (1.0 = the paper's 32/64/128); a lighter net
    (e.g. 0.5) is what makes CPU real time possible. ``edge_kernel`` is the first and last conv's
    kernel (the paper's 9; at full resolution they are most of a light net's cost). ``styles`` > 0
    makes a multi-style net with conditional instance norm, called as ``net(x, style)`` with
    ``style`` a (batch or 1, styles) weight tensor. Height and width should be multiples of 4.
    """

    def __init__(self, norm: str = "instance", upsample_mode: str = "resize", width: float = 1.0,
                 edge_kernel: int = 9, styles: int = 0):
        super().__init__()
        if styles and norm != "instance":
            raise ValueError("a multi-style net uses conditional instance norm: norm must be instance")
        if edge_kernel < 1 or edge_kernel % 2 == 0:
            raise ValueError(f"edge_kernel must be odd and positive, not {edge_kernel}")
        c1, c2, c3 = (max(4, round(c * width)) for c in (32, 64, 128))
        self.styles = styles
        self.body = nn.Sequential(
            conv_norm_relu(3, c1, edge_kernel, 1, norm, styles),
            conv_norm_relu(c1, c2, 3, 2, norm, styles),
            conv_norm_relu(c2, c3, 3, 2, norm, styles),
            *[ResidualBlock(c3, norm, styles) for _ in range(5)],
            upsample(c3, c2, upsample_mode, norm, styles),
            upsample(c2, c1, upsample_mode, norm, styles),
            conv(c1, 3, edge_kernel),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.styles:
            for m in self.body.modules():
                if isinstance(m, CondInstanceNorm2d):
                    m.mix = style
        return _to_unit(self.body(x))


def one_hot(index: torch.Tensor | int, styles: int) -> torch.Tensor:
    """Style weights selecting one style per image (``index``: an int or a (batch,) tensor).

    >>> one_hot(2, 3)
    tensor([[0., 0., 1.]])
    """
    return F.one_hot(torch.as_tensor(index).reshape(-1), styles).float()


def bake(net: TransformNet, arch: dict, mix: torch.Tensor) -> TransformNet:
    """A plain single-style net (instance norm) equal to the multi-style ``net`` (built from ``arch``)
    at style weights ``mix`` (styles,): its per-style scales and shifts interpolated. It exports
    and runs like any single-style net (ONNX, TensorRT), with no style input."""
    plain = build_net({k: v for k, v in arch.items() if k != "styles"})
    cin = {f"{name}.{p}" for name, m in net.named_modules() if isinstance(m, CondInstanceNorm2d) for p in ("weight", "bias")}
    mix = mix.reshape(1, -1).float()
    plain.load_state_dict({k: (mix @ v.float())[0] if k in cin else v for k, v in net.state_dict().items()})
    return plain.eval()


class SRNet(nn.Module):
    """Super-resolution net: 9x9 conv 64, 4 residual blocks, log2(scale) x2 upsamplings, 9x9 conv to RGB.

    ``residual=True`` (not in the paper) adds the bicubic upsampling of the input to the output, with
    the last conv zero-initialised: the net starts as bicubic and learns only the detail, which is
    what makes short trainings (a CPU budget) useful. Same parameters either way. Its training-mode
    output is not clamped to [0, 1].

    ``taper=True`` (not in the paper) halves the channels at each x2 upsampling (64 -> 32 -> 16, at
    least 16): the paper's net spends ~3/4 of its arithmetic at the two highest resolutions, the
    tapered one ~2.5x less in all, keeping the residual blocks at low resolution as they are.
    """

    def __init__(self, scale: int = 4, norm: str = "batch", upsample_mode: str = "deconv", width: float = 1.0,
                 residual: bool = False, taper: bool = False):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, not {scale}")
        self.scale, self.residual = scale, residual
        c = max(4, round(64 * width))
        n_up = int(math.log2(scale))
        chans = [max(min(c, 16), c >> i) if taper else c for i in range(n_up + 1)]
        self.body = nn.Sequential(
            conv_norm_relu(3, c, 9, 1, norm),
            *[ResidualBlock(c, norm) for _ in range(4)],
            *[upsample(chans[i], chans[i + 1], upsample_mode, norm) for i in range(n_up)],
            conv(chans[-1], 3, 9),
        )
        if residual:
            nn.init.zeros_(self.body[-1][1].weight)
            nn.init.zeros_(self.body[-1][1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            y = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False) + self.body(x)
            # clamping while training would zero the gradient of every pixel out of range, and they
            # would never come back; inference clamps to the valid range
            return y if self.training else y.clamp(0, 1)
        return _to_unit(self.body(x))


def build_net(arch: dict) -> nn.Module:
    """Build a net from the architecture dict stored in every checkpoint's metadata."""
    if arch["kind"] == "style":
        return TransformNet(arch.get("norm", "instance"), arch.get("upsample", "resize"), arch.get("width", 1.0),
                            arch.get("edge_kernel", 9), len(arch.get("styles", ())))
    if arch["kind"] == "sr":
        return SRNet(arch["scale"], arch.get("norm", "batch"), arch.get("upsample", "deconv"), arch.get("width", 1.0),
                     arch.get("residual", False), arch.get("taper", False))
    raise ValueError(f"unknown net kind {arch['kind']!r}")


def multiple_of(arch: dict) -> int:
    """What height and width the net's input must be a multiple of (style nets downsample by 4)."""
    return 4 if arch["kind"] == "style" else 1
