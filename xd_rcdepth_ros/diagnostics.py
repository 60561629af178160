"""Counters and latency statistics of the node, and their /diagnostics message.

diagnostic_updater is not installable everywhere (pip ROS 2), the message type is: the node fills a
DiagnosticArray itself once per `diagnostics_period`.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class NodeStats:
    """Thread-safe counts (inputs, drops, bad messages by reason) and a window of latencies."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.counts = Counter()
        self.bad = Counter()               # reason -> count of dropped bad messages
        self._latency = {}                 # name -> deque of ms
        self._window = window
        self._arrivals = {}                # topic -> deque of arrival times (for rates)
        self.started = time.monotonic()

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def arrived(self, topic: str) -> None:
        with self._lock:
            self.counts[f'{topic}_in'] += 1
            self._arrivals.setdefault(topic, deque(maxlen=100)).append(time.monotonic())

    def bad_message(self, reason: str) -> int:
        with self._lock:
            self.bad[reason] += 1
            return self.bad[reason]

    def latency(self, name: str, ms: float) -> None:
        with self._lock:
            self._latency.setdefault(name, deque(maxlen=self._window)).append(float(ms))

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


def diagnostic_array(node_name: str, stats: NodeStats, device: str, stamp, hardware_id: str = ''):
    """DiagnosticArray with one status: OK, WARN when inputs are missing or bad, ERROR when none work."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
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
    published = counts.get('published', 0)
    level, message = DiagnosticStatus.OK, 'publishing depth'
    if counts.get('image_in', 0) == 0:
        level, message = DiagnosticStatus.WARN, 'no image received yet'
    elif published == 0:
        level, message = DiagnosticStatus.WARN, 'images arrive but no depth published yet (see unpaired/bad counts)'
    elif sum(bad.values()) or counts.get('unpaired_no_radar', 0):
        level, message = DiagnosticStatus.WARN, 'publishing depth; some inputs were dropped (see counts)'
    status = DiagnosticStatus(level=level, name=f'{node_name}: depth estimation', message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
