"""A synthetic dataset scene as native-rate sensor samples.

The synthetic disk format stores camera keyframes only (every 12 Hz camera frame, each with the one
radar and lidar sweep nearest to it). A bag should hold what a vehicle records: every radar sweep at
13 Hz and every lidar sweep at 20 Hz, each at its own time. So:

- camera images and K are read from the dataset folder (exactly the pixels of the written Frames);
- radar, lidar and ego poses come from the synthetic World rebuilt from the scene's seed, at the
  sensors' native times over the camera span (plus a margin so the first and last images have a
  sweep on each side). The rebuild is checked: the first frame's stored radar and lidar must equal the
  World's sweeps bit for bit, otherwise the dataset came from another generator version and we stop.

Extrinsics are the static mounts (World.T_ego_sensor). A replayed frame therefore differs from the
stored Frame only in T_camera_radar: the Frame folds in the ego motion between radar and camera times,
the bag (like any live system with static extrinsics) does not.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from xd_rcdepth_core.frame import LIDAR_FIELDS
from xd_rcdepth_core.synthetic import CAMERA, LIDAR, RADAR, SyntheticStore, World, read_meta
from xd_rcdepth_core.synthetic.world import settings_from_meta

from ..bagfile import schema
from .sources import RANK, CameraSample, CloudSample, Pending, PoseSample, SceneCalibration, SceneSource

MARGIN_S = 0.1    # sweeps written before the first and after the last image


def scene_names(root) -> list:
    return [s['name'] for s in read_meta(root).get('scenes', [])]


def _world(meta: dict, scene: dict):
    """The World that generate_sequence used for this scene (same seed, same layout duration rule)."""
    settings = settings_from_meta(meta)   # a --randomise dataset's scenes come from the randomised world
    needed = int(scene['frames']) / settings.camera_rate + 1.0
    if needed > settings.duration:
        settings = replace(settings, duration=needed)
    return World(tuple(scene['seed']), settings)


class SyntheticSceneSource(SceneSource):
    def __init__(self, root, scene: str, time_offset_ns: int = schema.SYNTHETIC_EPOCH_NS):
        self.root = Path(root)
        self.store = SyntheticStore(self.root)
        scenes = {s['name']: s for s in self.store.meta.get('scenes', [])}
        if scene not in scenes:
            raise ValueError(f'no scene {scene!r} in the synthetic dataset {self.root}; scenes: '
                             f'{", ".join(scenes) or "none"}')
        self.scene = scene
        self.indices = [i for i, (name, _) in enumerate(self.store.index) if name == scene]
        if not self.indices:
            raise ValueError(f'scene {scene!r} of {self.root} has no frame on disk')
        self.world = _world(self.store.meta, scenes[scene])
        self.offset = int(time_offset_ns)
        first = self.store[self.indices[0]]
        self._check_world(first)
        self.times = [self._frame_time(i) for i in (self.indices[0], self.indices[-1])]
        self.lidar_fields = LIDAR_FIELDS
        self.channels = (CAMERA, RADAR, LIDAR)
        self.calibration = SceneCalibration(
            dataset='synthetic', scene=scene, camera=CAMERA, radars=(RADAR,), lidar=LIDAR,
            T_base_sensor={ch: self.world.T_ego_sensor[ch] for ch in self.channels},
            K=first.K, image_size=(first.height, first.width), radar_fields=first.radar_fields,
            time_offset_ns=self.offset)

    def _check_world(self, frame) -> None:
        w, t = self.world, frame.timestamp
        radar = w.radar_sweep(w.sensor_time(RADAR, w.sensor_index(RADAR, t))).points
        lidar = w.lidar_sweep(w.sensor_time(LIDAR, w.sensor_index(LIDAR, t))).points
        if not (np.array_equal(radar, frame.radar) and frame.lidar is not None
                and np.array_equal(lidar, frame.lidar)):
            raise ValueError(f'{self.root}: the synthetic World rebuilt from the seed of {self.scene} does not '
                             f'reproduce frame {frame.name} (written by another generator version?); '
                             f'regenerate the dataset with `xd-rcdepth synth`')

    def _ns(self, t: float) -> int:
        return self.offset + int(round(t * 1e9))

    def pending(self) -> list:
        items, seq = [], 0
        t0, t1 = self.times[0] - MARGIN_S, self.times[1] + MARGIN_S
        pose_times = set()
        for i in self.indices:
            t = self._frame_time(i)
            items.append(Pending(self._ns(t), RANK['camera'], seq, lambda i=i: self._camera(i)))
            pose_times.add(t)
            seq += 1
        for channel, kind in ((RADAR, 'radar'), (LIDAR, 'lidar')):
            for t in self.world.sensor_times(channel, t0, t1):
                t = float(t)
                items.append(Pending(self._ns(t), RANK[kind], seq, lambda t=t, c=channel, k=kind: self._cloud(t, c, k)))
                pose_times.add(t)
                seq += 1
        for t in sorted(pose_times):
            items.append(Pending(self._ns(t), RANK['pose'], seq,
                                 lambda t=t: PoseSample(self._ns(t), self.world.ego_pose(t))))
            seq += 1
        return items

    def _frame_time(self, index: int) -> float:
        """Camera time of a stored frame (generate_sequence: frame i is the camera's i-th reading)."""
        return float(self.world.sensor_time(CAMERA, self.store.index[index][1]))

    def _camera(self, index: int) -> CameraSample:
        frame = self.store[index]
        return CameraSample(self._ns(frame.timestamp), self.calibration.camera, frame.K,
                            (frame.height, frame.width), rgb=frame.image)

    def _cloud(self, t: float, channel: str, kind: str) -> CloudSample:
        if kind == 'radar':
            sweep = self.world.radar_sweep(t)
            return CloudSample(self._ns(t), channel, kind, sweep.points, self.calibration.radar_fields)
        sweep = self.world.lidar_sweep(t)
        return CloudSample(self._ns(t), channel, kind, sweep.points, self.lidar_fields)
