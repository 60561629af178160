"""The vehicle's motion in a bag, as base-frame poses over time, from whichever source the bag has.

    PoseStamped    /ego_pose (what `xd-rcdepth to-bag` writes): base_link in the world frame
    Odometry       /odom (nav_msgs/Odometry): the child frame (base_link) in the odometry frame
    TFMessage      /tf: the transforms whose child is the base frame (odom -> base_link, map -> base_link)

Ground truth needs it to move lidar sweeps taken at other times into the camera at the image's time
(a single sweep 25 ms off the image, or +-N sweeps accumulated). Decoded with rosbags' own type store,
so nav_msgs and tf2_msgs need not be installed.
"""
from __future__ import annotations

import bisect
from typing import Optional

import numpy as np

from xd_rcdepth_core.geometry import make_transform, quaternion_to_rotation, rotation_to_quaternion, transform_from_pose

from . import schema

ODOMETRY = 'nav_msgs/msg/Odometry'
POSE_SOURCES = ('auto', 'ego_pose', 'odom', 'tf', 'none')


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


def _stamp(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def _pose(p, q) -> np.ndarray:
    return transform_from_pose([p.x, p.y, p.z], [q.w, q.x, q.y, q.z])


def _read(reader, topic: str, msgtype: str):
    store = schema.typestore()
    conns = [c for c in reader.connections if c.topic == topic]
    for _, _, raw in reader.messages(connections=conns):
        yield store.deserialize_cdr(raw, msgtype)


def _from_pose_stamped(reader, topic: str) -> list:
    return [(_stamp(m.header), _pose(m.pose.position, m.pose.orientation))
            for m in _read(reader, topic, schema.POSE_STAMPED)]


def _from_odometry(reader, topic: str) -> list:
    return [(_stamp(m.header), _pose(m.pose.pose.position, m.pose.pose.orientation))
            for m in _read(reader, topic, ODOMETRY)]


def _from_tf(reader, topic: str, base_frame: str) -> list:
    out = []
    for m in _read(reader, topic, schema.TF_MESSAGE):
        for tf in m.transforms:
            if tf.child_frame_id.lstrip('/') == base_frame:
                out.append((_stamp(tf.header), _pose(tf.transform.translation, tf.transform.rotation)))
    return out


def find_ego_motion(reader, source: str = 'auto', topic: Optional[str] = None,
                    base_frame: str = schema.BASE_FRAME) -> tuple:
    """(PoseTrack or None, description). ``source`` auto tries /ego_pose, then an Odometry topic (/odom
    first), then /tf transforms into ``base_frame``; 'none' gives no motion."""
    if source not in POSE_SOURCES:
        raise ValueError(f'ego-motion source must be one of {", ".join(POSE_SOURCES)}, got {source!r}')
    types = {c.topic: c.msgtype for c in reader.connections}
    candidates = []
    if source in ('auto', 'ego_pose'):
        t = topic or schema.EGO_POSE_TOPIC
        if types.get(t) == schema.POSE_STAMPED:
            candidates.append((f'{t} (PoseStamped)', lambda t=t: _from_pose_stamped(reader, t)))
    if source in ('auto', 'odom'):
        odoms = [topic] if topic else sorted((t for t, m in types.items() if m == ODOMETRY),
                                             key=lambda t: t != '/odom')
        for t in odoms:
            if types.get(t) == ODOMETRY:
                candidates.append((f'{t} (Odometry)', lambda t=t: _from_odometry(reader, t)))
    if source in ('auto', 'tf'):
        t = topic or schema.TF_TOPIC
        if types.get(t) == schema.TF_MESSAGE:
            candidates.append((f'{t} (transforms into {base_frame})', lambda t=t: _from_tf(reader, t, base_frame)))
    for description, read in candidates:
        samples = read()
        if samples:
            stamps, poses = zip(*samples)
            return PoseTrack(list(stamps), list(poses)), description
    return None, 'none'
