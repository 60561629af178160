"""`<bag>/extrinsics.yaml`: the calibration a bag was written with, for tools without tf2.

tf2_msgs has no pip wheel, so a pip-installed node or evaluator cannot read /tf_static over DDS; the
sidecar gives them the same static transforms as plain YAML (rosbag2 ignores extra files in a bag
folder). Contents (format xd_rcdepth.bag_extrinsics, version 1):

    frames:          camera, radar, lidar, base, world frame ids
    topics:          image, camera_info, radar, lidar, ego_pose topic names
    K, image_size:   intrinsics of the (first) camera_info and [height, width]
    T_camera_radar:  4x4 radar -> camera optical, the static mount (no ego motion)
    T_camera_lidar:  4x4 lidar -> camera optical, the static mount
    T_base_sensor:   {frame id: 4x4 sensor -> base_link} for every sensor in the bag
    radar_fields:    PointCloud2 field names of the radar
    dataset, scene, time_offset_s (seconds added to the dataset's own times; synthetic bags only)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from xd_rcdepth_core.geometry import rigidity_error

SIDECAR_NAME = 'extrinsics.yaml'
FORMAT = 'xd_rcdepth.bag_extrinsics'
VERSION = 1


@dataclass
class BagCalibration:
    T_camera_radar: np.ndarray
    T_camera_lidar: Optional[np.ndarray] = None
    K: Optional[np.ndarray] = None
    image_size: Optional[tuple] = None
    frames: dict = field(default_factory=dict)
    topics: dict = field(default_factory=dict)
    T_base_sensor: dict = field(default_factory=dict)
    radar_fields: tuple = ()
    dataset: str = ''
    scene: str = ''
    time_offset_s: float = 0.0
    source: str = ''                 # where it came from: the sidecar path, /tf_static, options


def _matrix(value, name: str, path) -> np.ndarray:
    try:
        T = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{path}: {name} is not a 4 x 4 matrix of numbers') from None
    if T.shape != (4, 4) or rigidity_error(T) > 1e-4:
        raise ValueError(f'{path}: {name} is not a rigid 4 x 4 transform (shape {T.shape})')
    return T


def write_sidecar(bag_dir, cal: BagCalibration) -> Path:
    import yaml
    body = {
        'format': FORMAT, 'version': VERSION, 'dataset': cal.dataset, 'scene': cal.scene,
        'time_offset_s': float(cal.time_offset_s), 'frames': dict(cal.frames), 'topics': dict(cal.topics),
        'K': None if cal.K is None else np.asarray(cal.K, float).tolist(),
        'image_size': None if cal.image_size is None else [int(v) for v in cal.image_size],
        'T_camera_radar': np.asarray(cal.T_camera_radar, float).tolist(),
        'T_camera_lidar': None if cal.T_camera_lidar is None else np.asarray(cal.T_camera_lidar, float).tolist(),
        'T_base_sensor': {k: np.asarray(v, float).tolist() for k, v in cal.T_base_sensor.items()},
        'radar_fields': list(cal.radar_fields),
    }
    path = Path(bag_dir) / SIDECAR_NAME
    path.write_text('# Static calibration of this bag (xd_rcdepth to-bag); see xd_rcdepth_ros/bagfile/sidecar.py\n'
                    + yaml.safe_dump(body, sort_keys=False, default_flow_style=None))
    return path


def read_sidecar(bag_dir) -> Optional[BagCalibration]:
    """The bag's sidecar, None when it has none; ValueError naming the file when it is malformed."""
    import yaml
    path = Path(bag_dir) / SIDECAR_NAME
    if not path.is_file():
        return None
    try:
        body = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f'{path} is not valid YAML: {exc}') from None
    if not isinstance(body, dict) or body.get('format') != FORMAT:
        raise ValueError(f'{path} is not an xd_rcdepth extrinsics file (format {FORMAT!r} expected)')
    if int(body.get('version', 0)) > VERSION:
        raise ValueError(f'{path} is version {body.get("version")}; this reader knows up to {VERSION}')
    if body.get('T_camera_radar') is None:
        raise ValueError(f'{path} has no T_camera_radar')
    lidar = body.get('T_camera_lidar')
    K = body.get('K')
    size = body.get('image_size')
    return BagCalibration(
        T_camera_radar=_matrix(body['T_camera_radar'], 'T_camera_radar', path),
        T_camera_lidar=None if lidar is None else _matrix(lidar, 'T_camera_lidar', path),
        K=None if K is None else np.asarray(K, np.float64).reshape(3, 3),
        image_size=None if size is None else tuple(int(v) for v in size),
        frames=dict(body.get('frames') or {}), topics=dict(body.get('topics') or {}),
        T_base_sensor={k: _matrix(v, f'T_base_sensor.{k}', path)
                       for k, v in (body.get('T_base_sensor') or {}).items()},
        radar_fields=tuple(body.get('radar_fields') or ()), dataset=str(body.get('dataset', '')),
        scene=str(body.get('scene', '')), time_offset_s=float(body.get('time_offset_s', 0.0)),
        source=str(path))
