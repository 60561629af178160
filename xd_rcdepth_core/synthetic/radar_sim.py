"""A front automotive radar like nuScenes' RADAR_FRONT (Continental ARS408 class), as cluster output.

What it models, and why it matters for radar-camera depth: returns come from objects (not the flat
road), a few clusters per object depending on its size; detection follows a radar equation
(SNR = RCS - 40 log10 r + const), so weak far targets drop out; range and azimuth are noisy and
there is NO elevation: every point lies in the sensor plane (z = 0) whatever the height of what it
hit (RadarSpec.z_noise: a noisy z instead, still without information); radial velocity is measured
relative to the moving sensor (vx, vy) and ego-motion compensated (vx_comp, vy_comp); clutter (weak
random returns) and multipath ghosts (a double-bounce copy at twice the range, or a mirror image
behind a facade) add false points. All 18 nuScenes radar fields are filled so the points can be
written as real .pcd files.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..frame import NUSCENES_RADAR_FIELDS
from .materials import RADAR_SIGNATURE, RadarSignature
from .raycast import RayGrid, cast
from .scene import Scene
from .shading import FACE_NORMALS

TARGET, GHOST, CLUTTER = 0, 1, 2
COL = {name: i for i, name in enumerate(NUSCENES_RADAR_FIELDS)}
# nuScenes dyn_prop codes
MOVING, STATIONARY, ONCOMING, STATIONARY_CANDIDATE, UNKNOWN, CROSSING_STATIONARY, CROSSING_MOVING, STOPPED = range(8)


@dataclass(frozen=True)
class RadarSpec:
    rate_hz: float = 13.0                 # nuScenes radars run at about 13 Hz
    near_fov_deg: float = 60.0            # short-range scan: +-60 deg up to 70 m
    near_range: float = 70.0
    far_fov_deg: float = 9.0              # long-range scan: +-9 deg up to 250 m
    far_range: float = 250.0
    azimuth_step_deg: float = 0.25
    elevations_deg: tuple = (-3.0, -1.5, 0.0, 1.5, 3.0)   # samples of the vertical beam
    range_noise: float = 0.3              # m, 1 sigma
    azimuth_noise_deg: float = 0.7
    velocity_noise: float = 0.1           # m/s
    snr_offset_db: float = 87.0           # radar equation constant: a 10 dBsm car is seen to ~150 m
    snr_threshold_db: float = 8.0
    snr_softness_db: float = 2.0
    dropout: float = 0.05
    clutter_mean: float = 8.0             # Poisson mean of clutter points per sweep
    ghost_probability: float = 0.15       # per strong (> 5 dBsm) detection
    # Domain randomisation (randomise.py); the defaults are the plain world's radar.
    density: float = 1.0                  # clusters per object x this (the cap too): sparser or denser clouds
    z_noise: float = 0.0                  # m; 0: every z is 0 (nuScenes); else z ~ N(0, z_noise), no information

    @cached_property
    def grid(self) -> RayGrid:
        step = np.radians(self.azimuth_step_deg)
        n = int(round(2 * self.near_fov_deg / self.azimuth_step_deg)) + 1
        return RayGrid(np.radians(np.asarray(self.elevations_deg, float)),
                       -np.radians(self.near_fov_deg) + step * np.arange(n), full_circle=False)

    @cached_property
    def directions(self) -> np.ndarray:
        return self.grid.directions

    def max_range(self, azimuth) -> np.ndarray:
        a = np.abs(np.degrees(azimuth))
        return np.where(a <= self.far_fov_deg, self.far_range, np.where(a <= self.near_fov_deg, self.near_range, 0.0))


@dataclass
class RadarSweep:
    """One radar cycle: points N x 18 float32 (NUSCENES_RADAR_FIELDS) in the radar frame at `timestamp`."""

    timestamp: float
    points: np.ndarray
    kind: np.ndarray           # (N,) int8: TARGET, GHOST or CLUTTER
    owner: np.ndarray          # (N,) int32 index into Scene.objects (the ghost's source); -1 for clutter
    T_world_radar: np.ndarray


@dataclass
class _Detections:
    """True (noise-free) scatterers in the world frame before measurement."""

    point: list
    velocity: list
    rcs: list
    kind: list
    owner: list

    def add(self, point, velocity, rcs, kind, owner):
        self.point.append(np.asarray(point, float))
        self.velocity.append(np.asarray(velocity, float))
        self.rcs.append(float(rcs))
        self.kind.append(kind)
        self.owner.append(int(owner))


def _scatterers(scene: Scene, t, T_world_radar, spec: RadarSpec, rng) -> _Detections:
    """Pick cluster centres on every object the beam fan sees and keep those the radar detects."""
    boxes = scene.boxes_at(t)
    hits = cast(spec.grid, T_world_radar, boxes, spec.far_range, spec.directions)
    r = np.where(hits.box >= 0, hits.range, np.inf)
    e_best = np.argmin(r, axis=0)                     # nearest return per azimuth column
    cols = np.arange(r.shape[1])
    r_col, box_col, face_col = r[e_best, cols], hits.box[e_best, cols], hits.face[e_best, cols]
    ok = np.isfinite(r_col) & (r_col <= spec.max_range(spec.grid.azimuths))
    R, origin = T_world_radar[:3, :3], T_world_radar[:3, 3]
    dirs_world = spec.directions[e_best, cols] @ R.T
    det = _Detections([], [], [], [], [])
    owner_col = np.where(ok, boxes.owner[np.maximum(box_col, 0)], -1)
    rotations = boxes.rotations()
    for obj in np.unique(owner_col[ok]):
        members = np.flatnonzero(owner_col == obj)
        o = scene.objects[obj]
        sig = RADAR_SIGNATURE.get(o.category, RadarSignature((0.0, 5.0), 10, 1))
        if spec.density == 1.0:
            n = int(np.clip(np.ceil(members.size / sig.columns_per_detection), 1, sig.max_detections)) \
                if sig.max_detections else 0
        else:
            cap = max(1, int(round(sig.max_detections * spec.density)))
            n = int(np.clip(np.ceil(members.size * spec.density / sig.columns_per_detection), 1, cap)) \
                if sig.max_detections else 0
        for chunk in np.array_split(members, n) if n else []:
            c = int(rng.choice(chunk))
            point = origin + r_col[c] * dirs_world[c]
            normal = rotations[box_col[c]] @ FACE_NORMALS[face_col[c]]
            incidence = abs(float(normal @ dirs_world[c]))
            # flat surfaces seen at a grazing angle reflect away from the sensor
            rcs = o.rcs_db + rng.normal(0.0, 1.5) + (20 * np.log10(max(incidence, 0.1))
                                                     if o.category.startswith('static.building') else 0.0)
            snr = rcs - 40 * np.log10(max(r_col[c], 1.0)) + spec.snr_offset_db
            p_detect = (1 - spec.dropout) / (1 + np.exp(-(snr - spec.snr_threshold_db) / spec.snr_softness_db))
            if rng.random() < p_detect:
                det.add(point, o.velocity, rcs, TARGET, obj)
    return det


def _ghosts(scene: Scene, det: _Detections, T_world_radar, spec: RadarSpec, rng) -> None:
    origin = T_world_radar[:3, 3]
    wall = scene.road.road_half_width + scene.road.sidewalk_width    # building fronts start here
    for i in range(len(det.point)):
        if det.rcs[i] <= 5.0 or rng.random() >= spec.ghost_probability:
            continue
        p, v = det.point[i], det.velocity[i]
        if rng.random() < 0.6:
            # double bounce target -> ego -> target: same direction, twice the range and Doppler
            det.add(origin + 2.0 * (p - origin), 2.0 * v, det.rcs[i] - rng.uniform(8, 12), GHOST, det.owner[i])
        else:
            # reflection off a facade: the target appears mirrored behind the wall
            side = np.sign(p[1] - origin[1]) or 1.0
            y_wall = side * wall
            det.add((p[0], 2 * y_wall - p[1], p[2]), (v[0], -v[1], v[2]), det.rcs[i] - rng.uniform(6, 10),
                    GHOST, det.owner[i])


def _clutter(det: _Detections, T_world_radar, spec: RadarSpec, rng) -> None:
    R, origin = T_world_radar[:3, :3], T_world_radar[:3, 3]
    for _ in range(rng.poisson(spec.clutter_mean)):
        az = np.radians(rng.uniform(-spec.near_fov_deg, spec.near_fov_deg))
        rr = rng.uniform(1.0, spec.near_range)
        det.add(origin + R @ (rr * np.array([np.cos(az), np.sin(az), 0.0])), (0.0, 0.0, 0.0),
                rng.uniform(-15.0, -3.0), CLUTTER, -1)


def _dyn_prop(v_comp_radial, speed, kind, rng):
    if kind == CLUTTER:
        return int(rng.choice([STATIONARY, STATIONARY_CANDIDATE, UNKNOWN]))
    if speed < 0.3:
        return STATIONARY
    if abs(v_comp_radial) < 0.3 * speed:
        return CROSSING_MOVING
    return MOVING if v_comp_radial > 0 else ONCOMING


def radar_sweep(scene: Scene, t: float, T_ego_radar: np.ndarray, rng: np.random.Generator,
                spec: RadarSpec = RadarSpec()) -> RadarSweep:
    T_world_radar = scene.ego.pose(t) @ T_ego_radar
    det = _scatterers(scene, t, T_world_radar, spec, rng)
    _ghosts(scene, det, T_world_radar, spec, rng)
    _clutter(det, T_world_radar, spec, rng)
    R, origin = T_world_radar[:3, :3], T_world_radar[:3, 3]
    # velocity of the sensor itself: ego velocity plus yaw rate x lever arm
    lever = T_world_radar[:3, 3] - scene.ego.pose(t)[:3, 3]
    v_sensor = scene.ego.velocity(t) + np.cross([0.0, 0.0, scene.ego.yaw_rate(t)], lever)
    rows = []
    for p, v, rcs, kind, owner in zip(det.point, det.velocity, det.rcs, det.kind, det.owner):
        local = R.T @ (p - origin)
        rng_true = float(np.linalg.norm(local))
        az_true = float(np.arctan2(local[1], local[0]))
        r_m = rng_true + rng.normal(0.0, spec.range_noise)
        az_m = az_true + np.radians(rng.normal(0.0, spec.azimuth_noise_deg))
        if not (0.2 < r_m <= float(spec.max_range(az_m))):
            continue
        los = (p - origin) / max(rng_true, 1e-6)
        v_rel = float((v - v_sensor) @ los) + rng.normal(0.0, spec.velocity_noise)
        v_abs = float(v @ los) + rng.normal(0.0, spec.velocity_noise)
        ca, sa = np.cos(az_m), np.sin(az_m)
        row = np.zeros(len(NUSCENES_RADAR_FIELDS), np.float32)
        row[COL['x']], row[COL['y']], row[COL['z']] = r_m * ca, r_m * sa, 0.0   # no elevation
        if spec.z_noise > 0:       # a radar that reports a height, but one that carries no information
            row[COL['z']] = rng.normal(0.0, spec.z_noise)
        row[COL['dyn_prop']] = _dyn_prop(v_abs, float(np.linalg.norm(v)), kind, rng)
        row[COL['rcs']] = np.round(rcs * 2) / 2                                # 0.5 dBsm steps
        row[COL['vx']], row[COL['vy']] = v_rel * ca, v_rel * sa
        row[COL['vx_comp']], row[COL['vy_comp']] = v_abs * ca, v_abs * sa
        row[COL['is_quality_valid']] = 1
        row[COL['ambig_state']] = 3
        row[COL['x_rms']] = min(31, 3 + int(r_m / 20))
        row[COL['y_rms']] = min(31, 3 + int(r_m / 10))
        row[COL['invalid_state']] = 0
        row[COL['pdh0']] = 1 if kind == TARGET else int(rng.integers(1, 5))
        row[COL['vx_rms']] = int(rng.integers(0, 4))
        row[COL['vy_rms']] = int(rng.integers(0, 4))
        rows.append((r_m, row, kind, owner))
    rows.sort(key=lambda item: item[0])
    points = np.array([row for _, row, _, _ in rows], np.float32).reshape(-1, len(NUSCENES_RADAR_FIELDS))
    points[:, COL['id']] = np.arange(len(rows))
    return RadarSweep(timestamp=float(t), points=points,
                      kind=np.array([k for _, _, k, _ in rows], np.int8),
                      owner=np.array([o for _, _, _, o in rows], np.int32), T_world_radar=T_world_radar)
