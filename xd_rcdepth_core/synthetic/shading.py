"""Colours of the rendered surfaces: textures, Lambert lighting, shadows, fog, sky and sensor noise.

Input is what the rasteriser left per pixel (surface id and depth); every visible pixel is lifted
back to its world point, so textures live in world or box coordinates and stay put as the camera
moves: asphalt grain, tyre tracks and lane paint on the road, tiles on the sidewalk, window grids on
facades, lights on cars. Those are the monocular depth cues a CNN can learn (texture gradients,
shadows at contact points, fog), on top of the object sizes and the ground plane itself.

Written for speed (a 900 x 1600 image is 1.4 M pixels): float32 throughout, pixels grouped by
material so each pattern only touches its own pixels, planar colour scatter.
"""
from __future__ import annotations

from functools import cached_property, lru_cache

import cv2
import numpy as np

from . import materials as M
from .scene import BoxSet, Scene
from .textures import hash01, sample_noise, wrap

GROUND_ID = 1          # surface id of the ground plane; boxes use 2 + 6 * box + face
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
GLASS = np.array([0.10, 0.13, 0.17], np.float32)
GROUND_MATERIALS = (M.ROAD, M.VERGE)


def face_surface_id(box: int, face: int) -> int:
    return 2 + 6 * box + face


class _Pixels:
    """The visible pixels of one image: flat index, world point, depth, surface, material."""

    def __init__(self, scene: Scene, boxes: BoxSet, surface, depth, K, T_world_camera):
        W = surface.shape[1]
        flat = surface.ravel()
        self.index = np.flatnonzero(flat).astype(np.int32)
        self.surface = flat[self.index]
        z = depth.ravel()[self.index]
        v, u = np.divmod(self.index, np.int32(W))
        x = (u.astype(np.float32) - np.float32(K[0, 2])) * np.float32(1 / K[0, 0]) * z
        y = (v.astype(np.float32) - np.float32(K[1, 2])) * np.float32(1 / K[1, 1]) * z
        R, t = T_world_camera[:3, :3].astype(np.float32), T_world_camera[:3, 3].astype(np.float32)
        self.world = np.empty((z.size, 3), np.float32)
        for i in range(3):      # explicit 3x3 product: faster than a (n, 3) @ (3, 3) matmul
            self.world[:, i] = R[i, 0] * x + R[i, 1] * y + R[i, 2] * z + t[i]
        self.depth = z
        ground = self.surface == GROUND_ID
        box = np.maximum((self.surface - 2) // 6, 0)
        road = np.abs(self.world[:, 1]) < scene.road.road_half_width
        top = (self.surface - 2) % 6 >= 4
        self.material = np.where(ground, np.where(road, M.ROAD, M.VERGE),
                                 np.where(top, boxes.top_material[box], boxes.material[box])).astype(np.int8)
        # one row per box: centre, cos/sin yaw, half size, colour, params (gathered per pixel group)
        self.table = np.concatenate([boxes.center, np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None],
                                     boxes.half, boxes.color, boxes.params], axis=1).astype(np.float32)


class _Group:
    """The pixels of one material; box-frame quantities are computed when a pattern first asks."""

    def __init__(self, px: _Pixels, sel: np.ndarray, on_box: bool):
        self.world = np.take(px.world, sel, axis=0)
        self.n = sel.size
        if on_box:
            sid = np.take(px.surface, sel)
            self.box = (sid - 2) // 6
            self.face = (sid - 2) % 6
            self._row = np.take(px.table, self.box, axis=0)

    @cached_property
    def local(self) -> np.ndarray:
        """(n, 3) pixel positions in their box's frame."""
        c, s = self._row[:, 3], self._row[:, 4]
        d = self.world - self._row[:, 0:3]
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)

    @property
    def half(self) -> np.ndarray:
        return self._row[:, 5:8]

    @property
    def color(self) -> np.ndarray:
        return self._row[:, 8:11]

    @property
    def params(self) -> np.ndarray:
        return self._row[:, 11:15]


def _noise(scene: Scene, x, y, texels_per_metre: float, offset: float = 0.0, smooth: bool = False):
    """textures.sample_noise at the scene's texture frequency (Appearance.texture_frequency)."""
    return sample_noise(x, y, texels_per_metre * scene.appearance.texture_frequency, offset, smooth)


