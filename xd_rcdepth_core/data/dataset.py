"""Torch Dataset over a prepared cache: training augmentation as in the references, plain evaluation.

Training (``train=True``; cafnet_dataloader ``train_preprocess``, docs/reference.md Part A 1.7):
- random crop (352 x 704 by default, any smaller size allowed) from the full-resolution frame, no
  resizing; K follows the crop (cx, cy shift);
- horizontal flip with p = 0.5 of image, radar image and every depth map; K becomes the mirrored
  camera's (cx -> W - 1 - cx). The radar's lateral velocity (radar-frame y points left, so a mirror
  flips its sign) is NOT negated by default, exactly like the references (a model trained on their
  data saw un-negated values); ``flip_negates_lateral_velocity=True`` negates the 'vy'/'vy_comp'
  channels for physical consistency. The longitudinal vx is unchanged by a left-right mirror either way;
- with p = 0.5 a photometric jitter: gamma U[0.9, 1.1], brightness U[0.9, 1.1], per-channel colour
  U[0.9, 1.1], clipped to [0, 1].
Ours (issue 14, for what is learned to transfer to real cameras; every one off by default, and off
draws no random number, so the defaults give the references' items exactly):
- a stronger photometric jitter inside the one above: contrast about the image's mean grey and
  saturation (``contrast``, ``saturation`` ranges); then, each with its own probability, a Gaussian
  blur (``blur_p``, ``blur_sigma`` px) and Gaussian sensor noise (``noise_p``, ``noise_std`` in [0, 1]
  image units);
- ``canonical_focal``: before anything else, the whole frame is resized so its focal length fx becomes
  this many pixels (``resize_to_focal``): image (area / bilinear), K (pixel-centre convention), the
  radar (projected through the new K) and the depth maps (sparse ones re-projected point by point,
  nearest wins, so no value is invented or blended; the dense ``depth_interp`` / ``depth_dense`` by
  exact nearest neighbour). Frames of cameras with other focal lengths (``synth --randomise``) then
  all show the one camera the checkpoint records (conventions.py). It applies to evaluation items
  (``train=False``) too.
Evaluation (``train=False``): no augmentation, full resolution, cut as the dataset's protocol does
(``CacheIndex.eval_multiple``, recorded by the adapter): nuScenes drops the top rows so the height is
a multiple of 32 (900 -> 896, the references' ``image[4:]``; a width that is not a multiple would lose
its rightmost columns, K unchanged by that); ZJU-4DRadarCam keeps every row (RadarCam-Depth
evaluates all 300 rows of its crop; the models pad to their stride inside, so no cut is needed).

Each item is a dict of tensors: image 3 x H x W (ImageNet-normalised), radar C x H x W
(``radar.encode_frame_radar``: depth, rcs, vx, vy by default; 0 = no radar), depth_interp,
depth_sparse, depth_accumulated 1 x H x W (metres, 0 = none; all-zero when the dataset lacks a map),
K 3 x 3, name (str) and flipped (bool: the item was mirrored). Random numbers come from torch's
global generator, which the DataLoader seeds differently in every worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..frame import DEPTH_MAPS, Frame
from ..geometry import nearest_per_pixel, perturb_extrinsics, scale_intrinsics
from ..radar import RadarEncodingConfig, encode_frame_radar
from .cache import CacheIndex, read_sample

DEPTH_KEYS = ('depth_interp', 'depth_sparse', 'depth_accumulated')
LATERAL_VELOCITY_COLUMNS = ('vy', 'vy_comp')


@dataclass(frozen=True)
class AugmentConfig:
    crop: tuple = (352, 704)                    # (height, width); --input_height 352 --input_width 704
    flip_p: float = 0.5
    flip_negates_lateral_velocity: bool = False  # references: False
    color_p: float = 0.5
    gamma: tuple = (0.9, 1.1)
    brightness: tuple = (0.9, 1.1)
    color: tuple = (0.9, 1.1)
    # Ours (issue 14): radar->camera extrinsics perturbed per item by up to (degrees of yaw and pitch,
    # metres per axis), uniformly, so the model learns not to trust the projection to the pixel.
    extrinsic_jitter: tuple = (0.0, 0.0)
    # Ours (issue 14): stronger photometric jitter (contrast and saturation within color_p), blur and
    # sensor noise; (1, 1) ranges and p = 0 are off.
    contrast: tuple = (1.0, 1.0)
    saturation: tuple = (1.0, 1.0)
    blur_p: float = 0.0
    blur_sigma: tuple = (0.0, 0.0)               # Gaussian sigma in pixels of the training frame
    noise_p: float = 0.0
    noise_std: tuple = (0.0, 0.0)                # in [0, 1] image units (0.02 = 5 grey levels)
    # Ours (issue 14): every frame resized to this focal length (px) first; None = native size.
    canonical_focal: Optional[float] = None


def _uniform(lo: float, hi: float, n: int = 1) -> np.ndarray:
    return (lo + (hi - lo) * torch.rand(n, dtype=torch.float64)).numpy()


def _off(values: tuple) -> bool:
    return tuple(values) == (1.0, 1.0)


def colour_jitter(image: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Gamma, brightness and per-channel gain on an H x W x 3 float image in [0, 1]; then contrast about
    the mean grey and saturation when their ranges are not (1, 1)."""
    out = image ** np.float32(_uniform(*cfg.gamma)[0])
    out = out * np.float32(_uniform(*cfg.brightness)[0])
    out = out * _uniform(*cfg.color, n=3).astype(np.float32)
    if not _off(cfg.contrast):
        out = np.clip(out, 0.0, 1.0)
        mean = np.float32(out.mean())
        out = mean + (out - mean) * np.float32(_uniform(*cfg.contrast)[0])
    if not _off(cfg.saturation):
        out = np.clip(out, 0.0, 1.0)
        grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = grey[..., None] + (out - grey[..., None]) * np.float32(_uniform(*cfg.saturation)[0])
    return np.clip(out, 0.0, 1.0)


