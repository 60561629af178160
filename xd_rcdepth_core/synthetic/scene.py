"""What the synthetic world is made of: a flat ground, a road with markings, and objects built from
boxes, each object moving at a constant velocity.

Everything here is data plus closed-form motion: `Scene.boxes_at(t)` gives every box at any time t
(so camera, lidar and radar can each sample their own timestamps), `Scene.objects_at(t)` gives the
object-level states a nuScenes-style annotation needs. The random choices live in layout.py.

Frames: world x runs along the road, y to the left, z up; the ground is the plane z = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .textures import wrap
from .trajectory import EgoTrajectory


@dataclass
class Part:
    """One box of an object, in the object's frame (x forward, y left, z up, origin on the ground)."""

    center: tuple          # (x, y, z) of the box centre
    size: tuple            # (length along x, width along y, height)
    material: int          # material of the side faces
    top_material: int      # material of the top and bottom faces
    color: tuple           # albedo RGB in 0..1
    params: tuple = (0.0, 0.0, 0.0, 0.0)  # material pattern parameters (windows, lights), see shading.py


@dataclass
class SceneObject:
    """A rigid object (a car, a building, a pole) made of boxes, with constant velocity."""

    instance: int
    category: str          # nuScenes-like name: 'vehicle.car', 'human.pedestrian.adult', 'static.building'
    position: tuple        # world (x, y, 0) of the footprint centre at t = 0
    yaw: float             # heading (rad) about world z
    velocity: tuple        # world m/s, constant
    parts: list
    rcs_db: float = 0.0    # the object's radar cross-section draw (materials.RADAR_SIGNATURE)

    @property
    def moving(self) -> bool:
        return bool(np.linalg.norm(self.velocity) > 1e-6)

    @property
    def annotated(self) -> bool:
        """Categories a nuScenes annotation would carry (not buildings, poles, trees, kerbs)."""
        return not self.category.startswith('static.')

    def extent(self) -> tuple:
        """(center_z_offset, (length, width, height)) of the box bounding all parts, object frame."""
        c = np.array([p.center for p in self.parts], float)
        h = np.array([p.size for p in self.parts], float) / 2
        lo, hi = (c - h).min(0), (c + h).max(0)
        return (lo + hi) / 2, hi - lo


@dataclass(frozen=True)
class LaneLine:
    """A painted line along the road at lateral position y; dashed when dash < period."""

    y: float
    width: float
    dash: float
    period: float
    color: tuple


@dataclass
class RoadLayout:
    lanes_per_direction: int
    lane_width: float
    parking_width: float       # 0 when there is no parking lane
    sidewalk_width: float
    curb_height: float
    lines: list = field(default_factory=list)
    crosswalks: tuple = ()     # world x of zebra crossings (4 m long, across the carriageway)
    asphalt_color: tuple = (0.33, 0.33, 0.34)
    verge_color: tuple = (0.35, 0.40, 0.25)

    @property
    def carriageway_half_width(self) -> float:
        return self.lanes_per_direction * self.lane_width

    @property
    def road_half_width(self) -> float:
        """From the centre line to the kerb."""
        return self.carriageway_half_width + self.parking_width

    def lane_center(self, index: int, oncoming: bool = False) -> float:
        """Driving on the right: our direction's lanes have y < 0, lane 0 next to the centre line."""
        y = (index + 0.5) * self.lane_width
        return y if oncoming else -y

    def marking_mask(self, x, y):
        """(paint mask, RGB of the paint) at ground points (x, y): lane lines and zebra crossings."""
        x = np.asarray(x)
        y = np.asarray(y)
        paint = np.zeros(x.shape, bool)
        color = np.zeros(x.shape + (3,), np.float32)
        for line in self.lines:
            on = np.abs(y - line.y) < line.width / 2
            if line.dash < line.period:
                on &= wrap(x, line.period) < line.dash
            paint |= on
            color[on] = line.color
        half = self.carriageway_half_width
        for xc in self.crosswalks:
            on = (np.abs(x - xc) < 2.0) & (np.abs(y) < half - 0.3) & (wrap(y, 1.0) < 0.5)
            paint |= on
            color[on] = (0.85, 0.85, 0.82)
        return paint, color


@dataclass(frozen=True)
class Appearance:
    """Lighting and atmosphere of one scene."""

    sun_direction: tuple       # unit vector towards the sun (world)
    ambient: float
    diffuse: float
    sky_zenith: tuple
    sky_horizon: tuple
    fog_distance: float        # m; colour -> horizon colour as 1 - exp(-depth / fog_distance)
    exposure: float
    shadow_strength: float     # 0 (overcast) .. 1
    # Domain randomisation (randomise.py); the defaults are the plain world's look, bit for bit.
    contrast: float = 1.0              # image contrast about its mean grey (weather-like haze < 1)
    light_color: tuple = (1.0, 1.0, 1.0)   # white balance: per-channel gain of the whole image
    blur: float = 0.0                  # Gaussian blur sigma in pixels at 1600 px width (defocus, motion)
    noise_gain: float = 1.0            # sensor noise multiplier
    vignette: float = 0.12             # corner darkening
    texture_frequency: float = 1.0     # scales every procedural texture's spatial frequency
    material_tint: tuple = None        # per material id an RGB albedo gain (None: none)


