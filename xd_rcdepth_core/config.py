"""Every number the method depends on, in one place, each with the source it comes from.

Code elsewhere imports these rather than repeating literals, so a reader can check a value
against the paper or the reference code in one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DepthRange:
    # Network output scale: depth = max_depth * sigmoid(x) (CaFNet/LiRCDepth `--max_depth 100`).
    max_depth: float = 100.0
    # Evaluation: GT strictly inside (min_depth_eval, max_eval); predictions clipped to the same
    # range (CaFNet test.py: `--min_depth_eval 1e-3`, `--max_depth_eval 80`; paper tables 50/70/80 m).
    min_depth_eval: float = 1e-3
    eval_ranges: tuple = (50.0, 70.0, 80.0)
    # Training mask: GT > 0.01 m (CaFNet losses).
    min_depth_train: float = 0.01


@dataclass(frozen=True)
class ProjectionConfig:
    # Points are kept when camera depth > 1 m and strictly inside a 1-px border
    # (devkit map_pointcloud_to_image, CaFNet radar setup).
    min_depth: float = 1.0
    border: int = 1


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera: intrinsics at a native size, scalable to any requested size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    # sensor -> ego mounting, translation (m) and rotation quaternion (w, x, y, z)
    translation: tuple = (0.0, 0.0, 0.0)
    rotation: tuple = (1.0, 0.0, 0.0, 0.0)

    def intrinsics(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """K scaled to (height, width); the whole image is scaled, not cropped."""
        height = self.height if height is None else height
        width = self.width if width is None else width
        sx, sy = width / self.width, height / self.height
        # Pixel centres: u' + 0.5 = sx * (u + 0.5), so cx' = sx * (cx + 0.5) - 0.5.
        return np.array([[self.fx * sx, 0.0, sx * (self.cx + 0.5) - 0.5],
                         [0.0, self.fy * sy, sy * (self.cy + 0.5) - 0.5],
                         [0.0, 0.0, 1.0]], dtype=np.float64)


# nuScenes CAM_FRONT of the real sample in shared/data (docs/reference.md Part B section 7).
NUSCENES_CAM_FRONT = CameraModel(
    fx=1266.417203046554, fy=1266.417203046554, cx=816.2670197447984, cy=491.50706579294757,
    width=1600, height=900,
    translation=(1.70079118954, 0.0159456324149, 1.51095763913),
    rotation=(0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755))

# nuScenes LIDAR_TOP of the same sample.
NUSCENES_LIDAR_TOP_TRANSLATION = (0.943713, 0.0, 1.84023)
NUSCENES_LIDAR_TOP_ROTATION = (0.7077955119163518, -0.006492242056004365, 0.010646214713995808,
                               -0.7063073142877817)
# Approximate nuScenes RADAR_FRONT mount (docs/reference.md Part B section 7: from memory, unverified).
NUSCENES_RADAR_FRONT_TRANSLATION = (3.412, 0.0, 0.5)
NUSCENES_RADAR_FRONT_ROTATION = (0.9999985, 0.0, 0.0, 0.0017453)

# ZJU-4DRadarCam camera (RadarCam-Depth issue #7), 1280x720.
ZJU_CAMERA = CameraModel(fx=643.67, fy=643.54, cx=631.35, cy=367.31, width=1280, height=720)

# ImageNet normalisation used by every reference loader (cafnet_dataloader ToTensor).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Radar input channels, in order (LiRCDepth issue #2: "depth, RCS, vx, vy"; raw, not normalised).
RADAR_CHANNELS = ('depth', 'rcs', 'vx', 'vy')


@dataclass(frozen=True)
class PaperConfig:
    depth: DepthRange = field(default_factory=DepthRange)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)


PAPER = PaperConfig()
