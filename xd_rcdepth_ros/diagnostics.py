"""Counters and latency statistics of the node, its per-reason warning throttle, and the /diagnostics message.

diagnostic_updater is not installable everywhere (pip ROS 2), the message type is: the node fills a
DiagnosticArray itself once per `diagnostics_period`.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np

# Images arriving this long without a depth published (or no image for this long) is a fault, not a
# start-up transient: a radar topic that died, stamps that never pair, every message malformed.
STALL_S = 5.0


class NodeStats:
    """Thread-safe counts (inputs, drops, bad messages by reason), event times and a window of latencies."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.counts = Counter()
        self.bad = Counter()               # reason -> count of dropped bad messages
        self._latency = {}                 # name -> deque of ms
        self._window = window
        self._arrivals = {}                # topic -> deque of arrival times (for rates)
        self._first, self._last = {}, {}   # count key -> monotonic time of its first / last event
        self._reported_problems = 0
        self.started = time.monotonic()

    def _event(self, key: str) -> None:
        now = time.monotonic()
        self._first.setdefault(key, now)
        self._last[key] = now

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n
            self._event(key)

    def arrived(self, topic: str) -> None:
        with self._lock:
            self.counts[f'{topic}_in'] += 1
            self._event(f'{topic}_in')
            self._arrivals.setdefault(topic, deque(maxlen=100)).append(time.monotonic())

    def bad_message(self, reason: str) -> int:
        with self._lock:
            self.bad[reason] += 1
            return self.bad[reason]

    def latency(self, name: str, ms: float) -> None:
        with self._lock:
            self._latency.setdefault(name, deque(maxlen=self._window)).append(float(ms))

    def since_first(self, key: str) -> float | None:
        """Seconds since the first `key` event (None: never)."""
        with self._lock:
            t = self._first.get(key)
        return None if t is None else time.monotonic() - t

    def since_last(self, key: str) -> float | None:
        """Seconds since the last `key` event (None: never)."""
        with self._lock:
            t = self._last.get(key)
        return None if t is None else time.monotonic() - t

    def new_problems(self) -> int:
        """Bad messages plus images without radar since the previous call (for the WARN level)."""
        with self._lock:
            total = sum(self.bad.values()) + self.counts.get('unpaired_no_radar', 0)
            new, self._reported_problems = total - self._reported_problems, total
        return new

    def rate(self, topic: str) -> float:
        with self._lock:
            t = list(self._arrivals.get(topic, ()))
        if len(t) < 2 or time.monotonic() - t[-1] > 5.0:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-9)

    def percentiles(self, name: str) -> tuple | None:
        with self._lock:
            values = list(self._latency.get(name, ()))
        if not values:
            return None
        return float(np.percentile(values, 50)), float(np.percentile(values, 95))

    def snapshot(self) -> dict:
        with self._lock:
            return {'counts': dict(self.counts), 'bad': dict(self.bad)}


class WarnThrottle:
    """At most one warning per reason and period.

    rclpy's `throttle_duration_sec` throttles per call site: one `_bad()` helper logging every kind of
    bad input would print only the first kind of each period and hide the others.
    """

    def __init__(self, period_s: float = 5.0):
        self.period_s = float(period_s)
        self._last = {}
        self._lock = threading.Lock()

    def ready(self, reason: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self.period_s:
                return False
            self._last[reason] = now
            return True


def health(stats: NodeStats, model_loaded: bool, stall_s: float = STALL_S) -> tuple:
    """(level, message) of the node, from the worst condition down:

    ERROR  the model is not loaded (node not active), or images have arrived for stall_s and more but
           no depth was published in the last stall_s (radar never pairs, every frame bad ...).
    WARN   no image yet or none for stall_s; images arrive but no depth yet; or bad messages / images
           without radar since the previous report.
    OK     publishing depth.
    """
    from diagnostic_msgs.msg import DiagnosticStatus
    problems = stats.new_problems()
    if not model_loaded:
        return DiagnosticStatus.ERROR, 'model not loaded (node not active): no depth is published'
    image_age, images_for = stats.since_last('image_in'), stats.since_first('image_in')
    published_age = stats.since_last('published')
    if image_age is None:
        return DiagnosticStatus.WARN, 'no image received yet'
    if image_age > stall_s:
        return DiagnosticStatus.WARN, f'no image for {image_age:.1f} s'
    if published_age is None or published_age > stall_s:
        if images_for > stall_s:
            return DiagnosticStatus.ERROR, (f'images arrive but no depth published for {stall_s:.0f} s '
                                            '(see unpaired_no_radar and bad_* counts)')
        return DiagnosticStatus.WARN, 'images arrive but no depth published yet'
    if problems:
        return DiagnosticStatus.WARN, f'publishing depth; {problems} input(s) dropped since the last report'
    return DiagnosticStatus.OK, 'publishing depth'


def diagnostic_array(node_name: str, stats: NodeStats, device: str, stamp, hardware_id: str = '',
                     model_loaded: bool = True, stall_s: float = STALL_S):
    """DiagnosticArray with one status (level and message from `health`) and every counter as a value."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    level, message = health(stats, model_loaded, stall_s)
    snap = stats.snapshot()
    counts, bad = snap['counts'], snap['bad']
    values = {
        'device': device,
        'image_rate_hz': f"{stats.rate('image'):.2f}",
        'radar_rate_hz': f"{stats.rate('radar'):.2f}",
        'camera_info_rate_hz': f"{stats.rate('camera_info'):.2f}",
    }
    for key in sorted(counts):
        values[key] = str(counts[key])
    for reason in sorted(bad):
        values[f'bad_{reason}'] = str(bad[reason])
    for name in ('inference', 'total'):
        p = stats.percentiles(name)
        if p is not None:
            values[f'{name}_latency_p50_ms'] = f'{p[0]:.1f}'
            values[f'{name}_latency_p95_ms'] = f'{p[1]:.1f}'
    status = DiagnosticStatus(level=level, name=f'{node_name}: depth estimation', message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
