"""How a network wants its inputs: stored in every checkpoint (key ``inputs``), honoured by DepthEstimator.

A monocular-plus-radar network learns depth for the camera it was trained with: an object of a given
size and distance covers more pixels under a longer focal length, so a camera with another focal
length (or the same camera at another resolution) gets depth at the wrong scale. The checkpoint
therefore records its training camera (``focal``: fx in pixels, and the image size), and
DepthEstimator resizes every input so that its focal length becomes that one (``scale_for``), runs the
network, and resizes the depth back to the input's pixels. The image normalisation and the radar
channels are recorded too, so a checkpoint imported from the authors' code (models/official.py) is
fed exactly as theirs was.

``focal`` None (checkpoints from before this was recorded, or a model built in memory) keeps the old
behaviour: the network runs at the input's own scale.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

from .config import IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNELS

# Focal lengths within this ratio of the training camera's are used as they are: resampling an image
# by 1-2 % costs more detail than the scale error it removes (nuScenes' six logs differ by ~1 %).
FOCAL_TOLERANCE = 0.02


@dataclass(frozen=True)
class InputConventions:
    image_mean: tuple = IMAGENET_MEAN          # the image is (rgb / 255 - mean) / std
    image_std: tuple = IMAGENET_STD
    radar_channels: tuple = RADAR_CHANNELS     # depth, then these point features, in this order
    focal: Optional[float] = None              # fx of the training camera in pixels (None: unknown)
    image_size: Optional[tuple] = None         # (height, width) of the training images
    source: Optional[dict] = None              # where the weights came from (imports: format, file sha256)

    def __post_init__(self):
        if self.focal is not None and not (math.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f'InputConventions.focal must be a positive number of pixels, got {self.focal}')
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError('InputConventions: image_mean and image_std need 3 values, std positive')
        if not self.radar_channels or self.radar_channels[0] != 'depth':
            raise ValueError(f'InputConventions.radar_channels must start with depth, got {self.radar_channels}')

    @property
    def feature_columns(self) -> tuple:
        """The radar point columns after depth (RadarEncodingConfig.feature_columns)."""
        return tuple(self.radar_channels[1:])

    def scale_for(self, fx: float) -> float:
        """Resize factor that gives an image of focal length ``fx`` the training camera's focal length."""
        if self.focal is None or not fx > 0:
            return 1.0
        scale = self.focal / float(fx)
        return 1.0 if abs(scale - 1.0) <= FOCAL_TOLERANCE else scale

    def to_dict(self) -> dict:
        """Plain values (lists, not tuples): what a checkpoint stores and weights_only loading accepts."""
        out = asdict(self)
        for key in ('image_mean', 'image_std', 'radar_channels', 'image_size'):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, values: dict | None) -> 'InputConventions':
        """From a checkpoint's ``inputs`` (None or missing keys: the defaults); unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown input convention(s) {unknown} in the checkpoint; known: {sorted(known)}')
        for key in ('image_mean', 'image_std', 'radar_channels', 'image_size'):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def training_conventions(K, height: int, width: int, radar_channels=RADAR_CHANNELS) -> InputConventions:
    """The conventions of a network trained on images of this camera (intrinsics K) and size."""
    return InputConventions(radar_channels=tuple(radar_channels), focal=float(K[0][0]),
                            image_size=(int(height), int(width)))
