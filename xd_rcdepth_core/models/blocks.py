"""Building blocks shared by the student, the teacher and the LiRCDepth baseline.

- Input handling: shape checks, padding to the network stride, the depth head.
- The mask-normalised sparse convolution of CaFNet's radar encoder and LiRCDepth's radar confidence.
- Encoders: torchvision MobileNetV2 / ResNet bodies returning five feature maps (1/2 ... 1/32).
  The torchvision module is kept whole as ``.backbone`` (minus its classifier), so its state_dict
  keys are exactly torchvision's and ImageNet weights load by name (see checkpoint.py).
- Fusion of image and radar features: add, concat, attention, FiLM (student ablation) and the
  teacher's confidence-aware gated fusion (CaGF).
- The student's point-wise DASPP.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# Every model here downsamples five times by 2.
NETWORK_STRIDE = 32


# ----------------------------------------------------------------------------- input handling

def check_inputs(image: torch.Tensor, radar: torch.Tensor, radar_channels: int) -> None:
    """Fail early, with the shapes in the message, instead of deep inside a convolution."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f'image must be (B, 3, H, W), got {tuple(image.shape)}')
    if radar.ndim != 4 or radar.shape[1] != radar_channels:
        raise ValueError(f'radar must be (B, {radar_channels}, H, W), got {tuple(radar.shape)}')
    if image.shape[0] != radar.shape[0] or image.shape[2:] != radar.shape[2:]:
        raise ValueError(f'image {tuple(image.shape)} and radar {tuple(radar.shape)} differ in batch or size')


def pad_to_stride(image: torch.Tensor, radar: torch.Tensor, stride: int = NETWORK_STRIDE):
    """Pad bottom/right so H and W are multiples of ``stride``; returns (image, radar, (H, W)).

    The image is padded by replicating its border (no artificial edge for the encoder to react
    to); the radar image is padded with zeros, i.e. "no radar return", because replicated radar
    pixels would invent measurements.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode='replicate')
        radar = F.pad(radar, (0, pad_w, 0, pad_h), mode='constant', value=0.0)
    return image, radar, (height, width)


def crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., :size[0], :size[1]]


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 when it is half or bfloat16; fp32 and fp64 stay as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def scaled_sigmoid(logits: torch.Tensor, max_depth: float, min_depth: float) -> torch.Tensor:
    """depth = max_depth * sigmoid(logits), computed in at least fp32, floored at ``min_depth``.

    At least fp32 because under fp16 autocast sigmoid underflows to exactly 0 for logits below about
    -17 (a float64 model stays float64), and the floor keeps depth strictly positive (log-depth
    metrics and losses stay finite). The floor is for returned depths only: a depth that feeds
    further layers is ``max_depth * sigmoid`` unfloored, as in the authors' code (teacher.py).
    """
    return (max_depth * torch.sigmoid(at_least_fp32(logits))).clamp_min(min_depth)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample2(x: torch.Tensor, mode: str = 'bilinear') -> torch.Tensor:
    if mode == 'nearest':
        return F.interpolate(x, scale_factor=2, mode='nearest')
    return F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)


# ----------------------------------------------------------------------------- encoders

def _last_conv_out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class MobileNetV2Encoder(nn.Module):
    """torchvision MobileNetV2 ``.features``; returns the outputs of the blocks named in ``taps``.

    ``taps`` are indices into ``features``; the default (1, 3, 6, 13, 18) ends each resolution:
    16 ch @1/2, 24 @1/4, 32 @1/8, 96 @1/16, 1280 @1/32.
    """

    FIRST_CONV = 'features.0.0.weight'   # key of the 3-channel stem conv in torchvision's state_dict
    TORCHVISION_EXTRA = ('classifier.',)  # keys in a torchvision file this encoder does not use

    def __init__(self, taps: Sequence[int] = (1, 3, 6, 13, 18)):
        super().__init__()
        net = torchvision.models.mobilenet_v2(weights=None)
        del net.classifier  # ImageNet head: never used, so not counted as a parameter
        self.backbone = net
        self.taps = tuple(taps)
        if max(self.taps) >= len(net.features):
            raise ValueError(f'MobileNetV2 has {len(net.features)} feature blocks, taps {self.taps}')
        self.channels = [_last_conv_out_channels(net.features[i]) for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, block in enumerate(self.backbone.features[:self.taps[-1] + 1]):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


class ResNetEncoder(nn.Module):
    """torchvision ResNet-18/34 body; returns relu (64 @1/2), layer1 (64 @1/4), layer2 (128 @1/8),
    layer3 (256 @1/16), layer4 (512 @1/32), the five scales CaFNet's BTS decoder consumes."""

    FIRST_CONV = 'conv1.weight'
    TORCHVISION_EXTRA = ('fc.',)
    DEPTHS = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34}

    def __init__(self, depth: int):
        super().__init__()
        if depth not in self.DEPTHS:
            raise ValueError(f'ResNet depth must be one of {sorted(self.DEPTHS)}, got {depth}')
        net = self.DEPTHS[depth](weights=None)
        # The ImageNet fc head is dropped: CaFNet keeps it (unused), we do not (see teacher.py).
        del net.fc
        self.backbone = net
        self.channels = [64, 64, 128, 256, 512]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.backbone
        x0 = b.relu(b.bn1(b.conv1(x)))
        x1 = b.layer1(b.maxpool(x0))
        x2 = b.layer2(x1)
        x3 = b.layer3(x2)
        x4 = b.layer4(x3)
        return [x0, x1, x2, x3, x4]


