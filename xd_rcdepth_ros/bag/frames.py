"""A paired image + radar (+ camera_info) -> the Frame the node would build from the same messages.

This mirrors DepthNode._process step by step (same conversions from convert.py, same radar columns,
same static T_camera_radar, same name and timestamp), so a bag evaluated offline feeds DepthEstimator
exactly what the node feeds it when the bag is replayed. Drop reasons use the node's names.
"""
from __future__ import annotations

import numpy as np

from .. import convert
from ..node import RADAR_FIELDS

DEFAULT_FIELD_MAP = {'rcs': 'rcs', 'vx': 'vx', 'vy': 'vy'}


class FrameDropped(Exception):
    """The node would drop this image; `reason` is its diagnostics key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_field_map(text) -> dict:
    """{'rcs', 'vx', 'vy'} -> PointCloud2 field names, from 'rcs,vx,vy' (the node's radar_fields.* params)."""
    if text is None or isinstance(text, dict):
        return dict(DEFAULT_FIELD_MAP if text is None else text)
    names = [n.strip() for n in str(text).split(',')]
    if len(names) != 3 or not all(names):
        raise ValueError(f'--radar-fields must name 3 PointCloud2 fields (rcs,vx,vy order), got {text!r}')
    return dict(zip(('rcs', 'vx', 'vy'), names))


def radar_points(sweeps, field_map: dict) -> tuple:
    """(N x 6 float32 in RADAR_FIELDS order, fields missing from the clouds) of the pair's sweeps."""
    names = ['x', 'y', 'z', field_map['rcs'], field_map['vx'], field_map['vy']]
    arrays, missing = [], set()
    for sweep in sweeps:
        try:
            arr, miss = convert.pointcloud2_to_array(sweep.msg, names)
        except convert.ConversionError as exc:
            raise FrameDropped('bad_radar', f'malformed radar PointCloud2: {exc}') from None
        arrays.append(arr)
        missing.update(miss)
    points = np.concatenate(arrays, axis=0) if arrays else np.zeros((0, 6), np.float32)
    return points, tuple(sorted(missing))


def pair_to_frame(pair, field_map: dict, T_camera_radar: np.ndarray):
    """(Frame, missing radar fields) of a sync.Pair whose payloads are rclpy messages."""
    from xd_rcdepth_core.frame import Frame
    image_msg = pair.image.msg
    try:
        rgb = convert.any_image_to_rgb(image_msg)
    except convert.ConversionError as exc:
        raise FrameDropped('bad_image', f'image dropped: {exc}') from None
    if pair.camera_info is None:
        raise FrameDropped('no_camera_info', 'image dropped: no CameraInfo before it')
    try:
        K, (h, w) = convert.camera_info_to_K(pair.camera_info.msg)
    except convert.ConversionError as exc:
        raise FrameDropped('bad_camera_info', f'image dropped: bad CameraInfo: {exc}') from None
    if (h, w) != rgb.shape[:2]:
        raise FrameDropped('camera_info_size', f'image dropped: CameraInfo is {w}x{h} but the image is '
                                               f'{rgb.shape[1]}x{rgb.shape[0]}')
    radar, missing = radar_points(pair.sweeps, field_map)
    try:
        frame = Frame(image=rgb, K=K, radar=radar, radar_fields=RADAR_FIELDS, T_camera_radar=T_camera_radar,
                      timestamp=pair.stamp, name=f'{pair.stamp:.6f}')
    except ValueError as exc:
        raise FrameDropped('extrinsics', f'image dropped: {exc}') from None
    return frame, missing