def _surface_lighting(boxes: BoxSet, sun) -> tuple:
    """Per surface id: Lambert factor max(0, n . sun) and the normal's z (ground = id 1, faces 2 + 6 b + f);
    lighting depends only on the face, so it is looked up per pixel rather than computed."""
    c, s = np.cos(boxes.yaw), np.sin(boxes.yaw)
    n = FACE_NORMALS[None, :, :]
    nx = c[:, None] * n[..., 0] - s[:, None] * n[..., 1]
    ny = s[:, None] * n[..., 0] + c[:, None] * n[..., 1]
    nz = np.broadcast_to(n[..., 2], nx.shape)
    lambert = np.clip(nx * sun[0] + ny * sun[1] + nz * sun[2], 0.0, None)
    head = np.array([0.0, max(sun[2], 0.0)], np.float32)
    return (np.concatenate([head, lambert.ravel()]).astype(np.float32),
            np.concatenate([[0.0, 1.0], nz.ravel()]).astype(np.float32))


def _road(g: _Group, scene: Scene):
    x, y = g.world[:, 0], g.world[:, 1]
    road = scene.road
    grain = 1.0 + 0.07 * _noise(scene, x, y, 14.0) + 0.06 * _noise(scene, x, y, 1.2, 91.0, smooth=True)
    track = np.zeros_like(x)
    for lane in range(road.lanes_per_direction):       # darker tyre tracks along every lane
        for oncoming in (False, True):
            dist = np.abs(np.abs(y - np.float32(road.lane_center(lane, oncoming))) - np.float32(0.8))
            track += np.exp(-np.square(dist * np.float32(4.0)))
    albedo = np.asarray(road.asphalt_color, np.float32) * (grain * (1.0 - 0.07 * track))[:, None]
    paint, paint_color = road.marking_mask(x, y)
    albedo[paint] = paint_color[paint] * (0.93 + 0.05 * _noise(scene, x[paint], y[paint], 20.0))[:, None]
    return albedo


def _verge(g, scene):
    x, y = g.world[:, 0], g.world[:, 1]
    tone = 1.0 + 0.15 * _noise(scene, x, y, 6.0, 7.0) + 0.15 * _noise(scene, x, y, 0.7, 3.0, smooth=True)
    return np.asarray(scene.road.verge_color, np.float32) * tone[:, None]


def _sidewalk(g, scene):
    x, y = g.world[:, 0], g.world[:, 1]
    joint = (np.abs(wrap(x, 1.5) - 0.75) > 0.72) | (np.abs(wrap(y, 1.2) - 0.6) > 0.57)
    tone = (1.0 + 0.06 * _noise(scene, x, y, 10.0, 5.0)) * np.where(joint, np.float32(0.8), np.float32(1.0))
    return g.color * tone[:, None]


def _along_face(g):
    """Horizontal coordinate along a vertical face (0 at one edge) and the face's length."""
    on_x = g.face <= 1
    coord = np.where(on_x, g.local[:, 1] + g.half[:, 1], g.local[:, 0] + g.half[:, 0])
    length = np.where(on_x, 2 * g.half[:, 1], 2 * g.half[:, 0])
    return coord, length


def _wall(g, scene):
    """Facade colour with a grid of windows (params: spacing, floor height, width and height fractions)
    and shop windows on some ground-floor bays; each pane gets its own brightness."""
    s, length = _along_face(g)
    zb = g.local[:, 2] + g.half[:, 2]
    spacing, floor, wf, hf = g.params.T
    cell_s, cell_z = np.floor(s / spacing), np.floor(zb / floor)
    fs, fz = s / spacing - cell_s, zb / floor - cell_z
    inside = (s > 0.6) & (s < length - 0.6) & (zb < 2 * g.half[:, 2] - 0.8)
    window = inside & (cell_z >= 1) & (np.abs(fs - 0.5) < wf / 2) & (np.abs(fz - 0.55) < hf / 2)
    shop = inside & (cell_z == 0) & (fz > 0.12) & (fz < 0.8) & (np.abs(fs - 0.5) < 0.42)
    if shop.any():
        shop[shop] = hash01(g.box[shop], g.face[shop], cell_s[shop], 7) < 0.5
    tone = 1.0 + 0.05 * _noise(scene, s, zb, 8.0, 11.0) + 0.04 * _noise(scene, s, zb, 1.0, 13.0)
    albedo = g.color * tone[:, None]
    glass = window | shop
    lum = 0.55 + 0.9 * hash01(g.box[glass], g.face[glass], cell_s[glass], cell_z[glass])
    albedo[glass] = GLASS * lum[:, None]
    return albedo


def _roof(g, scene):
    x, y = g.world[:, 0], g.world[:, 1]
    return np.full((g.n, 3), 0.36, np.float32) * (1.0 + 0.1 * _noise(scene, x, y, 4.0, 17.0))[:, None]


