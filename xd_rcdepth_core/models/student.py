"""The XD-RCDepth student: two MobileNetV2 encoders, fusion at every scale, point-wise DASPP,
a light decoder with skips, depth = max_depth * sigmoid.

The paper gives the ingredients and the totals (8.89 M with FiLM; 8.74 / 10.94 / 9.48 M with
add / concat / attention) but no channel plan. This is ours, chosen so the totals fall out:

    scale  image enc  radar enc  fusion   decoder (out)                         at 896x1600
    1/2    16 (f1)    16 (f1)    16       light block 80 -> 32                  448x800
    1/4    24 (f3)    24 (f3)    24       light block 152 -> 64                 224x400
    1/8    32 (f6)    32 (f6)    32       light block 288 -> 128                112x200
    1/16   96 (f13)   96 (f13)   96       conv3x3 352 -> 256, point-wise DASPP  56x100
    1/32   1280 (f18) -> 256     256      (upsampled into 1/16)                 28x50
    1/1    -          -          -        light block 32 -> 16, conv3x3 16 -> 1

- Encoders: torchvision ``mobilenet_v2(weights=None).features`` tapped at blocks 1, 3, 6, 13, 18
  (fN = output of features[N], the last block of each resolution). The 1280-ch 1/32 head of each
  encoder is projected to 256 by Conv1x1 BN ReLU (fusing at 1280 would make FiLM cost 3.3 M).
  The radar encoder gets the raw 4-channel radar image (depth, RCS, vx, vy; zeros = no return)
  through a stem Conv3x3(4 -> 16) BN ReLU Conv1x1(16 -> 3) BN, whose BN also rescales the raw
  metres / m/s / dBsm to what an ImageNet-shaped first conv expects.
- Fusion acts at the five encoder widths (16, 24, 32, 96, 256), which fixes what each variant
  costs on top of ``add`` (0 params): FiLM 2 C^2 (+0.154 M), attention ~9.5 C^2 (+0.729 M),
  concat 27 C^2 (+2.070 M). sum(C^2) = 76,608, dominated by the 256-ch bottleneck.
- Decoder: at 1/16 the upsampled 1/32 fusion (256) and the 1/16 fusion (96) are mixed by a
  dense Conv3x3 -> 256, then the point-wise DASPP (rates 2, 3, 6, 9, 12, growth 240; see
  blocks.PointwiseDASPP) - the parameter-heavy parts sit at 1/16 where pixels are few. Each
  finer scale is a light block: bilinear x2, concat skip, Conv1x1 BN ReLU, depthwise 3x3 BN
  ReLU, Conv1x1 BN ReLU. The 1/1 stage has no skip. Head Conv3x3 -> 1, max_depth * sigmoid.
- Parameters (every parameter of the module): film 8,894,791 (paper 8.89 M), add 8,740,727
  (8.74 M), attention 9,469,351 (9.48 M), concat 10,810,839 (10.94 M). Parts (film): image
  encoder + bottleneck 2.55 M, radar encoder + stem + bottleneck 2.55 M, fusion 0.15 M, point-wise
  DASPP 2.75 M, rest of the decoder 0.89 M. 44.8 GMACs at 896x1600 (LiRCDepth 118.9, CaFNet 683.8).

Forward contract (all models in this package): ``forward(image, radar) -> dict`` with
``depth`` (B, 1, H, W) metres in [min_depth, max_depth], ``taps`` and ``features``. Inputs of any
size are padded bottom/right to a multiple of 32 (image: replicate, radar: zeros) and depth is
cropped back. With Hp = 32 ceil(H / 32), Wp = 32 ceil(W / 32), the X-KD taps are
    taps['image']   (B, 96, Hp/16, Wp/16)   image encoder, output of features[13]
    taps['radar']   (B, 96, Hp/16, Wp/16)   radar encoder, output of features[13]
    taps['decoder'] (B, 256, Hp/16, Wp/16)  decoder 1/16 feature (point-wise DASPP output)
all live in the autograd graph (never detached) so Grad-CAM can differentiate through them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from ..config import PAPER, RADAR_CHANNELS
from .blocks import (
    MobileNetV2Encoder,
    PointwiseDASPP,
    build_fusion,
    check_inputs,
    conv_bn_relu,
    crop,
    pad_to_stride,
    scaled_sigmoid,
    upsample2,
)
from .pretrained import load_torchvision_backbone
from .registry import register


@dataclass
class StudentConfig:
    # Fusion of radar into image features; FiLM is the paper's choice (docs/paper.md fusion ablation),
    # add / concat / attention are the ablation's alternatives.
    fusion: str = 'film'
    # Output scale: depth = max_depth * sigmoid (references' --max_depth 100, docs/reference.md 1.6).
    max_depth: float = PAPER.depth.max_depth
    # Floor of the predicted depth: the evaluation's min_depth_eval 1e-3 m (docs/reference.md 2).
    min_depth: float = PAPER.depth.min_depth_eval
    # depth, RCS, vx, vy (docs/reference.md 1.3, LiRCDepth issue #2).
    radar_channels: int = len(RADAR_CHANNELS)
    # Local torchvision-format MobileNetV2 state_dict (ImageNet) for the image encoder; the radar
    # encoder gets pretrained_radar_backbone, or the same file when that is None (as LiRCDepth).
    pretrained_backbone: Optional[str] = None
    pretrained_radar_backbone: Optional[str] = None
    # Ours (the paper gives no channel plan): see the module docstring.
    encoder_taps: tuple = (1, 3, 6, 13, 18)
    bottleneck_channels: int = 256
    radar_stem_channels: int = 16
    decoder_channels: tuple = (256, 128, 64, 32, 16)   # 1/16, 1/8, 1/4, 1/2, 1/1
    # Paper: "atrous sampling at several dilation rates", values not given. BTS/CaFNet use
    # (3, 6, 12, 18, 24) at 1/8 (docs/reference.md 3.1); at 1/16 we halve them (3 -> 2) so the
    # largest reach stays 24 x 8 = 12 x 16 = 192 input pixels.
    daspp_rates: tuple = (2, 3, 6, 9, 12)
    daspp_growth: int = 240
    # Ours: the depth every pixel starts at (m). The head's bias starts at logit(init_depth / max_depth).
    # None keeps PyTorch's default (about max_depth / 2 = 50 m). From scratch, Adam moves that bias by
    # at most ~lr per step, so a 50 m start costs thousands of steps on scenes whose median is ~12 m;
    # the references never saw this because they trained 200 epochs from ImageNet encoders.
    init_depth: Optional[float] = None

    def __post_init__(self):
        for name in ('encoder_taps', 'decoder_channels', 'daspp_rates'):
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.encoder_taps) != 5 or len(self.decoder_channels) != 5:
            raise ValueError('encoder_taps and decoder_channels need five entries (1/2 ... 1/32, 1/16 ... 1/1)')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}')
        if self.init_depth is not None and not self.min_depth < self.init_depth < self.max_depth:
            raise ValueError(f'init_depth must lie in ({self.min_depth}, {self.max_depth}), got {self.init_depth}')


class RadarEncoder(nn.Module):
    """Stem (raw radar channels -> 3) then a MobileNetV2, so ImageNet weights fit unchanged."""

    def __init__(self, radar_channels: int, stem_channels: int, taps):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(radar_channels, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True), nn.Conv2d(stem_channels, 3, 1, bias=False), nn.BatchNorm2d(3))
        self.encoder = MobileNetV2Encoder(taps)
        self.channels = self.encoder.channels

    def forward(self, radar):
        return self.encoder(self.stem(radar))


class Bottleneck(nn.Module):
    """Conv1x1 BN ReLU on the deepest (1/32) feature, leaving the finer ones untouched."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.reduce = conv_bn_relu(cin, cout, 1)

    def forward(self, features: list) -> list:
        return features[:-1] + [self.reduce(features[-1])]


