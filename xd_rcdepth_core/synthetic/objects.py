"""Box-built templates of the things in a street: vehicles, pedestrians, poles, signs, trees,
barriers, cones and buildings. Each function draws its own proportions and colours from `rng` and
returns a list of `Part`s in the object's frame (x forward, y left, z up, origin on the ground).
"""
from __future__ import annotations

import numpy as np

from . import materials as M
from .scene import Part

CAR_COLORS = [(0.75, 0.75, 0.76), (0.10, 0.10, 0.11), (0.92, 0.92, 0.90), (0.55, 0.08, 0.07),
              (0.12, 0.20, 0.45), (0.40, 0.42, 0.44), (0.60, 0.55, 0.45), (0.15, 0.35, 0.20),
              (0.80, 0.62, 0.10)]
FACADE_COLORS = [(0.78, 0.72, 0.60), (0.62, 0.32, 0.24), (0.70, 0.70, 0.68), (0.88, 0.86, 0.80),
                 (0.52, 0.45, 0.38), (0.55, 0.60, 0.66), (0.80, 0.66, 0.50), (0.45, 0.45, 0.47)]
CLOTH_COLORS = [(0.12, 0.12, 0.14), (0.70, 0.15, 0.12), (0.15, 0.25, 0.55), (0.85, 0.85, 0.82),
                (0.35, 0.45, 0.30), (0.55, 0.45, 0.35), (0.80, 0.70, 0.20)]
SKIN_COLORS = [(0.85, 0.68, 0.55), (0.62, 0.45, 0.33), (0.40, 0.28, 0.20), (0.95, 0.80, 0.68)]
TYRE = (0.06, 0.06, 0.06)
GLASS = (0.10, 0.13, 0.16)

# params[0] of a BODY part: 1 = draw head/tail lights on its front/rear faces; params[1]: 1 = a
# window band along its sides (buses).


def _pick(rng, palette):
    base = np.asarray(palette[rng.integers(len(palette))], float)
    return tuple(np.clip(base * rng.uniform(0.9, 1.1), 0, 1))


def _axles(width, wheelbase, radius=0.32):
    """Two boxes standing in for the wheels: dark blocks a little narrower than the body."""
    return [Part((x, 0.0, radius), (2 * radius, width * 0.96, 2 * radius), M.TYRE, M.TYRE, TYRE)
            for x in (wheelbase / 2, -wheelbase / 2)]


def car(rng) -> list:
    length, width = rng.uniform(4.0, 4.9), rng.uniform(1.75, 1.95)
    suv = rng.random() < 0.3
    body_h = rng.uniform(0.8, 0.95) if suv else rng.uniform(0.6, 0.75)
    cabin_h = rng.uniform(0.5, 0.65) if suv else rng.uniform(0.45, 0.55)
    color = _pick(rng, CAR_COLORS)
    z0 = 0.32
    cabin_len = length * (rng.uniform(0.6, 0.7) if suv else rng.uniform(0.45, 0.55))
    cabin_x = -length * (0.02 if suv else rng.uniform(0.04, 0.1))
    return _axles(width, length * 0.6) + [
        Part((0.0, 0.0, z0 + body_h / 2), (length, width, body_h), M.BODY, M.BODY, color, (1, 0, 0, 0)),
        Part((cabin_x, 0.0, z0 + body_h + cabin_h / 2), (cabin_len, width - 0.12, cabin_h), M.GLASS, M.BODY,
             color),
    ]


def truck(rng) -> list:
    cab_len, box_len = rng.uniform(2.0, 2.4), rng.uniform(5.0, 8.0)
    width = rng.uniform(2.3, 2.5)
    cab_h, box_h = rng.uniform(2.6, 3.0), rng.uniform(3.2, 3.9)
    length = cab_len + box_len + 0.3
    cab_x = length / 2 - cab_len / 2
    box_x = -length / 2 + box_len / 2
    return _axles(width, length * 0.65, 0.45) + [
        Part((cab_x, 0.0, 0.5 + (cab_h - 0.5) / 2), (cab_len, width, cab_h - 0.5), M.BODY, M.BODY,
             _pick(rng, CAR_COLORS), (1, 0, 0, 0)),
        Part((box_x, 0.0, 0.9 + (box_h - 0.9) / 2), (box_len, width, box_h - 0.9), M.METAL, M.METAL,
             _pick(rng, [(0.85, 0.85, 0.85), (0.7, 0.7, 0.72), (0.6, 0.2, 0.15), (0.2, 0.3, 0.5)])),
    ]


