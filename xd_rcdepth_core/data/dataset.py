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

import numpy as np
import torch

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..geometry import perturb_extrinsics
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


def _uniform(lo: float, hi: float, n: int = 1) -> np.ndarray:
    return (lo + (hi - lo) * torch.rand(n, dtype=torch.float64)).numpy()


def colour_jitter(image: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Gamma, brightness and per-channel gain on an H x W x 3 float image in [0, 1]."""
    out = image ** np.float32(_uniform(*cfg.gamma)[0])
    out = out * np.float32(_uniform(*cfg.brightness)[0])
    out = out * _uniform(*cfg.color, n=3).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


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
            raise ValueError(f'training crop {h} x {w} is larger than the {H} x {W} frames of this cache; '
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
        return image, radar, maps, K, flipped