class LightBlock(nn.Module):
    """Bilinear x2, concat the skip (if any), Conv1x1 BN ReLU, depthwise 3x3 BN ReLU, Conv1x1 BN ReLU.
    Channel mixing is 1x1 and spatial mixing depthwise, so the fine scales stay cheap in MACs."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, cout, 1), conv_bn_relu(cout, cout, 3, groups=cout),
                                  conv_bn_relu(cout, cout, 1))

    def forward(self, x, skip=None):
        x = upsample2(x)
        return self.body(x if skip is None else torch.cat([x, skip], dim=1))


class StudentDecoder(nn.Module):
    def __init__(self, fused_channels, decoder_channels, daspp_rates, daspp_growth):
        super().__init__()
        c1, c2, c3, c4, c5 = fused_channels
        d16, d8, d4, d2, d1 = decoder_channels
        self.fuse16 = conv_bn_relu(c5 + c4, d16, 3)
        self.daspp = PointwiseDASPP(d16, d16, daspp_rates, daspp_growth)
        self.up8 = LightBlock(d16 + c3, d8)
        self.up4 = LightBlock(d8 + c2, d4)
        self.up2 = LightBlock(d4 + c1, d2)
        self.up1 = LightBlock(d2, d1)
        self.head = nn.Conv2d(d1, 1, 3, padding=1)

    def forward(self, fused: list):
        f1, f2, f3, f4, f5 = fused
        x16 = self.daspp(self.fuse16(torch.cat([upsample2(f5), f4], dim=1)))
        x8 = self.up8(x16, f3)
        x4 = self.up4(x8, f2)
        x2 = self.up2(x4, f1)
        x1 = self.up1(x2)
        return self.head(x1), {'decoder_1_16': x16, 'decoder_1_8': x8, 'decoder_1_4': x4,
                               'decoder_1_2': x2, 'decoder_1_1': x1}


@register('xd_rcdepth', StudentConfig)
class XDRCDepth(nn.Module):
    """The student. ``fusion`` (in the config) selects the fusion block; nothing else changes."""

    # Parameter groups for summaries: part -> submodule name prefixes (longest prefix wins).
    PARTS = {'image_encoder': ('image_encoder', 'image_bottleneck'),
             'radar_encoder': ('radar_encoder', 'radar_bottleneck'),
             'fusion': ('fusion',), 'daspp': ('decoder.daspp',), 'decoder': ('decoder',)}

    def __init__(self, config: StudentConfig | None = None):
        super().__init__()
        self.config = config = config or StudentConfig()
        self.image_encoder = MobileNetV2Encoder(config.encoder_taps)
        self.radar_encoder = RadarEncoder(config.radar_channels, config.radar_stem_channels, config.encoder_taps)
        deep = self.image_encoder.channels[-1]
        self.image_bottleneck = Bottleneck(deep, config.bottleneck_channels)
        self.radar_bottleneck = Bottleneck(deep, config.bottleneck_channels)
        widths = self.image_encoder.channels[:-1] + [config.bottleneck_channels]
        self.fusion = nn.ModuleList(build_fusion(config.fusion, c) for c in widths)
        self.decoder = StudentDecoder([f.out_channels for f in self.fusion], config.decoder_channels,
                                      config.daspp_rates, config.daspp_growth)
        if config.init_depth is not None:
            p = config.init_depth / config.max_depth
            nn.init.constant_(self.decoder.head.bias, math.log(p / (1 - p)))
        if config.pretrained_backbone or config.pretrained_radar_backbone:
            self._load_pretrained()

    def _load_pretrained(self):
        cfg = self.config
        if cfg.pretrained_backbone:
            load_torchvision_backbone(self.image_encoder, cfg.pretrained_backbone, 'image encoder (MobileNetV2)')
        radar_file = cfg.pretrained_radar_backbone or cfg.pretrained_backbone
        load_torchvision_backbone(self.radar_encoder.encoder, radar_file, 'radar encoder (MobileNetV2)',
                                  allow_first_conv_mismatch=True)

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        check_inputs(image, radar, self.config.radar_channels)
        image, radar, size = pad_to_stride(image, radar)
        f_image = self.image_encoder(image)
        f_radar = self.radar_encoder(radar)
        fused = [fuse(fi, fr) for fuse, fi, fr in zip(self.fusion, self.image_bottleneck(f_image),
                                                      self.radar_bottleneck(f_radar))]
        logits, features = self.decoder(fused)
        depth = scaled_sigmoid(crop(logits, size), self.config.max_depth, self.config.min_depth)
        return {'depth': depth,
                'taps': {'image': f_image[3], 'radar': f_radar[3], 'decoder': features['decoder_1_16']},
                'features': features}
