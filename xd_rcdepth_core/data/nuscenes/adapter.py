"""nuScenes -> Frame, through the official devkit (tables, files, poses, boxes are all the devkit's).

One Frame per CAM_FRONT keyframe (``sample``). Per Frame:
- image: the keyframe CAM_FRONT JPEG, K its ``camera_intrinsic``;
- radar: RADAR_FRONT (or any subset of the five radars), all 18 fields, no devkit filters, expressed
  in the reference radar's frame with ``T_camera_radar`` folding in the ego motion between the radar
  and camera timestamps (``radar``); optional multi-sweep accumulation;
- depth_sparse: single LIDAR_TOP keyframe sweep (the evaluation target), with ``lidar`` and
  ``T_camera_lidar``;
- depth_accumulated: +-N LIDAR_TOP sweeps with movers removed from the 3-D boxes
  (``lidar``, ``movers`` document the rule); depth_interp: its linear
  interpolation (``groundtruth.interpolate_depth``), the training target.

Splits: a ``<version>/splits.json`` (the devkit's custom-split file; the synthetic writer makes one)
wins; otherwise the official scene lists of ``nuscenes.utils.splits`` by version (v1.0-trainval:
train 700 / val 150 scenes; v1.0-test: test; v1.0-mini: mini_train / mini_val as train / val).
Scenes in no list go to split ``'unlisted'``. As in the references the last keyframe of every scene
is skipped (``skip_last_keyframe``), which gives 27,430 / 5,869 / 5,858 train / val / test samples
on the full dataset (docs/reference.md Part A 1.1; not re-counted here: the full dataset is not on disk);
``prepare``'s summary compares its counts with those when it prepares the official full splits
(``compare_sample_counts``).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ...frame import Frame
from ...geometry import invert_transform, sparse_depth_map
from ...groundtruth import interpolate_depth
from ..errors import DatasetError, DataWarning, SampleError
from ..images import read_image_file
from .files import check_dataroot, check_lidar_bin, read_lidar_bin
from .lidar import accumulated_depth, single_sweep_projection
from .movers import MOVER_RULES, MoverBoxes
from .poses import sensor_pose, timestamp_s
from .radar import ALL_RADARS, load_radar

# Reference sample counts (train / val / test) of the CaFNet/LiRCDepth file lists.
REFERENCE_SAMPLE_COUNTS = {'train': 27430, 'val': 5869, 'test': 5858}
_OFFICIAL_SPLITS = {'v1.0-trainval': {'train': 'train', 'val': 'val'},
                    'v1.0-test': {'test': 'test'},
                    'v1.0-mini': {'train': 'mini_train', 'val': 'mini_val'}}
# The versions whose official splits the reference counts are of.
_COUNTED_VERSIONS = {'v1.0-trainval': ('train', 'val'), 'v1.0-test': ('test',)}


def compare_sample_counts(version: str, counts: dict) -> Optional[str]:
    """One line comparing the samples per split of an official full split set (``counts``: split ->
    samples the adapter lists, the last keyframe of each scene skipped) with the references' counts;
    None for versions the references did not count (v1.0-mini, custom splits)."""
    splits = [s for s in _COUNTED_VERSIONS.get(version, ()) if s in counts]
    if not splits:
        return None
    parts = []
    for s in splits:
        n, ref = counts[s], REFERENCE_SAMPLE_COUNTS[s]
        parts.append(f'{s} {n:,} ' + ('(same)' if n == ref else f'({n - ref:+,}: references {ref:,})'))
    same = all(counts[s] == REFERENCE_SAMPLE_COUNTS[s] for s in splits)
    return (f'{version} sample counts vs the references\' lists: ' + ', '.join(parts)
            + ('' if same else ' -- an incomplete download, or other scene lists than the official ones?'))


@dataclass(frozen=True)
class NuScenesConfig:
    camera: str = 'CAM_FRONT'
    radars: tuple = ('RADAR_FRONT',)      # any subset of ALL_RADARS; the first present is the reference
    radar_sweeps: int = 1                 # references: the keyframe sweep only
    lidar: str = 'LIDAR_TOP'
    accumulate: bool = True               # build depth_accumulated and depth_interp
    lidar_sweeps: int = 80                # +-N other sweeps (references: 80 for train/val)
    mover_rule: str = 'category'          # see movers.py
    box_scale: float = 1.1                # annotation boxes are tight: inflate by 10 % for masking
    mask_behind_movers: bool = True       # drop other-sweep points hidden by a keyframe mover
    ego_radius: float = 1.0               # devkit remove_close on other sweeps (from_file_multisweep default)
    min_depth: float = 1.0                # devkit map_pointcloud_to_image min_dist
    skip_last_keyframe: bool = True       # references: `while sample_token != last_sample_token`

    def __post_init__(self):
        bad = [r for r in self.radars if r not in ALL_RADARS]
        if bad:
            raise ValueError(f'unknown radar channel(s) {bad}; choose from {ALL_RADARS}')
        if self.mover_rule not in MOVER_RULES:
            raise ValueError(f'mover_rule must be one of {MOVER_RULES}, got {self.mover_rule!r}')
        if self.radar_sweeps < 1 or self.lidar_sweeps < 0:
            raise ValueError('radar_sweeps must be >= 1 and lidar_sweeps >= 0')


def open_nuscenes(root, version: str):
    """The devkit's NuScenes after checking the folder, with one clear error for a bad table set."""
    check_dataroot(root, version)
    from nuscenes.nuscenes import NuScenes
    try:
        return NuScenes(version=version, dataroot=str(root), verbose=False)
    except (AssertionError, KeyError, IndexError, FileNotFoundError, json.JSONDecodeError) as exc:
        raise DatasetError(f'the nuScenes devkit cannot load {Path(root) / version}: '
                           f'{type(exc).__name__}: {exc}') from exc


