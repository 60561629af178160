"""The teacher: CaFNet (Sun et al.), re-implemented from the architecture facts in docs/reference.md 3.1,
layer for layer the authors' network, so their published weights load (models/official.py).

Pipeline (channels at 1/2, 1/4, 1/8, 1/16, 1/32 are 64, 64, 128, 256, 512 for every ResNet):
1. Image encoder: ResNet-34.
2. Radar stage 1: four mask-normalised ("sparse") convs (kernels 7, 5, 3, 3; 4 -> 16 -> 16 -> 16
   -> 3, ELU, the validity mask max-pooled after each) and a ResNet-18; a U-Net decoder over the
   concatenated image and radar features (256, 128, 64, 32, 32 ch) predicts, at full resolution,
   coarse depth = max_depth * sigmoid(ch0) and radar confidence = sigmoid(ch1).
3. Radar stage 2: [1{confidence > 0.4} * coarse depth, radar (4 ch)] -> Conv3x3(5 -> 3) ELU -> ResNet-18.
4. BTS decoder (width 512) with confidence-aware gated fusion (CaGF) of the stage-2 radar features
   at 1/32, 1/16, 1/8, 1/4, 1/2; dense ASPP at 1/8 (rates 3, 6, 12, 18, 24); local planar guidance
   (LPG) at 1/8, 1/4, 1/2; depth = max_depth * sigmoid.

Parameters: 60,709,594 in this module (every trained parameter counted). The reference's 62,248,686
additionally holds three ImageNet fc heads it never uses (one ResNet-34, two ResNet-18: 3 x
513,000 = 1,539,000), which we drop as dead weight, and the fixed all-ones window-count kernel of
each sparse conv (7x7 + 5x5 + 3x3 + 3x3 = 92 values, parameters with requires_grad False there),
which is a buffer here (blocks.SparseConv.sparsity). 60,709,594 + 1,539,000 + 92 = 62,248,686 is
the reference-comparable count, exactly the reference's (component counts: docs/reference.md 3.1).

Details that follow the authors' code (harborsarah/CaFNet, models/bts.py, models/radar.py):
- 14 decoder BatchNorms use eps 1.1e-5 (stage-1 decoder bn5..bn1; BTS bn5, bn4, bn4_2, bn3, bn2; the
  leading BN of the dense ASPP branches 6..24); the ResNets and the other BNs keep 1e-5. (Their BN
  momentum of 0.01 on these is not copied: it only changes running-statistics updates in training.)
- The stage-2 radar input is [1{conf > 0.4} * max_depth * sigmoid, radar]: the min_depth floor applies
  to the returned depths only, never to a depth that feeds further layers.
- Local planar guidance re-normalises the plane normal and divides without a floor (see
  LocalPlanarGuidance).

Forward: ``forward(image, radar) -> dict`` with
    depth          (B, 1, H, W) metres, max_depth * sigmoid, floored at min_depth
    confidence     (B, 1, H, W) radar confidence in (0, 1) (stage 1)
    coarse_depth   (B, 1, H, W) stage-1 coarse depth, metres, floored at min_depth
    taps           X-KD layers at 1/16 (Hp = 32 ceil(H/32), Wp likewise):
                   image (B, 256, Hp/16, Wp/16) ResNet-34 layer3; radar (B, 256, Hp/16, Wp/16)
                   stage-2 ResNet-18 layer3; decoder (B, 512, Hp/16, Wp/16) iconv5 after CaGF
    features       named intermediate maps (padded size): decoder_1_16 ... decoder_1_1,
                   gated_radar_1_32 ... gated_radar_1_2, lpg_1_8 / lpg_1_4 / lpg_1_2 (depth / max_depth,
                   full resolution), reduction_1_1
Inputs are padded bottom/right to a multiple of 32 (image replicate, radar zeros) and the outputs
cropped back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PAPER, RADAR_CHANNELS
from .blocks import (
    ConfidenceGatedFusion,
    ResNetEncoder,
    SparseConv,
    at_least_fp32,
    check_inputs,
    crop,
    pad_to_stride,
    scaled_sigmoid,
    upsample2,
)
from .pretrained import load_torchvision_backbone
from .registry import register

# Unused ImageNet fc heads in the reference count (docs/reference.md 3.1): 3 x (512 x 1000 + 1000).
REFERENCE_UNUSED_FC_PARAMS = 3 * 513_000
# The authors' BatchNorm eps in their own decoder layers (torchvision's ResNets keep 1e-5).
AUTHORS_BN_EPS = 1.1e-5


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=AUTHORS_BN_EPS)


@dataclass
class TeacherConfig:
    fusion: str = 'cagf'                      # confidence-aware gated fusion, the only choice
    max_depth: float = PAPER.depth.max_depth  # --max_depth 100 (docs/reference.md 3.1)
    min_depth: float = PAPER.depth.min_depth_eval  # output floor, min_depth_eval (docs/reference.md 2)
    radar_channels: int = len(RADAR_CHANNELS)  # --radar_input_channels 4 (docs/reference.md 3.1)
    # Local torchvision-format state_dicts: ResNet-34 for the image encoder, ResNet-18 for both
    # radar encoders (CaFNet initialises all three from ImageNet). The two architectures differ,
    # so pretrained_backbone alone initialises only the image encoder.
    pretrained_backbone: Optional[str] = None
    pretrained_radar_backbone: Optional[str] = None
    image_backbone_depth: int = 34            # --encoder resnet34_bts (docs/reference.md 3.1)
    radar_backbone_depth: int = 18            # --encoder_radar resnet18 (docs/reference.md 3.1)
    confidence_threshold: float = 0.4         # stage-2 input 1{conf > 0.4} * coarse (docs/reference.md 3.1)
    bts_size: int = 512                       # --bts_size 512 (docs/reference.md 3.1)
    daspp_rates: tuple = (3, 6, 12, 18, 24)   # dense ASPP rates at 1/8 (docs/reference.md 3.1)
    sparse_kernels: tuple = (7, 5, 3, 3)      # stage-1 sparse convs (docs/reference.md 3.1)
    sparse_channels: tuple = (16, 16, 16, 3)

    def __post_init__(self):
        for name in ('daspp_rates', 'sparse_kernels', 'sparse_channels'):
            setattr(self, name, tuple(getattr(self, name)))
        if self.fusion != 'cagf':
            raise ValueError(f"the CaFNet teacher only has fusion 'cagf', got {self.fusion!r}")
        if len(self.sparse_kernels) != len(self.sparse_channels) or self.sparse_channels[-1] != 3:
            raise ValueError('sparse_kernels and sparse_channels must pair up and end in 3 channels')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}')


# ----------------------------------------------------------------------------- radar stage 1

class SparseRadarEncoder(nn.Module):
    """Sparse convs (ELU; blocks.SparseConv) to 3 channels, then a ResNet; valid pixels = radar depth > 0."""

    def __init__(self, radar_channels, kernels, channels, depth):
        super().__init__()
        cins = (radar_channels,) + tuple(channels[:-1])
        self.sparse = nn.ModuleList(SparseConv(ci, co, k) for ci, co, k in zip(cins, channels, kernels))
        self.encoder = ResNetEncoder(depth)

    def forward(self, radar):
        x, mask = radar, (radar[:, :1] > 0).to(radar.dtype)
        for layer in self.sparse:
            x, mask = layer(x, mask)
        return self.encoder(x)


class UpConv(nn.Module):
    """Nearest x2, Conv3x3 (no bias), ELU (BTS's upconv)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x):
        return F.elu(self.conv(upsample2(x, 'nearest')))


class CoarseDepthDecoder(nn.Module):
    """Stage-1 U-Net: from [image, radar] at 1/32 up to full resolution, concatenating image and
    radar skips at every scale; widths are half the radar widths (256, 128, 64, 32, 32)."""

    def __init__(self, image_channels, radar_channels):
        super().__init__()
        widths = [c // 2 for c in radar_channels]   # 32, 32, 64, 128, 256 for ResNets
        stages = []
        cin = image_channels[4] + radar_channels[4]
        for s in (4, 3, 2, 1, 0):                    # output at 1/16, 1/8, 1/4, 1/2, 1/1
            stages.append(nn.ModuleDict({
                'up': UpConv(cin, widths[s]), 'bn': _bn(widths[s]),
                'conv': nn.Sequential(nn.Conv2d(widths[s], widths[s], 3, padding=1, bias=False), nn.ELU())}))
            if s > 0:
                cin = widths[s] + image_channels[s - 1] + radar_channels[s - 1]
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1, bias=False)

    def forward(self, image_features, radar_features):
        x = torch.cat([image_features[4], radar_features[4]], dim=1)
        for i, stage in enumerate(self.stages):
            x = stage['conv'](stage['bn'](stage['up'](x)))
            skip = 3 - i                              # 1/16 skip after the first stage, ...
            if skip >= 0:
                x = torch.cat([image_features[skip], radar_features[skip], x], dim=1)
        return self.head(x)                           # logits: coarse depth, confidence


# ----------------------------------------------------------------------------- BTS decoder parts

class PlaneReduction(nn.Sequential):
    """1x1 convs (ELU) halving the width down to 8, then 3 plane parameters (or, for the final
    1x1 reduction, one sigmoid channel)."""

    def __init__(self, cin: int, first: int, final: bool = False):
        layers, width = [], first
        while width >= 8:
            layers += [nn.Conv2d(cin, width, 1, bias=False), nn.ELU()]
            cin, width = width, width // 2
        layers.append(nn.Conv2d(cin, 1 if final else 3, 1, bias=False))
        if final:
            layers.append(nn.Sigmoid())
        super().__init__(*layers)


class LocalPlanarGuidance(nn.Module):
    """Each coarse pixel predicts a plane (unit normal from theta <= pi/3, phi <= 2 pi, distance <=
    max_depth); the plane is evaluated at the ratio x ratio sub-pixels it covers, giving depth at
    full resolution: depth = dist / (n1 u + n2 v + n3), (u, v) the sub-pixel offsets in [-0.5, 0.5).

    As the authors: the normal is re-normalised (a no-op up to rounding) and the denominator is not
    floored. n3 >= 0.5, but |n1 u + n2 v| can reach ~0.54 at a corner sub-pixel when theta is near
    pi/3, so at such extreme planes the depth is huge or negative, as in their network.

    Under fp16 autocast the plane is still evaluated in fp32: near a zero denominator the depth
    passes fp16's 65504 and its gradient (dist / denominator^2) does so far sooner, which made
    mixed-precision training skip steps (see FP16_TRAINING on CaFNet). In fp32 nothing changes."""

    def __init__(self, ratio: int, max_depth: float):
        super().__init__()
        self.ratio, self.max_depth = ratio, max_depth

    def forward(self, params):
        with torch.autocast(params.device.type, enabled=False):
            return self._plane_depth(params.float())

    def _plane_depth(self, params):
        theta = torch.sigmoid(params[:, 0:1]) * (math.pi / 3)
        phi = torch.sigmoid(params[:, 1:2]) * (2 * math.pi)
        dist = torch.sigmoid(params[:, 2:3]) * self.max_depth
        normal = F.normalize(torch.cat([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi),
                                        torch.cos(theta)], 1), 2, 1)
        r = self.ratio
        normal, dist = (t.repeat_interleave(r, 2).repeat_interleave(r, 3) for t in (normal, dist))
        n1, n2, n3 = normal[:, 0:1], normal[:, 1:2], normal[:, 2:3]
        offsets = (torch.arange(r, device=params.device, dtype=params.dtype) - (r - 1) / 2) / r
        h, w = n1.shape[-2:]
        u = offsets.repeat(w // r).view(1, 1, 1, w)
        v = offsets.repeat(h // r).view(1, 1, h, 1)
        return dist / (n1 * u + n2 * v + n3)


class DenseASPP(nn.Module):
    """BTS's dense ASPP at 1/8: branch = [BN] ReLU Conv1x1(-> nf/2) BN ReLU dilated Conv3x3(-> nf/4).
    The first branch reads the 1/8 feature; later ones read the pre-conv concatenation (upsampled
    feature + image skip) and every earlier branch output. Output Conv3x3 (-> nf/4) ELU."""

    def __init__(self, feature_channels, concat_channels, num_features, rates):
        super().__init__()
        mid, growth = num_features // 2, num_features // 4
        branches = []
        for k, rate in enumerate(rates):
            cin = feature_channels if k == 0 else concat_channels + k * growth
            layers = [] if k == 0 else [_bn(cin)]
            layers += [nn.ReLU(), nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                       nn.Conv2d(mid, growth, 3, padding=rate, dilation=rate, bias=False)]
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(feature_channels + len(rates) * growth, growth, 3, padding=1, bias=False), nn.ELU())

    def forward(self, feature, concat):
        outs = [self.branches[0](feature)]
        for branch in self.branches[1:]:
            outs.append(branch(torch.cat([concat] + outs, dim=1)))
        return self.project(torch.cat([feature] + outs, dim=1))


def _conv_elu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ELU())