# ----------------------------------------------------------------------------- sparse radar convolution

class SparseConv(nn.Module):
    """Mask-normalised ("sparse") convolution, as the CaFNet authors' ``SparseConv``: a conv over the
    valid pixels only, divided by the number of valid pixels in its window, plus a bias, then an
    activation; the mask grows by a max-pool of the kernel size.

        y = act(conv(x * mask) / (conv(mask, K) + 1e-8) + bias),   mask <- maxpool_k(mask)

    K is the window-count kernel, all ones. The authors store it (``sparsity.weight``, never trained),
    so it is a buffer here: an imported file's values are used as they are (models/official.py).
    An empty window gives conv = 0, hence y = act(bias), as with any other normaliser.

    activation: 'elu' (CaFNet's stage-1 radar encoder) or 'relu' (LiRCDepth's radar-confidence module).
    """

    ACTIVATIONS = {'elu': F.elu, 'relu': F.relu}

    def __init__(self, cin: int, cout: int, kernel: int, activation: str = 'elu'):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f'SparseConv activation must be one of {sorted(self.ACTIVATIONS)}, got {activation!r}')
        self.kernel, self.activation = kernel, activation
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer('sparsity', torch.ones(1, 1, kernel, kernel))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the kernel was stored: it was implicitly all ones.
        if prefix + 'conv.weight' in state_dict:
            state_dict.setdefault(prefix + 'sparsity', torch.ones_like(self.sparsity))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x, mask):
        k = self.kernel
        y = self.conv(x * mask)
        count = F.conv2d(mask, self.sparsity.to(mask.dtype), padding=k // 2)
        # In at least fp32: under fp16 autocast 1e-8 would vanish and an empty window give 0 / 0. A division
        # where the authors multiply by 1 / (count + 1e-8): one rounding apart, and no ONNX Reciprocal
        # (outside the TensorRT operator list export.py checks against).
        ct = torch.promote_types(y.dtype, torch.float32)
        y = y.to(ct) / (count.to(ct) + 1e-8) + self.bias.to(ct).view(1, -1, 1, 1)
        return self.ACTIVATIONS[self.activation](y).to(x.dtype), F.max_pool2d(mask, k, 1, k // 2)


# ----------------------------------------------------------------------------- fusion (student)
# All four take (f_image, f_radar) of equal shape (B, C, h, w) and return C channels, so the
# decoder is identical whichever fusion is chosen; only the fusion blocks' parameters differ.

class AddFusion(nn.Module):
    """f = f_i + f_r (no parameters)."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels

    def forward(self, f_image, f_radar):
        return f_image + f_radar


class FiLMFusion(nn.Module):
    """Feature-wise linear modulation of image features by radar (paper, "FiLM fusion"):
    gamma = Conv1x1(f_r), beta = Conv1x1(f_r), f = (1 + gamma) * f_i + beta.
    The ``1 +`` makes gamma = 0 the identity, so radar modulates rather than gates the image."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels
        self.gamma = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Conv2d(channels, channels, 1)

    def forward(self, f_image, f_radar):
        return (1 + self.gamma(f_radar)) * f_image + self.beta(f_radar)


class ConcatFusion(nn.Module):
    """Concatenate, then mix the two modalities with a U-Net style double 3x3 conv back to C
    channels (a single 1x1 would only be a learned weighted sum, i.e. "add" with weights)."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels
        self.mix = nn.Sequential(conv_bn_relu(2 * channels, channels, 3), conv_bn_relu(channels, channels, 3))

    def forward(self, f_image, f_radar):
        return self.mix(torch.cat([f_image, f_radar], dim=1))


class AttentionFusion(nn.Module):
    """Radar added through a per-pixel, per-channel attention gate computed from both modalities:
    a = sigmoid(Conv1x1(ReLU(BN(Conv3x3(cat[f_i, f_r]) -> C/2))) -> C),  f = f_i + a * f_r.
    The 3x3 lets the gate look at the neighbourhood (radar is sparse and laterally noisy)."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_channels = channels
        hidden = max(channels // 2, 1)
        self.attention = nn.Sequential(conv_bn_relu(2 * channels, hidden, 3), nn.Conv2d(hidden, channels, 1),
                                       nn.Sigmoid())

    def forward(self, f_image, f_radar):
        return f_image + self.attention(torch.cat([f_image, f_radar], dim=1)) * f_radar


FUSIONS = {'add': AddFusion, 'concat': ConcatFusion, 'attention': AttentionFusion, 'film': FiLMFusion}


def build_fusion(kind: str, channels: int) -> nn.Module:
    if kind not in FUSIONS:
        raise ValueError(f'unknown fusion {kind!r}; choose one of {sorted(FUSIONS)}')
    return FUSIONS[kind](channels)


# ----------------------------------------------------------------------------- fusion (teacher)

class ConfidenceGatedFusion(nn.Module):
    """CaFNet's confidence-aware gated fusion (CaGF), docs/reference.md 3.1:
    f <- f + sigmoid(Conv1x1(r)) * ReLU(Conv1x1(r)) * AvgPool_s(confidence), 1x1 convs without bias.
    Returns (fused feature, gated radar feature) - the latter is a distillation target in LiRCDepth."""

    def __init__(self, radar_channels: int, out_channels: int, pool: int):
        super().__init__()
        self.pool = pool
        self.weight = nn.Conv2d(radar_channels, out_channels, 1, bias=False)
        self.project = nn.Conv2d(radar_channels, out_channels, 1, bias=False)

    def forward(self, feature, radar, confidence):
        conf = F.avg_pool2d(confidence, self.pool, self.pool) if self.pool > 1 else confidence
        gated = torch.sigmoid(self.weight(radar)) * F.relu(self.project(radar)) * conf
        return feature + gated, gated


# ----------------------------------------------------------------------------- point-wise DASPP

class PointwiseDASPP(nn.Module):
    """Dense atrous spatial pyramid pooling whose channel mixing is point-wise only.

    DenseASPP (as in BTS/CaFNet) chains atrous branches densely: branch k sees the input and the
    outputs of branches 1..k-1. A BTS branch is Conv1x1(-> 2g) and a dilated dense Conv3x3
    (2g -> g, 18 g^2 weights). Here that 3x3 is factorised into a dilated *depthwise* 3x3 (the
    atrous sampling: one 3x3 filter per channel, 18 g weights) followed by a *point-wise* Conv1x1
    (2g -> g, 2 g^2): same sampling pattern and receptive field, about a ninth of the weights of
    the spatial part. Branch: Conv1x1(in_k -> 2g) BN ReLU, depthwise 3x3 (rate r) BN ReLU,
    Conv1x1(2g -> g) BN ReLU. The input and all branch outputs are concatenated and projected by a
    Conv1x1 BN ReLU to ``out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int], growth: int):
        super().__init__()
        self.rates = tuple(rates)
        mid = 2 * growth
        branches = []
        for k, rate in enumerate(self.rates):
            cin = in_channels + k * growth
            branches.append(nn.Sequential(
                conv_bn_relu(cin, mid, 1),
                conv_bn_relu(mid, mid, 3, dilation=rate, groups=mid),
                conv_bn_relu(mid, growth, 1)))
        self.branches = nn.ModuleList(branches)
        self.project = conv_bn_relu(in_channels + len(self.rates) * growth, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = [x]
        for branch in self.branches:
            dense.append(branch(torch.cat(dense, dim=1) if len(dense) > 1 else x))
        return self.project(torch.cat(dense, dim=1))
