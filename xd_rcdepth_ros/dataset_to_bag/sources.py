"""What a dataset scene gives the bag writer: its calibration and time-ordered sensor samples.

Each sensor keeps its own clock (camera 12 Hz, radar 13 Hz, lidar 20 Hz in nuScenes and in the
synthetic world), so a sample carries the time it was taken, never its camera keyframe's. Samples are
loaded lazily (`Pending.load`) so a 20 s scene never sits in memory whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np

# Order of samples that share a timestamp: the pose first (TF before data), camera_info before its image.
RANK = {'pose': 0, 'camera': 1, 'radar': 2, 'lidar': 3}


@dataclass
class CameraSample:
    t_ns: int
    channel: str
    K: np.ndarray
    size: tuple                                  # (height, width)
    rgb: Optional[np.ndarray] = None             # H x W x 3 uint8 (decoded)
    jpeg: Optional[bytes] = None                 # the source's own JPEG bytes, when it has them


@dataclass
class CloudSample:
    t_ns: int
    channel: str
    kind: str                                    # 'radar' or 'lidar'
    points: np.ndarray                           # N x len(fields) float32, in the sensor frame
    fields: tuple


@dataclass
class PoseSample:
    t_ns: int
    T_world_base: np.ndarray                     # 4 x 4 base_link -> map


@dataclass
class SceneCalibration:
    dataset: str
    scene: str
    camera: str
    radars: tuple                                # radar channels, the first is the one the node uses
    lidar: Optional[str]
    T_base_sensor: dict                          # channel -> 4 x 4 sensor -> base_link (static mounts)
    K: np.ndarray
    image_size: tuple
    radar_fields: tuple
    time_offset_ns: int = 0
    notes: list = field(default_factory=list)    # things the user should know (skipped files ...)


@dataclass(order=True)
class Pending:
    """A sample not loaded yet: sorts by (time, rank, sequence)."""

    t_ns: int
    rank: int
    seq: int
    load: Callable[[], object] = field(compare=False)


class SceneSource:
    """Base of a dataset scene: `calibration`, `pending()` (unsorted), `samples()` in time order."""

    calibration: SceneCalibration

    def pending(self) -> list:
        raise NotImplementedError

    def samples(self) -> Iterator[object]:
        for item in sorted(self.pending()):
            yield item.load()
