"""A 32-beam spinning lidar like nuScenes' LIDAR_TOP (Velodyne HDL-32E class), ray cast against the
scene at the sweep time.

Simplifications, stated: a sweep is instantaneous (no rolling motion distortion within the 50 ms
revolution), every beam fires at every azimuth step, and a return is the first surface hit. Range
noise is Gaussian; a small fraction of returns drops out at random; intensity comes from the
material (materials.LIDAR_INTENSITY) with lane paint retro-reflective.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import materials as M
from .raycast import GROUND_HIT, RayGrid, cast
from .scene import Scene


@dataclass(frozen=True)
class LidarSpec:
    beams: int = 32
    elevation_min_deg: float = -30.67       # HDL-32E vertical field of view
    elevation_max_deg: float = 10.67
    azimuth_steps: int = 1084               # 32 x 1084 = 34688 rays, the size of a nuScenes sweep file
    rate_hz: float = 20.0
    max_range: float = 100.0
    range_noise: float = 0.02               # m, 1 sigma
    dropout: float = 0.02

    @cached_property
    def grid(self) -> RayGrid:
        el = np.radians(np.linspace(self.elevation_min_deg, self.elevation_max_deg, self.beams))
        az = np.arange(self.azimuth_steps) * (2 * np.pi / self.azimuth_steps) - np.pi
        return RayGrid(el, az, full_circle=True)

    @cached_property
    def directions(self) -> np.ndarray:
        return self.grid.directions


@dataclass
class LidarSweep:
    """One revolution. points: N x 4 float32 (x, y, z, intensity) in the lidar frame at `timestamp`."""

    timestamp: float
    points: np.ndarray
    ring: np.ndarray           # (N,) int8 beam index 0..31 (nuScenes .pcd.bin's fifth column)
    owner: np.ndarray          # (N,) int32 index into Scene.objects; -1 for the ground
    material: np.ndarray       # (N,) int8
    T_world_lidar: np.ndarray

    def xyz(self) -> np.ndarray:
        return self.points[:, :3].astype(np.float64)


def lidar_sweep(scene: Scene, t: float, T_ego_lidar: np.ndarray, rng: np.random.Generator,
                spec: LidarSpec = LidarSpec()) -> LidarSweep:
    T_world_lidar = scene.ego.pose(t) @ T_ego_lidar
    boxes = scene.boxes_at(t)
    hits = cast(spec.grid, T_world_lidar, boxes, spec.max_range, spec.directions)
    # azimuth-major order, like a spinning sensor's firing sequence
    rng_m = hits.range.T.ravel()
    box = hits.box.T.ravel()
    face = hits.face.T.ravel()
    dirs = spec.directions.transpose(1, 0, 2).reshape(-1, 3)
    ring = np.tile(np.arange(spec.beams, dtype=np.int8), spec.azimuth_steps)
    keep = np.isfinite(rng_m) & (rng.random(rng_m.size) >= spec.dropout)
    r = rng_m[keep] + rng.normal(0.0, spec.range_noise, int(keep.sum()))
    xyz = dirs[keep] * r[:, None]
    box, face, ring = box[keep], face[keep], ring[keep]

    on_box = box >= 0
    b = np.maximum(box, 0)
    material = np.where(face >= 4, boxes.top_material[b], boxes.material[b]).astype(np.int8)
    world = xyz @ T_world_lidar[:3, :3].T + T_world_lidar[:3, 3]
    ground = box == GROUND_HIT
    on_road = np.abs(world[:, 1]) < scene.road.road_half_width
    material[ground] = np.where(on_road[ground], M.ROAD, M.VERGE)
    mean, spread = M.lidar_intensity_table()
    intensity = mean[material] + spread[material] * rng.standard_normal(material.size).astype(np.float32)
    paint, _ = scene.road.marking_mask(world[ground, 0], world[ground, 1])
    gi = np.flatnonzero(ground)[paint]
    intensity[gi] = M.LANE_PAINT_INTENSITY.mean + M.LANE_PAINT_INTENSITY.spread * rng.standard_normal(gi.size)
    intensity = np.clip(np.round(intensity), 0, 255)
    owner = np.where(on_box, boxes.owner[b], -1).astype(np.int32)
    points = np.column_stack([xyz, intensity]).astype(np.float32)
    return LidarSweep(timestamp=float(t), points=points, ring=ring, owner=owner, material=material,
                      T_world_lidar=T_world_lidar)