def scene_splits(nusc) -> dict:
    """split name -> scene names present in this table set."""
    custom = Path(nusc.dataroot) / nusc.version / 'splits.json'
    if custom.is_file():
        lists = json.loads(custom.read_text())
    else:
        from nuscenes.utils.splits import create_splits_scenes
        official = create_splits_scenes()
        lists = {ours: official[theirs] for ours, theirs in _OFFICIAL_SPLITS.get(nusc.version, {}).items()}
    present = [s['name'] for s in nusc.scene]
    out = {name: [s for s in present if s in set(scenes)] for name, scenes in lists.items()}
    listed = {s for scenes in out.values() for s in scenes}
    unlisted = [s for s in present if s not in listed]
    if unlisted:
        out['unlisted'] = unlisted
    return {k: v for k, v in out.items() if v}


class NuScenesAdapter:
    """Frames of a nuScenes-format dataset (real or written by ``writer``)."""

    def __init__(self, root, version: str = 'v1.0-trainval', config: NuScenesConfig = NuScenesConfig(),
                 nusc=None):
        self.root = Path(root)
        self.version = version
        self.config = config
        self.nusc = nusc if nusc is not None else open_nuscenes(self.root, version)
        self.movers = MoverBoxes(self.nusc, config.mover_rule)
        self.last_accumulation = None      # AccumulationStats of the last frame() (diagnostics)

    # Evaluation drops the top rows to a multiple of 32: the references' image[4:] (900 -> 896).
    eval_multiple = 32

    def content_settings(self) -> dict:
        """What decides a sample's content (the cache fingerprints it): the version and the config,
        except skip_last_keyframe, which only decides which samples there are."""
        settings = asdict(self.config)
        del settings['skip_last_keyframe']
        return {'version': self.version, **settings}

    def reference_count_check(self, counts: dict) -> Optional[str]:
        """compare_sample_counts when these are the official full splits the references counted."""
        custom = (self.root / self.version / 'splits.json').is_file()
        if custom or not self.config.skip_last_keyframe:
            return None
        return compare_sample_counts(self.version, counts)

    # --- sample lists -------------------------------------------------------------------------
    def scene_samples(self, scene: dict) -> list:
        """Sample tokens of a scene in time order (without the last one if so configured)."""
        tokens, token = [], scene['first_sample_token']
        while token:
            if self.config.skip_last_keyframe and token == scene['last_sample_token']:
                break
            tokens.append(token)
            token = self.nusc.get('sample', token)['next']
        return tokens

    def splits(self) -> dict:
        """split name -> sample tokens."""
        by_name = {s['name']: s for s in self.nusc.scene}
        out = {}
        for split, names in scene_splits(self.nusc).items():
            out[split] = [t for name in names for t in self.scene_samples(by_name[name])]
        return out

    # --- one sample ---------------------------------------------------------------------------
    def _camera_record(self, sample: dict) -> dict:
        cam = self.config.camera
        if cam not in sample['data']:
            raise SampleError(f'sample {sample["token"]} has no {cam} record')
        return self.nusc.get('sample_data', sample['data'][cam])

    def image_file(self, token: str) -> Path:
        """The camera file a Frame's image is decoded from (the cache keeps its bytes verbatim)."""
        sample = self.nusc.get('sample', token)
        return self.root / self._camera_record(sample)['filename']

    def frame(self, token: str) -> Frame:
        """The Frame of one sample token; SampleError if a keyframe file is missing or corrupt."""
        nusc, cfg = self.nusc, self.config
        sample = nusc.get('sample', token)
        cam_sd = self._camera_record(sample)
        image = read_image_file(self.root / cam_sd['filename'])
        H, W = image.shape[:2]
        K = np.asarray(nusc.get('calibrated_sensor', cam_sd['calibrated_sensor_token'])['camera_intrinsic'],
                       np.float64)
        if K.shape != (3, 3):
            raise SampleError(f'{cfg.camera} calibrated_sensor of sample {token} has no 3 x 3 camera_intrinsic')
        T_world_camera = sensor_pose(nusc, cam_sd)
        radar, fields, T_camera_radar = load_radar(nusc, sample, cfg.radars, cfg.radar_sweeps, self.root,
                                                   T_world_camera)
        gt = self._lidar_gt(sample, cam_sd, T_world_camera, K, H, W)
        return Frame(image=image, K=K, radar=radar, radar_fields=fields, T_camera_radar=T_camera_radar,
                     timestamp=timestamp_s(cam_sd), T_world_camera=T_world_camera, name=token, **gt)

    def _lidar_gt(self, sample, cam_sd, T_world_camera, K, H, W) -> dict:
        nusc, cfg = self.nusc, self.config
        if cfg.lidar not in sample['data']:
            warnings.warn(DataWarning(f'sample {sample["token"]} has no {cfg.lidar} record: no depth GT'),
                          stacklevel=3)
            return {}
        lidar_sd = nusc.get('sample_data', sample['data'][cfg.lidar])
        path = self.root / lidar_sd['filename']
        check_lidar_bin(path)
        points = read_lidar_bin(path)
        T_camera_lidar = invert_transform(T_world_camera) @ sensor_pose(nusc, lidar_sd)
        key_proj = single_sweep_projection(nusc, lidar_sd['token'], cam_sd['token'], H, W, cfg.min_depth)
        sparse = sparse_depth_map(key_proj, H, W)
        out = dict(lidar=points, T_camera_lidar=T_camera_lidar, depth_sparse=sparse)
        if cfg.accumulate:
            acc, self.last_accumulation = accumulated_depth(nusc, lidar_sd, sparse, T_world_camera, K, H, W, self.root,
                                       cfg.lidar_sweeps, self.movers, cfg.box_scale, cfg.ego_radius,
                                       cfg.min_depth, cfg.mask_behind_movers)
            out['depth_accumulated'] = acc
            out['depth_interp'] = np.asarray(interpolate_depth(acc), np.float32)
        return out
