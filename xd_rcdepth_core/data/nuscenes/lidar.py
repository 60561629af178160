"""Lidar ground truth of one nuScenes sample in its camera: single sweep and accumulated over +-N sweeps.

Single sweep (the evaluation target): the references' points, from the devkit's own
``map_pointcloud_to_image`` (lidar -> ego(t_lidar) -> global -> ego(t_cam) -> camera, depth > 1 m,
strictly inside a 1-px border), rounded pixels. The devkit runs the chain in float32 through global
coordinates (~1 km), so about 1 % of its pixels round differently from an exact float64 projection;
using the devkit itself keeps the point set identical to the references' (the test checks it).
One difference: when two points round to the same pixel we keep the nearest (the visible surface,
the rule of every other map here), while the references write the points in the devkit's order --
the lidar file's scan order, which the devkit does not sort -- so the last one wins. Only collisions
can differ: the real sample in ``../shared/data`` has 3,053 points on 3,052 pixels, and at its one
collision the nearer point (10.1 m against 29.2 m) also comes last, so both rules give the same
map there (the test checks that too).

Accumulated (the source of the training target): the keyframe sweep plus up to N earlier and N later
LIDAR_TOP sweeps of the sample_data chain (N = 80 in the references, 20 Hz, about +-4 s), each moved
through its own ego pose into the keyframe camera, with movers removed as ``movers``
documents and the devkit's ``remove_close`` applied to the other sweeps (an ego-vehicle return of a
sweep 4 s away would land on the road ahead); the merge keeps the nearest point per pixel.
A missing or corrupt other sweep is skipped with a DataWarning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...geometry import Projection, invert_transform, project_points, transform_points
from ...groundtruth import accumulate_depth, merge_depth_maps
from ..errors import DataWarning, SampleError
from .files import check_lidar_bin
from .movers import MoverBoxes, Occluders
from .poses import sensor_pose


@dataclass
class AccumulationStats:
    sweeps_used: int = 0
    sweeps_missing: int = 0
    points_projected: int = 0
    removed_in_boxes: int = 0      # other-sweep points inside a mover's box at their own time
    removed_hidden: int = 0        # other-sweep points behind a mover at the keyframe
    sweeps_unannotated: int = 0    # sweeps outside the scene's keyframe span (boxes unknown): not used


def single_sweep_projection(nusc, lidar_token: str, camera_token: str, height: int, width: int,
                            min_depth: float = 1.0) -> Projection:
    """The keyframe sweep in the camera as the devkit projects it, with rounded pixels."""
    points, depth, _ = nusc.explorer.map_pointcloud_to_image(lidar_token, camera_token, min_dist=min_depth)
    u = np.clip(np.rint(points[0]).astype(np.int64), 0, width - 1)
    v = np.clip(np.rint(points[1]).astype(np.int64), 0, height - 1)
    return Projection(u=u, v=v, depth=np.asarray(depth, np.float64), index=np.arange(u.size))


def _neighbour_records(nusc, key_sd: dict, n: int) -> list:
    """Up to n sweep records before and n after the keyframe sweep (nearest first on each side)."""
    out = []
    for direction in ('prev', 'next'):
        token, count = key_sd[direction], 0
        while token and count < n:
            sd = nusc.get('sample_data', token)
            out.append(sd)
            token = sd[direction]
            count += 1
    return out


def annotated_span(nusc, sample_token: str) -> tuple:
    """(first, last) keyframe timestamps (us) of the sample's scene: where boxes can be interpolated."""
    scene = nusc.get('scene', nusc.get('sample', sample_token)['scene_token'])
    return (nusc.get('sample', scene['first_sample_token'])['timestamp'],
            nusc.get('sample', scene['last_sample_token'])['timestamp'])


def _load_other_sweep(path, ego_radius: float):
    from nuscenes.utils.data_classes import LidarPointCloud
    check_lidar_bin(path)
    pc = LidarPointCloud.from_file(str(path))
    pc.remove_close(ego_radius)
    return pc.points[:3].T


def accumulated_depth(nusc, key_sd: dict, key_depth: np.ndarray, T_world_camera, K, height: int,
                      width: int, dataroot, n_sweeps: int, movers: MoverBoxes, box_scale: float = 1.1,
                      ego_radius: float = 1.0, min_depth: float = 1.0, mask_behind_movers: bool = True):
    """(H x W float32 accumulated depth, AccumulationStats) around one keyframe lidar sweep.

    ``key_depth`` is the keyframe sweep's map (the single-sweep GT), kept whole; the other sweeps are
    merged into it with ``groundtruth.accumulate_depth`` / ``merge_depth_maps`` (nearest wins).
    """
    stats = AccumulationStats(sweeps_used=1, points_projected=int(np.count_nonzero(key_depth)))
    T_camera_world = invert_transform(T_world_camera)
    occluders = Occluders(movers.at(key_sd).transformed(T_camera_world), K, height, width, box_scale) \
        if n_sweeps and mask_behind_movers else None
    first, last = annotated_span(nusc, key_sd['sample_token'])
    kept = []
    for sd in _neighbour_records(nusc, key_sd, n_sweeps):
        if not first <= sd['timestamp'] <= last:
            stats.sweeps_unannotated += 1
            continue
        try:
            pts = _load_other_sweep(dataroot / sd['filename'], ego_radius)
        except SampleError as exc:
            stats.sweeps_missing += 1
            warnings.warn(DataWarning(f'lidar sweep skipped in accumulation: {exc}'), stacklevel=2)
            continue
        T_world_sensor = sensor_pose(nusc, sd)
        cam = transform_points(T_camera_world @ T_world_sensor, pts)
        # Only points that land in the image matter: the mover tests run on those alone.
        proj = project_points(cam, K, height, width, min_depth=min_depth)
        keep = ~movers.at(sd).contains(transform_points(T_world_sensor, pts[proj.index]), box_scale)
        stats.removed_in_boxes += int((~keep).sum())
        idx = proj.index[keep]
        if occluders is not None:
            hidden = occluders.hidden(cam[idx, 2], proj.u[keep], proj.v[keep])
            stats.removed_hidden += int(hidden.sum())
            idx = idx[~hidden]
        kept.append(cam[idx])
        stats.points_projected += int(idx.size)
        stats.sweeps_used += 1
    if not kept:
        return key_depth.copy(), stats
    others = accumulate_depth(kept, K, height, width, min_depth=min_depth)
    return merge_depth_maps([key_depth, others]), stats
