"""RadarNet (Singh et al., CVPR 2023), the two-stage radar-camera baseline of the paper's Table 1, built
from the facts in docs/reference.md Part A 3.3 and 4.4. The authors' code (nesl/radar-camera-fusion-depth)
is under a non-commercial licence: nothing of it is here, only the layer sizes and rules it states.

Stage 1, correspondence (``stage1``): for every radar point, which pixels of an image patch of full height
and P columns centred on it belong to it.
- Patch width P: 288 px at nuScenes' 1600 px width (``--patch_size 900 288``), scaled with the input
  width (rounded to a multiple of 32, at least 32), or ``patch_width`` px when set. The input is what
  DepthEstimator makes for the checkpoint's training camera, so the width it scales with is that
  camera's; the recipes therefore train on full frames (the reference's stage 1 sees whole images too).
- Image encoder: a ResNet-18-style net (7x7 stride-2 stem, max-pool, 2 basic blocks per scale; BN,
  LeakyReLU 0.1; widths 32, 64, 128, 128, 128 at 1/2 ... 1/32), run ONCE on the image edge-padded by P/2
  left and right; each point's window of every scale is cut out of the shared maps (the reference
  ROI-pools its box; a window whose start is rounded to the scale's grid is the same crop).
- Point encoder: (u / W, v / H, z / max_depth) through fully connected layers 32, 64, 128, 128, 128 and a
  last one to 128 x 28 x 9 values, reshaped to the 1/32 latent of a 900 x 288 patch (resized bilinearly
  when the padded patch's latent is not 28 x 9). Normalising u, v, z is ours (the reference feeds pixels
  and metres). This last layer alone is 4.16 M of the parameters.
- Decoder: the image window at 1/32 concatenated with the point latent (256 ch), five up-blocks (nearest
  x2, Conv3x3 BN LReLU, concat the image window of that scale, Conv3x3 BN LReLU) of widths 256, 128, 64,
  32, 16 (skips 128, 128, 64, 32, none), Conv3x3 -> 1: the logits of the point's correspondence map
  (B, K, H, P).
- Quasi-dense depth: responses sigmoid(logits) below 0.5 are zeroed; at each pixel the point with the
  largest response supplies its depth and the response value (``quasi_depth``, ``confidence``); 0 where
  no point responds.

Stage 2, fusion (``stage2``, "FusionNet"): image (3 ch) and [quasi-dense depth, response] (2 ch) through two
ResNet-18-style encoders of six scales (image 32, 64, 128, 256, 256, 256; depth 16, 32, 64, 128, 128, 128,
1/2 ... 1/64), fused at every scale by "weight and project": f_i <- f_i + sigmoid(BN Conv1x1(f_d)) *
BN Conv1x1(f_d); a decoder of six up-blocks (256, 256, 128, 64, 64, 32; skips the fused image features
256, 256, 128, 64, 32, none), Conv3x3 -> x, depth = d_min / (sigmoid(x) + d_min / d_max) with d_min 1 m,
d_max 100 m. Our choices where the facts stop: the skips are the fused image features; the depth input is
raw metres (the BN after the first conv scales it).

Radar points. The model keeps the contract of the other models, ``forward(image, radar)`` with the
projected radar image DepthEstimator makes: its points are the pixels whose depth channel is > 0 (the
other channels are not used: the reference's stage 1 reads u, v, depth only). At most ``max_points``
(default 128) are used, the nearest first; a frame with more warns once ("kept the nearest"). In training
mode stage 1 takes at most ``train_points`` (the reference's 4) per image, and the radarnet-stage1 recipe
draws that many at random from each image beforehand (training/objectives.py, seeded by the step, so a
resumed run draws the same). The per-point work (window crops, point encoder, decoder at full patch
resolution) runs in chunks of ``point_chunk`` points, so memory stays bounded, and its cost grows
linearly with the number of points.

``stage`` (1 or 2) says what the network is being trained as and what ``depth`` is:
- 1: stage 2 is frozen (not trained, not run); ``depth`` is the quasi-dense depth, 0 (NaN after
  DepthEstimator) where no point responds; the output also holds ``correspondence_logits`` (B, K, H, P),
  ``points`` (B, K, 3: u, v in pixels, z in metres) and ``point_valid`` (B, K) for the stage-1 loss.
- 2 (default; the deployable model): stage 1 is frozen (kept in eval mode, run without gradients);
  ``depth`` is stage 2's dense depth.
A stage-2 run starts from a stage-1 checkpoint (``model.init``): the two are the same network.

Parameters: 22,480,690 trained here (stage 1 8,338,481: image encoder 1,876,128, point encoder 4,204,608,
decoder 2,257,745; stage 2 14,142,209: image encoder 7,614,624, depth encoder 1,905,984, fusion 222,080,
decoder 4,399,521). The paper quotes 22.8 M (docs/paper.md Results; the reference repository states no
count). The reference builds a 1x1 projection in every residual block and uses it only where the shape
changes; the 14 unused ones (324,608 weights) are not built here and are reported as
``REFERENCE_UNCOUNTED_PARAMS``: 22,480,690 + 324,608 = 22,805,298, the paper's 22.8 M. (Counting BN in
every conv follows the reference's ``batch_norm`` settings; the output convs' biases, 2 values, are ours.)
Compute at 896x1600 (multiply-accumulates): 165 GMACs for stage 2, 35 for stage 1's image encoder, and
10.4 per radar point (the window decoder at full patch resolution, 896 x 288): 826 GMACs at 60 points,
the count ``xd-rcdepth info`` gives (models/summary.py counts on the meta device, where points cannot be
read from data, so the model takes MAC_POINTS = 60 there).

Forward contract as the student's (student.py), inputs padded to a multiple of 32 inside. Taps (stage 2;
Hp = 32 ceil(H/32)):
    image   (B, 256, Hp/16, Wp/16) fused image feature of stage 2 at 1/16
    radar   (B, 128, Hp/16, Wp/16) stage 2's quasi-dense-depth branch at 1/16 (radar-derived)
    decoder (B, 256, Hp/16, Wp/16) stage 2's decoder at 1/16
so X-KD can use RadarNet like the other models. A stage-1 network has one image-shaped 1/16 layer, the
image encoder's (window-padding removed): all three names give it, and its depth (a selection of radar
depths) reaches it only through the responses (depth + depth x (r - stop_grad(r)), the same values), so Grad-CAM
of a stage-1 model shows what drives the correspondences. features: stage 2's decoder_1_32 ... decoder_1_1
(stage 1: none). Also in the output: ``quasi_depth`` and ``confidence`` (B, 1, H, W).

ONNX. The per-point stage exports (TopK, Gather, ScatterElements): a traced graph always runs ``max_points``
point slots (unused ones masked), whatever the frame holds. The patch width, the slot count and the latent
resize are fixed at the traced size, so RadarNet exports static only (``STATIC_EXPORT_ONLY``; export.py
refuses a dynamic export with that reason).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PAPER, RADAR_CHANNELS
from .blocks import at_least_fp32, check_inputs, crop, pad_to_stride
from .registry import register

# docs/reference.md Part A 3.3: --patch_size 900 288 on 1600-px-wide nuScenes images.
REFERENCE_PATCH_WIDTH = 288
REFERENCE_IMAGE_WIDTH = 1600
# Radar points per frame counted where the data cannot say (the meta device of models/summary.py): the
# middle of the 30 / 60 / 120 points RadarNet's latency is reported at (a choice; no real nuScenes radar
# file was at hand to count a typical frame's points in CAM_FRONT).
MAC_POINTS = 60
LEAKY_SLOPE = 0.1


@dataclass
class RadarNetConfig:
    # 1: train stage 1 (correspondence), depth = quasi-dense; 2: train stage 2 (fusion), depth = dense.
    stage: int = 2
    fusion: str = 'weight_and_project'   # stage 2's image/depth fusion (docs/reference.md 3.3); the only one
    max_depth: float = PAPER.depth.max_depth    # d_max of the output, 100 m (docs/reference.md 3.3)
    predict_min_depth: float = 1.0              # d_min of the output, 1 m (docs/reference.md 3.3)
    min_depth: float = PAPER.depth.min_depth_eval   # floor of returned depth (the output is >= ~0.99 m anyway)
    radar_channels: int = len(RADAR_CHANNELS)   # the radar image; only its depth channel is read
    # No torchvision backbone: RadarNet's encoders are its own, trained from scratch. Must stay None
    # (present because models/summary.py and checkpoint loading pass them to every model).
    pretrained_backbone: Optional[str] = None
    pretrained_radar_backbone: Optional[str] = None
    # Points: at most max_points per frame (nearest first); train_points sampled per image in training
    # (the reference's --total_points_sampled 4); point_chunk points per pass of the per-point stage.
    max_points: int = 128
    train_points: int = 4
    point_chunk: int = 16
    # Patch width in pixels; None = 288 x W / 1600 rounded to a multiple of 32 (at least 32).
    patch_width: Optional[int] = None
    response_threshold: float = 0.5     # responses below are zeroed (docs/reference.md 3.3)
    # Widths (docs/reference.md 3.3 / the reference's training scripts).
    stage1_image_channels: tuple = (32, 64, 128, 128, 128)
    stage1_point_neurons: tuple = (32, 64, 128, 128, 128)
    stage1_decoder_channels: tuple = (256, 128, 64, 32, 16)
    point_latent_grid: tuple = (28, 9)   # the 1/32 latent of a 900 x 288 patch
    stage2_image_channels: tuple = (32, 64, 128, 256, 256, 256)
    stage2_depth_channels: tuple = (16, 32, 64, 128, 128, 128)
    stage2_decoder_channels: tuple = (256, 256, 128, 64, 64, 32)

    def __post_init__(self):
        for name in ('stage1_image_channels', 'stage1_point_neurons', 'stage1_decoder_channels', 'point_latent_grid',
                     'stage2_image_channels', 'stage2_depth_channels', 'stage2_decoder_channels'):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.stage not in (1, 2):
            raise ValueError(f'RadarNet stage must be 1 or 2, got {self.stage!r}')
        if self.fusion != 'weight_and_project':
            raise ValueError(f"RadarNet's fusion is 'weight_and_project' only, got {self.fusion!r}")
        if self.pretrained_backbone or self.pretrained_radar_backbone:
            raise ValueError('RadarNet has no torchvision backbone to initialise: its encoders train from scratch')
        if not 0 < self.min_depth < self.predict_min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < predict_min_depth < max_depth, got {self.min_depth}, '
                             f'{self.predict_min_depth}, {self.max_depth}')
        for name in ('max_points', 'train_points', 'point_chunk'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be at least 1, got {getattr(self, name)}')
        if self.patch_width is not None and (self.patch_width < 32 or self.patch_width % 32):
            raise ValueError(f'patch_width must be a multiple of 32 (the encoder stride), got {self.patch_width}')
        if not 0 < self.response_threshold < 1:
            raise ValueError(f'response_threshold must lie in (0, 1), got {self.response_threshold}')
        if len(self.stage1_image_channels) != 5 or len(self.stage1_point_neurons) < 1 \
                or len(self.stage1_decoder_channels) != 5:
            raise ValueError('stage 1 needs 5 image widths (1/2 ... 1/32), point widths and 5 decoder widths')
        if len(self.stage2_image_channels) != 6 or len(self.stage2_depth_channels) != 6 \
                or len(self.stage2_decoder_channels) != 6:
            raise ValueError('stage 2 needs 6 image, 6 depth and 6 decoder widths (1/2 ... 1/64)')
        if len(self.point_latent_grid) != 2 or min(self.point_latent_grid) < 1:
            raise ValueError(f'point_latent_grid must be (rows, columns), got {self.point_latent_grid}')


def patch_width_for(width: int, fixed: int | None = None) -> int:
    """The stage-1 patch width (px) for an input ``width`` px wide: 288 at 1600, a multiple of 32."""
    if fixed:
        return int(fixed)
    return max(32, 32 * int(math.floor(REFERENCE_PATCH_WIDTH * width / REFERENCE_IMAGE_WIDTH / 32 + 0.5)))


# ----------------------------------------------------------------------------- blocks

def conv_bn_lrelu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


class BasicBlock(nn.Module):
    """Conv3x3 (stride) BN LReLU, Conv3x3 BN LReLU, plus the input (Conv1x1 projection when the shape
    changes), LReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn_lrelu(cin, cout, 3, stride)
        self.conv2 = conv_bn_lrelu(cout, cout, 3)
        self.projection = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return F.leaky_relu(y + (x if self.projection is None else self.projection(x)), LEAKY_SLOPE)


