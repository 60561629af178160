"""Write a dataset in the nuScenes format: the 13 JSON tables, sensor files, map placeholder, splits.

A format writer that knows nothing about where the data comes from (``writer`` feeds it the
synthetic world; tests feed it hand-made scenes). Usage::

    w = NuScenesTableWriter(out_dir, version='v1.0-mini')
    w.sensor('CAM_FRONT', 'camera', T_ego_camera, K=K, width=W, height=H)
    scene = w.scene('synthetic-0000', split='train')
    s = scene.sample(t_us)                                   # keyframes, in time order
    scene.sample_data('CAM_FRONT', t_us, T_world_ego, image, key_sample=s)
    scene.sample_data('LIDAR_TOP', t2_us, T_world_ego2, points_nx5)     # a sweep
    scene.annotation(s, 'car-3', 'vehicle.car', center, size_wlh, rotation_wxyz, ['vehicle.moving'])
    w.close()

Conventions copied from nuScenes (docs/reference.md Part B 5): tokens are 32 hex digits (here derived
deterministically from names, so rewriting gives the same tokens); ego_pose.token == sample_data.token;
key frames go to ``samples/<CH>/``, sweeps to ``sweeps/<CH>/``, named ``<log>__<CH>__<timestamp>`` with one
log per scene (scenes of a synthetic set share timestamps, so the log name keeps their files apart);
a sweep's ``sample_token`` is the next keyframe's sample (the last one after it), which is what the
devkit's ``get_boxes`` interpolation assumes; every sample / sample_data / annotation has
``prev``/``next``. Files: JPEG for cameras, the packed 43-byte radar ``.pcd``, float32 x 5 ``.pcd.bin``.
Splits go to ``<version>/splits.json``, the devkit's custom-split file.
"""
from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...geometry import rotation_to_quaternion
from ..images import encode_png as _encode_png
from .files import NUSCENES_TABLES, write_lidar_bin, write_radar_pcd

ATTRIBUTES = ('vehicle.moving', 'vehicle.stopped', 'vehicle.parked', 'cycle.with_rider',
              'cycle.without_rider', 'pedestrian.sitting_lying_down', 'pedestrian.standing',
              'pedestrian.moving')
VISIBILITY = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))
_EXT = {'camera': 'jpg', 'radar': 'pcd', 'lidar': 'pcd.bin'}


