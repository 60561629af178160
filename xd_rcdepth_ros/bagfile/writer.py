"""BagWriter: ROS messages -> a Jazzy rosbag2 (metadata v9, mcap or sqlite3) with rosbags.

Messages are built as rclpy messages by convert.py (the project's one conversion layer) and
serialised with rclpy's own CDR serialiser, so a bag holds exactly the bytes a live publisher would
send. Types without a Python package here (tf2_msgs has no pip wheel) are built as rosbags dataclasses
and serialised by the rosbags typestore; either way the connection carries the Jazzy message
definition and RIHS01 hash from that typestore, which `ros2 bag`, Foxglove and the mcap readers need.

A writer that fails half-way removes the bag it created, so no half-written bag is left looking valid.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from xd_rcdepth_core.geometry import rotation_to_quaternion

from . import schema


def stamp_of_ns(t_ns: int):
    """builtin_interfaces/Time (rclpy) of integer nanoseconds."""
    from builtin_interfaces.msg import Time
    return Time(sec=int(t_ns // 10**9), nanosec=int(t_ns % 10**9))


def header(t_ns: int, frame_id: str):
    from std_msgs.msg import Header
    return Header(stamp=stamp_of_ns(t_ns), frame_id=frame_id)


def tf_message(t_ns: int, transforms):
    """A rosbags tf2_msgs/TFMessage of [(parent, child, T_parent_child 4x4)]."""
    types = schema.typestore().types
    Time, Header = types['builtin_interfaces/msg/Time'], types['std_msgs/msg/Header']
    stamp = Time(sec=int(t_ns // 10**9), nanosec=int(t_ns % 10**9))
    out = []
    for parent, child, T in transforms:
        w, x, y, z = rotation_to_quaternion(np.asarray(T)[:3, :3])
        tx, ty, tz = (float(v) for v in np.asarray(T)[:3, 3])
        out.append(types['geometry_msgs/msg/TransformStamped'](
            header=Header(stamp=stamp, frame_id=parent), child_frame_id=child,
            transform=types['geometry_msgs/msg/Transform'](
                translation=types['geometry_msgs/msg/Vector3'](x=tx, y=ty, z=tz),
                rotation=types['geometry_msgs/msg/Quaternion'](x=float(x), y=float(y), z=float(z), w=float(w)))))
    return types[schema.TF_MESSAGE](transforms=out)


def pose_stamped(t_ns: int, frame_id: str, T):
    """geometry_msgs/PoseStamped (rclpy) of a 4x4 pose."""
    from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
    w, x, y, z = rotation_to_quaternion(np.asarray(T)[:3, :3])
    px, py, pz = (float(v) for v in np.asarray(T)[:3, 3])
    return PoseStamped(header=header(t_ns, frame_id),
                       pose=Pose(position=Point(x=px, y=py, z=pz),
                                 orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))))


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes of raw bytes (kept), an rclpy message, or a rosbags dataclass."""
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return bytes(msg)
    if hasattr(msg, '__msgtype__'):        # rosbags dataclass
        return bytes(schema.typestore().serialize_cdr(msg, msgtype))
    from rclpy.serialization import serialize_message
    return serialize_message(msg)


class BagWriter:
    """Append messages to a new rosbag2; `counts` holds messages per topic."""

    def __init__(self, path, storage: str = 'mcap'):
        from rosbags.rosbag2 import Writer
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f'{self.path} exists already: choose a new bag path (or --overwrite)')
        plugin = schema.storage_plugin(storage)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._connections = {}
        self.counts = Counter()
        self.types = {}

    def add_topic(self, topic: str, msgtype: str, qos=None):
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=schema.typestore(),
                                               offered_qos_profiles=schema.offered_qos(topic) if qos is None else qos)
            self._connections[topic] = conn
            self.types[topic] = msgtype
        elif self.types[topic] != msgtype:
            raise ValueError(f'topic {topic} already holds {self.types[topic]}, cannot add {msgtype}')
        return conn

    def write(self, topic: str, msgtype: str, t_ns: int, msg, qos=None) -> None:
        conn = self.add_topic(topic, msgtype, qos)
        self._writer.write(conn, int(t_ns), serialize(msg, msgtype))
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        """Close and delete the bag (after an error: no half-written bag is left behind)."""
        try:
            self.close()
        except Exception:  # the bag is being discarded anyway
            pass
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
