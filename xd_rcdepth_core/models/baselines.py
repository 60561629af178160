"""LiRCDepth (Sun et al., ICASSP 2025), the lightweight baseline, from docs/reference.md 3.2, layer for
layer the authors' network (harborsarah/LiRCDepth, student_models/), so their published weights load
(models/official.py).

- Image encoder: MobileNetV2 ``.features`` tapped after blocks 1, 3, 6, 10, 18 (16, 24, 32, 64,
  1280 ch), each tap projected by Conv1x1 (no bias) ReLU to the teacher's image widths
  (64, 64, 128, 256, 512) - the channel alignment its feature distillation needs.
- Radar encoder: Conv3x3(4 -> 3, no bias) ReLU, a second MobileNetV2, taps projected to the
  teacher's gated-radar widths (64, 128, 128, 512, 512).
- Fusion: image + ReLU(Conv1x1(radar -> image width)) at every scale.
- Decoder: transposed inverted-residual blocks (1x1 expand x6 BN ReLU6, depthwise 3x3
  ConvTranspose BN ReLU6, 1x1 ConvTranspose BN; no residual), features 512 @1/16, 128 @1/8,
  128 @1/4, 64 @1/2; then a ConvTranspose3x3 s2 (no bias, no activation) to 32 @1/1; side heads
  Conv1x1 (no bias) ReLU give depth at 1/8, 1/4, 1/2, 1/1 (unbounded, not scaled by max_depth), which
  join the 1/1 feature for Conv3x3 ReLU, Conv3x3 (both without bias) -> max_depth * sigmoid.
- Optional (``radar_confidence``, the authors' ``--radar_confidence``): a radar-confidence map from
  four sparse convs (ReLU) and Conv3x3 + sigmoid on the raw radar; the projected radar of scale s is
  then weighted by the confidence average-pooled to that scale before the addition. Their published
  nuScenes test configuration leaves it off, the default here.

Parameters: 12,645,228, the reference's exactly (12,659,580 + 92 fixed window-count kernel values,
buffers here, = the reference's 12,659,672 with the radar-confidence module).

Forward contract as the student's (see student.py); taps at 1/16 (Hp = 32 ceil(H/32)):
    image (B, 256, Hp/16, Wp/16) projected image feature; radar (B, 512, Hp/16, Wp/16) projected
    radar feature; decoder (B, 512, Hp/16, Wp/16) first decoder stage.
features: decoder_1_16 ... decoder_1_1 and the side depths side_depth_1_8 ... side_depth_1_1 (metres,
full padded resolution; the authors' depth[0..2] are the first three). With radar_confidence the
output also has ``confidence`` (B, 1, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PAPER, RADAR_CHANNELS
from .blocks import MobileNetV2Encoder, SparseConv, check_inputs, crop, pad_to_stride, scaled_sigmoid
from .pretrained import load_torchvision_backbone
from .registry import register


@dataclass
class LiRCDepthConfig:
    fusion: str = 'add'                        # additive fusion, the only choice (docs/reference.md 3.2)
    max_depth: float = PAPER.depth.max_depth   # depth = 100 * sigmoid (docs/reference.md 3.2)
    min_depth: float = PAPER.depth.min_depth_eval  # output floor, min_depth_eval (docs/reference.md 2)
    radar_channels: int = len(RADAR_CHANNELS)
    # Local torchvision MobileNetV2 state_dicts (image; radar defaults to the same file).
    pretrained_backbone: Optional[str] = None
    pretrained_radar_backbone: Optional[str] = None
    # docs/reference.md 3.2: taps after features 1, 3, 6, 10, 18, projected to the teacher's widths.
    encoder_taps: tuple = (1, 3, 6, 10, 18)
    image_channels: tuple = (64, 64, 128, 256, 512)
    radar_channels_out: tuple = (64, 128, 128, 512, 512)
    decoder_channels: tuple = (512, 128, 128, 64, 32)   # 1/16, 1/8, 1/4, 1/2, 1/1
    expansion: int = 6                                   # inverted-residual expansion (MobileNetV2)
    radar_confidence: bool = False                       # the authors' --radar_confidence module

    def __post_init__(self):
        for name in ('encoder_taps', 'image_channels', 'radar_channels_out', 'decoder_channels'):
            setattr(self, name, tuple(getattr(self, name)))
        if self.fusion != 'add':
            raise ValueError(f"the LiRCDepth baseline only has fusion 'add', got {self.fusion!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}')


def _projections(cins, couts):
    return nn.ModuleList(nn.Sequential(nn.Conv2d(ci, co, 1, bias=False), nn.ReLU(inplace=True))
                         for ci, co in zip(cins, couts))


class ProjectedEncoder(nn.Module):
    """Optional stem, MobileNetV2, Conv1x1 ReLU projection of every tap."""

    def __init__(self, taps, out_channels, stem: nn.Module | None = None):
        super().__init__()
        self.stem = stem if stem is not None else nn.Identity()
        self.encoder = MobileNetV2Encoder(taps)
        self.project = _projections(self.encoder.channels, out_channels)

    def forward(self, x):
        return [p(f) for p, f in zip(self.project, self.encoder(self.stem(x)))]


class InvertedResidualTranspose(nn.Sequential):
    def __init__(self, cin, cout, stride=1, expansion=6):
        hidden = cin * expansion
        super().__init__(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.ConvTranspose2d(hidden, hidden, 3, stride, padding=1, output_padding=stride - 1, groups=hidden,
                               bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.ConvTranspose2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))


def _stage(cin, widths, expansion):
    """Blocks through ``widths``; the last one upsamples x2."""
    blocks = []
    for i, cout in enumerate(widths):
        blocks.append(InvertedResidualTranspose(cin, cout, 2 if i == len(widths) - 1 else 1, expansion))
        cin = cout
    return nn.Sequential(*blocks)


class LiRCDepthDecoder(nn.Module):
    """Stage widths per docs/reference.md 3.2: 1/32 -> 1/16 (32, 32, 512); with the 1/16 skip -> 1/8
    (16 x 7, 128; "8 blocks") ; with 1/8 -> 1/4 (32, 32, 128); with 1/4 -> 1/2 (32, 64); with 1/2 a
    ConvTranspose3x3 s2 -> 32 at 1/1."""

    def __init__(self, fused, widths, expansion):
        super().__init__()
        f1, f2, f3, f4, f5 = fused
        d16, d8, d4, d2, d1 = widths
        self.to16 = _stage(f5, (32, 32, d16), expansion)
        self.to8 = _stage(d16 + f4, (16,) * 7 + (d8,), expansion)
        self.to4 = _stage(d8 + f3, (32, 32, d4), expansion)
        self.to2 = _stage(d4 + f2, (32, d2), expansion)
        # The authors' upconv1: no bias and no activation (its output feeds scale1 and conv1 as it is).
        self.to1 = nn.Sequential(nn.ConvTranspose2d(d2 + f1, d1, 3, 2, padding=1, output_padding=1, bias=False))
        self.side = nn.ModuleList(nn.Sequential(nn.Conv2d(c, 1, 1, bias=False), nn.ReLU(inplace=True))
                                  for c in (d8, d4, d2, d1))
        self.refine = nn.Sequential(nn.Conv2d(d1 + 4, d1, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                                    nn.Conv2d(d1, 1, 3, padding=1, bias=False))

    def forward(self, fused):
        f1, f2, f3, f4, f5 = fused
        x16 = self.to16(f5)
        x8 = self.to8(torch.cat([x16, f4], 1))
        x4 = self.to4(torch.cat([x8, f3], 1))
        x2 = self.to2(torch.cat([x4, f2], 1))
        x1 = self.to1(torch.cat([x2, f1], 1))
        size = x1.shape[-2:]
        sides = [F.interpolate(head(x), size=size, mode='nearest') for head, x in zip(self.side, (x8, x4, x2, x1))]
        logits = self.refine(torch.cat([x1] + sides, 1))
        return logits, {'decoder_1_16': x16, 'decoder_1_8': x8, 'decoder_1_4': x4, 'decoder_1_2': x2,
                        'decoder_1_1': x1, 'side_depth_1_8': sides[0], 'side_depth_1_4': sides[1],
                        'side_depth_1_2': sides[2], 'side_depth_1_1': sides[3]}


class RadarConfidence(nn.Module):
    """The authors' ConfModuleRad: sparse convs (ReLU; kernels 7, 5, 3, 3, all to 16 channels) on the raw
    radar, valid pixels = radar depth > 0, then Conv3x3 (-> 1, no bias) and a sigmoid."""

    def __init__(self, radar_channels: int, width: int = 16, kernels=(7, 5, 3, 3)):
        super().__init__()
        cins = (radar_channels,) + (width,) * (len(kernels) - 1)
        self.sparse = nn.ModuleList(SparseConv(ci, width, k, activation='relu') for ci, k in zip(cins, kernels))
        self.head = nn.Conv2d(width, 1, 3, padding=1, bias=False)

    def forward(self, radar):
        x, mask = radar, (radar[:, :1] > 0).to(radar.dtype)
        for layer in self.sparse:
            x, mask = layer(x, mask)
        return torch.sigmoid(self.head(x))


@register('lircdepth', LiRCDepthConfig)
class LiRCDepth(nn.Module):
    PARTS = {'image_encoder': ('image_encoder',), 'radar_encoder': ('radar_encoder', 'rad_conf'),
             'fusion': ('fusion',), 'decoder': ('decoder',)}

    def __init__(self, config: LiRCDepthConfig | None = None):
        super().__init__()
        self.config = cfg = config or LiRCDepthConfig()
        self.image_encoder = ProjectedEncoder(cfg.encoder_taps, cfg.image_channels)
        stem = nn.Sequential(nn.Conv2d(cfg.radar_channels, 3, 3, padding=1, bias=False), nn.ReLU(inplace=True))
        self.radar_encoder = ProjectedEncoder(cfg.encoder_taps, cfg.radar_channels_out, stem)
        self.fusion = _projections(cfg.radar_channels_out, cfg.image_channels)
        self.decoder = LiRCDepthDecoder(cfg.image_channels, cfg.decoder_channels, cfg.expansion)
        self.rad_conf = RadarConfidence(cfg.radar_channels) if cfg.radar_confidence else None
        if cfg.pretrained_backbone or cfg.pretrained_radar_backbone:
            if cfg.pretrained_backbone:
                load_torchvision_backbone(self.image_encoder.encoder, cfg.pretrained_backbone,
                                          'image encoder (MobileNetV2)')
            load_torchvision_backbone(self.radar_encoder.encoder,
                                      cfg.pretrained_radar_backbone or cfg.pretrained_backbone,
                                      'radar encoder (MobileNetV2)', allow_first_conv_mismatch=True)

    @property
    def REFERENCE_UNCOUNTED_PARAMS(self) -> int:   # upper case: the attribute summary.py reads
        """The radar-confidence module's fixed window-count kernels: parameters in the authors' count,
        buffers here (0 without the module)."""
        return 0 if self.rad_conf is None else sum(s.sparsity.numel() for s in self.rad_conf.sparse)

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        cfg = self.config
        check_inputs(image, radar, cfg.radar_channels)
        image, radar, size = pad_to_stride(image, radar)
        f_image = self.image_encoder(image)
        f_radar = self.radar_encoder(radar)
        if self.rad_conf is None:
            confidence = None
            fused = [fi + proj(fr) for proj, fi, fr in zip(self.fusion, f_image, f_radar)]
        else:   # the projected radar at 1/2 ... 1/32, weighted by the confidence pooled to that scale
            confidence = self.rad_conf(radar)
            fused = [fi + proj(fr) * F.avg_pool2d(confidence, 2 ** (s + 1))
                     for s, (proj, fi, fr) in enumerate(zip(self.fusion, f_image, f_radar))]
        logits, features = self.decoder(fused)
        out = {'depth': scaled_sigmoid(crop(logits, size), cfg.max_depth, cfg.min_depth),
               'taps': {'image': f_image[3], 'radar': f_radar[3], 'decoder': features['decoder_1_16']},
               'features': features}
        if confidence is not None:
            out['confidence'] = crop(confidence, size)
        return out
