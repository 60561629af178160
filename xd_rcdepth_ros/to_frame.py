"""ROS messages -> the core's Frame: the one way from an image, its CameraInfo, the radar sweeps
paired with it and the radar->camera extrinsics to the sample DepthEstimator takes.

The node calls it for every pair it receives and replay-eval for every pair it reads from a bag, so
a bag evaluated offline feeds the network exactly what the node feeds it when the bag is replayed
(a test compares the two). Each check that fails drops the image with ``FrameDropped(reason,
message)``; ``reason`` is the key the node counts in /diagnostics and replay-eval reports per frame.

    frame, missing = messages_to_frame(image, camera_info, [radar, ...], stamp, field_map, T_camera_radar)

``T_camera_radar`` is a 4x4 array (static extrinsics) or a callable
``(camera_frame, radar_frame, header_stamp) -> 4x4`` (a TF lookup); either failing drops the image as
'extrinsics'. ``missing`` names the radar fields the clouds lack (those model inputs are zero).
"""
from __future__ import annotations

import numpy as np

from xd_rcdepth_core.frame import DEFAULT_RADAR_FIELDS, Frame

from . import convert

# {'rcs', 'vx', 'vy'} -> the PointCloud2 field holding it (the node's radar_fields.* parameters)
DEFAULT_FIELD_MAP = {'rcs': 'rcs', 'vx': 'vx', 'vy': 'vy'}


class FrameDropped(Exception):
    """The image cannot become a Frame; ``reason`` is its diagnostics key."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_field_map(text) -> dict:
    """{'rcs', 'vx', 'vy'} -> PointCloud2 field names, from 'rcs,vx,vy' (or a dict, or None: the defaults)."""
    if text is None or isinstance(text, dict):
        return dict(DEFAULT_FIELD_MAP if text is None else text)
    names = [n.strip() for n in str(text).split(',')]
    if len(names) != 3 or not all(names):
        raise ValueError(f'--radar-fields must name 3 PointCloud2 fields (rcs,vx,vy order), got {text!r}')
    return dict(zip(('rcs', 'vx', 'vy'), names))


def radar_points(radar_msgs, field_map: dict) -> tuple:
    """(N x 6 float32 in DEFAULT_RADAR_FIELDS order, names of fields the clouds lack) of the sweeps."""
    names = ['x', 'y', 'z', field_map['rcs'], field_map['vx'], field_map['vy']]
    arrays, missing = [], set()
    for msg in radar_msgs:
        try:
            arr, miss = convert.pointcloud2_to_array(msg, names)
        except convert.ConversionError as exc:
            raise FrameDropped('bad_radar', f'image dropped: malformed radar PointCloud2: {exc}') from None
        arrays.append(arr)
        missing.update(miss)
    points = np.concatenate(arrays, axis=0) if arrays else np.zeros((0, len(DEFAULT_RADAR_FIELDS)), np.float32)
    return points, tuple(sorted(missing))


def messages_to_frame(image_msg, camera_info_msg, radar_msgs, stamp: float, field_map: dict, T_camera_radar):
    """(Frame, missing radar fields); FrameDropped when the messages cannot make one (checked in this
    order: image encoding, CameraInfo present, CameraInfo valid, sizes agree, radar clouds, extrinsics)."""
    try:
        rgb = convert.any_image_to_rgb(image_msg)
    except convert.ConversionError as exc:
        raise FrameDropped('bad_image', f'image dropped: {exc}') from None
    if camera_info_msg is None:
        raise FrameDropped('no_camera_info', 'image dropped: no CameraInfo received before it')
    try:
        K, (h, w) = convert.camera_info_to_K(camera_info_msg)
    except convert.ConversionError as exc:
        raise FrameDropped('bad_camera_info', f'image dropped: bad CameraInfo: {exc}') from None
    if (h, w) != rgb.shape[:2]:
        raise FrameDropped('camera_info_size', f'image dropped: CameraInfo is {w}x{h} but the image is '
                                               f'{rgb.shape[1]}x{rgb.shape[0]}')
    radar, missing = radar_points(radar_msgs, field_map)
    try:
        if callable(T_camera_radar):
            radar_frame = radar_msgs[-1].header.frame_id if radar_msgs else ''
            T_camera_radar = T_camera_radar(image_msg.header.frame_id, radar_frame, image_msg.header.stamp)
        frame = Frame(image=rgb, K=K, radar=radar, radar_fields=DEFAULT_RADAR_FIELDS, T_camera_radar=T_camera_radar,
                      timestamp=stamp, name=f'{stamp:.6f}')
    except Exception as exc:  # a TF lookup error or a Frame validation error (non-finite transform, ...)
        raise FrameDropped('extrinsics', f'image dropped: {exc}') from None
    return frame, missing
