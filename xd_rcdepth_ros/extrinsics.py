"""Radar -> camera extrinsics: from TF when tf2_ros is importable and asked for, else a static transform.

A vehicle with apt ROS 2 has tf2_ros and usually a URDF publishing the sensor frames; pip installs (and
this project's CI machine) do not, so the static `T_camera_radar` parameter is the fallback and the
default. Whichever source is used is logged once at configure.
"""
from __future__ import annotations

import numpy as np

from xd_rcdepth_core.geometry import transform_from_pose

try:  # tf2_ros is not on PyPI: only a full ROS install has it.
    import tf2_ros  # noqa: F401
    HAVE_TF2 = True
except ImportError:
    HAVE_TF2 = False


class StaticExtrinsics:
    source = 'static parameter T_camera_radar'

    def __init__(self, T_camera_radar: np.ndarray):
        self._T = np.asarray(T_camera_radar, dtype=np.float64)

    def lookup(self, camera_frame: str, radar_frame: str, stamp) -> np.ndarray:
        return self._T

    def close(self) -> None:
        pass


class TfExtrinsics:
    """radar->camera from TF at the image stamp, with a timeout."""

    source = 'TF (tf2_ros)'

    def __init__(self, node, timeout_s: float):
        from rclpy.duration import Duration
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        self._timeout = Duration(seconds=timeout_s)

    def lookup(self, camera_frame: str, radar_frame: str, stamp) -> np.ndarray:
        from rclpy.time import Time
        tf = self._buffer.lookup_transform(camera_frame, radar_frame, Time.from_msg(stamp), self._timeout)
        t, q = tf.transform.translation, tf.transform.rotation
        return transform_from_pose([t.x, t.y, t.z], [q.w, q.x, q.y, q.z])

    def close(self) -> None:
        """Drop the listener's /tf and /tf_static subscriptions on the node (lifecycle cleanup)."""
        if hasattr(self._listener, 'unregister'):
            self._listener.unregister()


def make_extrinsics(node, use_tf: bool, T_camera_radar: np.ndarray, timeout_s: float):
    """TfExtrinsics when asked for and available; otherwise the static transform (with a warning if TF was asked)."""
    if use_tf and HAVE_TF2:
        return TfExtrinsics(node, timeout_s)
    if use_tf:
        node.get_logger().warning('use_tf is true but tf2_ros is not importable (pip ROS 2?): '
                                  'using the static T_camera_radar parameter instead')
    return StaticExtrinsics(T_camera_radar)