def _body(g, scene):
    """Paint, plus head/tail lights and a number plate (params[0]) and a bus's window band (params[1])."""
    loc, half, face, params = g.local, g.half, g.face, g.params
    albedo = g.color * (1.0 + 0.03 * _noise(scene, loc[:, 0], loc[:, 2], 20.0, 21.0))[:, None]
    ends = (params[:, 0] > 0) & (face <= 1)
    lamp = ends & (np.abs(loc[:, 1]) > half[:, 1] - 0.35) & (loc[:, 2] > half[:, 2] - 0.3) & \
        (loc[:, 2] < half[:, 2] - 0.1)
    albedo[lamp & (face == 0)] = (0.95, 0.95, 0.88)
    albedo[lamp & (face == 1)] = (0.75, 0.05, 0.04)
    plate = ends & (np.abs(loc[:, 1]) < 0.26) & (loc[:, 2] > -half[:, 2] + 0.08) & \
        (loc[:, 2] < -half[:, 2] + 0.22)
    albedo[plate] = (0.85, 0.85, 0.80)
    band = params[:, 1] > 0
    side_glass = band & (face >= 2) & (face <= 3) & (loc[:, 2] > half[:, 2] - 1.4) & \
        (loc[:, 2] < half[:, 2] - 0.35) & (np.abs(loc[:, 0]) < half[:, 0] - 0.4)
    screen = band & (face == 0) & (loc[:, 2] > half[:, 2] - 1.5) & (loc[:, 2] < half[:, 2] - 0.15) & \
        (np.abs(loc[:, 1]) < half[:, 1] - 0.15)
    albedo[side_glass | screen] = GLASS
    return albedo


def _glass(g, scene):
    """A car cabin: windows with body-coloured pillars and roof edge."""
    loc, half = g.local, g.half
    frame = np.where(g.face >= 2, (np.abs(loc[:, 0]) > half[:, 0] - 0.08) | (np.abs(loc[:, 0]) < 0.05),
                     np.abs(loc[:, 1]) > half[:, 1] - 0.08) | (loc[:, 2] > half[:, 2] - 0.05)
    albedo = np.broadcast_to(GLASS, (g.n, 3)).copy()
    albedo[frame] = g.color[frame]
    return albedo


def _tyre(g, scene):
    hub = (g.face >= 2) & (g.face <= 3) & (np.hypot(g.local[:, 0], g.local[:, 2]) < 0.5 * g.half[:, 2])
    albedo = np.full((g.n, 3), 0.05, np.float32)
    albedo[hub] = 0.45
    return albedo


def _plain(strength, scale):
    def pattern(g, scene):
        w = g.world
        tone = 1.0 + strength * _noise(scene, w[:, 0] + w[:, 2], w[:, 1] - w[:, 2], scale, 29.0)
        return g.color * tone[:, None]
    return pattern


def _cone(g, scene):
    albedo = g.color.copy()
    albedo[np.abs(g.local[:, 2]) < 0.07] = 0.9
    return albedo


def _foliage(g, scene):
    w = g.world
    tone = 0.75 + 0.35 * _noise(scene, w[:, 0] + 0.7 * w[:, 2], w[:, 1] - 0.6 * w[:, 2], 9.0, 31.0)
    return g.color * np.clip(tone, 0.2, 1.6)[:, None]


PATTERNS = {M.ROAD: _road, M.VERGE: _verge, M.SIDEWALK: _sidewalk, M.WALL: _wall, M.ROOF: _roof,
            M.BODY: _body, M.GLASS: _glass, M.TYRE: _tyre, M.CLOTH: _plain(0.06, 25.0),
            M.SKIN: _plain(0.03, 25.0), M.METAL: _plain(0.05, 12.0), M.CONCRETE: _plain(0.08, 10.0),
            M.FOLIAGE: _foliage, M.BARK: _plain(0.15, 30.0), M.CONE: _cone}


def _sky(scene: Scene, rays_world: np.ndarray) -> np.ndarray:
    """Gradient from the horizon colour to the zenith colour, with soft clouds."""
    app = scene.appearance
    d = rays_world / np.linalg.norm(rays_world, axis=1, keepdims=True)
    up = np.clip(d[:, 2] * 3.0, 0.0, 1.0) ** 0.8
    horizon = np.asarray(app.sky_horizon, np.float32)
    col = horizon + (np.asarray(app.sky_zenith, np.float32) - horizon) * up[:, None]
    # clouds: noise on a plane 1 km up, faded out towards the horizon
    k = 1000.0 / np.maximum(d[:, 2], 0.05)
    cloud = np.clip(_noise(scene, d[:, 0] * k, d[:, 1] * k, 0.05, 43.0, smooth=True) - 0.2, 0.0, 1.5) * 0.5
    cloud *= np.clip(d[:, 2] * 8.0, 0.0, 1.0)
    return col + (1.0 - col) * cloud[:, None]


