"""Sensor poses of nuScenes sample_data records as 4 x 4 transforms (global <- sensor at its own time)."""
from __future__ import annotations

import numpy as np

from ...geometry import transform_from_pose


def ego_pose(nusc, sd: dict) -> np.ndarray:
    """T_global_ego at the record's timestamp."""
    rec = nusc.get('ego_pose', sd['ego_pose_token'])
    return transform_from_pose(rec['translation'], rec['rotation'])


def mount(nusc, sd: dict) -> np.ndarray:
    """T_ego_sensor (calibrated_sensor: sensor -> ego)."""
    rec = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    return transform_from_pose(rec['translation'], rec['rotation'])


def sensor_pose(nusc, sd: dict) -> np.ndarray:
    """T_global_sensor at the record's timestamp: the chain sensor -> ego(t) -> global.

    Composing two records' poses, inv(pose(a)) @ pose(b), is the devkit's
    b -> ego(t_b) -> global -> ego(t_a) -> a chain, i.e. ego-motion compensation between the times.
    """
    return ego_pose(nusc, sd) @ mount(nusc, sd)


def timestamp_s(sd: dict) -> float:
    return sd['timestamp'] * 1e-6