class ResNetStyleEncoder(nn.Module):
    """7x7 stride-2 stem (1/2), max-pool + 2 blocks (1/4), then 2 blocks at stride 2 per further width.
    ``stages[i]`` maps the previous stage's output to scale 1/2^(i+1)."""

    def __init__(self, cin: int, widths):
        super().__init__()
        stages = [conv_bn_lrelu(cin, widths[0], 7, 2)]
        for i in range(1, len(widths)):
            blocks = [BasicBlock(widths[i - 1], widths[i], 1 if i == 1 else 2), BasicBlock(widths[i], widths[i], 1)]
            if i == 1:
                blocks.insert(0, nn.MaxPool2d(3, 2, 1))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)

    def forward(self, x) -> list:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class UpBlock(nn.Module):
    """Nearest upsampling to ``size``, Conv3x3 BN LReLU, concat the skip (if any), Conv3x3 BN LReLU."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = conv_bn_lrelu(cin, cout, 3)
        self.fuse = conv_bn_lrelu(cout + skip, cout, 3)

    def forward(self, x, skip, size):
        x = self.up(F.interpolate(x, size=size, mode='nearest'))
        return self.fuse(x if skip is None else torch.cat([x, skip], dim=1))


class Decoder(nn.Module):
    def __init__(self, cin: int, widths, skips):
        super().__init__()
        blocks = []
        for cout, skip in zip(widths, skips):
            blocks.append(UpBlock(cin, skip, cout))
            cin = cout
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x, skips: list, sizes: list) -> list:
        out = []
        for block, skip, size in zip(self.blocks, skips, sizes):
            x = block(x, skip, size)
            out.append(x)
        return out


class PointEncoder(nn.Sequential):
    """Fully connected layers with LReLU after each, the last one to the flattened latent."""

    def __init__(self, cin: int, neurons, latent: int):
        layers = []
        for n in list(neurons) + [latent]:
            layers += [nn.Linear(cin, n), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
            cin = n
        super().__init__(*layers)


class WeightAndProject(nn.Module):
    """f_i + sigmoid(BN Conv1x1(f_d)) * BN Conv1x1(f_d) (docs/reference.md 3.3)."""

    def __init__(self, depth_channels: int, image_channels: int):
        super().__init__()
        self.weight = nn.Sequential(nn.Conv2d(depth_channels, image_channels, 1, bias=False),
                                    nn.BatchNorm2d(image_channels), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(depth_channels, image_channels, 1, bias=False),
                                     nn.BatchNorm2d(image_channels))

    def forward(self, f_image, f_depth):
        return f_image + self.weight(f_depth) * self.project(f_depth)


def _windows(table: torch.Tensor, width: int, rows: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Column windows of a feature map: ``table`` is the map as (B * W, C, h) (column-major rows),
    ``rows`` (N,) the batch index of each window, ``start`` (N,) its first column; -> (N, C, h, length)."""
    cols = start[:, None] + torch.arange(length, device=start.device)
    flat = (rows[:, None] * width + cols).reshape(-1)
    n = rows.shape[0]
    return table.index_select(0, flat).reshape(n, length, table.shape[1], table.shape[2]).permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------- stage 1

