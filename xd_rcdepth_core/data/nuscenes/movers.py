"""Which annotated objects count as movers, and which lidar points they spoil, for accumulated GT.

Why: lidar sweeps from other times are moved into the keyframe camera through the ego poses, which
assumes a static world. A car that moved between the sweep and the keyframe leaves a ghost trail, and
static background seen in other sweeps can show through a mover that stands in front of it at the
keyframe. The references mask both with a Detectron2 panoptic model (COCO person, bicycle, car,
motorcycle, airplane, bus, train, truck, boat; every instance of those classes, parked or not). We
have the nuScenes 3-D boxes instead, so:

1. In every *non-keyframe* sweep, points inside a mover's box at that sweep's time are removed. The
   box at the sweep's time is what the devkit's ``NuScenes.get_boxes`` gives (linear interpolation of
   the centre and slerp of the rotation between the two keyframes around the sweep, clamped to them;
   a box absent from the earlier keyframe stays where the later one has it), inflated by
   ``box_scale`` because annotations are tight (as ``points_in_box``'s ``wlh_factor``).
   ``MoverBoxes.at`` computes exactly that, vectorised over the movers only: calling ``get_boxes`` for
   161 sweeps of 50-200 annotations costs 1-3 s per sample, more than the whole 2 s budget
   (test_nuscenes checks the two agree).
2. Points of non-keyframe sweeps whose line of sight from the keyframe camera passes through a mover's
   box at the keyframe (i.e. that lie behind or inside it) are removed: that is the occlusion the
   panoptic mask handles in the references. The test uses the ray through the point's (rounded) pixel
   centre, like a pixel mask (``Occluders``).
3. The keyframe sweep itself is kept whole: at the keyframe the movers are where its points say.

Step 2 can be switched off (``NuScenesConfig.mask_behind_movers``). Sweeps outside the scene's
annotated time span (before its first or after its last keyframe) are not used: no box can be placed
there (``get_boxes`` would return the nearest keyframe's boxes unmoved).

Mover rule (``MOVER_RULES``):
- ``'category'`` (default, like the references' class-based masks): every box whose category is
  ``vehicle.*`` (car, truck, bus, trailer, construction, emergency, motorcycle, bicycle),
  ``human.*`` (all pedestrians) or ``animal``, parked or not. ``movable_object.*`` (barrier, cone,
  debris, pushable_pullable) and ``static_object.*`` stay: they do not move within the +-4 s window.
- ``'moving'``: by the annotation's attributes: a mover has ``vehicle.moving``, ``vehicle.stopped``
  (it may drive off within the window), ``cycle.with_rider`` or ``pedestrian.moving``; a
  ``vehicle.*`` / ``human.*`` / ``animal`` box with no attribute at all is a mover too (conservative;
  nuScenes animals carry none). ``vehicle.parked``, ``cycle.without_rider``,
  ``pedestrian.standing`` and ``pedestrian.sitting_lying_down`` stay, which keeps the accumulated
  points on parked cars (denser GT there).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOVER_RULES = ('category', 'moving')
_MOVER_PREFIXES = ('vehicle.', 'human.', 'animal')
_MOVING_ATTRIBUTES = {'vehicle.moving', 'vehicle.stopped', 'cycle.with_rider', 'pedestrian.moving'}


def is_mover(category: str, attributes=(), rule: str = 'category') -> bool:
    """Whether an annotation of this category and these attribute names is masked as a mover."""
    if rule not in MOVER_RULES:
        raise ValueError(f'mover rule must be one of {MOVER_RULES}, got {rule!r}')
    if not category.startswith(_MOVER_PREFIXES):
        return False
    if rule == 'category' or not attributes:
        return True
    return bool(set(attributes) & _MOVING_ATTRIBUTES)


def _rotations(q: np.ndarray) -> np.ndarray:
    """(M, 3, 3) rotations of (M, 4) unit quaternions (w, x, y, z)."""
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def slerp(q0: np.ndarray, q1: np.ndarray, amount: float) -> np.ndarray:
    """Row-wise spherical linear interpolation of (M, 4) quaternions along the shorter arc."""
    q0 = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    dot = np.sum(q0 * q1, axis=1)
    q0 = np.where(dot[:, None] < 0, -q0, q0)
    dot = np.abs(dot)
    theta0 = np.arccos(np.clip(dot, -1.0, 1.0))
    near = dot > 0.9995                     # nearly equal: linear interpolation is exact enough
    sin0 = np.where(near, 1.0, np.sin(theta0))
    s1 = np.where(near, amount, np.sin(theta0 * amount) / sin0)
    s0 = np.where(near, 1.0 - amount, np.cos(theta0 * amount) - dot * np.sin(theta0 * amount) / sin0)
    q = s0[:, None] * q0 + s1[:, None] * q1
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@dataclass
class OrientedBoxes:
    """M boxes: centres (M, 3), rotations box -> frame (M, 3, 3), half sizes along box x (length),
    y (width), z (height) (M, 3)."""

    center: np.ndarray
    rotation: np.ndarray
    half: np.ndarray

    def __len__(self) -> int:
        return int(self.center.shape[0])

    def transformed(self, T: np.ndarray) -> 'OrientedBoxes':
        return OrientedBoxes(self.center @ T[:3, :3].T + T[:3, 3], T[:3, :3] @ self.rotation, self.half)

    def contains(self, points: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """N bool: inside any box inflated by ``scale``. A sort on x and a y window find each box's
        few candidate points, so the cost grows with points + boxes, not their product."""
        inside = np.zeros(points.shape[0], bool)
        if len(self) == 0 or points.shape[0] == 0:
            return inside
        order = np.argsort(points[:, 0], kind='stable')
        xs = points[order, 0]
        radius = scale * np.linalg.norm(self.half, axis=1)
        lo = np.searchsorted(xs, self.center[:, 0] - radius, 'left')
        hi = np.searchsorted(xs, self.center[:, 0] + radius, 'right')
        for b in np.nonzero(hi > lo)[0]:
            idx = order[lo[b]:hi[b]]
            idx = idx[np.abs(points[idx, 1] - self.center[b, 1]) <= radius[b]]
            local = (points[idx] - self.center[b]) @ self.rotation[b]
            inside[idx[np.all(np.abs(local) <= scale * self.half[b], axis=1)]] = True
        return inside


class Occluders:
    """Keyframe mover boxes in the camera frame as a depth buffer of their front surfaces.

    Built once per keyframe: for every pixel in a box's projected rectangle, the ray through the pixel
    centre is clipped against the box (slab test in box axes) and the depth where it enters is kept,
    nearest box first. A point of another sweep is then hidden when it lies beyond that depth at its
    pixel, i.e. behind or inside a mover as the keyframe camera sees it; one lookup per point.
    """

    def __init__(self, boxes_cam: OrientedBoxes, K, height: int, width: int, scale: float):
        self.depth = np.full((height, width), np.inf, np.float32)
        K_inv = np.linalg.inv(np.asarray(K, np.float64))
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        for b in range(len(boxes_cam)):
            center, R, half = boxes_cam.center[b], boxes_cam.rotation[b], scale * boxes_cam.half[b]
            rect = _projected_rect(center + (signs * half) @ R.T, K, height, width)
            if rect is None:
                continue
            v0, v1, u0, u1 = rect
            vv, uu = np.mgrid[v0:v1 + 1, u0:u1 + 1]
            rays = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1) @ K_inv.T   # depth 1 along z
            entry = _ray_entry(rays, center, R, half)
            view = self.depth[v0:v1 + 1, u0:u1 + 1]
            np.minimum(view, entry.reshape(view.shape).astype(np.float32), out=view)

    def hidden(self, depth: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """N bool: the point at pixel (u, v) and camera depth ``depth`` is behind or inside a mover."""
        return depth > self.depth[v, u]


def _projected_rect(corners_cam, K, height: int, width: int):
    """(v0, v1, u0, u1) pixel rectangle covering a box's projection, the whole image when the box
    straddles the camera plane, None when it is behind the camera or outside the image."""
    z = corners_cam[:, 2]
    if np.all(z <= 0.1):
        return None
    if np.any(z <= 0.1):
        return 0, height - 1, 0, width - 1
    u = K[0, 0] * corners_cam[:, 0] / z + K[0, 2]
    v = K[1, 1] * corners_cam[:, 1] / z + K[1, 2]
    v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), height - 1)
    u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), width - 1)
    return None if v0 > v1 or u0 > u1 else (v0, v1, u0, u1)


def _ray_entry(rays, center, rotation, half) -> np.ndarray:
    """Camera depth where rays from the origin (P x 3, z = 1) enter the box; inf where they miss it."""
    o = -center @ rotation
    d = rays @ rotation
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    t_in = np.nanmax(np.minimum(t1, t2), axis=1)
    t_out = np.nanmin(np.maximum(t1, t2), axis=1)
    return np.where((t_in < t_out) & (t_out > 0), np.maximum(t_in, 0.0), np.inf)


class MoverBoxes:
    """Mover boxes of a nuScenes table set at any sample_data time (see module docstring, step 1)."""

    def __init__(self, nusc, rule: str = 'category'):
        if rule not in MOVER_RULES:
            raise ValueError(f'mover rule must be one of {MOVER_RULES}, got {rule!r}')
        self.nusc, self.rule = nusc, rule
        self._per_sample = {}

    def _sample_movers(self, sample_token: str) -> dict:
        """Movers annotated at one keyframe: instance -> row, centres, quaternions, sizes (w, l, h)."""
        if sample_token not in self._per_sample:
            nusc = self.nusc
            anns = [nusc.get('sample_annotation', a) for a in nusc.get('sample', sample_token)['anns']]
            anns = [a for a in anns if is_mover(a['category_name'],
                                                [nusc.get('attribute', t)['name'] for t in a['attribute_tokens']],
                                                self.rule)]
            self._per_sample[sample_token] = dict(
                instances={a['instance_token']: i for i, a in enumerate(anns)},
                center=np.array([a['translation'] for a in anns], float).reshape(-1, 3),
                quat=np.array([a['rotation'] for a in anns], float).reshape(-1, 4),
                wlh=np.array([a['size'] for a in anns], float).reshape(-1, 3))
        return self._per_sample[sample_token]

    @staticmethod
    def _boxes(center, quat, wlh) -> OrientedBoxes:
        quat = quat / np.maximum(np.linalg.norm(quat, axis=1, keepdims=True), 1e-12)
        return OrientedBoxes(center, _rotations(quat), 0.5 * wlh[:, [1, 0, 2]])

    def at(self, sd: dict) -> OrientedBoxes:
        """Mover boxes (global frame) at the time of a sample_data record, as ``get_boxes`` places them."""
        nusc = self.nusc
        curr_sample = nusc.get('sample', sd['sample_token'])
        curr = self._sample_movers(curr_sample['token'])
        if curr_sample['prev'] == '' or sd['is_key_frame']:
            return self._boxes(curr['center'], curr['quat'], curr['wlh'])
        prev_sample = nusc.get('sample', curr_sample['prev'])
        prev = self._sample_movers(prev_sample['token'])
        t0, t1 = prev_sample['timestamp'], curr_sample['timestamp']
        amount = (max(t0, min(t1, sd['timestamp'])) - t0) / (t1 - t0)
        center, quat = curr['center'].copy(), curr['quat'].copy()
        pairs = [(i, prev['instances'][inst]) for inst, i in curr['instances'].items() if inst in prev['instances']]
        if pairs:
            ci, pi = (np.array(x) for x in zip(*pairs))
            center[ci] = prev['center'][pi] + amount * (curr['center'][ci] - prev['center'][pi])
            quat[ci] = slerp(prev['quat'][pi], curr['quat'][ci], amount)
        return self._boxes(center, quat, curr['wlh'])
