"""A nuScenes scene as native-rate sensor samples, read through the official devkit.

Every sample_data record of the chosen channels over the scene (keyframes and sweeps: camera ~12 Hz,
radars ~13 Hz, LIDAR_TOP 20 Hz), each at its own timestamp, with the ego pose of that record. Files go
through the project's nuScenes readers (xd_rcdepth_core.data: checked .pcd / .pcd.bin, all 18 radar
fields, no devkit filters). Sweeps whose file is not on disk (only the keyframe `samples/` folder
downloaded, or the synthetic nuScenes writer's keyframe-only camera) are skipped and counted.

Extrinsics are the calibrated_sensor mounts (sensor -> ego), constant within a scene.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from xd_rcdepth_core.data.images import decode_image, read_image_file
from xd_rcdepth_core.data.nuscenes.adapter import open_nuscenes
from xd_rcdepth_core.data.nuscenes.files import read_lidar_bin, read_radar_pcd
from xd_rcdepth_core.data.nuscenes.poses import ego_pose, mount
from xd_rcdepth_core.data.nuscenes.radar import ALL_RADARS
from xd_rcdepth_core.frame import LIDAR_FIELDS, NUSCENES_RADAR_FIELDS

from .sources import RANK, CameraSample, CloudSample, Pending, PoseSample, SceneCalibration, SceneSource


def detect_version(root) -> str:
    """The single v1.0-* table folder under root (the caller passes --version when there are several)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f'nuScenes dataroot {root} does not exist')
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith('v1.0'))
    if len(found) != 1:
        raise ValueError(f'{root} holds {len(found)} nuScenes version folders ({", ".join(found) or "none"}); '
                         f'name one with --version')
    return found[0]


def open_dataset(root, version: str | None):
    return open_nuscenes(root, version or detect_version(root))


def scene_names(nusc) -> list:
    return [s['name'] for s in nusc.scene]


def _chain(nusc, first_token: str) -> list:
    """All sample_data records of one channel in a scene, in time order (prev/next links)."""
    sd = nusc.get('sample_data', first_token)
    while sd['prev']:
        sd = nusc.get('sample_data', sd['prev'])
    out = [sd]
    while out[-1]['next']:
        out.append(nusc.get('sample_data', out[-1]['next']))
    return out


class NuScenesSceneSource(SceneSource):
    def __init__(self, nusc, scene: str, camera: str = 'CAM_FRONT', radars=None, lidar: str = 'LIDAR_TOP'):
        self.nusc, self.root = nusc, Path(nusc.dataroot)
        by_name = {s['name']: s for s in nusc.scene}
        if scene not in by_name:
            raise ValueError(f'no scene {scene!r} in {self.root / nusc.version}; scenes: '
                             f'{", ".join(list(by_name)[:10])}{" ..." if len(by_name) > 10 else ""}')
        first = nusc.get('sample', by_name[scene]['first_sample_token'])
        if camera not in first['data']:
            raise ValueError(f'scene {scene} has no {camera} records (channels: {", ".join(sorted(first["data"]))})')
        notes = []
        radars = tuple(ALL_RADARS if radars is None else radars)
        present = tuple(r for r in radars if r in first['data'])
        if len(present) < len(radars):
            notes.append(f'radar channel(s) not in scene {scene}: {", ".join(sorted(set(radars) - set(present)))}')
        if lidar and lidar not in first['data']:
            notes.append(f'{lidar} not in scene {scene}: the bag has no lidar (no ground truth)')
            lidar = None
        self.chains = {ch: _chain(nusc, first['data'][ch]) for ch in (camera,) + present + ((lidar,) if lidar else ())}
        cam0 = self.chains[camera][0]
        K = np.asarray(nusc.get('calibrated_sensor', cam0['calibrated_sensor_token'])['camera_intrinsic'], np.float64)
        if K.shape != (3, 3):
            raise ValueError(f'{camera} of scene {scene} has no 3 x 3 camera_intrinsic')
        size = (int(cam0.get('height') or 0), int(cam0.get('width') or 0))
        if not all(size):   # older table sets leave them 0: decode the first image once
            size = read_image_file(self.root / cam0['filename']).shape[:2]
        self.skipped = Counter()
        self.calibration = SceneCalibration(
            dataset='nuscenes', scene=scene, camera=camera, radars=present, lidar=lidar,
            T_base_sensor={ch: mount(nusc, recs[0]) for ch, recs in self.chains.items()},
            K=K, image_size=size, radar_fields=NUSCENES_RADAR_FIELDS, notes=notes)

    def pending(self) -> list:
        cal = self.calibration
        items, seq, poses = [], 0, {}
        for channel, records in self.chains.items():
            kind = 'camera' if channel == cal.camera else 'lidar' if channel == cal.lidar else 'radar'
            for sd in records:
                if not (self.root / sd['filename']).is_file():
                    self.skipped[channel] += 1
                    continue
                t_ns = int(sd['timestamp']) * 1000
                load = (lambda sd=sd: self._camera(sd)) if kind == 'camera' else \
                    (lambda sd=sd, c=channel, k=kind: self._cloud(sd, c, k))
                items.append(Pending(t_ns, RANK[kind], seq, load))
                poses.setdefault(t_ns, sd)
                seq += 1
        for t_ns, sd in poses.items():
            items.append(Pending(t_ns, RANK['pose'], seq, lambda t=t_ns, sd=sd: PoseSample(t, ego_pose(self.nusc, sd))))
            seq += 1
        for channel, n in self.skipped.items():
            cal.notes.append(f'{channel}: {n} of {len(self.chains[channel])} records have no file on disk '
                             f'(sweeps not downloaded?): skipped')
        return items

    def _camera(self, sd) -> CameraSample:
        path = self.root / sd['filename']
        data = path.read_bytes()
        t_ns = int(sd['timestamp']) * 1000
        cal = self.calibration
        if data[:2] == b'\xff\xd8':   # JPEG (every nuScenes camera): the writer keeps or decodes these bytes
            return CameraSample(t_ns, cal.camera, cal.K, cal.image_size, jpeg=data)
        rgb = decode_image(data, path)
        return CameraSample(t_ns, cal.camera, cal.K, rgb.shape[:2], rgb=rgb)

    def _cloud(self, sd, channel: str, kind: str) -> CloudSample:
        path = self.root / sd['filename']
        if kind == 'radar':
            return CloudSample(int(sd['timestamp']) * 1000, channel, kind, read_radar_pcd(path),
                               self.calibration.radar_fields)
        return CloudSample(int(sd['timestamp']) * 1000, channel, kind, read_lidar_bin(path), LIDAR_FIELDS)