def token(*parts) -> str:
    """A 32-hex-digit token, deterministic in its parts."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def _pose(T) -> dict:
    T = np.asarray(T, np.float64)
    return {'translation': T[:3, 3].tolist(), 'rotation': rotation_to_quaternion(T[:3, :3]).tolist()}


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


class NuScenesTableWriter:
    """Collects records, writes sensor files as they come and the tables on close()."""

    def __init__(self, out_dir, version: str = 'v1.0-mini', jpeg_quality: int = 95, log_name: str = 'synthetic',
                 location: str = 'synthetic', date: str = '2025-01-01'):
        self.root, self.version, self.jpeg_quality = Path(out_dir), version, jpeg_quality
        self.tables = {t: [] for t in NUSCENES_TABLES}
        self.sensors = {}
        self.scenes = []
        self.log_name, self.location, self.date = log_name, location, date
        self.logs = []                    # one log per scene: file names carry it, so scenes never collide
        self.splits = defaultdict(list)
        self.files = 0                    # sensor files written

    def sensor(self, channel: str, modality: str, T_ego_sensor, K=None, width=None, height=None) -> None:
        if modality not in _EXT:
            raise ValueError(f'modality must be camera, radar or lidar, got {modality!r}')
        if modality == 'camera' and (K is None or width is None or height is None):
            raise ValueError(f'camera {channel} needs K, width and height')
        sensor_tok, calib_tok = token('sensor', channel), token('calibrated_sensor', channel)
        self.tables['sensor'].append({'token': sensor_tok, 'channel': channel, 'modality': modality})
        self.tables['calibrated_sensor'].append({
            'token': calib_tok, 'sensor_token': sensor_tok, **_pose(T_ego_sensor),
            'camera_intrinsic': np.asarray(K, np.float64).tolist() if K is not None else []})
        self.sensors[channel] = dict(modality=modality, calib=calib_tok, width=width, height=height)

    def scene(self, name: str, split: str | None = None, description: str = '') -> 'SceneWriter':
        scene = SceneWriter(self, name, description)
        self.scenes.append(scene)
        if split:
            self.splits[split].append(name)
        return scene

    def new_log(self, scene_name: str) -> dict:
        logfile = f'{self.log_name}-{scene_name}'
        log = {'token': token('log', logfile), 'logfile': logfile, 'vehicle': self.log_name,
               'date_captured': self.date, 'location': self.location}
        self.logs.append(log)
        return log

    def write_file(self, logfile: str, channel: str, timestamp_us: int, data, key: bool) -> str:
        """Write one sensor file; returns its path relative to the dataroot."""
        modality = self.sensors[channel]['modality']
        rel = f"{'samples' if key else 'sweeps'}/{channel}/{logfile}__{channel}__{timestamp_us}." \
              f"{_EXT[modality]}"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if modality == 'camera':
            path.write_bytes(_encode_jpeg(data, self.jpeg_quality))
        elif modality == 'radar':
            write_radar_pcd(path, data)
        else:
            write_lidar_bin(path, data)
        self.files += 1
        return rel

    def close(self) -> Path:
        """Link and write everything; returns the version folder."""
        for scene in self.scenes:
            scene.finish()
        t = self.tables
        t['log'] = list(self.logs)
        t['attribute'] = [{'token': token('attribute', a), 'name': a, 'description': a} for a in ATTRIBUTES]
        t['visibility'] = [{'token': k, 'level': lvl, 'description': f'visibility {lvl}'} for k, lvl in VISIBILITY]
        map_token = token('map', self.log_name)
        map_file = f'maps/{map_token}.png'
        (self.root / 'maps').mkdir(parents=True, exist_ok=True)
        # The devkit only checks that the map file exists; a 1 x 1 PNG keeps the set tiny.
        (self.root / map_file).write_bytes(_encode_png(np.zeros((1, 1, 3), np.uint8)))
        t['map'] = [{'token': map_token, 'log_tokens': [log['token'] for log in self.logs],
                     'category': 'semantic_prior', 'filename': map_file}]
        folder = self.root / self.version
        folder.mkdir(parents=True, exist_ok=True)
        for name in NUSCENES_TABLES:
            (folder / f'{name}.json').write_text(json.dumps(t[name], indent=0))
        if self.splits:
            (folder / 'splits.json').write_text(json.dumps(dict(self.splits), indent=1))
        return folder


class SceneWriter:
    """Records of one scene; ``finish`` (called by the writer's close) links the chains."""

    def __init__(self, writer: NuScenesTableWriter, name: str, description: str):
        self.w, self.name, self.description = writer, name, description
        self.log = writer.new_log(name)
        self.token = token('scene', name)
        self.samples = []                  # sample records in time order
        self.data = defaultdict(list)      # channel -> sample_data records
        self.annotations = defaultdict(list)   # instance key -> annotation records

    def sample(self, timestamp_us: int) -> str:
        if self.samples and timestamp_us <= self.samples[-1]['timestamp']:
            raise ValueError('keyframes must be added in increasing time order')
        rec = {'token': token('sample', self.name, timestamp_us), 'timestamp': int(timestamp_us),
               'scene_token': self.token}
        self.samples.append(rec)
        return rec['token']

    def sample_data(self, channel: str, timestamp_us: int, T_world_ego, data, key_sample: str | None = None) -> str:
        """One sensor reading; ``key_sample``: the sample token when this is that keyframe's reading."""
        sensor = self.w.sensors[channel]
        sd_tok = token('sample_data', self.name, channel, timestamp_us)
        rel = self.w.write_file(self.log['logfile'], channel, int(timestamp_us), data, key_sample is not None)
        self.w.tables['ego_pose'].append({'token': sd_tok, 'timestamp': int(timestamp_us), **_pose(T_world_ego)})
        rec = {'token': sd_tok, 'sample_token': key_sample or '', 'ego_pose_token': sd_tok,
               'calibrated_sensor_token': sensor['calib'], 'timestamp': int(timestamp_us),
               'fileformat': _EXT[sensor['modality']].split('.')[0], 'is_key_frame': key_sample is not None,
               'height': sensor['height'] or 0, 'width': sensor['width'] or 0, 'filename': rel}
        self.data[channel].append(rec)
        return sd_tok

    def annotation(self, sample_token: str, instance: str, category: str, center, size_wlh, rotation_wxyz,
                   attributes=(), visibility: str = '4', num_lidar_pts: int = 1, num_radar_pts: int = 0) -> str:
        unknown = [a for a in attributes if a not in ATTRIBUTES]
        if unknown:
            raise ValueError(f'unknown attribute(s) {unknown}; nuScenes has {ATTRIBUTES}')
        rec = {'token': token('sample_annotation', self.name, instance, sample_token), 'sample_token': sample_token,
               'instance_token': token('instance', self.name, instance), 'visibility_token': visibility,
               'attribute_tokens': [token('attribute', a) for a in attributes],
               'translation': [float(c) for c in center], 'size': [float(s) for s in size_wlh],
               'rotation': [float(q) for q in rotation_wxyz], 'num_lidar_pts': int(num_lidar_pts),
               'num_radar_pts': int(num_radar_pts), '_category': category}
        self.annotations[instance].append(rec)
        return rec['token']

    def finish(self) -> None:
        t = self.w.tables
        if not self.samples:
            raise ValueError(f'scene {self.name} has no keyframe samples')
        _link(self.samples)
        t['sample'].extend(self.samples)
        times = np.array([s['timestamp'] for s in self.samples])
        for channel, recs in self.data.items():
            recs.sort(key=lambda r: r['timestamp'])
            _link(recs)
            for r in recs:
                if not r['sample_token']:     # a sweep belongs to the next keyframe (devkit convention)
                    i = min(int(np.searchsorted(times, r['timestamp'])), len(times) - 1)
                    r['sample_token'] = self.samples[i]['token']
            t['sample_data'].extend(recs)
        categories = {c['name']: c['token'] for c in t['category']}
        order = {s['token']: i for i, s in enumerate(self.samples)}
        for instance, anns in self.annotations.items():
            anns.sort(key=lambda a: order[a['sample_token']])
            _link(anns)
            category = anns[0].pop('_category')
            for a in anns[1:]:
                a.pop('_category')
            if category not in categories:
                categories[category] = token('category', category)
                t['category'].append({'token': categories[category], 'name': category, 'description': category})
            t['instance'].append({'token': anns[0]['instance_token'], 'category_token': categories[category],
                                  'nbr_annotations': len(anns), 'first_annotation_token': anns[0]['token'],
                                  'last_annotation_token': anns[-1]['token']})
            t['sample_annotation'].extend(anns)
        t['scene'].append({'token': self.token, 'log_token': self.log['token'], 'nbr_samples': len(self.samples),
                           'first_sample_token': self.samples[0]['token'],
                           'last_sample_token': self.samples[-1]['token'], 'name': self.name,
                           'description': self.description})


def _link(records: list) -> None:
    """prev/next tokens along a time-ordered list of records."""
    for i, r in enumerate(records):
        r['prev'] = records[i - 1]['token'] if i > 0 else ''
        r['next'] = records[i + 1]['token'] if i + 1 < len(records) else ''