@dataclass
class BoxSet:
    """Every box at one time, as arrays (B = number of boxes), for vectorised rendering and ray casts."""

    center: np.ndarray         # (B, 3) world
    half: np.ndarray           # (B, 3) half sizes along the box axes
    yaw: np.ndarray            # (B,)
    material: np.ndarray       # (B,) int side material
    top_material: np.ndarray   # (B,) int top/bottom material
    color: np.ndarray          # (B, 3) float32
    params: np.ndarray         # (B, 4) float32
    owner: np.ndarray          # (B,) index into Scene.objects

    def __len__(self) -> int:
        return int(self.center.shape[0])

    def subset(self, keep) -> 'BoxSet':
        names = ('center', 'half', 'yaw', 'material', 'top_material', 'color', 'params', 'owner')
        return BoxSet(*(getattr(self, name)[keep] for name in names))

    def rotations(self) -> np.ndarray:
        """(B, 3, 3) box-to-world rotations (yaw only: everything stands upright on flat ground)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        R = np.zeros((len(self), 3, 3))
        R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
        return R

    def corners(self) -> np.ndarray:
        """(B, 8, 3) world corners."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        local = signs[None] * self.half[:, None, :]
        return np.einsum('bij,bkj->bki', self.rotations(), local) + self.center[:, None, :]


@dataclass(frozen=True)
class ObjectState:
    """One object at one time, in the terms of a nuScenes sample_annotation."""

    instance: int
    category: str
    center: np.ndarray         # world centre of the bounding box (m)
    size: np.ndarray           # (length, width, height) m; nuScenes stores (width, length, height)
    yaw: float
    velocity: np.ndarray       # world m/s
    moving: bool
    annotated: bool

    @property
    def rotation_wxyz(self) -> np.ndarray:
        return np.array([np.cos(self.yaw / 2), 0.0, 0.0, np.sin(self.yaw / 2)])


@dataclass
class Scene:
    """A whole street: road, ego path, lighting and objects. After construction, `moving` ((n,) bool)
    and `categories` (list of str) are indexed like `objects`, which is what the per-box `owner`
    indices and the per-return `owner` of sensor sweeps point into."""

    road: RoadLayout
    ego: EgoTrajectory
    appearance: Appearance
    objects: list
    x_range: tuple             # world x span the layout covers
    _packed: dict = field(default=None, repr=False)

    def __post_init__(self):
        self._pack()

    def _pack(self) -> None:
        """Flatten every part into arrays once; boxes_at(t) then only moves them."""
        rows = [(i, p) for i, o in enumerate(self.objects) for p in o.parts]
        owner = np.array([i for i, _ in rows], np.int32)
        self._packed = dict(
            owner=owner,
            local_center=np.array([p.center for _, p in rows], float).reshape(-1, 3),
            half=np.array([p.size for _, p in rows], float).reshape(-1, 3) / 2,
            material=np.array([p.material for _, p in rows], np.int8),
            top_material=np.array([p.top_material for _, p in rows], np.int8),
            color=np.array([p.color for _, p in rows], np.float32).reshape(-1, 3),
            params=np.array([p.params for _, p in rows], np.float32).reshape(-1, 4),
            obj_position=np.array([o.position for o in self.objects], float).reshape(-1, 3),
            obj_velocity=np.array([o.velocity for o in self.objects], float).reshape(-1, 3),
            obj_yaw=np.array([o.yaw for o in self.objects], float),
        )
        self.moving = np.array([o.moving for o in self.objects], bool)
        self.categories = [o.category for o in self.objects]

    def boxes_at(self, t: float) -> BoxSet:
        P = self._packed
        owner = P['owner']
        yaw = P['obj_yaw'][owner]
        c, s = np.cos(yaw), np.sin(yaw)
        lc = P['local_center']
        offset = np.stack([c * lc[:, 0] - s * lc[:, 1], s * lc[:, 0] + c * lc[:, 1], lc[:, 2]], axis=1)
        origin = P['obj_position'] + P['obj_velocity'] * t
        return BoxSet(center=origin[owner] + offset, half=P['half'], yaw=yaw, material=P['material'],
                      top_material=P['top_material'], color=P['color'], params=P['params'], owner=owner)

    def objects_at(self, t: float, annotated_only: bool = True) -> list:
        """ObjectState of every (annotated) object at time t."""
        out = []
        for o in self.objects:
            if annotated_only and not o.annotated:
                continue
            offset, size = o.extent()
            c, s = np.cos(o.yaw), np.sin(o.yaw)
            center = np.asarray(o.position, float) + np.asarray(o.velocity, float) * t
            center = center + [c * offset[0] - s * offset[1], s * offset[0] + c * offset[1], offset[2]]
            out.append(ObjectState(o.instance, o.category, center, size, o.yaw,
                                   np.asarray(o.velocity, float), o.moving, o.annotated))
        return out