class GatedBTSDecoder(nn.Module):
    """BTS decoder with CaGF; widths nf, nf/2, nf/4, nf/4, nf/8, nf/16 at 1/16 ... 1/1 (nf = 512)."""

    def __init__(self, image_channels, radar_channels, num_features, max_depth, daspp_rates):
        super().__init__()
        nf, (i1, i2, i3, i4, i5), (r1, r2, r3, r4, r5) = num_features, image_channels, radar_channels
        self.max_depth = max_depth
        self.gates = nn.ModuleDict({
            '1_32': ConfidenceGatedFusion(r5, i5, 32), '1_16': ConfidenceGatedFusion(r4, nf, 16),
            '1_8': ConfidenceGatedFusion(r3, nf // 4, 8), '1_4': ConfidenceGatedFusion(r2, nf // 4, 4),
            '1_2': ConfidenceGatedFusion(r1, nf // 8, 2)})
        self.up5, self.bn5, self.conv5 = UpConv(i5, nf), _bn(nf), _conv_elu(nf + i4, nf)
        self.up4, self.bn4 = UpConv(nf, nf // 2), _bn(nf // 2)
        self.conv4, self.bn4_2 = _conv_elu(nf // 2 + i3, nf // 2), _bn(nf // 2)
        self.daspp = DenseASPP(nf // 2, nf // 2 + i3, nf, daspp_rates)
        self.reduc8 = PlaneReduction(nf // 4, nf // 4)
        # + 1 input channel: the coarser LPG depth, downsampled to this scale
        self.up3, self.bn3 = UpConv(nf // 4, nf // 4), _bn(nf // 4)
        self.conv3 = _conv_elu(nf // 4 + i2 + 1, nf // 4)
        self.reduc4 = PlaneReduction(nf // 4, nf // 8)
        self.up2, self.bn2 = UpConv(nf // 4, nf // 8), _bn(nf // 8)
        self.conv2 = _conv_elu(nf // 8 + i1 + 1, nf // 8)
        self.reduc2 = PlaneReduction(nf // 8, nf // 16)
        self.up1 = UpConv(nf // 8, nf // 16)
        self.reduc1 = PlaneReduction(nf // 16, nf // 32, final=True)
        self.conv1 = _conv_elu(nf // 16 + 4, nf // 16)
        self.head = nn.Conv2d(nf // 16, 1, 3, padding=1, bias=False)
        self.lpg = nn.ModuleDict({'8': LocalPlanarGuidance(8, max_depth), '4': LocalPlanarGuidance(4, max_depth),
                                  '2': LocalPlanarGuidance(2, max_depth)})

    def _planar_depth(self, reduction, ratio, x):
        return self.lpg[str(ratio)](reduction(x)) / self.max_depth   # full resolution, in [0, ~2]

    def forward(self, img, rad, confidence):
        gated = {}
        x, gated['1_32'] = self.gates['1_32'](F.relu(img[4]), rad[4], confidence)
        x = self.conv5(torch.cat([self.bn5(self.up5(x)), img[3]], dim=1))
        iconv5, gated['1_16'] = self.gates['1_16'](x, rad[3], confidence)
        concat4 = torch.cat([self.bn4(self.up4(iconv5)), img[2]], dim=1)
        iconv4 = self.bn4_2(self.conv4(concat4))
        daspp, gated['1_8'] = self.gates['1_8'](self.daspp(iconv4, concat4), rad[2], confidence)
        lpg8 = self._planar_depth(self.reduc8, 8, daspp)
        x = torch.cat([self.bn3(self.up3(daspp)), img[1], F.interpolate(lpg8, scale_factor=0.25, mode='nearest')], 1)
        iconv3, gated['1_4'] = self.gates['1_4'](self.conv3(x), rad[1], confidence)
        lpg4 = self._planar_depth(self.reduc4, 4, iconv3)
        x = torch.cat([self.bn2(self.up2(iconv3)), img[0], F.interpolate(lpg4, scale_factor=0.5, mode='nearest')], 1)
        iconv2, gated['1_2'] = self.gates['1_2'](self.conv2(x), rad[0], confidence)
        lpg2 = self._planar_depth(self.reduc2, 2, iconv2)
        up1 = self.up1(iconv2)
        reduc1 = self.reduc1(up1)
        iconv1 = self.conv1(torch.cat([up1, reduc1, lpg2, lpg4, lpg8], dim=1))
        features = {'decoder_1_16': iconv5, 'decoder_1_8': daspp, 'decoder_1_4': iconv3,
                    'decoder_1_2': iconv2, 'decoder_1_1': iconv1,
                    'lpg_1_8': lpg8, 'lpg_1_4': lpg4, 'lpg_1_2': lpg2, 'reduction_1_1': reduc1}
        features.update({f'gated_radar_{k}': v for k, v in gated.items()})
        return self.head(iconv1), features


# ----------------------------------------------------------------------------- the model

class Stage2RadarEncoder(nn.Module):
    """[gated coarse depth, radar] -> Conv3x3 (-> 3, no bias) ELU -> ResNet."""

    def __init__(self, in_channels, depth):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3, 3, padding=1, bias=False), nn.ELU())
        self.encoder = ResNetEncoder(depth)

    def forward(self, x):
        return self.encoder(self.stem(x))


@register('cafnet', TeacherConfig)
class CaFNet(nn.Module):
    # Not trained under fp16 autocast (the Trainer turns amp off for it, saying so): the unfloored
    # LPG denominator gives gradients past fp16's range at steep planes, so GradScaler skips steps
    # and cuts its scale again and again. Seen on an H200: val MAE at 80 m stuck at 10-12 m over
    # 2000 mixed-precision steps, where fp32 training on a CPU reached 2.85 m by step 750.
    FP16_TRAINING = False
    PARTS = {'image_encoder': ('image_encoder',), 'radar_encoder_stage1': ('radar_encoder1',),
             'radar_decoder_stage1': ('radar_decoder',), 'radar_encoder_stage2': ('radar_encoder2',),
             'fusion': ('decoder.gates',), 'daspp': ('decoder.daspp',), 'decoder': ('decoder',)}

    def __init__(self, config: TeacherConfig | None = None):
        super().__init__()
        self.config = config = config or TeacherConfig()
        self.image_encoder = ResNetEncoder(config.image_backbone_depth)
        self.radar_encoder1 = SparseRadarEncoder(config.radar_channels, config.sparse_kernels,
                                                 config.sparse_channels, config.radar_backbone_depth)
        img_ch, rad_ch = self.image_encoder.channels, self.radar_encoder1.encoder.channels
        self.radar_decoder = CoarseDepthDecoder(img_ch, rad_ch)
        self.radar_encoder2 = Stage2RadarEncoder(config.radar_channels + 1, config.radar_backbone_depth)
        self.decoder = GatedBTSDecoder(img_ch, self.radar_encoder2.encoder.channels, config.bts_size,
                                       config.max_depth, config.daspp_rates)
        if config.pretrained_backbone or config.pretrained_radar_backbone:
            self._load_pretrained()

    @property
    def REFERENCE_UNCOUNTED_PARAMS(self) -> int:   # upper case: the attribute summary.py reads
        """Values the authors' parameter count includes that are not parameters here: the unused fc
        heads (dropped) and the sparse convs' fixed window-count kernels (buffers here)."""
        return REFERENCE_UNUSED_FC_PARAMS + sum(s.sparsity.numel() for s in self.radar_encoder1.sparse)

    def _load_pretrained(self):
        cfg = self.config
        if cfg.pretrained_backbone:
            load_torchvision_backbone(self.image_encoder, cfg.pretrained_backbone,
                                      f'image encoder (ResNet-{cfg.image_backbone_depth})')
        if cfg.pretrained_radar_backbone:
            for name, enc in (('stage-1', self.radar_encoder1.encoder), ('stage-2', self.radar_encoder2.encoder)):
                load_torchvision_backbone(enc, cfg.pretrained_radar_backbone,
                                          f'{name} radar encoder (ResNet-{cfg.radar_backbone_depth})',
                                          allow_first_conv_mismatch=True)

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        cfg = self.config
        check_inputs(image, radar, cfg.radar_channels)
        image, radar, size = pad_to_stride(image, radar)
        f_image = self.image_encoder(image)
        logits = self.radar_decoder(f_image, self.radar_encoder1(radar))
        coarse_raw = cfg.max_depth * torch.sigmoid(at_least_fp32(logits[:, 0:1]))   # unfloored, as the authors
        coarse = coarse_raw.clamp_min(cfg.min_depth)                                  # the returned depth
        confidence = torch.sigmoid(at_least_fp32(logits[:, 1:2]))
        # The threshold is a hard gate: gradients reach stage 1 through the coarse depth only.
        gate = (confidence > cfg.confidence_threshold).to(coarse_raw.dtype)
        f_radar = self.radar_encoder2(torch.cat([(gate * coarse_raw).to(radar.dtype), radar], dim=1))
        depth_logits, features = self.decoder(f_image, f_radar, confidence)
        return {'depth': scaled_sigmoid(crop(depth_logits, size), cfg.max_depth, cfg.min_depth),
                'confidence': crop(confidence, size), 'coarse_depth': crop(coarse, size),
                'taps': {'image': f_image[3], 'radar': f_radar[3], 'decoder': features['decoder_1_16']},
                'features': features}
