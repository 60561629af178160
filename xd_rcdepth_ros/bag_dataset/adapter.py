"""Recorded rosbag2 folders as a dataset (`xd-rcdepth prepare --dataset rosbag --root BAG [BAG ...]`).

Frames are read with replay-eval's own reader (replay_eval.bag_frames: the node's pairing, the node's
messages -> Frame conversion, single-sweep lidar ground truth moved into the camera through the ego
motion), so a cache made from a bag holds exactly the frames replay-eval scores on it. Topics, radar
fields and extrinsics are found as replay-eval finds them (options > the bag's extrinsics.yaml >
/tf_static).

Ground truth:
- depth_sparse: the lidar sweep nearest the image (the evaluation target);
- depth_accumulated / depth_interp (``lidar_sweeps`` N > 0): the N sweeps before and after it, each
  moved into the camera at the image's time through the vehicle's motion (/ego_pose, an Odometry
  topic, or /tf into base_link: bagfile.ego_motion), nearest point wins, then interpolated (the
  training target). Without ego motion the sweeps cannot be aligned, so accumulation is refused with
  the reason. Moving objects are not removed (a bag has no annotations): they leave trails in the
  accumulated map, so keep N small in traffic, or train on the single sweep (``lidar_sweeps`` 0).

Splits, never by interleaved frames (neighbouring frames are near-duplicates): by bag (``val_bags``),
or by time: the last ``val_fraction`` of each bag's frames is val, with ``guard_s`` seconds between
the blocks left out. Keys are ``<bag folder name>/<image stamp ns>``. A bag that cannot be opened or
has no usable frames is reported (``problems``) and skipped; the run goes on with the others.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from xd_rcdepth_core.data.errors import DatasetError, SampleError
from xd_rcdepth_core.geometry import invert_transform, transform_points
from xd_rcdepth_core.groundtruth import accumulate_depth, interpolate_depth

from ..bagfile.ego_motion import find_ego_motion
from ..bagfile.reader import BagError, deserialize, reading
from ..replay_eval.bag_frames import BagFrames, plan_frames
from ..replay_eval.bag_topics import resolve_layout
from ..replay_eval.lidar_truth import lidar_points
from ..to_frame import parse_field_map

# Log-time margin read around a frame: its radar (sync tolerance), CameraInfo and lidar sweep are within it.
MARGIN_S = 1.0


@dataclass
class RosbagConfig:
    camera_topic: Optional[str] = None
    camera_info_topic: Optional[str] = None
    radar_topic: Optional[str] = None
    lidar_topic: Optional[str] = None
    radar_fields: str = 'rcs,vx,vy'
    T_camera_radar: Optional[list] = None        # 4x4 (rows), else from the bag
    T_camera_lidar: Optional[list] = None
    sync_tolerance: float = 0.08
    lidar_tolerance: float = 0.05
    radar_sweeps: int = 1
    lidar_sweeps: int = 0                        # +-N sweeps accumulated for the training target (0: single sweep)
    ego_motion: str = 'auto'                     # auto | ego_pose | odom | tf | none (bagfile.ego_motion)
    val_bags: tuple = ()                         # bag folder names that form val
    val_fraction: float = 0.0                    # else the last fraction of every bag's frames
    guard_s: float = 1.0                         # seconds left out between train and val blocks


@dataclass
class _Bag:
    path: Path
    layout: object
    stamps: list                                 # image stamps (ns) that make frames, in order
    poses: object = None
    motion: str = 'none'
    lidar_period_ns: Optional[int] = None


@dataclass
class BagProblem:
    bag: str
    reason: str


@dataclass
class RosbagAdapter:
    bags: list
    config: RosbagConfig = field(default_factory=RosbagConfig)

    eval_multiple = 0          # evaluate every row, whatever the camera (no nuScenes-style top crop)

    def __post_init__(self):
        c = self.config
        if not self.bags:
            raise DatasetError('no bag given: --root BAG [BAG ...]')
        if not 0 <= c.val_fraction < 1:
            raise DatasetError(f'--val-fraction must be in [0, 1), got {c.val_fraction}')
        if c.lidar_sweeps < 0:
            raise DatasetError(f'--lidar-sweeps must be >= 0, got {c.lidar_sweeps}')
        names = [Path(b).name for b in self.bags]
        if len(set(names)) != len(names):
            raise DatasetError(f'bag folder names must differ (they name the samples): {names}')
        unknown = sorted(set(c.val_bags) - set(names))
        if unknown:
            raise DatasetError(f'--val-bags {unknown} are not among the bags given ({", ".join(names)})')
        self.field_map = parse_field_map(c.radar_fields)
        self.problems: list = []
        self._bags = {}
        for path in self.bags:
            try:
                self._bags[Path(path).name] = self._open(Path(path))
            except (BagError, DatasetError) as exc:
                self.problems.append(BagProblem(str(path), str(exc)))
        if not self._bags:
            raise DatasetError('no usable bag: ' + '; '.join(f'{p.bag}: {p.reason}' for p in self.problems))

    # -- opening ----------------------------------------------------------------------------------
    def _open(self, path: Path) -> _Bag:
        c = self.config
        T_radar = np.asarray(c.T_camera_radar, float) if c.T_camera_radar is not None else None
        T_lidar = np.asarray(c.T_camera_lidar, float) if c.T_camera_lidar is not None else None
        with reading(path) as reader:
            layout = resolve_layout(reader, path, c.camera_topic, c.camera_info_topic, c.radar_topic,
                                    c.lidar_topic, T_radar, T_lidar, ego_motion=c.ego_motion != 'none')
            if layout.lidar_missing:
                raise DatasetError(f'bag {path}: {layout.lidar_missing} (a training cache needs lidar)')
            poses, motion = (None, 'none') if c.ego_motion == 'none' else find_ego_motion(reader, c.ego_motion)
            lidar = [conn for conn in reader.connections if conn.topic == layout.lidar_topic]
            count = sum(conn.msgcount for conn in lidar)
            duration = max(1, reader.end_time - reader.start_time)
        if c.lidar_sweeps and (poses is None or layout.T_base_camera is None or layout.T_base_lidar is None):
            why = ('it has no ego motion (no /ego_pose PoseStamped, no nav_msgs/Odometry topic, no /tf '
                   'transforms into base_link)' if poses is None else
                   'its extrinsics do not place the camera and the lidar on the vehicle frame (no /tf_static '
                   'tree joining them, no extrinsics.yaml mounts)')
            raise DatasetError(f'bag {path}: cannot accumulate {c.lidar_sweeps} lidar sweeps: {why}, so sweeps '
                               f'taken while driving cannot be aligned. Record odometry, or use --lidar-sweeps 0 '
                               f'(single-sweep ground truth)')
        stamps, _ = plan_frames(path, layout, self.field_map, c.sync_tolerance, c.radar_sweeps)
        if not stamps:
            raise DatasetError(f'bag {path}: no image pairs with radar within {c.sync_tolerance} s')
        return _Bag(path, layout, sorted(stamps), poses, motion, duration // max(1, count - 1) if count > 1 else None)

    def content_settings(self) -> dict:
        """What decides a sample's content (the cache's fingerprint): every setting but the split rule."""
        settings = {k: v for k, v in asdict(self.config).items() if k not in ('val_bags', 'val_fraction', 'guard_s')}
        settings['bags'] = {name: {'frames': len(b.stamps), 'extrinsics': b.layout.extrinsics_source,
                                   'ego_motion': b.motion} for name, b in sorted(self._bags.items())}
        return settings

    # -- splits -----------------------------------------------------------------------------------
    def splits(self) -> dict:
        c = self.config
        out = {'train': [], 'val': []}
        for name, bag in self._bags.items():
            keys = [f'{name}/{t}' for t in bag.stamps]
            if name in c.val_bags:
                out['val'] += keys
            elif c.val_fraction and not c.val_bags:
                cut = int(round(len(bag.stamps) * (1 - c.val_fraction)))
                if cut >= len(bag.stamps):
                    out['train'] += keys
                    continue
                first_val = bag.stamps[cut]
                guard = int(c.guard_s * 1e9)
                out['train'] += [k for k, t in zip(keys, bag.stamps) if t < first_val - guard]
                out['val'] += keys[cut:]
            else:
                out['train'] += keys
        return {s: k for s, k in out.items() if k}

    def image_file(self, key: str):
        return None            # the cache keeps the decoded image (a bag holds no image files)

    # -- frames -----------------------------------------------------------------------------------
    def _parse(self, key: str) -> tuple:
        name, _, stamp = key.rpartition('/')
        if name not in self._bags or not stamp.isdigit():
            raise SampleError(f'rosbag sample key must be <bag>/<stamp ns> of a given bag, got {key!r}')
        return self._bags[name], int(stamp)

    def frame(self, key: str):
        bag, stamp = self._parse(key)
        c = self.config
        margin = int(MARGIN_S * 1e9)
        try:
            frames = list(BagFrames(bag.path, bag.layout, self.field_map, c.sync_tolerance, c.lidar_tolerance,
                                    c.radar_sweeps, window_ns=(stamp - margin, stamp + margin),
                                    only_images={stamp}))
        except BagError as exc:
            raise SampleError(str(exc)) from None
        ef = next((f for f in frames if f.stamp_ns == stamp), None)
        if ef is None or ef.frame.depth_sparse is None:
            why = ef.gt_note if ef is not None else 'the image makes no frame when read again'
            raise SampleError(f'{key}: {why}')
        frame = ef.frame
        if c.lidar_sweeps:
            frame = self._accumulate(bag, stamp, frame)
        return frame.replace(name=key.replace('/', '_'))

    def _accumulate(self, bag: _Bag, stamp: int, frame):
        """+-N lidar sweeps around the image, each moved into the camera at the image's time."""
        lay, c = bag.layout, self.config
        span = int((c.lidar_sweeps + 1.5) * (bag.lidar_period_ns or 100_000_000))
        with reading(bag.path) as reader:
            conns = [conn for conn in reader.connections if conn.topic == lay.lidar_topic]
            sweeps = [deserialize(raw, conn.msgtype)
                      for conn, _, raw in reader.messages(connections=conns, start=stamp - span, stop=stamp + span)]
        sweeps.sort(key=lambda m: m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
        times = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in sweeps]
        if not times:
            raise SampleError(f'no lidar sweep near {stamp} ns in {bag.path}')
        i = bisect.bisect_left(times, stamp)
        centre = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - stamp))
        pick = range(max(0, centre - c.lidar_sweeps), min(len(times), centre + c.lidar_sweeps + 1))
        P_image = bag.poses.at(stamp)
        if P_image is None:
            raise SampleError(f'no ego pose near the image at {stamp} ns in {bag.path}')
        T_camera_world = invert_transform(lay.T_base_camera) @ invert_transform(P_image)
        point_sets = []
        for j in pick:
            P = bag.poses.at(times[j])
            if P is None:
                continue                   # a sweep outside the recorded motion: left out
            T = T_camera_world @ P @ lay.T_base_lidar
            point_sets.append(transform_points(T, lidar_points(sweeps[j])[:, :3]))
        accumulated = accumulate_depth(point_sets, frame.K, frame.height, frame.width)
        return frame.replace(depth_accumulated=accumulated, depth_interp=interpolate_depth(accumulated))
