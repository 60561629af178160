"""Synthetic world -> a nuScenes-format dataset that the official devkit loads (``write_nuscenes``).

What is written per scene (a ``synthetic.World`` made from ``scene_seed(seed, i)``):
- keyframes (``sample``) every ``keyframe_every``-th camera frame (12 Hz / 6 = 2 Hz, as nuScenes);
  the sample timestamp is its LIDAR_TOP sweep's, as in nuScenes;
- CAM_FRONT: JPEG, K of the requested size; the keyframe images in ``samples/`` and, with
  ``camera_sweeps`` (default), every camera frame between two keyframes in ``sweeps/`` as
  ``is_key_frame = false`` sample_data on the same prev/next chain, as nuScenes has them (nothing in
  preparation reads them, and they take most of the writing time: ``camera_sweeps=False`` skips them);
- LIDAR_TOP: every native 20 Hz sweep from ``accumulate`` sweeps before the first keyframe's to
  ``accumulate`` after the last one's (float32 x 5 with the ring index);
- RADAR_FRONT: every native 13 Hz sweep over the same time span (the packed 43-byte .pcd);
- annotations at each keyframe for every annotated object: nuScenes size order (w, l, h), yaw
  quaternion, and the attribute a nuScenes annotator would give (vehicle.moving / vehicle.parked,
  pedestrian.moving / pedestrian.standing; cones and barriers none);
- the 13 tables, a map placeholder and ``splits.json`` (the last ``val_scenes`` scenes are 'val').

Round trip (tested): the keyframe Frame that ``synthetic.make_frame`` builds for the same camera time
equals what ``NuScenesAdapter`` reads back, up to the JPEG compression of the image, float32 rounding
of the devkit's projection (a pixel in a few thousand rounds the other way) and, for the accumulated
map, the adapter's box-based mover removal versus the simulator's exact per-point object ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...synthetic import CAMERA, LIDAR, RADAR, World, WorldSettings, scene_name, scene_seed
from .tables import NuScenesTableWriter


@dataclass
class NuScenesWriteReport:
    """Where things went. ``World(seeds[name], settings)`` rebuilds a scene's world exactly (the layout
    depends on the settings' duration, which the writer extends to cover the sweeps it writes)."""

    root: Path
    version: str
    settings: object = None                             # synthetic.WorldSettings used for every scene
    scenes: dict = field(default_factory=dict)          # scene name -> [(sample token, t_camera)]
    seeds: dict = field(default_factory=dict)           # scene name -> world seed
    files: int = 0


def attributes_of(category: str, moving: bool) -> list:
    """The nuScenes attribute of a synthetic object (the synthetic world has no cyclists or animals)."""
    if category.startswith('vehicle.'):
        return ['vehicle.moving' if moving else 'vehicle.parked']
    if category.startswith('human.pedestrian'):
        return ['pedestrian.moving' if moving else 'pedestrian.standing']
    return []


def _us(t: float) -> int:
    return int(round(t * 1e6))


