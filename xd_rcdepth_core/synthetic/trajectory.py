"""The ego vehicle's path: along the road with a gentle lateral weave and a mild acceleration.

Closed-form in time, so any sensor can ask for the pose at any timestamp (camera, lidar and radar
run at different rates) and the answer never depends on which was asked first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EgoTrajectory:
    """x(t) = x0 + v0 t + a t^2 / 2 along the road; y(t) = lane + A sin(w t + phase) across it."""

    x0: float
    v0: float            # m/s at t = 0
    accel: float         # m/s^2, small; chosen so the speed stays positive over the scene
    lane_y: float        # lane centre (m, world y)
    weave_amplitude: float
    weave_period: float  # s
    weave_phase: float

    def position(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        x = self.x0 + self.v0 * t + 0.5 * self.accel * t * t
        w = 2 * np.pi / self.weave_period
        y = self.lane_y + self.weave_amplitude * np.sin(w * t + self.weave_phase)
        return np.stack([x, y, np.zeros_like(x)], axis=-1)

    def velocity(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        w = 2 * np.pi / self.weave_period
        vx = self.v0 + self.accel * t
        vy = self.weave_amplitude * w * np.cos(w * t + self.weave_phase)
        return np.stack([vx, vy, np.zeros_like(vx)], axis=-1)

    def yaw(self, t) -> np.ndarray:
        v = self.velocity(t)
        return np.arctan2(v[..., 1], v[..., 0])

    def yaw_rate(self, t) -> float:
        # d/dt atan2(vy, vx) = (vx ay - vy ax) / |v|^2
        w = 2 * np.pi / self.weave_period
        vx, vy, _ = self.velocity(t)
        ax = self.accel
        ay = -self.weave_amplitude * w * w * np.sin(w * t + self.weave_phase)
        return float((vx * ay - vy * ax) / (vx * vx + vy * vy))

    def pose(self, t: float) -> np.ndarray:
        """T_world_ego at time t (ego frame: x forward, y left, z up; flat road, so no pitch/roll)."""
        p = self.position(t)
        c, s = np.cos(self.yaw(t)), np.sin(self.yaw(t))
        T = np.eye(4)
        T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        T[:3, 3] = p
        return T

    def speed(self, t) -> np.ndarray:
        return np.linalg.norm(self.velocity(t), axis=-1)
