"""Pairing radar with camera images by header stamp, latest frame wins.

Pure Python over (stamp in seconds, payload): no ROS import, so it is unit-tested without DDS and the
node only wraps it. message_filters' ApproximateTimeSynchronizer would be importable on a full ROS
install, but the node uses this class everywhere on purpose: message_filters has no latest-frame-wins
slot or drop counting, its slop/queue semantics differ from a per-image nearest-radar search, and one
implementation means the vehicle behaves exactly as CI tests it.

Why it is shaped like this (nuScenes: radar ~13 Hz, camera ~12 Hz, not triggered together):

- Each image is paired with the radar message whose stamp is *nearest*, if within ``tolerance`` seconds.
  The nearest one is only known once a radar stamped at or after the image has arrived (radar arrives in
  stamp order), so by default an image waits ("pending") for that radar, but only while a later sweep
  could still be nearer: the next sweep comes at least one radar period after the newest buffered one
  (the shortest gap in the buffer, less ``RATE_MARGIN`` for jitter), so an image nearer the newest sweep
  than half of that pairs at once. At 12 Hz camera / 13 Hz radar about half the images pair on arrival
  and the rest wait at most half a radar period (~38 ms) instead of every image waiting for the next
  sweep. Such an early pair also waits for a camera_info stamped at or after the image, so the image
  gets its own calibration. ``wait_for_next_radar=False`` pairs at once with the nearest radar already
  buffered when it is within tolerance (lowest latency; the radar may be a period older than the nearest).
- A pending image gives up when a radar stamped later than image + tolerance arrives, when more than
  ``max_pending_images`` newer images queue behind it (covers a dead radar), when a newer image is paired
  (time never runs backwards in the output), or on ``expire(now)`` / ``flush()``. Giving up means: take the
  best radar within tolerance if any, else count ``unpaired_no_radar``.
- Latest frame wins: ready pairs go into a one-pair slot; a newer pair replaces an unconsumed one and
  counts ``dropped_stale``, so inference never queues behind itself. Consume with ``take_latest()`` or
  ``wait_for_pair(timeout)``.
- ``radar_sweeps=K`` returns, besides the nearest radar, up to K-1 older buffered sweeps for multi-sweep
  accumulation (``Pair.sweeps``, oldest first, ending with the nearest). Anchoring the window at the
  nearest sweep (rather than at the newest sweep before image + tolerance) makes K=1 identical to
  single-sweep pairing, and the anchor is the best-timed sweep to compensate ego motion against.
- camera_info (``camera_info=`` policy). ``'match'`` (the node's): the CameraInfo stamped nearest the image
  within ``tolerance`` (normally its own, same stamp). It travels on its own topic and may land after the
  image, so the image waits for it like it waits for radar: until a CameraInfo stamped at or after the
  image arrives (they come in stamp order, so nothing nearer can follow). The wait ends without one when
  a newer image is paired (older ones are settled first), on overflow, ``expire`` or ``flush`` -- never
  because the next image merely *arrived*, so an image whose CameraInfo is a little late keeps its
  place instead of being settled together with the next one and losing the latest-wins slot to it.
  Drivers that latch one CameraInfo (publish it once, or at another rate or stamp) are recognised: an
  image waits only while the CameraInfo stream follows the images (the last two images settled each had
  a CameraInfo of its own within tolerance, and no more than two images came since the last CameraInfo);
  otherwise it takes the newest at once. So a latching driver costs the first two images at start (they
  wait until the third arrives, which then wins the slot), and nothing after. An image paired
  with the newest CameraInfo because none was within tolerance counts ``camera_info_fallback``
  (``Pair.camera_info_fallback``). ``'newest'`` (the default): the newest, never waited for.
  ``'strict'`` (``match_camera_info=True``): one within tolerance is required; the image waits for it
  and counts ``unpaired_no_camera_info`` when none comes.
- A stream whose stamp jumps back by more than ``time_jump`` seconds (a bag loop restarting) resets all
  buffers once and counts ``time_jumps`` (pending images are settled first; the newest CameraInfo is
  kept as the fallback of a latching driver). Messages of the old timeline still in flight (stamped more
  than ``time_jump`` after everything seen since) are ignored: ``stale_timeline`` (images:
  ``out_of_order_images``), so they cannot trigger a second reset. Smaller regressions are reordering:
  an old image is ignored (``out_of_order_images``), an old radar is inserted in order
  (``out_of_order_radar``) -- but ``REORDER_RESET`` images in a row older than the newest one mean the
  stream went back by less than ``time_jump`` (a short bag loop, a driver restarted with another clock),
  and that resets as a jump does. So images_in = paired + unpaired_* + out_of_order_images +
  pending_images.

All methods hold one lock: the node feeds it from subscription callbacks (executor threads) while its
inference worker thread takes pairs (``wait_for_pair``) and the diagnostics timer reads the counters.

Stamps are float seconds: at Unix-epoch magnitudes a double resolves ~0.2 us, far below any tolerance.
"""
from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, List, Optional, Tuple