def write_nuscenes(out_dir, seed: int = 0, n_scenes: int = 1, samples_per_scene: int = 4, height: int = 900,
                   width: int = 1600, *, version: str = 'v1.0-mini', accumulate: int = 80, keyframe_every: int = 6,
                   val_scenes: int = 0, settings=None, jpeg_quality: int = 95, camera_sweeps: bool = True,
                   progress: bool = False) -> NuScenesWriteReport:
    """Write ``n_scenes`` synthetic scenes of ``samples_per_scene`` keyframes as a nuScenes dataset.

    ``accumulate`` (+-N lidar sweeps) sets how many sweeps are written around the keyframes, so that
    an accumulated GT of that reach can be built from the files.
    """
    if n_scenes < 1 or samples_per_scene < 1 or keyframe_every < 1 or accumulate < 0:
        raise ValueError('write_nuscenes needs n_scenes, samples_per_scene, keyframe_every >= 1, accumulate >= 0')
    if val_scenes < 0 or (val_scenes and val_scenes >= n_scenes):
        raise ValueError(f'val_scenes={val_scenes} must leave a training scene of {n_scenes}')
    settings = settings or WorldSettings()
    margin = (accumulate + 1) / settings.lidar.rate_hz
    first_cam = int(np.ceil((margin + 0.1) * settings.camera_rate))
    span_frames = (samples_per_scene - 1) * keyframe_every     # camera frames from first to last keyframe
    span = span_frames / settings.camera_rate
    settings = replace(settings, duration=max(settings.duration, (first_cam + 1) / settings.camera_rate + span +
                                              margin + 1.0))
    K = settings.camera.intrinsics(height, width)
    writer = NuScenesTableWriter(out_dir, version=version, jpeg_quality=jpeg_quality, log_name='synthetic')
    report = NuScenesWriteReport(Path(out_dir), version, settings)
    from tqdm import tqdm
    bar = tqdm(total=n_scenes * samples_per_scene, disable=not progress, unit='sample', desc='nuscenes')
    for i in range(n_scenes):
        world = World(scene_seed(seed, i), settings)
        if i == 0:
            writer.sensor('CAM_FRONT', 'camera', world.T_ego_sensor[CAMERA], K=K, width=width, height=height)
            writer.sensor('LIDAR_TOP', 'lidar', world.T_ego_sensor[LIDAR])
            writer.sensor('RADAR_FRONT', 'radar', world.T_ego_sensor[RADAR])
        name = scene_name(i)
        split = 'val' if i >= n_scenes - val_scenes else 'train'
        scene = writer.scene(name, split=split, description=f'synthetic xd_rcdepth world, seed {scene_seed(seed, i)}')
        report.scenes[name], report.seeds[name] = [], scene_seed(seed, i)
        key_lidar, key_radar = set(), set()
        for j in range(samples_per_scene):
            t_cam = world.sensor_time(CAMERA, first_cam + j * keyframe_every)
            k, r = world.sensor_index(LIDAR, t_cam), world.sensor_index(RADAR, t_cam)
            key_lidar.add(k)
            key_radar.add(r)
            t_lidar = world.sensor_time(LIDAR, k)
            sample = scene.sample(_us(t_lidar))
            report.scenes[name].append((sample, t_cam))
            image = world.render_camera(t_cam, K, height, width).image
            scene.sample_data('CAM_FRONT', _us(t_cam), world.ego_pose(t_cam), image, key_sample=sample)
            _lidar(scene, world, LIDAR, k, sample)
            _radar(scene, world, RADAR, r, sample)
            for obj in world.objects(t_lidar):
                length, wid, hei = (float(s) for s in obj.size)
                scene.annotation(sample, f'object-{obj.instance}', obj.category, obj.center, (wid, length, hei),
                                 obj.rotation_wxyz, attributes_of(obj.category, obj.moving))
            bar.update()
        if camera_sweeps:
            for c in range(first_cam, first_cam + span_frames):
                if (c - first_cam) % keyframe_every:
                    t = world.sensor_time(CAMERA, c)
                    scene.sample_data('CAM_FRONT', _us(t), world.ego_pose(t),
                                      world.render_camera(t, K, height, width).image)
        t0 = world.sensor_time(LIDAR, min(key_lidar))
        t1 = world.sensor_time(LIDAR, max(key_lidar))
        for k in range(min(key_lidar) - accumulate, max(key_lidar) + accumulate + 1):
            if k not in key_lidar:
                _lidar(scene, world, LIDAR, k, None)
        for t in world.sensor_times(RADAR, t0 - margin, t1 + margin):
            r = world.sensor_index(RADAR, t)
            if r not in key_radar:
                _radar(scene, world, RADAR, r, None)
    bar.close()
    writer.close()
    report.files = writer.files
    return report


def _lidar(scene, world, channel, index, sample):
    t = world.sensor_time(channel, index)
    sweep = world.lidar_sweep(t)
    points = np.concatenate([sweep.points, sweep.ring.astype(np.float32)[:, None]], axis=1)
    scene.sample_data('LIDAR_TOP', _us(t), world.ego_pose(t), points, key_sample=sample)


def _radar(scene, world, channel, index, sample):
    t = world.sensor_time(channel, index)
    scene.sample_data('RADAR_FRONT', _us(t), world.ego_pose(t), world.radar_sweep(t).points, key_sample=sample)
