"""Single-sweep lidar ground truth of a bag image: the lidar message nearest the image, projected.

As in the paper's protocol (and the nuScenes devkit's map_pointcloud_to_image), the sweep is moved into
the camera through the ego poses at both times when the bag has them (/ego_pose), so a lidar sweep
taken 25 ms before the image at 10 m/s does not land 0.25 m off: lidar -> base(t_lidar) -> map ->
base(t_image) -> camera. Without poses the static T_camera_lidar is used (and reported).
"""
from __future__ import annotations

import bisect
from typing import Optional

import numpy as np

from xd_rcdepth_core.frame import LIDAR_FIELDS
from xd_rcdepth_core.geometry import (
    invert_transform,
    make_transform,
    project_points,
    quaternion_to_rotation,
    rotation_to_quaternion,
    sparse_depth_map,
    transform_points,
)

from .. import convert


class PoseTrack:
    """base_link poses by time; between two poses, translation is interpolated linearly and rotation by
    normalised quaternion lerp (sensor poses are at most ~50 ms apart, where nlerp equals slerp to 1e-6)."""

    def __init__(self, stamps_ns, poses):
        order = np.argsort(np.asarray(stamps_ns, np.int64), kind='stable')
        self.stamps = [int(stamps_ns[i]) for i in order]
        self.poses = [np.asarray(poses[i], np.float64) for i in order]

    def __len__(self) -> int:
        return len(self.stamps)

    def at(self, t_ns: int, max_gap_ns: int = 200_000_000) -> Optional[np.ndarray]:
        """T_world_base at t, or None when t is more than max_gap_ns outside the poses."""
        if not self.stamps:
            return None
        i = bisect.bisect_left(self.stamps, t_ns)
        if i < len(self.stamps) and self.stamps[i] == t_ns:
            return self.poses[i]
        if i == 0 or i == len(self.stamps):
            j = 0 if i == 0 else len(self.stamps) - 1
            return self.poses[j] if abs(self.stamps[j] - t_ns) <= max_gap_ns else None
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        a = (t_ns - t0) / (t1 - t0)
        P0, P1 = self.poses[i - 1], self.poses[i]
        q0, q1 = rotation_to_quaternion(P0[:3, :3]), rotation_to_quaternion(P1[:3, :3])
        if np.dot(q0, q1) < 0:
            q1 = -q1
        q = (1 - a) * q0 + a * q1
        return make_transform(quaternion_to_rotation(q / np.linalg.norm(q)), (1 - a) * P0[:3, 3] + a * P1[:3, 3])


def lidar_to_camera(layout, poses: Optional[PoseTrack], t_image_ns: int, t_lidar_ns: int) -> tuple:
    """(T_camera_lidar, whether it is ego-motion compensated)."""
    if poses is not None and layout.T_base_camera is not None and layout.T_base_lidar is not None:
        P_img, P_lid = poses.at(t_image_ns), poses.at(t_lidar_ns)
        if P_img is not None and P_lid is not None:
            T = invert_transform(layout.T_base_camera) @ invert_transform(P_img) @ P_lid @ layout.T_base_lidar
            return T, True
    return layout.T_camera_lidar, False


def lidar_points(msg) -> np.ndarray:
    """N x 4 (x, y, z, intensity) of a lidar PointCloud2, non-finite points dropped."""
    pts, _ = convert.pointcloud2_to_array(msg, LIDAR_FIELDS)
    return pts[convert.finite_rows(pts, (0, 1, 2))]


def sparse_ground_truth(points: np.ndarray, T_camera_lidar, K, height: int, width: int) -> np.ndarray:
    """H x W float32 single-sweep depth (0 = none): the nearest lidar return per pixel, depth > 1 m."""
    proj = project_points(transform_points(T_camera_lidar, points[:, :3]), K, height, width)
    return sparse_depth_map(proj, height, width)