def _sensor_noise(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Per-pixel sensor noise: a fixed Gaussian field, randomly shifted per image (a fresh field per
    image costs ~50 ms at 900 x 1600 and a CNN cannot tell the difference)."""
    field = _noise_field(height + 32, width + 32)
    dy, dx = rng.integers(0, 32, size=2)
    return field[:, dy:dy + height, dx:dx + width]


@lru_cache(maxsize=4)
def _vignette(height: int, width: int, strength: float = 0.12) -> np.ndarray:
    yy = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    return 1.0 - strength * (yy[:, None] ** 2 + xx[None, :] ** 2)


@lru_cache(maxsize=4)
def _noise_field(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(777).standard_normal((3, height, width), dtype=np.float32) * 2.0


def _weather_and_optics(image: np.ndarray, app) -> None:
    """In place on the 3 x H x W float image (0..255 scale): white balance, contrast about the image's
    mean grey (haze, low sun, overcast), Gaussian blur. Each step only when it changes something, so
    the plain world's images stay bit for bit what they were."""
    if tuple(app.light_color) != (1.0, 1.0, 1.0):
        image *= np.asarray(app.light_color, np.float32)[:, None, None]
    if app.contrast != 1.0:
        mean = np.float32(image.mean())
        image -= mean
        image *= np.float32(app.contrast)
        image += mean
    if app.blur > 0:
        sigma = float(app.blur) * image.shape[2] / 1600.0
        if sigma >= 0.05:
            for ch in range(3):
                image[ch] = cv2.GaussianBlur(image[ch], (0, 0), sigma)


def shade(scene: Scene, boxes: BoxSet, surface: np.ndarray, depth: np.ndarray, K, T_world_camera,
          shadow: np.ndarray, far: float, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 uint8 RGB image of the rasterised scene."""
    H, W = surface.shape
    app = scene.appearance
    px = _Pixels(scene, boxes, surface, depth, K, T_world_camera)
    color = np.empty((3, px.index.size), np.float32)      # planar: scatters per channel are cheaper
    order = np.argsort(px.material, kind='stable')
    counts = np.bincount(px.material, minlength=M.N_MATERIALS)
    in_shadow = shadow.ravel()[px.index] > 0
    sun = np.asarray(app.sun_direction, np.float32)
    lambert_of, normal_z_of = _surface_lighting(boxes, sun)
    lambert, nz = lambert_of[px.surface], normal_z_of[px.surface]
    # Sun shadows fall on the ground and on the sidewalk top (flat, near z = 0).
    shaded = in_shadow & (nz > 0.9) & (px.world[:, 2] < 0.3)
    light = app.ambient * (0.8 + 0.2 * nz) + \
        app.diffuse * lambert * np.where(shaded, np.float32(1.0 - app.shadow_strength), np.float32(1.0))
    start = 0
    for mat, count in enumerate(counts):
        if not count:
            continue
        sel = order[start:start + count]
        start += count
        albedo = PATTERNS[mat](_Group(px, sel, on_box=mat not in GROUND_MATERIALS), scene)
        if app.material_tint is not None:
            albedo = albedo * np.asarray(app.material_tint[mat], np.float32)
        for ch in range(3):
            color[ch][sel] = albedo[:, ch]
    color *= light
    # Aerial perspective: colours fade to the horizon colour with distance, fully by `far`.
    fade = 1.0 - np.exp(-px.depth * np.float32(1.0 / app.fog_distance))
    edge = np.clip((px.depth - np.float32(0.6 * far)) * np.float32(1.0 / (0.4 * far)), 0.0, 1.0)
    fade = np.maximum(fade, edge * edge * (3 - 2 * edge))
    image = np.empty((3, H * W), np.float32)
    sky = np.flatnonzero(surface.ravel() == 0)
    if sky.size:
        v, u = np.divmod(sky, W)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(sky.size)], axis=1)
        sky_color = _sky(scene, (rays @ T_world_camera[:3, :3].T).astype(np.float32))
    for ch in range(3):
        c = color[ch]
        c += (np.float32(app.sky_horizon[ch]) - c) * fade
        image[ch][px.index] = c
        if sky.size:
            image[ch][sky] = sky_color[:, ch]
    image = image.reshape(3, H, W)
    # Lens vignetting and sensor noise.
    image *= _vignette(H, W, app.vignette) * np.float32(255.0 * app.exposure)
    _weather_and_optics(image, app)
    noise = _sensor_noise(H, W, rng)
    image += noise if app.noise_gain == 1.0 else noise * np.float32(app.noise_gain)
    np.clip(image, 0, 255, out=image)
    return np.ascontiguousarray(image.astype(np.uint8).transpose(1, 2, 0))
