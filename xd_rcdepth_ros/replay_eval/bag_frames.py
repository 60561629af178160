"""A bag -> evaluation frames: images paired with radar by stamp (the node's rule), lidar ground truth.

Messages are read in log-time order and fed to sync.RadarImagePairer exactly as the node's callbacks
feed it (a pair is taken after every message, as by a node whose inference keeps up), decoded into
rclpy messages (what a subscriber receives), and turned into Frames by to_frame.messages_to_frame
(the node's own conversion). Each frame then waits for the lidar sweep nearest its stamp (within
`lidar_tolerance`), streaming: only the few sweeps and frames around the current read position are
held, never the whole bag. A frame stops
waiting once a sweep stamped at or after it is read, once the bag's last lidar message is read (a
lidar topic that is empty or ends early), or once images `lidar_wait` s newer than it have been read
(a gap in the lidar): a sweep logged that much later than the camera is not expected.

`plan_frames` runs the same pairing and frame checks without ground truth: the image stamps the node
will answer and the ones it will drop (with the node's reason), which the live evaluation uses.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..bagfile.ego_motion import PoseTrack, find_ego_motion
from ..bagfile.reader import deserialize, header_stamp_ns, reading
from ..sync import RadarImagePairer
from ..to_frame import FrameDropped, messages_to_frame
from .lidar_truth import lidar_points, lidar_to_camera, sparse_ground_truth

# Seconds of newer images after which a frame stops waiting for its lidar sweep (see the docstring).
LIDAR_WAIT_S = 0.5


@dataclass
class EvalFrame:
    index: int                          # ordinal of the image among the bag's images (arrival order)
    stamp_ns: int                       # image header stamp
    frame: object                       # xd_rcdepth_core Frame (depth_sparse/lidar set when there is GT)
    header: object                      # the image's std_msgs/Header (outputs reuse it, like the node)
    radar_offset_s: Optional[float]
    missing_radar_fields: tuple = ()
    gt_note: str = ''                   # why there is no GT ('' when frame.depth_sparse is set)
    lidar_offset_s: Optional[float] = None
    ego_motion: bool = False


@dataclass
class Dropped:
    stamp_ns: int
    reason: str
    message: str


@dataclass
class ReadStats:
    images: int = 0
    image_stamps: list = field(default_factory=list)
    dropped: list = field(default_factory=list)       # Dropped by the frame conversion (node's reasons)
    pairing: dict = field(default_factory=dict)       # RadarImagePairer counters at the end
    lidar_messages: int = 0
    poses: int = 0
    max_pending: int = 0                              # most frames held at once waiting for lidar


def _pairer(tolerance: float, radar_sweeps: int) -> RadarImagePairer:
    return RadarImagePairer(tolerance=tolerance, radar_sweeps=radar_sweeps, camera_info='match')   # as the node


def load_poses(reader, topic: Optional[str]) -> Optional[PoseTrack]:
    """The ego poses of the layout's PoseStamped topic (None without one)."""
    return find_ego_motion(reader, 'ego_pose', topic)[0] if topic else None


def plan_frames(bag_path, layout, field_map: dict, sync_tolerance: float = 0.08, radar_sweeps: int = 1) -> tuple:
    """(image stamps the node will process, [Dropped] the node will drop): BagFrames without ground truth.

    The live evaluation waits for the depth of exactly these stamps; a frame the node's checks drop
    (a CameraInfo of the wrong size, say) is never waited for and is reported with the node's reason.
    """
    from dataclasses import replace
    frames = BagFrames(bag_path, replace(layout, lidar_topic=None, ego_pose_topic=None), field_map,
                       sync_tolerance, radar_sweeps=radar_sweeps)
    stamps = [ef.stamp_ns for ef in frames]
    return stamps, frames.stats.dropped