def stamp_to_seconds(stamp) -> float:
    """Seconds of a builtin_interfaces/Time (duck-typed sec/nanosec), a Header, an rclpy Time or a number."""
    if hasattr(stamp, 'stamp'):  # a std_msgs/Header
        stamp = stamp.stamp
    if hasattr(stamp, 'sec') and hasattr(stamp, 'nanosec'):
        return int(stamp.sec) + int(stamp.nanosec) * 1e-9
    if hasattr(stamp, 'nanoseconds'):  # rclpy.time.Time
        return int(stamp.nanoseconds) * 1e-9
    if isinstance(stamp, (int, float)):
        return float(stamp)
    raise TypeError(f'cannot read a time stamp from {type(stamp).__name__}')


@dataclass(frozen=True, eq=False)  # identity equality: payloads (arrays, messages) need not compare
class Stamped:
    """A message with its header stamp in seconds."""

    stamp: float
    msg: Any


@dataclass(frozen=True, eq=False)
class Pair:
    """One image ready for inference, with the radar (and camera_info) chosen for it.

    radar:       the nearest radar within tolerance (None only with emit_without_radar=True).
    sweeps:      radar messages for accumulation, oldest first, ending with `radar` (len <= radar_sweeps).
    camera_info: the camera_info to use, or None when none has arrived.
    camera_info_fallback: True when no camera_info was stamped within tolerance of the image and the
                 newest one was taken instead ('match' policy: a latching or slower CameraInfo publisher).
    ready:       time.monotonic() when the pair was made (the node splits its latency at it: waiting
                 for radar / camera_info before, waiting for the busy inference worker after).
    """

    image: Stamped
    radar: Optional[Stamped]
    sweeps: Tuple[Stamped, ...]
    camera_info: Optional[Stamped]
    camera_info_fallback: bool = False
    ready: float = field(default_factory=time.monotonic)

    @property
    def stamp(self) -> float:
        return self.image.stamp

    @property
    def radar_offset(self) -> Optional[float]:
        """image stamp - radar stamp in seconds (positive: the radar is older than the image)."""
        return None if self.radar is None else self.image.stamp - self.radar.stamp


@dataclass(frozen=True)
class PairerStats:
    """A snapshot of the counters (for diagnostics and the node's warnings)."""

    images_in: int = 0
    radar_in: int = 0
    camera_info_in: int = 0
    paired: int = 0
    unpaired_no_radar: int = 0
    unpaired_no_camera_info: int = 0
    camera_info_fallback: int = 0
    dropped_stale: int = 0
    taken: int = 0
    time_jumps: int = 0
    out_of_order_images: int = 0
    out_of_order_radar: int = 0
    stale_timeline: int = 0
    pending_images: int = 0
    last_image_stamp: Optional[float] = None
    last_radar_stamp: Optional[float] = None
    last_radar_offset: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)


# Radar periods jitter: the next sweep may come this fraction of the shortest gap seen sooner than it.
RATE_MARGIN = 0.1
# Images in a row older than the newest image: the stream went back in time (see the module docstring).
REORDER_RESET = 3
CAMERA_INFO_POLICIES = ('match', 'newest', 'strict')

