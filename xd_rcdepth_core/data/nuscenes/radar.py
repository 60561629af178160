"""Radar points of one nuScenes sample: one or several radars, one or several sweeps, all 18 fields.

Frame convention: all points are expressed in the *reference radar* frame, the first requested radar
that the sample has (RADAR_FRONT by default) at its keyframe time, and the Frame's ``T_camera_radar``
maps that frame into the camera at the camera time (radar -> ego(t_radar) -> global -> ego(t_cam) ->
camera; the ego motion between the two timestamps is folded in, as in the devkit's
``map_pointcloud_to_image``). With the default single RADAR_FRONT sweep the points are the file's
values untouched, as in the references.

Other radars and older sweeps are moved into the reference frame through their own ego poses
(``radar.accumulate_sweeps``). Their velocity vectors (vx, vy and vx_comp, vy_comp, radar-frame x
forward, y left) are rotated by the same planar rotation so that every point's velocity is in the
reference radar's axes: mixing a side radar's lateral axis with the front radar's would be
meaningless. (The references use a single sweep of one radar and never rotate velocities; in that
case nothing is rotated here either.) A ``dt`` column (reference time minus sweep time, s) is
appended when more than one sweep per radar is loaded.

Every return is kept: the devkit filters are disabled per call, never globally.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...frame import NUSCENES_RADAR_FIELDS
from ...geometry import invert_transform
from ...radar import RadarSweep, accumulate_sweeps
from ..errors import DataWarning, SampleError
from .files import read_radar_pcd
from .poses import sensor_pose, timestamp_s

ALL_RADARS = ('RADAR_FRONT', 'RADAR_FRONT_LEFT', 'RADAR_FRONT_RIGHT', 'RADAR_BACK_LEFT', 'RADAR_BACK_RIGHT')
_VELOCITY_PAIRS = ((NUSCENES_RADAR_FIELDS.index('vx'), NUSCENES_RADAR_FIELDS.index('vy')),
                   (NUSCENES_RADAR_FIELDS.index('vx_comp'), NUSCENES_RADAR_FIELDS.index('vy_comp')))


def _rotate_velocities(points: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Velocities (radar-plane vectors) expressed in the axes of a frame rotated by R (3 x 3)."""
    out = points.copy()
    R2 = R[:2, :2]
    for ix, iy in _VELOCITY_PAIRS:
        out[:, [ix, iy]] = points[:, [ix, iy]] @ R2.T
    return out


def _sweep_chain(nusc, sd_token: str, n_sweeps: int, dataroot):
    """The keyframe sweep and up to n_sweeps - 1 earlier ones, with their points (file checks first).

    A missing or corrupt keyframe file spoils the sample (SampleError); an earlier one only ends the
    chain with a DataWarning.
    """
    out = []
    token = sd_token
    while token and len(out) < n_sweeps:
        sd = nusc.get('sample_data', token)
        path = dataroot / sd['filename']
        try:
            points = read_radar_pcd(path)
        except SampleError as exc:
            if not out:
                raise
            warnings.warn(DataWarning(f'radar sweep skipped: {exc}'), stacklevel=2)
            break
        out.append((sd, points))
        token = sd['prev']
    return out


def load_radar(nusc, sample: dict, channels, n_sweeps: int, dataroot, T_world_camera: np.ndarray):
    """(points N x F float32, fields, T_camera_radar) for one sample.

    A sample without any of the requested radar records gives an empty cloud with a DataWarning
    (the real nuScenes sample in shared/data has no radar at all).
    """
    if n_sweeps < 1:
        raise ValueError(f'radar sweeps must be >= 1, got {n_sweeps}')
    multi = n_sweeps > 1
    fields = NUSCENES_RADAR_FIELDS + (('dt',) if multi else ())
    present = [ch for ch in channels if ch in sample['data']]
    missing = [ch for ch in channels if ch not in sample['data']]
    if missing:
        warnings.warn(DataWarning(f'sample {sample["token"]} has no {", ".join(missing)} record: '
                                  f'{"empty radar" if not present else "loaded " + ", ".join(present)}'),
                      stacklevel=2)
    if not present:
        return np.zeros((0, len(fields)), np.float32), fields, np.eye(4)
    ref_sd = nusc.get('sample_data', sample['data'][present[0]])
    T_world_ref = sensor_pose(nusc, ref_sd)
    T_camera_radar = invert_transform(T_world_camera) @ T_world_ref
    if not multi and len(present) == 1:
        points = read_radar_pcd(dataroot / ref_sd['filename'])
        return points, fields, T_camera_radar
    T_ref_world = invert_transform(T_world_ref)
    sweeps = []
    for ch in present:
        for sd, points in _sweep_chain(nusc, sample['data'][ch], n_sweeps, dataroot):
            T_world_radar = sensor_pose(nusc, sd)
            if sd['token'] != ref_sd['token']:
                points = _rotate_velocities(points, (T_ref_world @ T_world_radar)[:3, :3])
            sweeps.append(RadarSweep(points, T_world_radar, timestamp_s(sd)))
    stacked = accumulate_sweeps(sweeps, T_world_ref, target_time=timestamp_s(ref_sd))
    if not multi:
        stacked = stacked[:, :-1]   # one sweep per radar: the dt column carries nothing useful
    return np.ascontiguousarray(stacked, np.float32), fields, T_camera_radar
