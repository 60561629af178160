"""One dataset scene -> one rosbag2 (the layout in schema.py) plus its extrinsics.yaml sidecar."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xd_rcdepth_core.data.images import decode_image
from xd_rcdepth_core.geometry import invert_transform as inv

from .. import convert
from ..bagfile import schema
from ..bagfile.sidecar import BagCalibration, write_sidecar
from ..bagfile.writer import BagWriter, header, pose_stamped, tf_message
from .sources import CameraSample, CloudSample, PoseSample, SceneSource

JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'   # image_transport's format string for a colour JPEG


@dataclass
class BagSummary:
    path: Path
    scene: str
    counts: dict
    start_ns: int
    end_ns: int
    notes: list = field(default_factory=list)

    def table(self) -> str:
        width = max(len(t) for t in self.counts) if self.counts else 5
        lines = [f'{self.path}: scene {self.scene}, {(self.end_ns - self.start_ns) / 1e9:.2f} s of bag time',
                 f'  {"topic".ljust(width)}  messages']
        lines += [f'  {t.ljust(width)}  {n}' for t, n in sorted(self.counts.items())]
        return '\n'.join(lines + [f'  note: {n}' for n in self.notes])


def calibration_of(source: SceneSource, compressed: bool) -> BagCalibration:
    cal = source.calibration
    cam = cal.T_base_sensor[cal.camera]
    radar = cal.radars[0] if cal.radars else None
    return BagCalibration(
        T_camera_radar=inv(cam) @ cal.T_base_sensor[radar] if radar else np.eye(4),
        T_camera_lidar=inv(cam) @ cal.T_base_sensor[cal.lidar] if cal.lidar else None,
        K=cal.K, image_size=cal.image_size,
        frames={'camera': cal.camera, 'radar': radar, 'lidar': cal.lidar, 'base': schema.BASE_FRAME,
                'world': schema.WORLD_FRAME},
        topics={'image': schema.image_topic(cal.camera, compressed),
                'camera_info': schema.camera_info_topic(cal.camera),
                'radar': schema.sensor_topic(radar) if radar else None,
                'lidar': schema.sensor_topic(cal.lidar) if cal.lidar else None,
                'ego_pose': schema.EGO_POSE_TOPIC, 'tf_static': schema.TF_STATIC_TOPIC},
        T_base_sensor=dict(cal.T_base_sensor), radar_fields=tuple(cal.radar_fields), dataset=cal.dataset,
        scene=cal.scene, time_offset_s=cal.time_offset_ns / 1e9)


def _camera_messages(s: CameraSample, compressed: bool, jpeg_quality: int):
    """(camera_info, image topic suffix type, image message) of one camera sample."""
    from sensor_msgs.msg import CompressedImage
    h = header(s.t_ns, s.channel)
    info = convert.camera_info_msg(s.K, s.size[0], s.size[1], h)
    if compressed:
        if s.jpeg is not None:     # the source's own JPEG bytes, untouched
            msg = CompressedImage(header=h, format=JPEG_FORMAT)
            msg.data = s.jpeg
            return info, schema.COMPRESSED_IMAGE, msg
        return info, schema.COMPRESSED_IMAGE, convert.rgb_to_compressed_msg(s.rgb, h, 'jpeg', jpeg_quality)
    rgb = s.rgb if s.rgb is not None else decode_image(s.jpeg, f'{s.channel} image at {s.t_ns} ns')
    return info, schema.IMAGE, convert.rgb_to_image_msg(rgb, h, encoding='rgb8')


def write_scene(source: SceneSource, out, storage: str = 'mcap', compressed: bool = False,
                jpeg_quality: int = 95, progress: bool = True) -> BagSummary:
    """Write one scene's bag at `out` (a new folder) and its sidecar; returns the per-topic summary."""
    from tqdm import tqdm

    cal = source.calibration
    items = sorted(source.pending())
    if not any(it.rank == 1 for it in items):
        raise ValueError(f'scene {cal.scene}: no {cal.camera} image to write')
    image_topic = schema.image_topic(cal.camera, compressed)
    info_topic = schema.camera_info_topic(cal.camera)
    start, end = items[0].t_ns, items[-1].t_ns
    with BagWriter(out, storage) as bag:
        # Static transforms once, at the start, transient local: base_link -> every sensor.
        bag.write(schema.TF_STATIC_TOPIC, schema.TF_MESSAGE, start,
                  tf_message(start, [(schema.BASE_FRAME, ch, T) for ch, T in cal.T_base_sensor.items()]))
        for item in tqdm(items, unit='msg', desc=cal.scene, disable=not progress, file=sys.stderr):
            s = item.load()
            if isinstance(s, PoseSample):
                bag.write(schema.EGO_POSE_TOPIC, schema.POSE_STAMPED, s.t_ns,
                          pose_stamped(s.t_ns, schema.WORLD_FRAME, s.T_world_base))
                bag.write(schema.TF_TOPIC, schema.TF_MESSAGE, s.t_ns,
                          tf_message(s.t_ns, [(schema.WORLD_FRAME, schema.BASE_FRAME, s.T_world_base)]))
            elif isinstance(s, CameraSample):
                info, image_type, image = _camera_messages(s, compressed, jpeg_quality)
                bag.write(info_topic, schema.CAMERA_INFO, s.t_ns, info)
                bag.write(image_topic, image_type, s.t_ns, image)
            elif isinstance(s, CloudSample):
                msg = convert.array_to_pointcloud2(np.asarray(s.points, np.float32), s.fields,
                                                   header(s.t_ns, s.channel))
                bag.write(schema.sensor_topic(s.channel), schema.POINTCLOUD2, s.t_ns, msg)
        counts = dict(bag.counts)
    write_sidecar(out, calibration_of(source, compressed))
    return BagSummary(Path(out), cal.scene, counts, start, end, list(cal.notes))
