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
# One input silent this much longer than the other (or radar never heard while images arrive this long):
# that input is missing (a dead topic, a driver restarting). A 13 Hz radar skipping a sweep is not.
MISSING_S = 1.0
# Inference timings needed before the node judges whether it keeps up with the camera (the first ones
# can be slow: warm-up, a CUDA graph capture).
KEEP_UP_SAMPLES = 10
# Each frame's time split, as NAME_latency_p50_ms / _p95_ms values: pairing (waiting for radar /
# CameraInfo), slot (waiting for the busy worker), inference, work (the node's own), total (receive ->
# publish), added (total - inference, per frame).
LATENCIES = ('pairing', 'slot', 'inference', 'work', 'total', 'added')


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

    def mark(self, key: str) -> None:
        """Record that `key` happened now (since_last / since_first), without counting it."""
        with self._lock:
            self._event(key)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n
            self._event(key)

    def arrived(self, topic: str) -> None:
        with self._lock:
            self.counts[f'{topic}_in'] += 1
            self._event(f'{topic}_in')
        self.timed(topic)

    def timed(self, topic: str) -> None:
        """Record that `topic` was received or sent now, for `rate` only."""
        with self._lock:
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

    def percentiles(self, name: str, min_samples: int = 1) -> tuple | None:
        with self._lock:
            values = list(self._latency.get(name, ()))
        if len(values) < max(1, min_samples):
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


def level_name(level) -> str:
    """'OK', 'WARN', 'ERROR' or 'STALE' of a DiagnosticStatus level (bytes in rclpy, or an int)."""
    value = level[0] if isinstance(level, (bytes, bytearray)) else int(level)
    return {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}.get(value, str(value))


def missing_input(stats: NodeStats, missing_s: float = MISSING_S, stall_s: float = STALL_S) -> tuple | None:
    """(input, seconds, message) of an input that is missing while the other arrives, else None:
    images silent for stall_s, or missing_s longer than the radar (a camera driver restarting); radar
    silent missing_s longer than the images, or never heard while images arrived for missing_s."""
    image_age, images_for = stats.since_last('image_in'), stats.since_first('image_in')
    radar_age = stats.since_last('radar_in')
    if image_age is None:
        return None
    if image_age > stall_s:
        return 'image', image_age, f'no image for {image_age:.1f} s'
    if radar_age is not None and image_age > radar_age + missing_s:
        return 'image', image_age, f'no image for {image_age:.1f} s while radar arrives (camera driver down?)'
    if radar_age is None and images_for > missing_s:
        return 'radar', images_for, ('no radar received yet while images arrive: images are not paired, no '
                                     'depth until it comes (check ~/input/radar_points)')
    if radar_age is not None and radar_age > image_age + missing_s:
        return 'radar', radar_age, (f'no radar for {radar_age:.1f} s while images arrive: images are not '
                                    'paired, no depth until it returns (check ~/input/radar_points)')
    return None


def falling_behind(stats: NodeStats) -> str | None:
    """A sentence when inference is slower than the camera (its p50 longer than the images' period), else
    None. Not a fault -- the newest image wins and the others are skipped (dropped_stale), by design --
    but a user evaluating on every frame, or expecting depth at the camera's rate, must know."""
    image_rate, inference = stats.rate('image'), stats.percentiles('inference', KEEP_UP_SAMPLES)
    if image_rate <= 0 or inference is None or inference[0] <= 1e3 / image_rate:
        return None
    return (f'inference ({inference[0]:.0f} ms p50) is slower than the camera ({image_rate:.1f} Hz, an image '
            f'every {1e3 / image_rate:.0f} ms): depth at {stats.rate("depth"):.1f} Hz, the newest image wins and '
            'the others are skipped (dropped_stale)')


def keeping_up(stats: NodeStats) -> str:
    """'yes' / 'no' (falling_behind), or '' while it cannot be judged: no images arriving, or fewer than
    KEEP_UP_SAMPLES frames timed."""
    if stats.rate('image') <= 0 or stats.percentiles('inference', KEEP_UP_SAMPLES) is None:
        return ''
    return 'no' if falling_behind(stats) else 'yes'


