"""Random street layouts: the road, the ego path, buildings, street furniture, traffic and pedestrians.

`make_scene(rng, settings)` is the only entry point; every random choice of a scene is drawn here,
in a fixed order, from one numpy Generator, so a seed fixes the whole world. Traffic is built so it
never collides: every lane moves as one platoon at one speed, the ego lane's traffic ahead is faster
than the ego and behind it slower.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import materials as M
from . import objects as templates
from .scene import Appearance, LaneLine, Part, RoadLayout, Scene, SceneObject
from .trajectory import EgoTrajectory


@dataclass(frozen=True)
class LayoutSettings:
    duration: float = 20.0          # s of ego motion the layout must cover
    far: float = 200.0              # m ahead of the last ego position that gets populated
    ego_speed: tuple = (5.0, 15.0)  # m/s
    vehicle_gap: tuple = (7.0, 45.0)
    pedestrian_gap: tuple = (3.0, 30.0)


WHITE = (0.88, 0.88, 0.86)
YELLOW = (0.85, 0.68, 0.18)


class _Builder:
    def __init__(self, rng):
        self.rng = rng
        self.objects = []

    def add(self, category, x, y, yaw, parts, velocity=(0.0, 0.0, 0.0)):
        lo, hi = M.RADAR_SIGNATURE.get(category, M.RadarSignature((0.0, 5.0), 10, 1)).rcs_db
        self.objects.append(SceneObject(len(self.objects), category, (float(x), float(y), 0.0), float(yaw),
                                        tuple(float(v) for v in velocity), parts,
                                        rcs_db=float(self.rng.uniform(lo, hi))))


def _road(rng) -> RoadLayout:
    lanes = int(rng.choice([1, 2], p=[0.4, 0.6]))
    lane_w = rng.uniform(3.2, 3.7)
    road = RoadLayout(lanes_per_direction=lanes, lane_width=lane_w,
                      parking_width=2.4 if rng.random() < 0.6 else 0.0,
                      sidewalk_width=rng.uniform(2.5, 5.0), curb_height=rng.uniform(0.12, 0.18),
                      asphalt_color=tuple(np.full(3, rng.uniform(0.26, 0.40)) * [1.0, 1.0, 1.03]),
                      verge_color=tuple(rng.uniform([0.30, 0.35, 0.20], [0.45, 0.48, 0.32])))
    if rng.random() < 0.5:
        road.lines += [LaneLine(s * 0.12, 0.12, 1.0, 1.0, YELLOW) for s in (-1, 1)]
    else:
        road.lines.append(LaneLine(0.0, 0.12, 3.0, 9.0, WHITE))
    for i in range(1, lanes):
        road.lines += [LaneLine(s * i * lane_w, 0.12, 3.0, 9.0, WHITE) for s in (-1, 1)]
    if rng.random() < 0.8:
        road.lines += [LaneLine(s * (lanes * lane_w - 0.1), 0.15, 1.0, 1.0, WHITE) for s in (-1, 1)]
    return road


def _ego(rng, road: RoadLayout, s: LayoutSettings) -> EgoTrajectory:
    v0 = rng.uniform(*s.ego_speed)
    accel = rng.uniform(-0.3, 0.3)
    v_end = v0 + accel * s.duration
    if not 3.0 <= v_end <= 17.0:
        accel = 0.0
    return EgoTrajectory(x0=0.0, v0=v0, accel=accel,
                         lane_y=road.lane_center(int(rng.integers(road.lanes_per_direction))),
                         weave_amplitude=rng.uniform(0.0, 0.35), weave_period=rng.uniform(6.0, 14.0),
                         weave_phase=rng.uniform(0, 2 * np.pi))


def _appearance(rng) -> Appearance:
    overcast = rng.random() < 0.3
    elev, azim = np.radians(rng.uniform(25, 65)), rng.uniform(0, 2 * np.pi)
    sun = (np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev))
    if overcast:
        return Appearance(sun, ambient=0.72, diffuse=0.28, sky_zenith=(0.60, 0.63, 0.67),
                          sky_horizon=(0.78, 0.79, 0.80), fog_distance=rng.uniform(180, 400),
                          exposure=rng.uniform(0.85, 1.1), shadow_strength=0.15)
    tint = rng.uniform(0.9, 1.1)
    return Appearance(sun, ambient=rng.uniform(0.35, 0.5), diffuse=rng.uniform(0.55, 0.75),
                      sky_zenith=tuple(np.clip(np.array([0.30, 0.50, 0.85]) * tint, 0, 1)),
                      sky_horizon=(0.76, 0.82, 0.90), fog_distance=rng.uniform(300, 800),
                      exposure=rng.uniform(0.85, 1.15), shadow_strength=rng.uniform(0.6, 0.8))


def _along(rng, x_lo, x_hi, gap):
    """Positions from x_lo to x_hi separated by uniform gaps."""
    xs, x = [], x_lo + rng.uniform(0, gap[1])
    while x < x_hi:
        xs.append(x)
        x += rng.uniform(*gap)
    return xs


def _vehicle(rng, parked=False):
    r = rng.random()
    if r < (0.9 if parked else 0.82):
        return 'vehicle.car', templates.car(rng)
    if r < 0.93 or parked:
        return 'vehicle.truck', templates.truck(rng)
    return 'vehicle.bus.rigid', templates.bus(rng)


def _length(parts) -> float:
    return max(abs(p.center[0]) + p.size[0] / 2 for p in parts) * 2


def _platoon(b: _Builder, y, speed, x_lo, x_hi, gap, yaw, first_at_start=False):
    """One lane of traffic: vehicles with random gaps from x_lo to x_hi, all at one speed."""
    rng = b.rng
    x = x_lo if first_at_start else x_lo + rng.uniform(0, gap[1])
    while x < x_hi:
        cat, parts = _vehicle(rng)
        half = _length(parts) / 2
        x += half
        b.add(cat, x, y + rng.uniform(-0.2, 0.2), yaw, parts, (speed * np.cos(yaw), 0.0, 0.0))
        x += half + rng.uniform(*gap)


def _traffic(b: _Builder, road: RoadLayout, ego: EgoTrajectory, s: LayoutSettings, x_lo, x_hi):
    rng, D = b.rng, s.duration
    ego_lane = int(round(-ego.lane_y / road.lane_width - 0.5))
    speeds = ego.speed(np.linspace(0, D, 21))
    for lane in range(road.lanes_per_direction):
        y = road.lane_center(lane)
        if lane == ego_lane:
            # ahead: faster than the ego ever is; behind: slower than it ever is. No collisions.
            v_ahead = speeds.max() + rng.uniform(0.3, 2.0)
            start = ego.x0 + (rng.uniform(10, 40) if rng.random() < 0.75 else rng.uniform(40, 90))
            _platoon(b, y, v_ahead, start, x_hi, s.vehicle_gap, 0.0, first_at_start=True)
            v_behind = speeds.min() - rng.uniform(0.5, 2.0)
            if v_behind > 1.0:
                _platoon(b, y, v_behind, x_lo - v_behind * D, ego.x0 - 25.0, s.vehicle_gap, 0.0)
        else:
            v = rng.uniform(4.0, 16.0)
            _platoon(b, y, v, x_lo - v * D, x_hi, s.vehicle_gap, 0.0)
    for lane in range(road.lanes_per_direction):
        v = rng.uniform(6.0, 16.0)
        _platoon(b, road.lane_center(lane, oncoming=True), v, x_lo, x_hi + v * D, s.vehicle_gap, np.pi)


def _kerbside(b: _Builder, road: RoadLayout, x_lo, x_hi):
    rng = b.rng
    for side in (-1, 1):
        yaw = 0.0 if side < 0 else np.pi
        if road.parking_width > 0:
            y = side * (road.carriageway_half_width + road.parking_width / 2)
            fill = rng.uniform(0.3, 0.8)
            for x in np.arange(x_lo + rng.uniform(0, 6), x_hi, 6.5):
                if rng.random() < fill:
                    cat, parts = _vehicle(rng, parked=True)
                    if _length(parts) < 6.3 or rng.random() < 0.5:
                        b.add(cat, x, y + side * rng.uniform(-0.1, 0.2), yaw + rng.normal(0, 0.02), parts)
                elif rng.random() < 0.05:
                    for k in range(3):
                        b.add('movable_object.trafficcone', x + 1.5 * k - 1.5, y, 0.0, templates.cone(rng))
        kerb = side * (road.road_half_width + 0.6)
        for x in _along(rng, x_lo, x_hi, (18.0, 35.0)):
            b.add('static.pole', x, kerb, 0.0 if side < 0 else np.pi,
                  templates.streetlight(rng, reach=rng.uniform(1.0, 2.5)))
        for x in _along(rng, x_lo, x_hi, (40.0, 120.0)):
            b.add('static.sign', x, kerb - side * 0.1, np.pi, templates.sign(rng))
        if rng.random() < 0.3:
            x0 = rng.uniform(x_lo, x_hi)
            for k in range(int(rng.integers(2, 6))):
                b.add('movable_object.barrier', x0 + 2.6 * k, side * (road.road_half_width + 0.35), 0.0,
                      templates.barrier(rng))
        if rng.random() < 0.6:
            y = side * (road.road_half_width + road.sidewalk_width - 0.8)
            for x in _along(rng, x_lo, x_hi, (8.0, 22.0)):
                b.add('static.vegetation', x, y, 0.0, templates.tree(rng))


def _buildings(b: _Builder, road: RoadLayout, x_lo, x_hi):
    rng = b.rng
    front = road.road_half_width + road.sidewalk_width
    for side in (-1, 1):
        x = x_lo
        while x < x_hi:
            length, depth = rng.uniform(8.0, 30.0), rng.uniform(10.0, 20.0)
            setback = rng.uniform(0.0, 3.0)
            b.add('static.building', x + length / 2, side * (front + setback + depth / 2), 0.0,
                  templates.building(rng, length, depth))
            x += length + (rng.uniform(0.0, 2.0) if rng.random() < 0.75 else rng.uniform(5.0, 15.0))


def _sidewalks(b: _Builder, road: RoadLayout, x_lo, x_hi):
    width, h = road.sidewalk_width, road.curb_height
    for side in (-1, 1):
        y = side * (road.road_half_width + width / 2)
        part = Part(((x_hi - x_lo) / 2, 0.0, h / 2), (x_hi - x_lo, width, h), M.CONCRETE, M.SIDEWALK,
                    (0.62, 0.61, 0.58))
        b.add('static.sidewalk', x_lo, y, 0.0, [part])


def _pedestrians(b: _Builder, road: RoadLayout, s: LayoutSettings, x_lo, x_hi):
    rng = b.rng
    inner, outer = road.road_half_width + 0.4, road.road_half_width + road.sidewalk_width - 0.4
    for side in (-1, 1):
        for x in _along(rng, x_lo - 1.7 * s.duration, x_hi + 1.7 * s.duration, s.pedestrian_gap):
            y = side * rng.uniform(inner, outer)
            if rng.random() < 0.3:
                b.add('human.pedestrian.adult', x, y, rng.uniform(-np.pi, np.pi), templates.pedestrian(rng))
            else:
                direction = 1.0 if rng.random() < 0.5 else -1.0
                speed = rng.uniform(0.8, 1.7)
                b.add('human.pedestrian.adult', x, y, 0.0 if direction > 0 else np.pi, templates.pedestrian(rng),
                      (direction * speed, 0.0, 0.0))


def make_scene(rng: np.random.Generator, settings: LayoutSettings = LayoutSettings()) -> Scene:
    road = _road(rng)
    ego = _ego(rng, road, settings)
    x_lo = float(ego.position(0.0)[0]) - 100.0
    x_hi = float(ego.position(settings.duration)[0]) + settings.far + 30.0
    if rng.random() < 0.5:
        road.crosswalks = tuple(sorted(rng.uniform(ego.x0 + 20.0, x_hi - 50.0, int(rng.integers(1, 3)))))
    b = _Builder(rng)
    _traffic(b, road, ego, settings, x_lo, x_hi)
    _kerbside(b, road, x_lo, x_hi)
    _buildings(b, road, x_lo, x_hi)
    _sidewalks(b, road, x_lo, x_hi)
    _pedestrians(b, road, settings, x_lo, x_hi)
    for i, o in enumerate(b.objects):
        o.instance = i
    return Scene(road=road, ego=ego, appearance=_appearance(rng), objects=b.objects, x_range=(x_lo, x_hi))
