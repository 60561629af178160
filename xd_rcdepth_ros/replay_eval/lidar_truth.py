"""Single-sweep lidar ground truth of a bag image: the lidar message nearest the image, projected.

As in the paper's protocol (and the nuScenes devkit's map_pointcloud_to_image), the sweep is moved into
the camera through the ego poses at both times when the bag has them (/ego_pose), so a lidar sweep
taken 25 ms before the image at 10 m/s does not land 0.25 m off: lidar -> base(t_lidar) -> map ->
base(t_image) -> camera. Without poses the static T_camera_lidar is used (and reported).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from xd_rcdepth_core.frame import LIDAR_FIELDS
from xd_rcdepth_core.geometry import invert_transform, project_points, sparse_depth_map, transform_points

from .. import convert
from ..bagfile.ego_motion import PoseTrack


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
