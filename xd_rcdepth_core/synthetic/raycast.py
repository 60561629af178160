"""Ray casting of a regular grid of rays (elevation x azimuth, like a spinning lidar or a radar's
beam fan) against the ground plane and every box, vectorised over all (ray, box) pairs.

Broad phase: a box seen from the sensor spans an azimuth interval (from its corners) and an
elevation interval (from its height and its nearest and farthest horizontal distance), so only the
sub-grid of rays inside both is paired with it. Narrow phase: the slab test in the box's own frame
for all pairs at once; the nearest hit per ray wins, and the ground plane competes with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import BoxSet

GROUND_HIT = -2
NO_HIT = -1
MARGIN = np.radians(1.5)       # broad-phase slack for the sensor's small tilt and the grid spacing


@dataclass(frozen=True)
class RayGrid:
    """Rays of a sensor: sorted elevations and evenly spaced azimuths (radians, sensor frame);
    full_circle when the azimuths wrap around."""

    elevations: np.ndarray
    azimuths: np.ndarray
    full_circle: bool

    @property
    def directions(self) -> np.ndarray:
        """(E, A, 3) unit directions in the sensor frame."""
        e, a = np.meshgrid(self.elevations, self.azimuths, indexing='ij')
        return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1)


@dataclass
class RayHits:
    """Per ray (E x A): range in metres (inf for no hit), hit box index (GROUND_HIT, NO_HIT or a box),
    and the hit face (0..5 for +x, -x, +y, -y, +z, -z in the box frame; 4 for the ground)."""

    range: np.ndarray
    box: np.ndarray
    face: np.ndarray


def footprint_distance(boxes: BoxSet, point) -> np.ndarray:
    """(B,) horizontal distance from a world point to each box's footprint rectangle (0 inside)."""
    d = np.asarray(point, dtype=np.float64)[:2] - boxes.center[:, :2]
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    return np.hypot(np.maximum(np.abs(lx) - boxes.half[:, 0], 0.0), np.maximum(np.abs(ly) - boxes.half[:, 1], 0.0))


def _candidate_windows(grid: RayGrid, boxes: BoxSet, R, origin, max_range):
    """Per box the rays that may hit it: first elevation row, row count, first azimuth column, column
    count (columns wrap on a full circle). Boxes out of range or view get zero counts."""
    A = len(grid.azimuths)
    in_sensor = (boxes.corners() - origin) @ R                  # (B, 8, 3) sensor frame
    foot = footprint_distance(boxes, origin)
    horiz = np.hypot(in_sensor[..., 0], in_sensor[..., 1])
    az = np.arctan2(in_sensor[..., 1], in_sensor[..., 0])
    centre = np.arctan2(in_sensor[..., 1].mean(axis=1), in_sensor[..., 0].mean(axis=1))
    rel = np.angle(np.exp(1j * (az - centre[:, None])))        # corner azimuths relative to the centre's
    a0, step = grid.azimuths[0], grid.azimuths[1] - grid.azimuths[0]
    j0 = np.ceil((centre + rel.min(axis=1) - MARGIN - a0) / step).astype(np.int64)
    j1 = np.floor((centre + rel.max(axis=1) + MARGIN - a0) / step).astype(np.int64)
    around = foot < 0.05                                        # sensor above the footprint: all azimuths
    if grid.full_circle:
        na = np.minimum(j1 - j0 + 1, A)
        j0 = np.where(around, 0, np.mod(j0, A))
        na = np.where(around, A, na)
    else:
        j0 = np.where(around, 0, np.maximum(j0, 0))
        j1 = np.where(around, A - 1, np.minimum(j1, A - 1))
        na = j1 - j0 + 1
    z_lo, z_hi = in_sensor[..., 2].min(axis=1), in_sensor[..., 2].max(axis=1)
    near, far = np.maximum(foot, 1e-6), horiz.max(axis=1)
    e_lo = np.arctan2(z_lo, np.where(z_lo < 0, near, far)) - MARGIN
    e_hi = np.arctan2(z_hi, np.where(z_hi > 0, near, far)) + MARGIN
    i0 = np.searchsorted(grid.elevations, e_lo)
    ne = np.searchsorted(grid.elevations, e_hi, side='right') - i0
    ok = (foot < max_range) & (na > 0) & (ne > 0)
    return i0, np.where(ok, ne, 0), j0, np.where(ok, na, 0)


