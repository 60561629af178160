"""The Frame: the one in-memory sample every data source produces and everything downstream consumes.

Sources (nuScenes devkit, ZJU-4DRadarCam files, the synthetic world, a rosbag, live ROS messages)
each build Frames in their own adapter; nothing downstream knows where a Frame came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

import numpy as np

from .geometry import rigidity_error, transform_points

# Columns a radar point cloud must have; further feature columns are named in `radar_fields`.
RADAR_XYZ = ('x', 'y', 'z')
# Default radar feature columns: nuScenes' raw RCS and velocities (what the references feed the model);
# also the columns the ROS layer reads from a radar PointCloud2 (xd_rcdepth_ros/to_frame.py).
DEFAULT_RADAR_FIELDS = ('x', 'y', 'z', 'rcs', 'vx', 'vy')
# Every field of a nuScenes radar .pcd (devkit RadarPointCloud rows 0..17, docs/reference.md Part B section 4).
NUSCENES_RADAR_FIELDS = ('x', 'y', 'z', 'dyn_prop', 'id', 'rcs', 'vx', 'vy', 'vx_comp', 'vy_comp',
                         'is_quality_valid', 'ambig_state', 'x_rms', 'y_rms', 'invalid_state', 'pdh0',
                         'vx_rms', 'vy_rms')
LIDAR_FIELDS = ('x', 'y', 'z', 'intensity')
DEPTH_MAPS = ('depth_sparse', 'depth_accumulated', 'depth_interp', 'depth_dense')


@dataclass
class Frame:
    """One camera image with its radar, calibration and optional ground truth.

    image:             H x W x 3 uint8 RGB.
    K:                 3 x 3 camera intrinsics for this image size.
    radar:             N x F float32 radar points in the radar frame, columns named by radar_fields
                       (must start with x, y, z). N may be 0.
    radar_fields:      names of the radar columns.
    T_camera_radar:    4 x 4 rigid transform radar -> camera at the image time (ego motion between the
                       radar and camera timestamps already folded in). Identity when radar points are
                       already in the camera frame (ZJU-4DRadarCam).
    timestamp:         image time in seconds.
    depth_sparse:      single-sweep lidar depth (H x W float32 metres, 0 = none): the evaluation target.
    depth_accumulated: multi-sweep lidar depth, movers removed, nearest wins.
    depth_interp:      densified accumulated depth: the training target.
    depth_dense:       exact dense depth where the source has it (synthetic world only).
    lidar:             N x 4 float32 (x, y, z, intensity) single-sweep lidar in the lidar frame.
    T_camera_lidar:    4 x 4 lidar -> camera at the image time.
    T_world_camera:    camera pose in a world frame (for multi-sweep accumulation, bag export).
    name:              an identifier of the sample (token, file stem).
    """

    image: np.ndarray
    K: np.ndarray
    radar: np.ndarray = field(default_factory=lambda: np.zeros((0, len(DEFAULT_RADAR_FIELDS)), np.float32))
    radar_fields: tuple = DEFAULT_RADAR_FIELDS
    T_camera_radar: np.ndarray = field(default_factory=lambda: np.eye(4))
    timestamp: float = 0.0
    depth_sparse: Optional[np.ndarray] = None
    depth_accumulated: Optional[np.ndarray] = None
    depth_interp: Optional[np.ndarray] = None
    depth_dense: Optional[np.ndarray] = None
    lidar: Optional[np.ndarray] = None
    T_camera_lidar: Optional[np.ndarray] = None
    T_world_camera: Optional[np.ndarray] = None
    name: str = ''

    def __post_init__(self):
        self.validate()

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def radar_column(self, name: str) -> Optional[np.ndarray]:
        """One named radar column, or None when the source has no such feature."""
        if name not in self.radar_fields:
            return None
        return self.radar[:, self.radar_fields.index(name)]

    def radar_in_camera(self) -> np.ndarray:
        """N x 3 radar positions in the camera frame."""
        return transform_points(self.T_camera_radar, self.radar[:, :3])

    def replace(self, **changes) -> 'Frame':
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    def validate(self) -> None:
        """Raise one ValueError naming the first field that breaks the contract."""
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'Frame.image must be an H x W x 3 RGB array, got shape '
                             f'{getattr(img, "shape", type(img).__name__)}')
        if img.dtype != np.uint8:
            raise ValueError(f'Frame.image must be uint8, got {img.dtype}; convert with '
                             f'np.clip(x, 0, 255).astype(np.uint8)')
        if img.shape[0] < 2 or img.shape[1] < 2:
            raise ValueError(f'Frame.image is too small: {img.shape[:2]}')
        H, W = img.shape[:2]
        self.K = np.asarray(self.K, dtype=np.float64)
        K = self.K
        if K.shape != (3, 3):
            raise ValueError(f'Frame.K must be 3 x 3, got {K.shape}')
        if not np.all(np.isfinite(K)):
            raise ValueError('Frame.K has non-finite entries; check the camera calibration')
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[0, 1] != 0 or np.any(K[2] != [0, 0, 1]) or K[1, 0] != 0:
            raise ValueError(f'Frame.K is not a pinhole intrinsic matrix (fx, fy > 0, last row 0 0 1): {K.tolist()}')
        fields_ = tuple(self.radar_fields)
        self.radar_fields = fields_
        if fields_[:3] != RADAR_XYZ:
            raise ValueError(f'Frame.radar_fields must start with x, y, z, got {fields_}')
        if len(set(fields_)) != len(fields_):
            raise ValueError(f'Frame.radar_fields has duplicate names: {fields_}')
        radar = self.radar
        if not isinstance(radar, np.ndarray) or radar.ndim != 2 or radar.shape[1] != len(fields_):
            raise ValueError(f'Frame.radar must be N x {len(fields_)} (one column per radar_fields entry), '
                             f'got shape {getattr(radar, "shape", type(radar).__name__)}')
        if radar.dtype != np.float32:
            self.radar = radar.astype(np.float32)
        self._check_transform('T_camera_radar', required=True)
        self._check_transform('T_camera_lidar')
        self._check_transform('T_world_camera')
        for name in DEPTH_MAPS:
            d = getattr(self, name)
            if d is None:
                continue
            if not isinstance(d, np.ndarray) or d.shape != (H, W):
                raise ValueError(f'Frame.{name} must be H x W = {H} x {W} like the image, got '
                                 f'{getattr(d, "shape", type(d).__name__)}')
            if d.dtype != np.float32:
                raise ValueError(f'Frame.{name} must be float32 metres, got {d.dtype}')
        if self.lidar is not None:
            lid = self.lidar
            if not isinstance(lid, np.ndarray) or lid.ndim != 2 or lid.shape[1] != len(LIDAR_FIELDS):
                raise ValueError(f'Frame.lidar must be N x 4 (x, y, z, intensity), got '
                                 f'{getattr(lid, "shape", type(lid).__name__)}')
            if self.T_camera_lidar is None:
                raise ValueError('Frame.lidar is set but Frame.T_camera_lidar is missing')
            if lid.dtype != np.float32:
                self.lidar = lid.astype(np.float32)
        try:
            timestamp = float(self.timestamp)
        except (TypeError, ValueError):
            raise ValueError(f'Frame.timestamp must be seconds (a number), got {self.timestamp!r}') from None
        if not np.isfinite(timestamp):
            raise ValueError(f'Frame.timestamp must be finite seconds, got {self.timestamp}')
        self.timestamp = timestamp

    def _check_transform(self, name: str, required: bool = False) -> None:
        T = getattr(self, name)
        if T is None:
            if required:
                raise ValueError(f'Frame.{name} is required (4 x 4 rigid transform)')
            return
        T = np.asarray(T, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f'Frame.{name} must be 4 x 4, got {T.shape}')
        if not np.all(np.isfinite(T)):
            raise ValueError(f'Frame.{name} has non-finite entries; check the extrinsics')
        err = rigidity_error(T)
        if err > 1e-4:
            raise ValueError(f'Frame.{name} is not a rigid transform (rotation not orthonormal with det 1, '
                             f'or last row not 0 0 0 1; error {err:.3g}); check the extrinsics')
        setattr(self, name, T)


def frame_field_names() -> tuple:
    return tuple(f.name for f in fields(Frame))