def bus(rng) -> list:
    length, width, height = rng.uniform(10.5, 12.5), 2.55, rng.uniform(3.0, 3.3)
    color = _pick(rng, [(0.85, 0.15, 0.12), (0.9, 0.9, 0.88), (0.15, 0.35, 0.6), (0.9, 0.7, 0.1)])
    return _axles(width, length * 0.55, 0.5) + [
        Part((0.0, 0.0, 0.45 + (height - 0.45) / 2), (length, width, height - 0.45), M.BODY, M.BODY, color,
             (1, 1, 0, 0))]


def pedestrian(rng) -> list:
    h = rng.uniform(1.55, 1.92)
    legs, torso, head = 0.5 * h, 0.36 * h, 0.14 * h
    shoulders = rng.uniform(0.4, 0.5)
    return [
        Part((0.0, 0.0, legs / 2), (0.25, shoulders * 0.75, legs), M.CLOTH, M.CLOTH, _pick(rng, CLOTH_COLORS)),
        Part((0.0, 0.0, legs + torso / 2), (0.28, shoulders, torso), M.CLOTH, M.CLOTH, _pick(rng, CLOTH_COLORS)),
        Part((0.0, 0.0, legs + torso + head / 2), (0.2, 0.18, head), M.SKIN, M.SKIN, _pick(rng, SKIN_COLORS)),
    ]


def streetlight(rng, reach: float) -> list:
    """A pole with an arm reaching `reach` metres towards +y (the object is yawed to face the road)."""
    h = rng.uniform(6.0, 9.0)
    grey = tuple(np.full(3, rng.uniform(0.35, 0.6)))
    return [Part((0.0, 0.0, h / 2), (0.2, 0.2, h), M.METAL, M.METAL, grey),
            Part((0.0, reach / 2, h - 0.1), (0.12, reach, 0.12), M.METAL, M.METAL, grey),
            Part((0.0, reach - 0.2, h - 0.25), (0.3, 0.5, 0.18), M.METAL, M.METAL, (0.8, 0.8, 0.75))]


def sign(rng) -> list:
    color = _pick(rng, [(0.75, 0.1, 0.1), (0.1, 0.25, 0.7), (0.9, 0.9, 0.9), (0.9, 0.75, 0.1)])
    return [Part((0.0, 0.0, 1.3), (0.08, 0.08, 2.6), M.METAL, M.METAL, (0.5, 0.5, 0.5)),
            Part((0.06, 0.0, 2.4), (0.04, 0.7, 0.7), M.METAL, M.METAL, color)]


def tree(rng) -> list:
    trunk_h, crown = rng.uniform(2.0, 3.0), rng.uniform(2.5, 4.5)
    crown_h = rng.uniform(2.5, 4.5)
    green = _pick(rng, [(0.20, 0.35, 0.15), (0.25, 0.40, 0.18), (0.18, 0.30, 0.16), (0.35, 0.40, 0.15)])
    return [Part((0.0, 0.0, trunk_h / 2), (0.3, 0.3, trunk_h), M.BARK, M.BARK, (0.30, 0.22, 0.15)),
            Part((0.0, 0.0, trunk_h - 0.3 + crown_h / 2), (crown, crown, crown_h), M.FOLIAGE, M.FOLIAGE, green)]


def barrier(rng) -> list:
    color = _pick(rng, [(0.75, 0.75, 0.72), (0.9, 0.45, 0.1), (0.85, 0.85, 0.85)])
    return [Part((0.0, 0.0, 0.45), (rng.uniform(1.8, 2.4), 0.5, 0.9), M.CONCRETE, M.CONCRETE, color)]


def cone(rng) -> list:
    return [Part((0.0, 0.0, 0.03), (0.4, 0.4, 0.06), M.CONE, M.CONE, (0.9, 0.35, 0.05)),
            Part((0.0, 0.0, 0.38), (0.22, 0.22, 0.64), M.CONE, M.CONE, (0.95, 0.40, 0.05))]


def building(rng, length: float, depth: float) -> list:
    """A block with a window grid on its walls; shading.py greys its roof (material ROOF)."""
    height = float(rng.choice([rng.uniform(5.0, 10.0), rng.uniform(10.0, 20.0), rng.uniform(18.0, 32.0)],
                              p=[0.35, 0.45, 0.2]))
    # params: window spacing along the wall, floor height, window width and height fractions
    params = (rng.uniform(2.4, 4.0), rng.uniform(2.9, 3.6), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.6))
    return [Part((0.0, 0.0, height / 2), (length, depth, height), M.WALL, M.ROOF,
                 _pick(rng, FACADE_COLORS), params)]