class BagFrames:
    """Iterate EvalFrames of a bag; `stats` is complete once iteration ends."""

    def __init__(self, bag_path, layout, field_map: dict, sync_tolerance: float = 0.08,
                 lidar_tolerance: float = 0.05, radar_sweeps: int = 1, lidar_wait: float = LIDAR_WAIT_S,
                 window_ns: Optional[tuple] = None, only_images: Optional[set] = None):
        """window_ns: (start, stop) log times to read (random access to a few frames, e.g. a training
        cache built from the bag); only_images: header stamps (ns) of the images to make frames of (the
        others are skipped undecoded; with a window wide enough for their radar, CameraInfo and lidar,
        each frame equals the one a full pass gives)."""
        self.bag_path, self.layout, self.field_map = bag_path, layout, field_map
        self.window_ns, self.only_images = window_ns, only_images
        self.sync_tolerance, self.lidar_tolerance = float(sync_tolerance), float(lidar_tolerance)
        self.radar_sweeps = int(radar_sweeps)
        self.lidar_wait = float(lidar_wait)
        self.stats = ReadStats()

    def __iter__(self) -> Iterator[EvalFrame]:
        lay = self.layout
        pairer = _pairer(self.sync_tolerance, self.radar_sweeps)
        self._pending: deque = deque()           # EvalFrames waiting for their lidar sweep
        self._lidar: list = []                    # (stamp_ns, msg), sorted
        self._last_done = None
        self._newest_image_ns = None
        index = {}
        with reading(self.bag_path) as reader:
            self._poses = load_poses(reader, lay.ego_pose_topic)
            self.stats.poses = len(self._poses) if self._poses else 0
            self._lidar_total = sum(c.msgcount for c in reader.connections if c.topic == lay.lidar_topic)
            topics = {lay.image_topic, lay.camera_info_topic, lay.radar_topic, lay.lidar_topic} - {None}
            conns = [c for c in reader.connections if c.topic in topics]
            start, stop = self.window_ns or (None, None)
            for conn, _, raw in reader.messages(connections=conns, start=start, stop=stop):
                if (self.only_images is not None and conn.topic == lay.image_topic
                        and header_stamp_ns(raw) not in self.only_images):
                    continue
                msg = deserialize(raw, conn.msgtype)
                stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                if conn.topic == lay.lidar_topic:
                    self.stats.lidar_messages += 1
                    bisect.insort(self._lidar, (stamp_ns, id(msg), msg))
                    yield from self._resolve(final=False)
                    self._prune(int(self.lidar_tolerance * 1e9))   # also when no frame is waiting
                    continue
                if conn.topic == lay.image_topic:
                    self._newest_image_ns = max(stamp_ns, self._newest_image_ns or stamp_ns)
                    index[stamp_ns] = self.stats.images
                    self.stats.images += 1
                    self.stats.image_stamps.append(stamp_ns)
                    pairer.add_image(stamp_ns * 1e-9, msg)
                elif conn.topic == lay.radar_topic:
                    pairer.add_radar(stamp_ns * 1e-9, msg)
                else:
                    pairer.add_camera_info(stamp_ns * 1e-9, msg)
                self._take(pairer, index)
                yield from self._resolve(final=False)
            pairer.flush()
            self._take(pairer, index)
            yield from self._resolve(final=True)
        self.stats.pairing = pairer.stats.as_dict()

    def _take(self, pairer, index: dict) -> None:
        pair = pairer.take_latest()
        if pair is None:
            return
        header = pair.image.msg.header
        stamp_ns = header.stamp.sec * 10**9 + header.stamp.nanosec
        try:
            frame, missing = messages_to_frame(
                pair.image.msg, pair.camera_info.msg if pair.camera_info is not None else None,
                [sweep.msg for sweep in pair.sweeps], pair.stamp, self.field_map, self.layout.T_camera_radar)
        except FrameDropped as exc:
            self.stats.dropped.append(Dropped(stamp_ns, exc.reason, str(exc)))
            return
        self._pending.append(EvalFrame(index.get(stamp_ns, -1), stamp_ns, frame, header, pair.radar_offset,
                                       missing))
        self.stats.max_pending = max(self.stats.max_pending, len(self._pending))

    def _resolve(self, final: bool) -> Iterator[EvalFrame]:
        tol_ns = int(self.lidar_tolerance * 1e9)
        while self._pending:
            ef = self._pending[0]
            if not final and self._may_get_nearer_sweep(ef, tol_ns):
                return
            self._pending.popleft()
            self._attach_gt(ef, tol_ns)
            self._last_done = ef.stamp_ns
            self._prune(tol_ns)
            yield ef

    def _may_get_nearer_sweep(self, ef: EvalFrame, tol_ns: int) -> bool:
        """Whether a sweep still to be read could be the nearest to the frame (then it must wait)."""
        # (== : a metadata count that turns out too low must not end every later wait at once)
        if not self.layout.lidar_topic or self.stats.lidar_messages == self._lidar_total:
            return False                   # no lidar, or every sweep of the bag is read
        if self._lidar and self._lidar[-1][0] >= ef.stamp_ns:
            return False                   # sweeps come in order: a later one is farther
        waited_ns = self._newest_image_ns - ef.stamp_ns
        return waited_ns <= tol_ns + int(self.lidar_wait * 1e9)

    def _attach_gt(self, ef: EvalFrame, tol_ns: int) -> None:
        if not self.layout.lidar_topic:
            ef.gt_note = self.layout.lidar_missing
            return
        stamps = [s for s, _, _ in self._lidar]
        i = bisect.bisect_left(stamps, ef.stamp_ns)
        near = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - ef.stamp_ns),
                   default=None)
        if near is None or abs(stamps[near] - ef.stamp_ns) > tol_ns:
            ef.gt_note = f'no lidar sweep within {self.lidar_tolerance} s of the image'
            return
        t_lidar, _, msg = self._lidar[near]
        f = ef.frame
        T, compensated = lidar_to_camera(self.layout, self._poses, ef.stamp_ns, t_lidar)
        pts = lidar_points(msg)
        gt = sparse_ground_truth(pts, T, f.K, f.height, f.width)
        ef.frame = f.replace(depth_sparse=gt, lidar=pts, T_camera_lidar=T)
        ef.lidar_offset_s = (t_lidar - ef.stamp_ns) * 1e-9
        ef.ego_motion = compensated

    def _prune(self, tol_ns: int) -> None:
        """Drop sweeps no later frame can use (frames come in stamp order)."""
        oldest = self._pending[0].stamp_ns if self._pending else self._last_done
        if oldest is None:
            return                         # before the first frame: any sweep may still be its nearest
        floor = oldest - tol_ns
        keep = bisect.bisect_left([s for s, _, _ in self._lidar], floor)
        del self._lidar[:max(0, keep - 1)]
