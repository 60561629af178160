"""Recorder: raw subscriptions -> a rosbag2 (what `ros2 bag record` does, without ros2cli).

Subscriptions are created with raw=True, so messages arrive as their CDR bytes and are written as is.
The log time is the recording node's ROS time: bag time when the node has use_sim_time=true and a
replay publishes /clock (as `ros2 bag record --use-sim-time`), so the outputs line up with the inputs
in Foxglove/RViz. `on_message(topic, raw, wall_time)` lets a caller watch arrivals (latency, gating).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ..bagfile.reader import message_class
from ..bagfile.writer import BagWriter


class Recorder:
    def __init__(self, node, path, topics: dict, storage: str = 'mcap', qos=None,
                 on_message: Optional[Callable] = None):
        """topics: topic -> message type ('sensor_msgs/msg/Image'); qos: rclpy QoSProfile for all."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        self.node = node
        self.writer = BagWriter(path, storage)
        self.on_message = on_message
        self._lock = threading.Lock()
        self._subs = []
        qos = qos or QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, msgtype in topics.items():
            cls = message_class(msgtype)
            if cls is None:
                raise ValueError(f'cannot record {topic}: no Python message package for {msgtype}')
            self.writer.add_topic(topic, msgtype)
            self._subs.append(node.create_subscription(
                cls, topic, lambda raw, t=topic, m=msgtype: self._store(t, m, raw), qos, raw=True))

    def _store(self, topic: str, msgtype: str, raw: bytes) -> None:
        wall = time.monotonic()
        t_ns = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self.writer is not None:
                self.writer.write(topic, msgtype, t_ns, raw)
        if self.on_message is not None:
            self.on_message(topic, raw, wall)

    def publisher_count(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    @property
    def counts(self) -> dict:
        return dict(self.writer.counts) if self.writer is not None else {}

    def close(self) -> dict:
        """Stop recording and close the bag; returns messages per topic."""
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        with self._lock:
            counts = dict(self.writer.counts) if self.writer is not None else {}
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        return counts