def health(stats: NodeStats, model_loaded: bool, stall_s: float = STALL_S, missing_s: float = MISSING_S) -> tuple:
    """(level, message) of the node, from the worst condition down:

    ERROR  the model is not loaded (node not active), or images and radar have arrived for stall_s and
           more but no depth was published in the last stall_s (stamps never pair, every frame bad ...).
    WARN   no image yet; an input missing (missing_input: no image for stall_s, or either topic silent
           while the other arrives); images arrive but no depth yet (start-up, or an input just came
           back); or bad messages / images without radar since the previous report.
    OK     publishing depth (saying at what rate of the images' when inference is slower than the camera:
           skipping images then is by design, not a fault).
    """
    from diagnostic_msgs.msg import DiagnosticStatus
    problems = stats.new_problems()
    if not model_loaded:
        return DiagnosticStatus.ERROR, 'model not loaded (node not active): no depth is published'
    image_age, images_for = stats.since_last('image_in'), stats.since_first('image_in')
    published_age = stats.since_last('published')
    if image_age is None:
        return DiagnosticStatus.WARN, 'no image received yet'
    missing = missing_input(stats, missing_s, stall_s)
    if missing is not None:
        stats.mark(f'{missing[0]}_missing')
        return DiagnosticStatus.WARN, missing[2]
    if published_age is None or published_age > stall_s:
        back = [t for t in (stats.since_last('image_missing'), stats.since_last('radar_missing')) if t is not None]
        if back and min(back) <= stall_s:   # an input came back: depth is due any moment, not a fault yet
            return DiagnosticStatus.WARN, 'inputs are back; no depth published yet'
        if images_for > stall_s:
            return DiagnosticStatus.ERROR, (f'images arrive but no depth published for {stall_s:.0f} s '
                                            '(see unpaired_no_radar and bad_* counts)')
        return DiagnosticStatus.WARN, 'images arrive but no depth published yet'
    if problems:
        return DiagnosticStatus.WARN, f'publishing depth; {problems} input(s) dropped since the last report'
    if falling_behind(stats):
        return DiagnosticStatus.OK, (f'publishing depth at {stats.rate("depth"):.1f} Hz of {stats.rate("image"):.1f} '
                                     'Hz images (inference is slower than the camera: the newest image wins)')
    return DiagnosticStatus.OK, 'publishing depth'


def diagnostic_array(node_name: str, stats: NodeStats, device: str, stamp, hardware_id: str = '',
                     model_loaded: bool = True, stall_s: float = STALL_S, extra: dict | None = None):
    """DiagnosticArray with one status (level and message from `health`), every counter as a value, and
    ``extra`` values (the backend, whether torch is loaded)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    level, message = health(stats, model_loaded, stall_s)
    snap = stats.snapshot()
    counts, bad = snap['counts'], snap['bad']
    values = {
        'device': device,
        **{k: str(v) for k, v in (extra or {}).items()},
        'image_rate_hz': f"{stats.rate('image'):.2f}",
        'radar_rate_hz': f"{stats.rate('radar'):.2f}",
        'camera_info_rate_hz': f"{stats.rate('camera_info'):.2f}",
        'depth_rate_hz': f"{stats.rate('depth'):.2f}",
        'keeping_up': keeping_up(stats),
    }
    for topic in ('image', 'radar', 'camera_info'):   # seconds since the last message ('' = never)
        age = stats.since_last(f'{topic}_in')
        values[f'{topic}_age_s'] = '' if age is None else f'{age:.2f}'
    for key in sorted(counts):
        values[key] = str(counts[key])
    for reason in sorted(bad):
        values[f'bad_{reason}'] = str(bad[reason])
    for name in LATENCIES:
        p = stats.percentiles(name)
        if p is not None:
            values[latency_key(name, 50)] = f'{p[0]:.1f}'
            values[latency_key(name, 95)] = f'{p[1]:.1f}'
    status = DiagnosticStatus(level=level, name=f'{node_name}: depth estimation', message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg


def latency_key(name: str, q: int) -> str:
    """The /diagnostics key of a latency percentile: 'added_latency_p50_ms'."""
    return f'{name}_latency_p{q}_ms'


def latency_value(values: dict, name: str, q: int = 50) -> float | None:
    """A latency percentile (ms) read back from /diagnostics values; None when absent or empty."""
    value = values.get(latency_key(name, q))
    return None if value in (None, '') else float(value)
