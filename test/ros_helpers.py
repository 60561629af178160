"""Test helpers: Frames -> ROS messages, spinning until a condition, small checkpoints."""
from __future__ import annotations

import time

import numpy as np

from xd_rcdepth_ros import convert

RADAR_FIELDS = ('x', 'y', 'z', 'rcs', 'vx', 'vy')


def stamp_msg(seconds: float):
    from builtin_interfaces.msg import Time
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def frame_messages(frame, stamp: float, camera_frame='CAM_FRONT', radar_frame='RADAR_FRONT'):
    """(Image rgb8, CameraInfo, PointCloud2 with x y z rcs vx vy) of a Frame, all stamped `stamp`."""
    from std_msgs.msg import Header
    cam = Header(stamp=stamp_msg(stamp), frame_id=camera_frame)
    image = convert.rgb_to_image_msg(frame.image, cam, encoding='rgb8')
    info = convert.camera_info_msg(frame.K, frame.height, frame.width, cam)
    cols = [frame.radar_fields.index(n) for n in RADAR_FIELDS]
    radar = convert.array_to_pointcloud2(frame.radar[:, cols], RADAR_FIELDS,
                                         Header(stamp=stamp_msg(stamp), frame_id=radar_frame))
    return image, info, radar


def spin_until(executor, condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def nan_equal(a, b, atol=1e-5) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    ok = ~np.isnan(a)
    return bool(np.all(np.abs(a[ok] - b[ok]) <= atol))
