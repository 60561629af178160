"""DepthEstimator: the one inference path from a Frame to depth (and, on request, saliency).

The ROS node, offline evaluation, bag replay evaluation, the benchmarks and the demo all call this
object, so the same Frame gives the same depth whichever way it arrives.

Steps: optional resize of the image to the network input size (K scaled with it, radar projected
with the scaled K so no radar point is lost to resampling), radar encoding (depth, RCS, vx, vy image;
nearest wins), ImageNet normalisation, the forward pass (CPU or CUDA, fp32 or fp16 autocast; the
model pads to its stride itself), resize back to the image size, and depths outside (0, max_depth]
marked NaN (REP 118: NaN = no valid measurement).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .config import IMAGENET_MEAN, IMAGENET_STD
from .distill.saliency import TAP_LAYERS, grad_cam, normalise_map, saliency_target
from .geometry import scale_intrinsics
from .radar import RadarEncodingConfig, RadarEncodingStats, encode_radar, radar_features


def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' = the first CUDA device when torch sees one, else the CPU; 'cpu'; 'cuda' or 'cuda:N'."""
    if device == 'auto':
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device '{device}' is not valid: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' asked for but torch sees no CUDA GPU: use device auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}' does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    elif dev.type != 'cpu':
        raise ValueError(f"device '{device}' is not supported: use auto, cpu, cuda or cuda:N")
    return dev


@dataclass
class DepthResult:
    depth: np.ndarray                       # H x W float32 metres, NaN where invalid
    radar_stats: RadarEncodingStats
    timings_ms: dict = field(default_factory=dict)
    saliency: dict | None = None            # layer -> H x W float32 in [0, 1]


class DepthEstimator:
    """Frame -> depth with a loaded model.

    model:        an nn.Module following the models' forward contract (image, radar) -> {'depth', 'taps'}.
    device:       'auto' | 'cpu' | 'cuda' | 'cuda:N'.
    precision:    'fp32' or 'fp16' (fp16 autocast, CUDA only).
    max_depth:    depths above this are reported as NaN (defaults to the model's own output range).
    input_size:   (height, width) to run the network at, or None for the image's own size.
    """

    def __init__(self, model: torch.nn.Module, device: str = 'auto', precision: str = 'fp32',
                 max_depth: float | None = None, input_size: tuple | None = None,
                 radar_config: RadarEncodingConfig = RadarEncodingConfig()):
        self.device = resolve_device(device)
        if precision not in ('fp32', 'fp16'):
            raise ValueError(f"precision '{precision}' is not supported: use fp32 or fp16")
        if precision == 'fp16' and self.device.type != 'cuda':
            raise ValueError('precision fp16 needs a CUDA device; use fp32 on the CPU')
        self.precision = precision
        model_max = float(getattr(getattr(model, 'config', None), 'max_depth', 100.0))
        self.max_depth = model_max if max_depth is None else float(max_depth)
        if not 0 < self.max_depth:
            raise ValueError(f'max_depth must be positive, got {max_depth}')
        if input_size is not None:
            h, w = (int(v) for v in input_size)
            if h < 32 or w < 32:
                raise ValueError(f'input_size must be at least 32 x 32, got {input_size}')
            input_size = (h, w)
        self.input_size = input_size
        self.radar_config = radar_config
        self.model = model.to(self.device).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> 'DepthEstimator':
        from .models.checkpoint import load_model
        model, _ = load_model(path, map_location='cpu')
        return cls(model, **kwargs)

    # -- steps -------------------------------------------------------------------------------
    def prepare(self, frame):
        """Network inputs of a Frame: (image tensor 1x3xhxw normalised, radar tensor 1x4xhxw, stats)."""
        H, W = frame.height, frame.width
        h, w = self.input_size or (H, W)
        image, K = frame.image, frame.K
        if (h, w) != (H, W):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if h < H else cv2.INTER_LINEAR)
            K = scale_intrinsics(K, w / W, h / H)
        feats, missing = radar_features(frame.radar, frame.radar_fields, self.radar_config.feature_columns)
        radar_img, stats = encode_radar(frame.radar_in_camera(), feats, K, h, w, self.radar_config)
        stats.missing_features = missing
        img_t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float()
        img_t = (img_t / 255.0 - self._mean) / self._std
        radar_t = torch.from_numpy(radar_img).to(self.device).permute(2, 0, 1)[None]
        return img_t, radar_t, stats

    def _forward(self, img_t, radar_t):
        if self.precision == 'fp16':
            with torch.autocast('cuda', dtype=torch.float16):
                return self.model(img_t, radar_t)
        return self.model(img_t, radar_t)

    def _finish(self, depth_t: torch.Tensor, height: int, width: int) -> np.ndarray:
        depth = depth_t[0, 0].float().cpu().numpy()
        if depth.shape != (height, width):
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
        depth = depth.astype(np.float32, copy=False)
        depth[~np.isfinite(depth) | (depth <= 0) | (depth > self.max_depth)] = np.nan
        return depth

    # -- public ------------------------------------------------------------------------------
    def predict(self, frame, saliency_layers=()) -> DepthResult:
        """Depth of one Frame; with `saliency_layers` (subset of image, radar, decoder) also Grad-CAM maps."""
        t0 = time.perf_counter()
        img_t, radar_t, stats = self.prepare(frame)
        t1 = time.perf_counter()
        saliency = None
        if saliency_layers:
            unknown = set(saliency_layers) - set(TAP_LAYERS)
            if unknown:
                raise ValueError(f'unknown saliency layer(s) {sorted(unknown)}: choose from {TAP_LAYERS}')
            with torch.enable_grad():
                # Gradients flow from the input, so Grad-CAM works even on frozen weights.
                out = self._forward(img_t.requires_grad_(True), radar_t.requires_grad_(True))
                maps = grad_cam(out['taps'], saliency_target(out['depth'].float()), layers=tuple(saliency_layers))
            saliency = {k: normalise_map(v.detach().float(), size=(frame.height, frame.width))[0, 0].cpu().numpy()
                        for k, v in maps.items()}
        else:
            with torch.inference_mode():
                out = self._forward(img_t, radar_t)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter()
        depth = self._finish(out['depth'].detach(), frame.height, frame.width)
        t3 = time.perf_counter()
        return DepthResult(depth=depth, radar_stats=stats, saliency=saliency,
                           timings_ms={'prepare': 1e3 * (t1 - t0), 'forward': 1e3 * (t2 - t1),
                                       'finish': 1e3 * (t3 - t2), 'total': 1e3 * (t3 - t0)})

    def release(self) -> None:
        """Drop the model from the GPU (the node's deactivate)."""
        self.model.to('cpu')
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()
