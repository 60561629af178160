"""A bag -> evaluation frames: images paired with radar by stamp (the node's rule), lidar ground truth.

Messages are read in log-time order and fed to sync.RadarImagePairer exactly as the node's callbacks
feed it (a pair is taken after every message, as by a node whose inference keeps up), decoded into
rclpy messages (what a subscriber receives), and turned into Frames by frames.pair_to_frame. Each
frame then waits for the lidar sweep nearest its stamp (within `lidar_tolerance`), streaming: only the
few sweeps around the frames in flight are held, never the whole bag.

`plan_pairs` runs the same pairing on header stamps alone (no decoding): the list of image stamps the
node will process, which the live evaluation waits for.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..sync import RadarImagePairer
from .frames import FrameDropped, pair_to_frame
from .groundtruth import PoseTrack, lidar_points, lidar_to_camera, sparse_ground_truth
from .reader import deserialize, header_stamp_ns, reading


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


def _pairer(tolerance: float, radar_sweeps: int) -> RadarImagePairer:
    return RadarImagePairer(tolerance=tolerance, radar_sweeps=radar_sweeps)


def load_poses(reader, topic: Optional[str]) -> Optional[PoseTrack]:
    if not topic:
        return None
    from xd_rcdepth_core.geometry import transform_from_pose
    conns = [c for c in reader.connections if c.topic == topic]
    stamps, poses = [], []
    for conn, _, raw in reader.messages(connections=conns):
        msg = deserialize(raw, conn.msgtype)
        p, q = msg.pose.position, msg.pose.orientation
        stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        poses.append(transform_from_pose([p.x, p.y, p.z], [q.w, q.x, q.y, q.z]))
    return PoseTrack(stamps, poses) if stamps else None


def plan_pairs(bag_path, layout, tolerance: float, radar_sweeps: int = 1) -> list:
    """Header stamps (ns) of the images the pairing keeps, in order, from header stamps alone."""
    pairer = _pairer(tolerance, radar_sweeps)
    out = []
    topics = (layout.image_topic, layout.camera_info_topic, layout.radar_topic)
    with reading(bag_path) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        for conn, _, raw in reader.messages(connections=conns):
            stamp = header_stamp_ns(raw)
            if conn.topic == layout.image_topic:
                pairer.add_image(stamp * 1e-9, stamp)
            elif conn.topic == layout.radar_topic:
                pairer.add_radar(stamp * 1e-9, None)
            else:
                pairer.add_camera_info(stamp * 1e-9, None)
            pair = pairer.take_latest()
            if pair is not None:
                out.append(pair.image.msg)
        pairer.flush()
        pair = pairer.take_latest()
        if pair is not None:
            out.append(pair.image.msg)
    return out


class BagFrames:
    """Iterate EvalFrames of a bag; `stats` is complete once iteration ends."""

    def __init__(self, bag_path, layout, field_map: dict, sync_tolerance: float = 0.08,
                 lidar_tolerance: float = 0.05, radar_sweeps: int = 1):
        self.bag_path, self.layout, self.field_map = bag_path, layout, field_map
        self.sync_tolerance, self.lidar_tolerance = float(sync_tolerance), float(lidar_tolerance)
        self.radar_sweeps = int(radar_sweeps)
        self.stats = ReadStats()

    def __iter__(self) -> Iterator[EvalFrame]:
        lay = self.layout
        pairer = _pairer(self.sync_tolerance, self.radar_sweeps)
        self._pending: deque = deque()           # EvalFrames waiting for their lidar sweep
        self._lidar: list = []                    # (stamp_ns, msg), sorted
        self._last_done = None
        index = {}
        with reading(self.bag_path) as reader:
            self._poses = load_poses(reader, lay.ego_pose_topic)
            self.stats.poses = len(self._poses) if self._poses else 0
            topics = {lay.image_topic, lay.camera_info_topic, lay.radar_topic, lay.lidar_topic} - {None}
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, _, raw in reader.messages(connections=conns):
                msg = deserialize(raw, conn.msgtype)
                stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                if conn.topic == lay.lidar_topic:
                    self.stats.lidar_messages += 1
                    bisect.insort(self._lidar, (stamp_ns, id(msg), msg))
                    yield from self._resolve(final=False)
                    continue
                if conn.topic == lay.image_topic:
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
            frame, missing = pair_to_frame(pair, self.field_map, self.layout.T_camera_radar)
        except FrameDropped as exc:
            self.stats.dropped.append(Dropped(stamp_ns, exc.reason, str(exc)))
            return
        self._pending.append(EvalFrame(index.get(stamp_ns, -1), stamp_ns, frame, header, pair.radar_offset,
                                       missing))

    def _resolve(self, final: bool) -> Iterator[EvalFrame]:
        tol_ns = int(self.lidar_tolerance * 1e9)
        while self._pending:
            ef = self._pending[0]
            newest = self._lidar[-1][0] if self._lidar else None
            if not final and self.layout.lidar_topic and (newest is None or newest < ef.stamp_ns):
                return                     # the nearest sweep may still come
            self._pending.popleft()
            self._attach_gt(ef, tol_ns)
            self._last_done = ef.stamp_ns
            self._prune(tol_ns)
            yield ef

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
        floor = (self._pending[0].stamp_ns if self._pending else self._last_done) - tol_ns
        keep = bisect.bisect_left([s for s, _, _ in self._lidar], floor)
        del self._lidar[:max(0, keep - 1)]
