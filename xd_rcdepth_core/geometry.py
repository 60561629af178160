"""Rigid transforms, quaternions and pinhole projection.

Conventions: quaternions are (w, x, y, z) as in nuScenes and ROS geometry_msgs order aside;
a transform ``T_a_b`` is a 4x4 matrix mapping points in frame ``b`` to frame ``a``.
Camera frames are optical: x right, y down, z forward (depth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PAPER


def quaternion_to_rotation(q_wxyz) -> np.ndarray:
    """3x3 rotation of a (w, x, y, z) quaternion; the quaternion is normalised first."""
    q = np.asarray(q_wxyz, dtype=np.float64).reshape(4)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f'quaternion {q.tolist()} is zero or not finite; give (w, x, y, z) of unit length')
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_to_quaternion(R) -> np.ndarray:
    """(w, x, y, z) quaternion with w >= 0 of a 3x3 rotation (Shepperd's method, stable near 180 deg)."""
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    diag = np.diag(R)
    if trace > diag.max():
        w = 0.5 * np.sqrt(1.0 + trace)
        q = [w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)]
    else:
        i = int(np.argmax(diag))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = np.empty(4)
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q, dtype=np.float64)
    return q if q[0] >= 0 else -q


def make_transform(R=None, t=None) -> np.ndarray:
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if t is not None:
        T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def transform_from_pose(translation, rotation_wxyz) -> np.ndarray:
    """4x4 transform of a nuScenes-style pose record (translation, rotation quaternion w,x,y,z)."""
    return make_transform(quaternion_to_rotation(rotation_wxyz), translation)


def invert_transform(T) -> np.ndarray:
    """Inverse of a rigid transform without a general matrix inverse."""
    T = np.asarray(T, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def rigidity_error(T) -> float:
    """How far a 4x4 matrix is from a rigid transform (0 for an exact one)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return float('inf')
    R = T[:3, :3]
    return float(max(np.abs(R.T @ R - np.eye(3)).max(), abs(np.linalg.det(R) - 1.0),
                     np.abs(T[3] - [0, 0, 0, 1]).max()))


def is_rigid(T, tol: float = 1e-4) -> bool:
    return rigidity_error(T) <= tol


def transform_points(T, points) -> np.ndarray:
    """Apply a 4x4 transform to N x 3 points (extra columns are not allowed: pass xyz only)."""
    T = np.asarray(T, dtype=np.float64)
    P = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return P @ T[:3, :3].T + T[:3, 3]


@dataclass
class Projection:
    """Points projected into an image: integer pixels, depths and the indices of the kept points."""

    u: np.ndarray          # (M,) int64 column
    v: np.ndarray          # (M,) int64 row
    depth: np.ndarray      # (M,) float64 camera-frame z in metres
    index: np.ndarray      # (M,) int64 index into the input points

    def __len__(self) -> int:
        return int(self.index.size)


def project_points(points_cam, K, height: int, width: int,
                   min_depth: float = PAPER.projection.min_depth,
                   border: int = PAPER.projection.border) -> Projection:
    """Pinhole projection of camera-frame points.

    Keeps points with depth > ``min_depth`` whose continuous pixel position lies strictly inside a
    ``border``-pixel margin (``border < u < W - border``), then rounds to the nearest pixel, exactly as
    the nuScenes devkit's ``map_pointcloud_to_image`` and the reference preprocessing do. Points that
    are not finite are dropped.
    """
    P = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    K = np.asarray(K, dtype=np.float64)
    z = P[:, 2]
    finite = np.all(np.isfinite(P), axis=1)
    front = finite & (z > min_depth)
    idx = np.nonzero(front)[0]
    Pf = P[idx]
    uvw = Pf @ K.T
    u = uvw[:, 0] / uvw[:, 2]
    v = uvw[:, 1] / uvw[:, 2]
    inside = (u > border) & (u < width - border) & (v > border) & (v < height - border)
    idx, u, v, z = idx[inside], u[inside], v[inside], Pf[inside, 2]
    ui = np.clip(np.rint(u).astype(np.int64), 0, width - 1)
    vi = np.clip(np.rint(v).astype(np.int64), 0, height - 1)
    return Projection(u=ui, v=vi, depth=z, index=idx)


def backproject_pixels(u, v, depth, K) -> np.ndarray:
    """Camera-frame N x 3 points of pixels (u, v) at depth z (inverse of the pinhole model)."""
    K = np.asarray(K, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=-1)


def nearest_per_pixel(v, u, depth, width: int) -> np.ndarray:
    """Indices of the points to write: one per occupied pixel, the nearest (the first on ties).

    Picked explicitly, so writing them needs no rule for repeated indices (numpy does not promise
    which of several values assigned to one element stays).
    """
    flat = np.asarray(v, dtype=np.int64) * int(width) + np.asarray(u, dtype=np.int64)
    order = np.lexsort((np.asarray(depth), flat))       # by pixel, then nearest first (stable)
    first = np.ones(order.size, dtype=bool)
    first[1:] = flat[order][1:] != flat[order][:-1]
    return order[first]


def sparse_depth_map(projection: Projection, height: int, width: int) -> np.ndarray:
    """H x W float32 depth image of projected points, 0 = no value, nearest point wins per pixel."""
    out = np.zeros((height, width), dtype=np.float32)
    keep = nearest_per_pixel(projection.v, projection.u, projection.depth, width)
    out[projection.v[keep], projection.u[keep]] = projection.depth[keep]
    return out


def scale_intrinsics(K, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing an image by (sx, sy), pixel-centre convention."""
    K = np.asarray(K, dtype=np.float64).copy()
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K


def perturb_extrinsics(T_camera_sensor, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                       translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A sensor->camera transform mis-calibrated by a yaw (about the camera's vertical y axis), a pitch
    (about its x axis) and a translation (camera frame, metres), as a real radar mount is off by a degree
    or a few centimetres: T' = [R_pitch R_yaw | t] @ T."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    R_yaw = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]])
    R_pitch = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(pitch), -np.sin(pitch)], [0.0, np.sin(pitch), np.cos(pitch)]])
    return make_transform(R_pitch @ R_yaw, np.asarray(translation, float)) @ np.asarray(T_camera_sensor, float)
