"""Which topics and extrinsics a replay evaluation uses, for any bag.

Each item is taken from the first source that has it:

    topics:      command-line option > the bag's extrinsics.yaml > the to-bag default name > the only
                 topic of the right type (radar/lidar: whose name says radar/lidar)
    extrinsics:  command-line option > extrinsics.yaml > /tf_static (composed along the tree, using the
                 frame ids of the messages' headers)

A missing camera, camera_info or radar topic, or a topic of an unexpected type, is a BagError naming
the topic and what the bag has. A missing lidar is not an error: depth is still produced, but the
evaluation says it is impossible (`lidar_missing`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from xd_rcdepth_core.geometry import invert_transform, transform_from_pose

from ..bagfile import schema
from ..bagfile.reader import BagError, describe_topics, deserialize, topic_types
from ..bagfile.sidecar import BagCalibration, read_sidecar


@dataclass
class EvalLayout:
    image_topic: str
    image_type: str
    camera_info_topic: str
    radar_topic: str
    lidar_topic: Optional[str]
    T_camera_radar: np.ndarray
    T_camera_lidar: Optional[np.ndarray] = None
    ego_pose_topic: Optional[str] = None           # set when ground truth is ego-motion compensated
    T_base_camera: Optional[np.ndarray] = None
    T_base_lidar: Optional[np.ndarray] = None
    extrinsics_source: str = ''
    lidar_missing: str = ''                        # why there is no ground truth ('' when there is)
    notes: list = field(default_factory=list)

    def describe(self) -> dict:
        return {'image': self.image_topic, 'image_type': self.image_type, 'camera_info': self.camera_info_topic,
                'radar': self.radar_topic, 'lidar': self.lidar_topic, 'ego_pose': self.ego_pose_topic,
                'extrinsics_source': self.extrinsics_source,
                'ground_truth': self.lidar_missing or 'single lidar sweep nearest each image' +
                (', ego-motion compensated' if self.ego_pose_topic else '')}


def _pick(types: dict, option, sidecar_value, defaults, wanted_types, name_hint=None):
    """(topic or None, how it was chosen)."""
    if option:
        return option, 'option'
    if sidecar_value and sidecar_value in types:
        return sidecar_value, 'sidecar'
    for d in defaults:
        if d in types:
            return d, 'default'
    candidates = [t for t, m in types.items() if m in wanted_types and (name_hint is None or name_hint in t.lower())]
    return (candidates[0], 'only candidate') if len(candidates) == 1 else (None, '')


def _require_type(types: dict, topic: str, wanted: tuple, role: str, flag: str) -> str:
    if topic not in types:
        raise BagError(f'{role} topic {topic} is not in the bag; {role}-type topics there: '
                       f'{describe_topics(types, wanted)} (choose one with {flag})')
    if types[topic] not in wanted:
        raise BagError(f'{role} topic {topic} has type {types[topic]}, expected '
                       f'{" or ".join(wanted)} (choose another topic with {flag})')
    return types[topic]


def _info_defaults(image_topic: str) -> list:
    base = image_topic[:-len('/compressed')] if image_topic.endswith('/compressed') else image_topic
    parent = base.rsplit('/', 1)[0]
    return [f'{parent}/camera_info', f'{base}/camera_info']


def parse_transform(text: str, flag: str) -> np.ndarray:
    """4x4 of 'tx,ty,tz,qw,qx,qy,qz' (the node's T_camera_radar.translation + .rotation convention)."""
    try:
        values = [float(v) for v in str(text).replace(' ', ',').split(',') if v]
    except ValueError:
        values = []
    if len(values) != 7 or not np.all(np.isfinite(values)) or np.linalg.norm(values[3:]) < 1e-6:
        raise BagError(f'{flag} must be 7 numbers tx,ty,tz,qw,qx,qy,qz (translation m, unit quaternion), got {text!r}')
    return transform_from_pose(values[:3], values[3:])


def resolve_layout(reader, bag_path, image_topic=None, camera_info_topic=None, radar_topic=None,
                   lidar_topic=None, T_camera_radar=None, T_camera_lidar=None, ego_motion: bool = True) -> EvalLayout:
    types = topic_types(reader)
    side = read_sidecar(bag_path)
    st = side.topics if side else {}
    image, _ = _pick(types, image_topic, st.get('image'),
                     [schema.image_topic(), schema.image_topic(compressed=True)], schema.IMAGE_TYPES)
    if image is None:
        raise BagError(f'bag {bag_path} has no camera topic: no {schema.image_topic()} and no single '
                       f'Image/CompressedImage topic (image topics: {describe_topics(types, schema.IMAGE_TYPES)}; '
                       f'all topics: {describe_topics(types)}); name one with --camera-topic')
    image_type = _require_type(types, image, schema.IMAGE_TYPES, 'camera', '--camera-topic')
    info, _ = _pick(types, camera_info_topic, st.get('camera_info'), _info_defaults(image), (schema.CAMERA_INFO,))
    if info is None:
        raise BagError(f'bag {bag_path} has no CameraInfo for {image} (looked for {", ".join(_info_defaults(image))}); '
                       f'name it with --camera-info-topic')
    _require_type(types, info, (schema.CAMERA_INFO,), 'camera_info', '--camera-info-topic')
    radar, _ = _pick(types, radar_topic, st.get('radar'), [schema.sensor_topic(schema.RADAR)], (schema.POINTCLOUD2,),
                     'radar')
    if radar is None:
        raise BagError(f'bag {bag_path} has no radar topic (PointCloud2 topics: '
                       f'{describe_topics(types, (schema.POINTCLOUD2,))}); name it with --radar-topic')
    _require_type(types, radar, (schema.POINTCLOUD2,), 'radar', '--radar-topic')
    lidar, _ = _pick(types, lidar_topic, st.get('lidar'), [schema.sensor_topic(schema.LIDAR)], (schema.POINTCLOUD2,),
                     'lidar')
    notes, lidar_missing = [], ''
    if lidar is None:
        clouds = describe_topics(types, (schema.POINTCLOUD2,))
        lidar_missing = (f'the bag has no lidar topic (PointCloud2 topics: {clouds}): '
                         f'no ground truth, evaluation impossible; name one with --lidar-topic')
    else:
        _require_type(types, lidar, (schema.POINTCLOUD2,), 'lidar', '--lidar-topic')
    layout = EvalLayout(image, image_type, info, radar, lidar, T_camera_radar=np.eye(4), lidar_missing=lidar_missing,
                        notes=notes)
    _resolve_extrinsics(layout, reader, side, T_camera_radar, T_camera_lidar, types)
    if ego_motion and lidar and layout.T_base_camera is not None and layout.T_base_lidar is not None:
        pose_topic = st.get('ego_pose') or schema.EGO_POSE_TOPIC
        if types.get(pose_topic) == schema.POSE_STAMPED:
            layout.ego_pose_topic = pose_topic
    return layout


def _resolve_extrinsics(layout: EvalLayout, reader, side: Optional[BagCalibration], T_radar_opt, T_lidar_opt, types):
    sources = []
    tf = None
    frames = dict(side.frames) if side else {}
    if side is not None and side.T_base_sensor:
        cam, lid = frames.get('camera'), frames.get('lidar')
        layout.T_base_camera = side.T_base_sensor.get(cam)
        layout.T_base_lidar = side.T_base_sensor.get(lid)
    if T_radar_opt is not None:
        layout.T_camera_radar, src = np.asarray(T_radar_opt, float), 'option --T-camera-radar'
    elif side is not None:
        layout.T_camera_radar, src = side.T_camera_radar, side.source
    else:
        tf = tf or _tf_static(reader, types)
        layout.T_camera_radar = _tf_between(reader, tf, layout.image_topic, layout.radar_topic, 'radar')
        src = '/tf_static'
    sources.append(f'radar: {src}')
    if layout.lidar_topic:
        if T_lidar_opt is not None:
            layout.T_camera_lidar, src = np.asarray(T_lidar_opt, float), 'option --T-camera-lidar'
            # The bag's own mounts may disagree with the user's transform: project with it as given.
            layout.T_base_camera = layout.T_base_lidar = None
        elif side is not None and side.T_camera_lidar is not None:
            layout.T_camera_lidar, src = side.T_camera_lidar, side.source
        else:
            tf = tf or _tf_static(reader, types)
            layout.T_camera_lidar, src = _tf_between(reader, tf, layout.image_topic, layout.lidar_topic, 'lidar'), \
                '/tf_static'
            if layout.T_base_camera is None:
                layout.T_base_camera, layout.T_base_lidar = _tf_base(reader, tf, layout)
        sources.append(f'lidar: {src}')
    layout.extrinsics_source = '; '.join(sources)


def _tf_static(reader, types) -> dict:
    """child frame -> (parent frame, T_parent_child) of every /tf_static transform in the bag."""
    if types.get(schema.TF_STATIC_TOPIC) != schema.TF_MESSAGE:
        return {}
    store = schema.typestore()
    out = {}
    conns = [c for c in reader.connections if c.topic == schema.TF_STATIC_TOPIC]
    for _, _, raw in reader.messages(connections=conns):
        for tf in store.deserialize_cdr(raw, schema.TF_MESSAGE).transforms:
            t, q = tf.transform.translation, tf.transform.rotation
            out[tf.child_frame_id] = (tf.header.frame_id, transform_from_pose([t.x, t.y, t.z], [q.w, q.x, q.y, q.z]))
    return out


def _to_root(tf: dict, frame: str):
    """(root frame, T_root_frame) following parents; None when the frame is not in the tree."""
    if frame not in tf and not any(p == frame for p, _ in tf.values()):
        return None
    T, seen = np.eye(4), set()
    while frame in tf and frame not in seen:
        seen.add(frame)
        parent, T_parent_frame = tf[frame]
        T = T_parent_frame @ T
        frame = parent
    return frame, T


def _frame_id(reader, topic: str) -> str:
    conns = [c for c in reader.connections if c.topic == topic]
    for conn, _, raw in reader.messages(connections=conns):
        return deserialize(raw, conn.msgtype).header.frame_id
    raise BagError(f'topic {topic} has no messages')


def _tf_between(reader, tf: dict, camera_topic: str, other_topic: str, role: str) -> np.ndarray:
    cam, other = _frame_id(reader, camera_topic), _frame_id(reader, other_topic)
    a, b = _to_root(tf, cam), _to_root(tf, other)
    if not tf or a is None or b is None or a[0] != b[0]:
        raise BagError(f'no {role} extrinsics: the bag has no extrinsics.yaml and its /tf_static does not connect '
                       f'{cam!r} ({camera_topic}) and {other!r} ({other_topic}); pass --T-camera-{role} '
                       f'tx,ty,tz,qw,qx,qy,qz')
    return invert_transform(a[1]) @ b[1]


def _tf_base(reader, tf: dict, layout: EvalLayout):
    """T_base_camera, T_base_lidar (root of the static tree = the vehicle frame) for ego-motion compensation."""
    cam, lid = _to_root(tf, _frame_id(reader, layout.image_topic)), _to_root(tf, _frame_id(reader, layout.lidar_topic))
    if cam is None or lid is None or cam[0] != lid[0]:
        return None, None
    return cam[1], lid[1]
