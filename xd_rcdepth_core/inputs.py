"""A Frame -> the network's inputs, and the network's output -> depth at the image's pixels.

Optional resize of the image to the network input size (K scaled with it, radar projected with the
scaled K so no radar point is lost to resampling), radar encoding (depth, RCS, vx, vy image;
nearest wins), ImageNet normalisation; afterwards the depth resized back to the image and values
outside (0, max_depth] marked NaN (REP 118: NaN = no valid measurement).

Two forms of the same inputs: torch tensors on a device (prepare_inputs, for DepthEstimator) and
contiguous float32 numpy arrays (prepare_host_inputs, for ONNX files served without torch). Only the
tensor functions import torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .config import IMAGENET_MEAN, IMAGENET_STD
from .conventions import InputConventions
from .geometry import scale_intrinsics
from .radar import RadarEncodingConfig, RadarEncodingStats, encode_radar, radar_features


@dataclass
class DepthResult:
    depth: np.ndarray                       # H x W float32 metres, NaN where invalid
    radar_stats: RadarEncodingStats
    timings_ms: dict = field(default_factory=dict)
    saliency: dict | None = None            # layer -> H x W float32 in [0, 1]


def stage_timings(t0: float, t1: float, t2: float, t3: float, t4: float, saliency: bool) -> dict:
    """Milliseconds per stage of one prediction from perf_counter marks: start, inputs prepared,
    forward done, saliency done, depth finished."""
    timings = {'prepare': 1e3 * (t1 - t0), 'forward': 1e3 * (t2 - t1), 'finish': 1e3 * (t4 - t3),
               'total': 1e3 * (t4 - t0)}
    if saliency:
        timings['saliency'] = 1e3 * (t3 - t2)
    return timings


def checked_run_options(max_depth: float, input_size, threads):
    """The estimators' shared settings, validated: (max_depth, (h, w) or None); raises ValueError naming
    the bad one."""
    if not max_depth > 0:
        raise ValueError(f'max_depth must be positive, got {max_depth}')
    if input_size is not None:
        h, w = (int(v) for v in input_size)
        if h < 32 or w < 32:
            raise ValueError(f'input_size must be at least 32 x 32, got {input_size}')
        input_size = (h, w)
    if threads is not None and threads < 1:
        raise ValueError(f'threads must be at least 1, got {threads}')
    return float(max_depth), input_size


def resize_frame_inputs(frame, input_size):
    """(image, K, h, w) at the network input size; K scaled with the image."""
    H, W = frame.height, frame.width
    h, w = input_size or (H, W)
    image, K = frame.image, frame.K
    if (h, w) != (H, W):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if h < H else cv2.INTER_LINEAR)
        K = scale_intrinsics(K, w / W, h / H)
    return image, K, h, w


def radar_image(frame, K, h, w, radar_config: RadarEncodingConfig = RadarEncodingConfig(),
                channels_first: bool = False):
    """(h x w x C float32 radar image, or C x h x w with ``channels_first``; stats): projection and
    encoding of the frame's radar."""
    feats, missing = radar_features(frame.radar, frame.radar_fields, radar_config.feature_columns)
    image, stats = encode_radar(frame.radar_in_camera(), feats, K, h, w, radar_config, channels_first)
    stats.missing_features = missing
    return image, stats