def cast(grid: RayGrid, T_world_sensor: np.ndarray, boxes: BoxSet, max_range: float,
         dirs_sensor: np.ndarray | None = None) -> RayHits:
    """First hit of every ray of `grid` from the sensor at pose T_world_sensor, within max_range."""
    dirs = grid.directions if dirs_sensor is None else dirs_sensor
    E, A = dirs.shape[:2]
    R, origin = T_world_sensor[:3, :3], T_world_sensor[:3, 3]
    dirs_world = (dirs @ R.T).reshape(-1, 3)

    # ground plane z = 0
    dz = dirs_world[:, 2]
    best = np.full(E * A, np.inf)
    down = dz < -1e-9
    best[down] = -origin[2] / dz[down]
    box = np.where(np.isfinite(best), GROUND_HIT, NO_HIT).astype(np.int32)
    face = np.full(E * A, 4, np.int8)

    # (ray, box) pairs from the broad phase
    i0, ne, j0, na = _candidate_windows(grid, boxes, R, origin, max_range)
    count = ne * na
    total = int(count.sum())
    if total:
        pair_box = np.repeat(np.arange(len(boxes)), count)
        k = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        cols = na[pair_box]
        row = i0[pair_box] + k // cols
        col = j0[pair_box] + k % cols
        if grid.full_circle:
            col %= A
        ray = row * A + col
        t, f = _slab_pairs(origin, dirs_world[ray], boxes, pair_box)
        hit = t < best[ray]
        ray, t, f, pair_box = ray[hit], t[hit], f[hit], pair_box[hit]
        order = np.lexsort((t, ray))                        # per ray, nearest first
        ray_sorted = ray[order]
        first = order[np.r_[True, ray_sorted[1:] != ray_sorted[:-1]]] if order.size else order
        best[ray[first]] = t[first]
        box[ray[first]] = pair_box[first]
        face[ray[first]] = f[first]
    far = best > max_range
    best[far] = np.inf
    box[far] = NO_HIT
    return RayHits(range=best.reshape(E, A), box=box.reshape(E, A), face=face.reshape(E, A))


def _slab_pairs(origin, dirs_world, boxes: BoxSet, pair_box):
    """Entry distance (inf for a miss) and entry face of each ray into its paired box (slab test)."""
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    d = origin - boxes.center
    o_box = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)[pair_box]
    cp, sp = c[pair_box], s[pair_box]
    dx, dy = dirs_world[:, 0], dirs_world[:, 1]
    dirs = np.stack([cp * dx + sp * dy, -sp * dx + cp * dy, dirs_world[:, 2]], axis=1)
    half = boxes.half[pair_box]
    # a ray parallel to a slab would divide by zero; nudging the component keeps the maths finite
    dirs[np.abs(dirs) < 1e-12] = 1e-12
    inv = 1.0 / dirs
    t1 = (-half - o_box) * inv
    t2 = (half - o_box) * inv
    t_in = np.minimum(t1, t2)
    t_out = np.maximum(t1, t2).min(axis=1)
    axis = t_in.argmax(axis=1)
    idx = np.arange(axis.size)
    t_near = t_in[idx, axis]
    hit = (t_near <= t_out) & (t_near > 0)
    # entering along +axis means through the negative face: face 2 * axis + 1
    face = (2 * axis + (dirs[idx, axis] > 0)).astype(np.int8)
    return np.where(hit, t_near, np.inf), face