class CorrespondenceNet(nn.Module):
    """Stage 1: per-point correspondence maps and the quasi-dense depth they give."""

    SCALES = (2, 4, 8, 16, 32)

    def __init__(self, config: RadarNetConfig):
        super().__init__()
        self.config = cfg = config
        ic, pn, dc = cfg.stage1_image_channels, cfg.stage1_point_neurons, cfg.stage1_decoder_channels
        self.image_encoder = ResNetStyleEncoder(3, ic)
        self.point_encoder = PointEncoder(3, pn, pn[-1] * cfg.point_latent_grid[0] * cfg.point_latent_grid[1])
        self.decoder = Decoder(ic[-1] + pn[-1], dc, list(ic[:-1][::-1]) + [0])
        self.head = nn.Conv2d(dc[-1], 1, 3, padding=1)
        self._warned = False

    # -- points --------------------------------------------------------------------------------
    def slots(self, depth: torch.Tensor, sample: bool) -> int:
        """How many point slots per image: the points present (capped), max_points when tracing (a graph
        has a fixed number), MAC_POINTS on the meta device (no data to count)."""
        cfg = self.config
        if depth.is_meta:
            return MAC_POINTS
        if torch.jit.is_tracing():
            return cfg.max_points
        most = int((depth > 0).flatten(1).sum(1).max()) if depth.numel() else 0
        if sample:
            return max(1, min(most, cfg.train_points))   # one slot at least: the loss keeps a graph
        if most > cfg.max_points and not self._warned:
            self._warned = True
            warnings.warn(f'RadarNet: a frame holds more radar points than max_points={cfg.max_points}; '
                          'it uses the nearest max_points of them (model.config.max_points)')
        return min(most, cfg.max_points)

    def select(self, depth: torch.Tensor, k: int):
        """(u, v, z, valid), each (B, k): the nearest k points of each image."""
        flat = depth.flatten(1)
        valid = flat > 0
        score = torch.where(valid, -flat, torch.full_like(flat, -1e9))
        top, index = torch.topk(score, k, dim=1)
        ok = top > -1e8
        width = depth.shape[-1]
        return index % width, index // width, flat.gather(1, index) * ok, ok

    # -- forward -------------------------------------------------------------------------------
    def forward(self, image, radar, size, sample: bool) -> dict:
        cfg = self.config
        B, _, Hp, Wp = image.shape
        H, W = size
        P = patch_width_for(W, cfg.patch_width)
        half = P // 2
        feats = self.image_encoder(F.pad(image, (half, half, 0, 0), mode='replicate'))
        # The 1/16 map without its window padding is the image tap; rebuilt around it so it is on the path.
        lo = half // 16
        tap = feats[3][..., lo:lo + Wp // 16]
        feats[3] = torch.cat([feats[3][..., :lo], tap, feats[3][..., lo + Wp // 16:]], dim=-1)
        tables = [(f.permute(0, 3, 1, 2).reshape(B * f.shape[-1], f.shape[1], f.shape[2]), f.shape[-1]) for f in feats]

        depth = radar[:, 0]
        k = self.slots(depth, sample)
        response = image.new_zeros(B, 1, Hp, Wp)
        quasi = image.new_zeros(B, 1, Hp, Wp)
        out = {'quasi_depth': quasi, 'response': response, 'tap': tap}
        if k == 0:
            return out
        u, v, z, valid = self.select(depth, k)
        batch = torch.arange(B, device=image.device)[:, None].expand(B, k)
        logits = []
        for c0 in range(0, k, cfg.point_chunk):
            c1 = min(k, c0 + cfg.point_chunk)
            sl = (slice(None), slice(c0, c1))
            chunk = self._points(tables, Hp, P, batch[sl].reshape(-1), u[sl].reshape(-1), v[sl].reshape(-1),
                                 z[sl].reshape(-1), (H, W))
            n = c1 - c0
            if sample:
                logits.append(chunk.view(B, n, Hp, P))
            r = torch.sigmoid(at_least_fp32(chunk)).view(B, n, Hp, P)
            r = torch.where(r >= cfg.response_threshold, r, torch.zeros_like(r)) * valid[sl][..., None, None]
            # Onto the window-padded canvas at columns u .. u + P - 1, then back to image columns.
            index = (u[sl][..., None] + torch.arange(P, device=u.device))[:, :, None, :].expand(B, n, Hp, P)
            canvas = torch.zeros(B, n, Hp, Wp + P, dtype=r.dtype, device=r.device).scatter(3, index, r)
            canvas = canvas[..., half:half + Wp]
            best, which = canvas.max(dim=1, keepdim=True)
            depth_c = z[sl].to(r.dtype).gather(1, which.flatten(1)).view_as(best) * (best > 0)
            better = best > response
            response = torch.where(better, best.to(response.dtype), response)
            quasi = torch.where(better, depth_c.to(quasi.dtype), quasi)
        out.update(quasi_depth=quasi, response=response)
        if sample:
            out.update(logits=torch.cat(logits, dim=1)[:, :, :H],
                       points=torch.stack([u.to(image.dtype), v.to(image.dtype), z.to(image.dtype)], dim=-1),
                       point_valid=valid)
        return out

    def _points(self, tables, Hp: int, P: int, batch, u, v, z, size):
        """Logits (N, 1, Hp, P) of N points (batch index, column, row, depth)."""
        cfg = self.config
        H, W = size
        crops = [_windows(table, width, batch, torch.div(u, s, rounding_mode='floor'), P // s)
                 for (table, width), s in zip(tables, self.SCALES)]
        point = torch.stack([(u.to(crops[0].dtype) + 0.5) / W, (v.to(crops[0].dtype) + 0.5) / H,
                             z.to(crops[0].dtype) / cfg.max_depth], dim=1)
        gh, gw = cfg.point_latent_grid
        latent = self.point_encoder(point).view(-1, cfg.stage1_point_neurons[-1], gh, gw)
        if (gh, gw) != (Hp // 32, P // 32):
            latent = F.interpolate(latent, size=(Hp // 32, P // 32), mode='bilinear', align_corners=False)
        x = torch.cat([crops[4], latent], dim=1)
        skips = [crops[3], crops[2], crops[1], crops[0], None]
        sizes = [(Hp // s, P // s) for s in (16, 8, 4, 2, 1)]
        return self.head(self.decoder(x, skips, sizes)[-1])


# ----------------------------------------------------------------------------- stage 2

class FusionNet(nn.Module):
    """Stage 2: image + [quasi-dense depth, response] -> dense depth."""

    def __init__(self, config: RadarNetConfig):
        super().__init__()
        self.config = cfg = config
        ic, dc, oc = cfg.stage2_image_channels, cfg.stage2_depth_channels, cfg.stage2_decoder_channels
        self.image_encoder = ResNetStyleEncoder(3, ic)
        self.depth_encoder = ResNetStyleEncoder(2, dc)
        self.fusion = nn.ModuleList(WeightAndProject(d, i) for i, d in zip(ic, dc))
        self.decoder = Decoder(ic[-1], oc, list(ic[:-1][::-1]) + [0])
        self.head = nn.Conv2d(oc[-1], 1, 3, padding=1)

    def forward(self, image, quasi_depth, response):
        x_i, x_d = image, torch.cat([quasi_depth, response], dim=1).to(image.dtype)
        fused, depth_feats = [], []
        for stage_i, stage_d, fuse in zip(self.image_encoder.stages, self.depth_encoder.stages, self.fusion):
            x_d = stage_d(x_d)
            x_i = fuse(stage_i(x_i), x_d)
            fused.append(x_i)
            depth_feats.append(x_d)
        skips = fused[-2::-1] + [None]
        sizes = [f.shape[-2:] for f in fused[-2::-1]] + [image.shape[-2:]]
        decoded = self.decoder(fused[-1], skips, sizes)
        logits = self.head(decoded[-1])
        cfg = self.config
        d_min = cfg.predict_min_depth
        depth = d_min / (torch.sigmoid(at_least_fp32(logits)) + d_min / cfg.max_depth)
        names = ('decoder_1_32', 'decoder_1_16', 'decoder_1_8', 'decoder_1_4', 'decoder_1_2', 'decoder_1_1')
        return depth, {'image': fused[3], 'radar': depth_feats[3], 'decoder': decoded[1]}, dict(zip(names, decoded))


# ----------------------------------------------------------------------------- the model

@register('radarnet', RadarNetConfig)
class RadarNet(nn.Module):
    PARTS = {'stage1_image_encoder': ('stage1.image_encoder',), 'stage1_point_encoder': ('stage1.point_encoder',),
             'stage1_decoder': ('stage1.decoder', 'stage1.head'),
             'stage2_image_encoder': ('stage2.image_encoder',), 'stage2_depth_encoder': ('stage2.depth_encoder',),
             'stage2_fusion': ('stage2.fusion',), 'stage2_decoder': ('stage2.decoder', 'stage2.head')}
    # models/summary.py: weights the paper's count includes that are not built here (module docstring).
    REFERENCE_UNCOUNTED_PARAMS = 324_608
    # export.py: why a dynamic-shape export of this model is refused.
    STATIC_EXPORT_ONLY = ('its patch width, point slots and latent size are fixed when the graph is traced; '
                          'export it static at the network input size (--height H --width W, no --dynamic)')

    def __init__(self, config: RadarNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or RadarNetConfig()
        self.stage1 = CorrespondenceNet(cfg)
        self.stage2 = FusionNet(cfg)
        (self.stage1 if cfg.stage == 2 else self.stage2).requires_grad_(False)

    def train(self, mode: bool = True):
        """The frozen stage stays in eval mode (BN statistics kept; stage 1 uses every point)."""
        super().train(mode)
        (self.stage1 if self.config.stage == 2 else self.stage2).eval()
        return self

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        cfg = self.config
        check_inputs(image, radar, cfg.radar_channels)
        image, radar, size = pad_to_stride(image, radar)
        sample = self.stage1.training
        with torch.set_grad_enabled(torch.is_grad_enabled() and cfg.stage == 1):
            s1 = self.stage1(image, radar, size, sample)
        quasi, response = crop(s1['quasi_depth'], size), crop(s1['response'], size)
        if cfg.stage == 1:
            depth = quasi + quasi * (response - response.detach())   # the values of quasi, the gradient of r
            out = {'depth': depth, 'taps': {'image': s1['tap'], 'radar': s1['tap'], 'decoder': s1['tap']},
                   'features': {}}
            out.update({k: s1[k] for k in ('points', 'point_valid') if k in s1})
            if 'logits' in s1:
                out['correspondence_logits'] = s1['logits']
        else:
            depth, taps, features = self.stage2(image, s1['quasi_depth'], s1['response'])
            out = {'depth': crop(depth, size).clamp_min(cfg.min_depth), 'taps': taps, 'features': features}
        out.update(quasi_depth=quasi, confidence=response)
        return out