def normalise_image(image: np.ndarray, device, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """1 x 3 x h x w normalised float32 ((rgb / 255 - mean) / std; ImageNet's by default) of an
    h x w x 3 uint8 RGB image.

    One multiply-add (x * 1/(255 std) - mean/std) instead of three passes, and the HWC -> CHW
    permute is a view, so the tensor is channels_last-strided: what the CPU fast path wants.
    """
    import torch
    img = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    scale, offset = _normalisation(device, tuple(mean), tuple(std))
    return torch.addcmul(offset, img.float(), scale)


_NORMALISATION = {}


def _normalisation(device, mean: tuple, std: tuple):
    import torch
    key = (device, mean, std)
    if key not in _NORMALISATION:
        m = torch.tensor(mean, dtype=torch.float64)
        s = torch.tensor(std, dtype=torch.float64)
        _NORMALISATION[key] = ((1.0 / (255.0 * s)).float().view(1, 3, 1, 1).to(device),
                               (-m / s).float().view(1, 3, 1, 1).to(device))
    return _NORMALISATION[key]


def network_size(frame, input_size=None, conventions: InputConventions | None = None) -> tuple:
    """(height, width) the network runs a frame at: ``input_size`` when given; else the frame's size
    scaled so its focal length becomes the training camera's (conventions.py); else the frame's size."""
    if input_size is not None:
        return tuple(input_size)
    scale = conventions.scale_for(frame.K[0, 0]) if conventions is not None else 1.0
    if scale == 1.0:
        return frame.height, frame.width
    return max(32, int(round(frame.height * scale))), max(32, int(round(frame.width * scale)))


def prepare_inputs(frame, input_size, device, radar_config=RadarEncodingConfig(),
                   conventions: InputConventions | None = None):
    """Network inputs of a Frame: (image 1x3xhxw normalised, radar 1xCxhxw, radar stats), at
    ``network_size`` and normalised by ``conventions`` (default: ImageNet statistics)."""
    import torch
    image, K, h, w = resize_frame_inputs(frame, network_size(frame, input_size, conventions))
    radar, stats = radar_image(frame, K, h, w, radar_config)
    radar_t = torch.from_numpy(radar).to(device).permute(2, 0, 1)[None]
    c = conventions or InputConventions()
    return normalise_image(image, device, c.image_mean, c.image_std), radar_t, stats


def prepare_host_inputs(frame, input_size, radar_config=RadarEncodingConfig(),
                        conventions: InputConventions | None = None):
    """prepare_inputs as contiguous float32 NCHW numpy arrays (what ONNX Runtime and OpenVINO take),
    without torch: (image 1x3xhxw normalised, radar 1xCxhxw, radar stats)."""
    image, K, h, w = resize_frame_inputs(frame, network_size(frame, input_size, conventions))
    radar, stats = radar_image(frame, K, h, w, radar_config, channels_first=True)
    c = conventions or InputConventions()
    return normalised_chw(image, c.image_mean, c.image_std), radar[None], stats


def normalised_chw(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """1 x 3 x h x w float32 ((rgb / 255 - mean) / std) of an h x w x 3 RGB image, as numpy.

    Plane by plane straight into the output (cv2.split, then a multiply and an add in place): no HWC
    float temporary and no strided transposing copy. At 448x800 on a 2-core EPYC this took 0.3 ms
    where the multiply-add in HWC plus a transpose took 3.8-4.5 ms, out of a 62 ms int8 frame; the
    result is bit-identical (the same float32 multiply, then add).
    """
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    scale, offset = (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)
    h, w = image.shape[:2]
    out = np.empty((1, 3, h, w), np.float32)
    for c, plane in enumerate(cv2.split(np.ascontiguousarray(image))):
        np.multiply(plane, scale[c], out=out[0, c], dtype=np.float32)
        np.add(out[0, c], offset[c], out=out[0, c])
    return out


def finish_depth(depth_t, height: int, width: int, max_depth: float) -> np.ndarray:
    """H x W float32 metres at the image size, NaN where not in (0, max_depth], of the network's
    (1, 1, h, w) output (a torch tensor or a numpy array)."""
    depth = depth_t[0, 0]
    if not isinstance(depth, np.ndarray):
        depth = depth.float().cpu().numpy()
    if depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
    depth = depth.astype(np.float32, copy=False)
    # One comparison chain; NaN fails it and so stays NaN.
    with np.errstate(invalid='ignore'):
        valid = (depth > 0) & (depth <= max_depth)
    depth[~valid] = np.nan
    return depth