_COUNTERS = ('images_in', 'radar_in', 'camera_info_in', 'paired', 'unpaired_no_radar',
             'unpaired_no_camera_info', 'camera_info_fallback', 'dropped_stale', 'taken', 'time_jumps',
             'out_of_order_images', 'out_of_order_radar', 'stale_timeline')


class RadarImagePairer:
    """Pairs images with the nearest radar by stamp and hands out only the newest ready pair.

    Parameters (seconds unless said otherwise):
        tolerance:           max |image stamp - radar stamp| of a pair (the node's sync_tolerance).
        radar_sweeps:        K, number of radar sweeps in Pair.sweeps (1 = single sweep).
        history:             radar older than the newest radar minus this is forgotten
                             (default max(1 s, 2 x tolerance)).
        max_radar:           hard bound on buffered radar messages.
        max_pending_images:  images allowed to wait for radar at once; the oldest gives up beyond it.
        wait_for_next_radar: wait until the nearest radar is certain (see module docstring).
        camera_info:         'match' (nearest within tolerance, waited for briefly, else the newest),
                             'newest' (default) or 'strict' (see the module docstring).
        match_camera_info:   the same as camera_info='strict' (older spelling).
        time_jump:           a stream going back in time by more than this resets everything
                             (default max(1 s, 2 x tolerance)).
        emit_without_radar:  an image that gives up without radar still yields a Pair (radar None).
    """

    def __init__(self, tolerance: float = 0.05, radar_sweeps: int = 1, history: Optional[float] = None,
                 max_radar: int = 64, max_pending_images: int = 3, wait_for_next_radar: bool = True,
                 match_camera_info: bool = False, time_jump: Optional[float] = None,
                 emit_without_radar: bool = False, camera_info: Optional[str] = None):
        _require(int(max_pending_images) >= 1, f'max_pending_images must be >= 1, got {max_pending_images}')
        policy = camera_info or ('strict' if match_camera_info else 'newest')
        _require(policy in CAMERA_INFO_POLICIES,
                 f'camera_info must be one of {", ".join(CAMERA_INFO_POLICIES)}, got {camera_info!r}')
        _require(not (match_camera_info and policy != 'strict'),
                 f'match_camera_info=True contradicts camera_info={camera_info!r}')
        self._history_arg, self._time_jump_arg = history, time_jump
        self.max_radar = int(max_radar)
        self.max_pending_images = int(max_pending_images)
        self.camera_info = policy
        self.match_camera_info = policy == 'strict'
        self.emit_without_radar = bool(emit_without_radar)
        self._set_tuning(tolerance, radar_sweeps, wait_for_next_radar)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._slot: Optional[Pair] = None
        self._last_offset: Optional[float] = None
        # How the CameraInfo publisher behaves (kept across time jumps: it is the driver's habit, not the
        # timeline's): the newest camera_info before a jump (the fallback of a latching driver), the
        # camera_info the last two settled images were matched with (None: none within tolerance), and
        # images accepted since the last camera_info arrived.
        self._kept_info: Optional[Stamped] = None
        self._info_history: List[Optional[Stamped]] = []
        self._images_since_info = 0
        self._clear_buffers()

    def _set_tuning(self, tolerance: float, radar_sweeps: int, wait_for_next_radar: bool) -> None:
        # history and time_jump follow the tolerance unless given, so every tolerance > 0 is valid
        # (a fixed 1 s time_jump made the node's sync_tolerance 1.0 fail configure).
        history = max(1.0, 2.0 * tolerance) if self._history_arg is None else self._history_arg
        time_jump = max(1.0, 2.0 * tolerance) if self._time_jump_arg is None else self._time_jump_arg
        _require(tolerance > 0 and math.isfinite(tolerance), f'tolerance must be > 0 s, got {tolerance}')
        _require(int(radar_sweeps) >= 1, f'radar_sweeps must be >= 1, got {radar_sweeps}')
        _require(history >= tolerance, f'history ({history} s) must be >= tolerance ({tolerance} s)')
        _require(self.max_radar >= int(radar_sweeps) + 1,
                 f'max_radar ({self.max_radar}) must exceed radar_sweeps ({radar_sweeps})')
        _require(time_jump > tolerance, f'time_jump ({time_jump} s) must exceed tolerance ({tolerance} s)')
        self.tolerance = float(tolerance)
        self.radar_sweeps = int(radar_sweeps)
        self.wait_for_next_radar = bool(wait_for_next_radar)
        self.history = float(history)
        self.time_jump = float(time_jump)

    def retune(self, tolerance: Optional[float] = None, radar_sweeps: Optional[int] = None,
               wait_for_next_radar: Optional[bool] = None) -> Optional[Pair]:
        """Change tolerance / sweeps / waiting while running (the node's live parameters); buffers are kept."""
        with self._lock:
            self._set_tuning(self.tolerance if tolerance is None else tolerance,
                             self.radar_sweeps if radar_sweeps is None else radar_sweeps,
                             self.wait_for_next_radar if wait_for_next_radar is None else wait_for_next_radar)
            return self._process_pending(force_upto=-1)   # no waiting any more may settle images now

    # ---------------------------------------------------------------------------------------- feeding

    def add_radar(self, stamp: float, msg: Any) -> Optional[Pair]:
        """Buffer a radar message; returns the Pair this made ready (also put in the slot), else None."""
        with self._lock:
            self._counts['radar_in'] += 1
            if not self._admit('radar', stamp):
                return None
            if self._radar and stamp < self._radar[-1].stamp:
                self._counts['out_of_order_radar'] += 1
            bisect.insort(self._radar, Stamped(float(stamp), msg), key=lambda s: s.stamp)
            newest = self._last['radar']
            self._last['radar'] = stamp if newest is None else max(stamp, newest)
            self._prune_radar()
            return self._process_pending(force_upto=-1)

    def add_camera_info(self, stamp: float, msg: Any) -> Optional[Pair]:
        """Keep a camera_info (the newest, plus a few for stamp matching); may complete a pending image."""
        with self._lock:
            self._counts['camera_info_in'] += 1
            if not self._admit('camera_info', stamp):
                return None
            self._last['camera_info'] = stamp
            self._images_since_info = 0
            bisect.insort(self._infos, Stamped(float(stamp), msg), key=lambda s: s.stamp)
            del self._infos[:-8]  # a handful covers any image still pending and the two before it
            return self._process_pending(force_upto=-1)  # it may complete a pending image (either mode)

    def add_image(self, stamp: float, msg: Any) -> Optional[Pair]:
        """Queue an image for pairing; returns the Pair this made ready (also put in the slot), else None."""
        with self._lock:
            self._counts['images_in'] += 1
            if not self._admit('image', stamp):
                self._counts['out_of_order_images'] += 1
                return None
            last = self._last['image']
            if last is not None and stamp <= last:
                self._regressions += stamp < last   # (a repeated stamp is a duplicate, not a regression)
                if self._regressions < REORDER_RESET:
                    self._counts['out_of_order_images'] += 1  # never go back in time: a stale image is ignored
                    return None
                self._jump()  # images keep coming from the past: a new timeline, not reordering
            self._regressions = 0
            self._last['image'] = stamp
            self._images_since_info += 1
            self._pending.append(Stamped(float(stamp), msg))
            overflow = len(self._pending) - self.max_pending_images
            return self._process_pending(force_upto=overflow - 1)

    def expire(self, now: float) -> Optional[Pair]:
        """Give up on pending images stamped before now - tolerance (call from a timer with ROS time)."""
        with self._lock:
            older = [i for i, img in enumerate(self._pending) if img.stamp < now - self.tolerance]
            return self._process_pending(force_upto=older[-1] if older else -1)

    def flush(self) -> Optional[Pair]:
        """Give up on every pending image now (end of a bag, shutdown)."""
        with self._lock:
            return self._process_pending(force_upto=len(self._pending) - 1)

    def reset(self) -> None:
        """Forget buffered messages and the slot (counters are kept)."""
        with self._lock:
            self._clear_buffers()
            self._slot = None

    # -------------------------------------------------------------------------------------- consuming

    def take_latest(self) -> Optional[Pair]:
        """The newest ready pair, removing it from the slot; None when nothing new is ready."""
        with self._lock:
            return self._take()

    def wait_for_pair(self, timeout: Optional[float] = None) -> Optional[Pair]:
        """Like take_latest, but blocks up to `timeout` seconds (None: forever) for a pair."""
        with self._ready:
            self._ready.wait_for(lambda: self._slot is not None, timeout)
            return self._take()

    @property
    def stats(self) -> PairerStats:
        with self._lock:
            return PairerStats(**self._counts, pending_images=len(self._pending),
                               last_image_stamp=self._last['image'], last_radar_stamp=self._last['radar'],
                               last_radar_offset=self._last_offset)

    # ------------------------------------------------------------------------------------- internals

    def _clear_buffers(self, after_jump: bool = False) -> None:
        self._radar: List[Stamped] = []  # sorted by stamp
        self._pending: List[Stamped] = []  # images waiting, oldest first
        self._infos: List[Stamped] = []  # sorted by stamp, newest last
        self._last = {'image': None, 'radar': None, 'camera_info': None}
        self._regressions = 0  # images in a row older than the newest one
        self._after_jump = after_jump

    def _take(self) -> Optional[Pair]:
        pair, self._slot = self._slot, None
        if pair is not None:
            self._counts['taken'] += 1
        return pair

    def _admit(self, stream: str, stamp: float) -> bool:
        """Check a stamp for a time jump (reset); False for a message of the old timeline still in flight."""
        if not math.isfinite(stamp):
            raise ValueError(f'{stream} stamp must be finite seconds, got {stamp}')
        last = self._last[stream]
        if last is not None and stamp < last - self.time_jump:
            self._jump()  # a bag restarting (or a clock reset): everything buffered is of another timeline
            return True
        if last is None and self._after_jump:
            # This stream's first message since a jump: if it is far ahead of everything seen on the new
            # timeline it was sent before the jump. Taking it would make the next message look like a
            # second jump and reset again.
            seen = [t for t in self._last.values() if t is not None]
            if seen and stamp > max(seen) + self.time_jump:
                self._counts['stale_timeline'] += 1
                return False
        return True

    def _jump(self) -> None:
        # Pending images are settled on the old timeline first, so every image stays accounted for.
        self._counts['time_jumps'] += 1
        self._process_pending(force_upto=len(self._pending) - 1)
        if self._infos:
            self._kept_info = self._infos[-1]  # a driver that latched its CameraInfo will not send it again
        self._clear_buffers(after_jump=True)

    def _prune_radar(self) -> None:
        newest = self._radar[-1].stamp
        keep = bisect.bisect_left(self._radar, newest - self.history, key=lambda s: s.stamp)
        del self._radar[:max(keep, len(self._radar) - self.max_radar)]

    def _process_pending(self, force_upto: int) -> Optional[Pair]:
        """Resolve pending images; those at index <= force_upto give up waiting. Returns the last Pair made.

        If an image resolves, every older one is forced too, so pairs come out in stamp order.
        """
        last_ready = max(force_upto, -1)
        for i, img in enumerate(self._pending):
            if i > last_ready and self._decide(img, force=False) is not None:
                last_ready = i
        # A newer image's mere arrival forces nothing (only overflow does): an image still waiting for its
        # late CameraInfo is released when that comes, on its own, not in the same call as the next image,
        # which would take its latest-wins slot.
        made = None
        for img in self._pending[:last_ready + 1]:
            made = self._emit(img, self._decide(img, force=True)) or made
        del self._pending[:last_ready + 1]
        return made

    def _decide(self, img: Stamped, force: bool) -> Optional[tuple]:
        """(radar index or None, camera_info or None, camera_info fallback) once the pairing is final,
        else None (keep waiting). With force=True the pairing is always final: the best available now."""
        radar_index, radar_final = self._nearest_radar(img.stamp)
        info, info_final, fallback = self._camera_info_for(img.stamp)
        if force or (radar_final and info_final):
            return radar_index, info, fallback
        return None

    def _nearest_radar(self, t: float) -> tuple:
        """(index of the nearest radar within tolerance or None, whether that choice is final)."""
        i = bisect.bisect_left(self._radar, t, key=lambda s: s.stamp)
        around = [j for j in (i - 1, i) if 0 <= j < len(self._radar)]
        best = min(around, key=lambda j: abs(self._radar[j].stamp - t), default=None)
        if best is not None and abs(self._radar[best].stamp - t) > self.tolerance:
            best = None
        # Radar arrives in stamp order: once one is stamped at/after t, nothing later can be nearer.
        final = i < len(self._radar)
        if best is not None and not final:
            if not self.wait_for_next_radar:
                final = True
            else:
                # The next sweep comes at least a radar period after the newest one: if the image is
                # nearer the newest than half of that, no later sweep can beat it, so do not wait.
                # (The image's own camera_info, which may land after it, is waited for by
                # _camera_info_for under the 'match' policy.)
                gap = self._min_radar_gap()
                final = gap is not None and t - self._radar[best].stamp < 0.5 * gap * (1.0 - RATE_MARGIN)
        return best, final

    def _min_radar_gap(self) -> Optional[float]:
        """The shortest interval between buffered radar stamps (~ the radar period); None if unknown."""
        stamps = [s.stamp for s in self._radar]
        gap = min((b - a for a, b in zip(stamps, stamps[1:])), default=0.0)
        return gap if gap > 0 else None

    def _camera_info_for(self, t: float) -> tuple:
        """(camera_info or None, whether that choice is final, whether it is the newest as a fallback)."""
        if self.camera_info == 'newest':
            return self._newest_info(), True, False
        best = self._nearest_info(t)
        if self.camera_info == 'strict':
            if best is not None:
                return best, True, False
            return None, bool(self._infos) and self._infos[-1].stamp > t + self.tolerance, False
        # 'match'. camera_info arrives in stamp order: once one stamped at/after t is in, none nearer follows.
        settled = bool(self._infos) and self._infos[-1].stamp >= t
        if best is not None:
            return best, settled or not self._info_follows_images(), False
        newest = self._newest_info()
        return newest, settled or not self._info_follows_images(), newest is not None

    def _nearest_info(self, t: float) -> Optional[Stamped]:
        """The buffered camera_info stamped nearest t, if within tolerance."""
        best = min(self._infos, key=lambda s: abs(s.stamp - t), default=None)
        return best if best is not None and abs(best.stamp - t) <= self.tolerance else None

    def _newest_info(self) -> Optional[Stamped]:
        return self._infos[-1] if self._infos else self._kept_info

    def _info_follows_images(self) -> bool:
        """Whether the camera_info stream follows the images, so an image can expect one of its own: the
        last two images settled each had a camera_info of its own within tolerance, and at most one image
        arrived ahead of it since a camera_info last came. False for a latched or slower CameraInfo (one
        published once, or one for several images): then no image waits for one."""
        history = self._info_history
        return (self._images_since_info <= 2 and all(info is not None for info in history)
                and (len(history) < 2 or history[0] is not history[1]))

    def _emit(self, img: Stamped, decision: tuple) -> Optional[Pair]:
        radar_index, info, fallback = decision
        radar = None if radar_index is None else self._radar[radar_index]
        self._info_history = [*self._info_history, None if fallback else info][-2:]
        if self.camera_info == 'strict' and info is None:
            self._counts['unpaired_no_camera_info'] += 1
            return None
        if radar is None:
            self._counts['unpaired_no_radar'] += 1
            if not self.emit_without_radar:
                return None
        if fallback:
            self._counts['camera_info_fallback'] += 1
        pair = Pair(image=img, radar=radar, sweeps=self._sweeps_ending_at(radar_index), camera_info=info,
                    camera_info_fallback=fallback)
        if radar is not None:
            self._counts['paired'] += 1
            self._last_offset = pair.radar_offset
        if self._slot is not None:
            self._counts['dropped_stale'] += 1  # the consumer was busy: the older pair is never processed
        self._slot = pair
        self._ready.notify_all()
        return pair

    def _sweeps_ending_at(self, j: Optional[int]) -> Tuple[Stamped, ...]:
        if j is None:
            return ()
        return tuple(self._radar[max(0, j - self.radar_sweeps + 1):j + 1])


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