def _splat(depth: np.ndarray, height: int, width: int, sx: float, sy: float) -> np.ndarray:
    """A sparse depth map resized by moving each valid pixel to its new pixel (nearest wins)."""
    v, u = np.nonzero(depth > 0)
    out = np.zeros((height, width), np.float32)
    if v.size == 0:
        return out
    un = np.clip(np.rint(sx * (u + 0.5) - 0.5), 0, width - 1).astype(np.int64)
    vn = np.clip(np.rint(sy * (v + 0.5) - 0.5), 0, height - 1).astype(np.int64)
    values = depth[v, u]
    keep = nearest_per_pixel(vn, un, values, width)
    out[vn[keep], un[keep]] = values[keep]
    return out


SPARSE_MAPS = ('depth_sparse', 'depth_accumulated')     # re-projected; the other DEPTH_MAPS are dense


def resize_to_focal(frame: Frame, focal: float) -> Frame:
    """The frame resized so that K[0, 0] becomes ``focal`` (to the nearest whole image size): the image
    (area averaging down, bilinear up), K (pixel-centre convention) and every depth map (sparse maps
    point by point, dense maps by exact nearest neighbour; 0 stays 'no value'). The radar points and
    extrinsics are unchanged: they project through the new K."""
    scale = float(focal) / float(frame.K[0, 0])
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f'canonical focal {focal} and the frame\'s fx {frame.K[0, 0]} give no valid scale')
    H, W = frame.height, frame.width
    h, w = max(int(round(H * scale)), 1), max(int(round(W * scale)), 1)
    if (h, w) == (H, W):
        return frame
    sx, sy = w / W, h / H
    image = cv2.resize(frame.image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    maps = {}
    for name in DEPTH_MAPS:
        d = getattr(frame, name)
        if d is None:
            continue
        maps[name] = _splat(d, h, w, sx, sy) if name in SPARSE_MAPS else \
            cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return frame.replace(image=image, K=scale_intrinsics(frame.K, sx, sy), **maps)


def eval_window(height: int, width: int, multiple: int = 32) -> tuple:
    """(top, height, width) of the evaluation crop: top rows and right columns dropped to a multiple
    (``multiple`` 0: the whole frame)."""
    if multiple <= 0:
        return 0, height, width
    h, w = height - height % multiple, width - width % multiple
    if h == 0 or w == 0:
        raise ValueError(f'image {height} x {width} is smaller than one {multiple}-pixel block')
    return height - h, h, w


class RadarDepthDataset(torch.utils.data.Dataset):
    """Samples of one split of a prepared cache (see module docstring)."""

    def __init__(self, cache, split: str, train: bool = True, augment: AugmentConfig = AugmentConfig(),
                 radar: RadarEncodingConfig = RadarEncodingConfig(), multiple: Optional[int] = None):
        """``multiple``: evaluation crop (see eval_window); None = the dataset's rule from the cache."""
        self.index = CacheIndex(cache)
        self.split, self.names = split, self.index.names(split)
        self.multiple = self.index.eval_multiple(split) if multiple is None else multiple
        self.train, self.augment, self.radar = train, augment, radar

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        frame = read_sample(self.index.path(self.split, i))
        if self.augment.canonical_focal is not None:
            frame = resize_to_focal(frame, self.augment.canonical_focal)
        if self.train and any(self.augment.extrinsic_jitter):
            frame = frame.replace(T_camera_radar=self._jittered(frame.T_camera_radar))
        radar, _ = encode_frame_radar(frame, self.radar)
        H, W = frame.height, frame.width
        maps = {k: getattr(frame, k) if getattr(frame, k) is not None else np.zeros((H, W), np.float32)
                for k in DEPTH_KEYS}
        K = frame.K.copy()
        if self.train:
            top, left, h, w = self._random_window(H, W)
        else:
            (top, h, w), left = eval_window(H, W, self.multiple), 0
        rows, cols = slice(top, top + h), slice(left, left + w)
        image = frame.image[rows, cols].astype(np.float32) / 255.0
        radar = radar[rows, cols]
        maps = {k: v[rows, cols] for k, v in maps.items()}
        K[0, 2] -= left
        K[1, 2] -= top
        flipped = False
        if self.train:
            image, radar, maps, K, flipped = self._photometric_and_flip(image, radar, maps, K)
        image = (image - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
        item = {'image': torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                'radar': torch.from_numpy(np.ascontiguousarray(radar.transpose(2, 0, 1))),
                'K': torch.from_numpy(K.astype(np.float32)), 'name': frame.name,
                'flipped': torch.tensor(flipped)}
        item.update({k: torch.from_numpy(np.ascontiguousarray(v))[None] for k, v in maps.items()})
        return item

    def _jittered(self, T):
        deg, metres = self.augment.extrinsic_jitter
        yaw, pitch = _uniform(-deg, deg, 2)
        return perturb_extrinsics(T, yaw, pitch, _uniform(-metres, metres, 3))

    def _random_window(self, H: int, W: int) -> tuple:
        h, w = self.augment.crop
        if h > H or w > W:
            at = f' (at canonical focal {self.augment.canonical_focal:g} px)' \
                if self.augment.canonical_focal is not None else ''
            raise ValueError(f'training crop {h} x {w} is larger than the {H} x {W} frames of this cache{at}; '
                             f'pass a smaller AugmentConfig.crop')
        top = int(torch.randint(0, H - h + 1, ()).item())
        left = int(torch.randint(0, W - w + 1, ()).item())
        return top, left, h, w

    def _photometric_and_flip(self, image, radar, maps, K):
        cfg = self.augment
        flipped = torch.rand(()).item() < cfg.flip_p
        if flipped:
            image, radar = image[:, ::-1], radar[:, ::-1].copy()
            maps = {k: v[:, ::-1] for k, v in maps.items()}
            K = K.copy()
            K[0, 2] = image.shape[1] - 1 - K[0, 2]
            if cfg.flip_negates_lateral_velocity:
                for j, name in enumerate(self.radar.feature_columns):
                    if name in LATERAL_VELOCITY_COLUMNS:
                        radar[..., 1 + j] *= -1
        if torch.rand(()).item() < cfg.color_p:
            image = colour_jitter(image, cfg)
        if cfg.blur_p > 0 and torch.rand(()).item() < cfg.blur_p:
            sigma = float(_uniform(*cfg.blur_sigma)[0])
            if sigma > 0:
                image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), sigma)
        if cfg.noise_p > 0 and torch.rand(()).item() < cfg.noise_p:
            std = np.float32(_uniform(*cfg.noise_std)[0])
            noise = torch.randn(image.shape, dtype=torch.float32).numpy()
            image = np.clip(image + std * noise, 0.0, 1.0)
        return image, radar, maps, K, flipped
