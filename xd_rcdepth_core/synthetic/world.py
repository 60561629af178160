"""The synthetic world: one scene layout plus the ego's sensors, queryable at any time.

A `World` answers what a dataset writer needs: the ego pose and sensor poses at time t, the camera
image and exact depth at t, a lidar or radar sweep at t, and the annotated objects at t. Each sensor
also has a native schedule (camera 12 Hz, lidar 20 Hz, radar 13 Hz, with per-scene phase offsets, so
timestamps never line up exactly, as in nuScenes).

Determinism: the layout comes from the seed alone; the noise of a sensor reading comes from
(seed, sensor, time in microseconds), so a reading does not depend on what was asked before it; with
`WorldSettings.randomise` the scene's light, weather, textures, camera and radar come from a stream
of the seed of their own (randomise.py), so the street itself is the one the plain world has.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..config import (
    NUSCENES_CAM_FRONT,
    NUSCENES_LIDAR_TOP_ROTATION,
    NUSCENES_LIDAR_TOP_TRANSLATION,
    NUSCENES_RADAR_FRONT_ROTATION,
    NUSCENES_RADAR_FRONT_TRANSLATION,
    CameraModel,
)
from ..geometry import transform_from_pose
from .layout import LayoutSettings, make_scene
from .lidar import LidarSpec, LidarSweep, lidar_sweep
from .radar_sim import RadarSpec, RadarSweep, radar_sweep
from .randomise import DomainRandomisation, draw_domain
from .render import CameraRender, render_camera

CAMERA, LIDAR, RADAR = 'CAM_FRONT', 'LIDAR_TOP', 'RADAR_FRONT'
_SENSOR_CODE = {CAMERA: 1, LIDAR: 2, RADAR: 3}


@dataclass(frozen=True)
class WorldSettings:
    duration: float = 20.0             # s the layout covers (a nuScenes scene is 20 s)
    camera_rate: float = 12.0          # Hz, nuScenes cameras
    far: float = 200.0                 # camera draw distance (m); dense depth is 0 beyond
    camera: CameraModel = NUSCENES_CAM_FRONT
    lidar: LidarSpec = field(default_factory=LidarSpec)
    radar: RadarSpec = field(default_factory=RadarSpec)
    ego_speed: tuple = (5.0, 15.0)     # m/s
    # Per-scene domain randomisation (randomise.py): light, weather, textures, camera mount and focal
    # length, radar; drawn from the seed. None: the plain world, exactly as before.
    randomise: Optional[DomainRandomisation] = None


def _entropy(seed) -> tuple:
    if isinstance(seed, (int, np.integer)):
        seed = (int(seed),)
    seed = tuple(int(s) for s in seed)
    if not seed or any(s < 0 for s in seed):
        raise ValueError(f'seed must be a non-negative integer or a tuple of them, got {seed}')
    # numpy's SeedSequence ignores trailing zeros ((3, 0) seeds like 3); strip them so every stream
    # derived from the seed agrees too: World((3, 0)) is World(3), scene 1 of `synth --seed 3`.
    while len(seed) > 1 and seed[-1] == 0:
        seed = seed[:-1]
    return seed


def scene_domain(seed, settings: WorldSettings):
    """The randomise.SceneDomain World(seed, settings) draws (without building its layout); None when
    settings.randomise is None."""
    if settings.randomise is None:
        return None
    return draw_domain(_entropy(seed), settings.randomise, settings.camera, settings.radar)


def settings_from_meta(meta: dict) -> WorldSettings:
    """The WorldSettings a native synthetic dataset (its meta.json) was written with, as far as they
    change the world: the domain randomisation (`synth --randomise`); the rest are the defaults."""
    generator = (meta or {}).get('generator') or {}
    randomise = generator.get('randomise')
    return WorldSettings(randomise=DomainRandomisation.from_dict(randomise) if randomise is not None else None)


class World:
    """A deterministic synthetic driving scene with a camera, a lidar and a radar on the ego.

    With `settings.randomise`, `settings` is the scene's drawn domain (its camera and radar; the
    drawn look is `scene.appearance`), `requested` the settings asked for and `domain` the draw."""

    def __init__(self, seed=0, settings: WorldSettings | None = None):
        self.settings = self.requested = settings or WorldSettings()
        self.entropy = _entropy(seed)
        rng = np.random.default_rng(list(self.entropy) + [0])
        self.scene = make_scene(rng, LayoutSettings(duration=self.settings.duration, far=self.settings.far,
                                                    ego_speed=self.settings.ego_speed))
        self.phase = {CAMERA: 0.0, LIDAR: float(rng.uniform(0, 1 / self.settings.lidar.rate_hz)),
                      RADAR: float(rng.uniform(0, 1 / self.settings.radar.rate_hz))}
        self.domain = scene_domain(self.entropy, self.settings)
        if self.domain is not None:
            self.scene.appearance = self.domain.appearance
            self.settings = replace(self.settings, camera=self.domain.camera, radar=self.domain.radar)
        cam = self.settings.camera
        self.T_ego_sensor = {
            CAMERA: transform_from_pose(cam.translation, cam.rotation),
            LIDAR: transform_from_pose(NUSCENES_LIDAR_TOP_TRANSLATION, NUSCENES_LIDAR_TOP_ROTATION),
            RADAR: transform_from_pose(NUSCENES_RADAR_FRONT_TRANSLATION, NUSCENES_RADAR_FRONT_ROTATION),
        }
        self._cache = OrderedDict()

    # --- time and poses -------------------------------------------------------------------------
    def rate(self, sensor: str) -> float:
        return {CAMERA: self.settings.camera_rate, LIDAR: self.settings.lidar.rate_hz,
                RADAR: self.settings.radar.rate_hz}[sensor]

    def sensor_time(self, sensor: str, index: int) -> float:
        """Timestamp (s) of the sensor's index-th native reading."""
        return self.phase[sensor] + index / self.rate(sensor)

    def sensor_index(self, sensor: str, t: float) -> int:
        """Index of the sensor's native reading nearest to time t."""
        return int(np.round((t - self.phase[sensor]) * self.rate(sensor)))

    def sensor_times(self, sensor: str, t0: float, t1: float) -> np.ndarray:
        """Native timestamps of a sensor within [t0, t1]."""
        i0 = int(np.ceil((t0 - self.phase[sensor]) * self.rate(sensor) - 1e-9))
        i1 = int(np.floor((t1 - self.phase[sensor]) * self.rate(sensor) + 1e-9))
        return np.array([self.sensor_time(sensor, i) for i in range(i0, i1 + 1)])

    def ego_pose(self, t: float) -> np.ndarray:
        """T_world_ego (4 x 4) at time t."""
        return self.scene.ego.pose(t)

    def sensor_pose(self, sensor: str, t: float) -> np.ndarray:
        """T_world_sensor at time t (camera: the optical frame, x right, y down, z forward)."""
        return self.ego_pose(t) @ self.T_ego_sensor[sensor]

    def objects(self, t: float, annotated_only: bool = True) -> list:
        """scene.ObjectState of every object at time t (category, box, velocity, moving flag)."""
        return self.scene.objects_at(t, annotated_only)

    def rng(self, sensor: str, t: float) -> np.random.Generator:
        """Noise source of one sensor reading, from (seed, sensor, time in microseconds)."""
        return np.random.default_rng(list(self.entropy) + [_SENSOR_CODE[sensor], int(round(t * 1e6)) + (1 << 40)])

    # --- sensor readings ------------------------------------------------------------------------
    def render_camera(self, t: float, K=None, height: int | None = None, width: int | None = None) -> CameraRender:
        """Camera image, exact dense depth and surface ids at time t; K defaults to the camera model
        scaled to (height, width)."""
        cam = self.settings.camera
        height = cam.height if height is None else int(height)
        width = cam.width if width is None else int(width)
        K = cam.intrinsics(height, width) if K is None else np.asarray(K, dtype=np.float64)
        return render_camera(self.scene, t, K, height, width, self.T_ego_sensor[CAMERA], self.rng(CAMERA, t),
                             far=self.settings.far)

    def lidar_sweep(self, t: float) -> LidarSweep:
        return self._cached((LIDAR, round(t * 1e6)), lambda: lidar_sweep(
            self.scene, t, self.T_ego_sensor[LIDAR], self.rng(LIDAR, t), self.settings.lidar))

    def radar_sweep(self, t: float) -> RadarSweep:
        return self._cached((RADAR, round(t * 1e6)), lambda: radar_sweep(
            self.scene, t, self.T_ego_sensor[RADAR], self.rng(RADAR, t), self.settings.radar))

    def _cached(self, key, make, size: int = 24):
        """Consecutive camera frames share most of their lidar sweeps (accumulated GT): keep recent ones."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = make()
        self._cache[key] = value
        while len(self._cache) > size:
            self._cache.popitem(last=False)
        return value

    def with_settings(self, **changes) -> 'World':
        return World(self.entropy, replace(self.requested, **changes))
