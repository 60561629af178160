"""Camera keyframes of the synthetic world as Frames, with radar, lidar and every ground truth.

Ground truth follows the references (docs/reference.md Part A 1.4) with what a simulator knows exactly:
- depth_sparse: the lidar sweep nearest the camera time, projected (depth > 1 m, nearest wins).
- depth_accumulated: that sweep and +-N neighbours moved into the camera through the world poses,
  with returns from moving objects removed in the neighbour sweeps (they would smear; the
  references mask them with a panoptic network, we know which object each return hit). The
  reference sweep keeps its movers by default so cars have a target; keep_reference_movers=False
  removes them too, as the references do.
- depth_interp: groundtruth.interpolate_depth of the accumulated map (the training target).
- depth_dense: the renderer's exact depth (0 for sky and beyond the draw distance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..frame import NUSCENES_RADAR_FIELDS, Frame
from ..geometry import invert_transform, project_points, sparse_depth_map, transform_points
from ..groundtruth import accumulate_depth, interpolate_depth
from .world import CAMERA, LIDAR, RADAR, World, WorldSettings


@dataclass(frozen=True)
class GroundTruthSettings:
    accumulate: int = 4                 # +-N lidar sweeps (the references use 80 for training)
    keep_reference_movers: bool = True


def make_frame(world: World, t: float, height: int, width: int, name: str = '',
               gt: GroundTruthSettings = GroundTruthSettings()) -> Frame:
    """The Frame of the camera image at time t."""
    K = world.settings.camera.intrinsics(height, width)
    cam = world.render_camera(t, K, height, width)
    T_camera_world = invert_transform(cam.T_world_camera)

    k = world.sensor_index(LIDAR, t)
    sweep = world.lidar_sweep(world.sensor_time(LIDAR, k))
    T_camera_lidar = T_camera_world @ sweep.T_world_lidar
    sparse = sparse_depth_map(project_points(transform_points(T_camera_lidar, sweep.xyz()), K, height, width),
                              height, width)
    moving = world.scene.moving
    point_sets = []
    for j in range(k - gt.accumulate, k + gt.accumulate + 1):
        other = sweep if j == k else world.lidar_sweep(world.sensor_time(LIDAR, j))
        keep = other.owner < 0
        keep[~keep] = ~moving[other.owner[~keep]]
        if j == k and gt.keep_reference_movers:
            keep[:] = True
        point_sets.append(transform_points(T_camera_world @ other.T_world_lidar, other.xyz()[keep]))
    accumulated = accumulate_depth(point_sets, K, height, width)

    radar = world.radar_sweep(world.sensor_time(RADAR, world.sensor_index(RADAR, t)))
    return Frame(image=cam.image, K=K, radar=radar.points.copy(), radar_fields=NUSCENES_RADAR_FIELDS,
                 T_camera_radar=T_camera_world @ radar.T_world_radar, timestamp=float(t),
                 depth_sparse=sparse, depth_accumulated=accumulated,
                 depth_interp=interpolate_depth(accumulated), depth_dense=cam.depth,
                 lidar=sweep.points.copy(), T_camera_lidar=T_camera_lidar,
                 T_world_camera=cam.T_world_camera, name=name)


def frame_name(scene_name: str, index: int) -> str:
    return f'{scene_name}_frame-{index:04d}'


def generate_sequence(seed, n_frames: int, height: int, width: int, *, accumulate: int = 4,
                      keep_reference_movers: bool = True, scene_name: str = 'scene-0001',
                      settings: WorldSettings | None = None, start_frame: int = 0) -> Iterator[Frame]:
    """Frames of `n_frames` consecutive camera images (12 Hz) of the world made from `seed`.

    The layout covers settings.duration (20 s, 240 frames); a longer request extends the layout, which
    changes the world drawn from the seed (so prefixes stay identical only within 20 s).
    """
    if n_frames < 0 or height < 2 or width < 2:
        raise ValueError(f'generate_sequence needs n_frames >= 0 and a size of at least 2 x 2, got '
                         f'{n_frames} frames of {height} x {width}')
    settings = settings or WorldSettings()
    needed = (start_frame + n_frames) / settings.camera_rate + 1.0
    if needed > settings.duration:
        from dataclasses import replace
        settings = replace(settings, duration=needed)
    world = World(seed, settings)
    gt = GroundTruthSettings(accumulate=accumulate, keep_reference_movers=keep_reference_movers)
    for i in range(start_frame, start_frame + n_frames):
        yield make_frame(world, world.sensor_time(CAMERA, i), height, width, frame_name(scene_name, i), gt)


def scene_seed(seed: int, scene_index: int) -> tuple:
    """Seed of the scene_index-th scene of a multi-scene dataset made from one seed."""
    return (int(seed), int(scene_index))


def scene_name(scene_index: int) -> str:
    return f'scene-{scene_index + 1:04d}'
