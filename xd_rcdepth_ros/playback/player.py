"""BagPlayer: publish a bag's raw CDR bytes over DDS, paced by bag time, with /clock.

What `ros2 bag play --clock` does, for machines without ros2cli (pip ROS 2): on a full ROS install
`ros2 bag play BAG --clock` works on the same bags. Differences worth knowing:

- Bytes are published as stored (`publisher.publish(raw)`): no decode/encode, so a 1600x900 image
  costs nothing to replay. A publisher needs the topic's Python message class only to register the
  type; topics whose package is not installed (tf2_msgs has no pip wheel: /tf, /tf_static) are
  skipped with a note. Readers without tf2 use the bag's extrinsics.yaml instead.
- QoS follows the offered_qos_profiles in the bag's metadata, like ros2 bag play: reliable only if
  every recorded publisher was reliable, transient local only if every one was (so /tf_static stays
  latched); without metadata QoS: reliable, volatile, keep-last 10 (transient local for /tf_static).
- /clock (rosgraph_msgs/Clock) carries bag time: before every message with that message's time, and
  at `clock_rate` Hz while waiting, so nodes with use_sim_time=true see bag time advance smoothly.
- Pacing uses the bag's log time scaled by 1/rate. A `gate(topic, raw)` callback may block before a
  message (the live evaluation waits for the node's output); blocked time pauses the bag clock rather
  than making later messages late. `on_publish(topic, raw, wall_time)` sees every message sent.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..bagfile import schema
from ..bagfile.reader import BagError, message_class, open_reader


@dataclass
class PlayStats:
    counts: Counter = field(default_factory=Counter)      # topic -> messages published
    skipped: dict = field(default_factory=dict)            # topic -> why it is not published
    loops: int = 0
    wall_s: float = 0.0
    bag_s: float = 0.0
    paused_s: float = 0.0                                  # time spent blocked in the gate
    max_late_ms: float = 0.0                               # worst publish delay behind schedule
    clock_messages: int = 0

    def table(self) -> str:
        width = max([len(t) for t in self.counts] + [len(t) for t in self.skipped] + [5])
        lines = [f'replayed {self.bag_s:.2f} s of bag time in {self.wall_s:.2f} s wall time'
                 f'{f" ({self.loops} loops)" if self.loops > 1 else ""}; /clock messages {self.clock_messages}; '
                 f'worst lateness {self.max_late_ms:.1f} ms', f'  {"topic".ljust(width)}  published']
        lines += [f'  {t.ljust(width)}  {n}' for t, n in sorted(self.counts.items())]
        lines += [f'  {t.ljust(width)}  skipped: {why}' for t, why in sorted(self.skipped.items())]
        return '\n'.join(lines)


def qos_from_offered(topic: str, offered: list):
    """The rclpy QoSProfile a replay publisher of `topic` uses, from the bag's offered profiles."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.interfaces import QosDurability, QosHistory, QosReliability
    if not offered:
        latched = topic == schema.TF_STATIC_TOPIC
        return QoSProfile(depth=1 if latched else 10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
    # SYSTEM_DEFAULT (older bags) means reliable for every DDS vendor ROS 2 ships.
    reliable = all(q.reliability in (QosReliability.RELIABLE, QosReliability.SYSTEM_DEFAULT) for q in offered)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    keep_all = any(q.history == QosHistory.KEEP_ALL for q in offered)
    depth = max([q.depth for q in offered] + [1])
    return QoSProfile(history=HistoryPolicy.KEEP_ALL if keep_all else HistoryPolicy.KEEP_LAST,
                      depth=depth if depth > 0 else 10,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class BagPlayer:
    """Publishers for a bag's topics on `node`; `play()` replays it (blocking)."""

    def __init__(self, node, bag_path, topics=None, rate: float = 1.0, loop: bool = False, clock: bool = True,
                 clock_rate: float = 40.0, gate: Optional[Callable] = None, on_publish: Optional[Callable] = None):
        if not rate > 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        if clock and not clock_rate > 0:
            raise ValueError(f'clock rate must be > 0 Hz, got {clock_rate}')
        self.node, self.bag_path = node, bag_path
        self.rate, self.loop, self.clock_rate, self.gate = float(rate), bool(loop), float(clock_rate), gate
        self.on_publish = on_publish
        self.stats = PlayStats()
        self._reader = open_reader(bag_path)
        available = {c.topic for c in self._reader.connections}
        if topics:
            unknown = [t for t in topics if t not in available]
            if unknown:
                self._reader.close()
                raise BagError(f'topic(s) {", ".join(unknown)} not in bag {bag_path}; '
                               f'it has {", ".join(sorted(available))}')
        self._pubs = {}
        self._conns = []
        for conn in self._reader.connections:
            if (topics and conn.topic not in topics) or conn.topic in self._pubs or conn.topic in self.stats.skipped:
                continue
            cls = message_class(conn.msgtype)
            if cls is None:
                self.stats.skipped[conn.topic] = (f'{conn.msgtype} has no Python message package here '
                                                  f'(install ROS 2 {conn.msgtype.split("/")[0]}, or use ros2 bag play)')
                continue
            offered = [q for c in self._reader.connections if c.topic == conn.topic
                       for q in (c.ext.offered_qos_profiles or [])]
            self._pubs[conn.topic] = node.create_publisher(cls, conn.topic, qos_from_offered(conn.topic, offered))
        self._conns = [c for c in self._reader.connections if c.topic in self._pubs]
        self._clock_pub, self._clock_ns = None, None
        if clock:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock
            self._clock_pub = node.create_publisher(Clock, schema.CLOCK_TOPIC, QoSProfile(depth=10))
            self._Clock = Clock

    @property
    def topics(self) -> list:
        return sorted(self._pubs)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    def publish_clock(self, t_ns: int) -> None:
        if self._clock_pub is None:
            return
        from builtin_interfaces.msg import Time
        self._clock_pub.publish(self._Clock(clock=Time(sec=int(t_ns // 10**9), nanosec=int(t_ns % 10**9))))
        self._clock_ns = t_ns
        self.stats.clock_messages += 1

    def run_clock_on(self, wall_s: float, until: Optional[Callable[[], bool]] = None) -> None:
        """After the replay: keep /clock running from its last value, at the replay rate, for up to `wall_s`
        seconds or until `until()`, so a sim-time node's timers (its /diagnostics) fire once more."""
        if self._clock_pub is None or self._clock_ns is None:
            return
        start, t0 = time.monotonic(), self._clock_ns
        while time.monotonic() - start < wall_s and not (until is not None and until()):
            time.sleep(1.0 / self.clock_rate)
            self.publish_clock(t0 + int((time.monotonic() - start) * self.rate * 1e9))

    def wait_for_subscribers(self, topics, timeout: float, alive: Optional[Callable[[], bool]] = None) -> None:
        """Block until every topic in `topics` has a subscriber (BagError after `timeout` s)."""
        end = time.monotonic() + timeout
        while True:
            missing = [t for t in topics if self._pubs[t].get_subscription_count() == 0]
            if not missing:
                return
            if alive is not None and not alive():
                raise BagError('the subscriber process exited before subscribing to ' + ', '.join(missing))
            if time.monotonic() > end:
                raise BagError(f'no subscriber on {", ".join(missing)} after {timeout:.0f} s')
            self.publish_clock(self.start_ns)      # a sim-time node is not stuck at time 0 meanwhile
            time.sleep(0.05)

    def play(self, stop: Optional[threading.Event] = None) -> PlayStats:
        stop = stop or threading.Event()
        wall0 = time.monotonic()
        try:
            while not stop.is_set():
                self._play_once(stop)
                self.stats.loops += 1
                if not self.loop:
                    break
        finally:
            self.stats.wall_s = time.monotonic() - wall0
        return self.stats

    def _play_once(self, stop: threading.Event) -> None:
        t0 = None
        start = time.monotonic()
        paused = 0.0
        period = 1.0 / self.clock_rate
        # open_reader's messages(): a corrupt bag ends the replay with a BagError naming it, not a traceback.
        for conn, t_ns, raw in self._reader.messages(connections=self._conns):
            if stop.is_set():
                return
            if t0 is None:
                t0 = t_ns
                self.publish_clock(t0)
            if self.gate is not None:
                g0 = time.monotonic()
                self.gate(conn.topic, raw)
                paused += time.monotonic() - g0
            due = start + paused + (t_ns - t0) * 1e-9 / self.rate
            while not stop.is_set():
                now = time.monotonic()
                if now >= due:
                    break
                time.sleep(min(period, due - now))
                if self._clock_pub is not None and time.monotonic() < due:
                    # Capped at the message's own time: the clock read above may be just short of `due`
                    # and the one here just past it, which put /clock ahead of the next message.
                    elapsed = time.monotonic() - start - paused
                    self.publish_clock(min(t_ns, t0 + int(max(elapsed, 0.0) * self.rate * 1e9)))
            self.stats.max_late_ms = max(self.stats.max_late_ms, 1e3 * (time.monotonic() - due))
            self.publish_clock(t_ns)
            self._pubs[conn.topic].publish(bytes(raw))
            if self.on_publish is not None:
                self.on_publish(conn.topic, raw, time.monotonic())
            self.stats.counts[conn.topic] += 1
            self.stats.bag_s = max(self.stats.bag_s, (t_ns - t0) * 1e-9)
        self.stats.paused_s += paused

    def close(self) -> None:
        for pub in self._pubs.values():
            self.node.destroy_publisher(pub)
        if self._clock_pub is not None:
            self.node.destroy_publisher(self._clock_pub)
        self._pubs = {}
        try:
            self._reader.close()
        except Exception:  # a truncated bag may fail to close; the replay itself is over
            pass
