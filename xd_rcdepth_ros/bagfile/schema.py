"""The layout of the bags `to-bag` writes: topic names, frame ids, message types, QoS, storage plugins.

Names follow nuScenes channels, as the community converters (nuscenes2bag, Foxglove's nuscenes2mcap) do:

    /CAM_FRONT/image_raw             sensor_msgs/Image rgb8          (image_transport's base topic)
    /CAM_FRONT/image_raw/compressed  sensor_msgs/CompressedImage     (with --compressed-image, instead)
    /CAM_FRONT/camera_info           sensor_msgs/CameraInfo          (written just before each image)
    /RADAR_FRONT (and other radars)  sensor_msgs/PointCloud2         every field the source has (18 for nuScenes)
    /LIDAR_TOP                       sensor_msgs/PointCloud2         x, y, z, intensity
    /tf_static                       tf2_msgs/TFMessage              base_link -> each sensor (transient local)
    /tf                              tf2_msgs/TFMessage              map -> base_link at every sensor time
    /ego_pose                        geometry_msgs/PoseStamped       base_link in map at every sensor time

Header frame ids are the channel names; the camera frame is optical (x right, y down, z forward), as
nuScenes calibrates it. Every header stamp is the sensor's own time (the radar sweep's, not the image's)
and the bag's log time equals the header stamp.

This module imports nothing heavy (no rosbags at import), so the CLI can read its defaults cheaply.
"""
from __future__ import annotations

from functools import lru_cache

CAMERA = 'CAM_FRONT'
RADAR = 'RADAR_FRONT'
LIDAR = 'LIDAR_TOP'
BASE_FRAME = 'base_link'
WORLD_FRAME = 'map'

TF_STATIC_TOPIC = '/tf_static'
TF_TOPIC = '/tf'
EGO_POSE_TOPIC = '/ego_pose'
CLOCK_TOPIC = '/clock'

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD2 = 'sensor_msgs/msg/PointCloud2'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
CLOCK = 'rosgraph_msgs/msg/Clock'
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

# Synthetic world times start at 0 s. ROS reads time 0 as "not set" (a sim-time clock at 0 has not
# received /clock yet; tf2 reads stamp 0 as "latest"), so synthetic bags are shifted by this many
# seconds (2020-09-13, nuScenes-era). The sidecar records the shift (time_offset_s).
SYNTHETIC_EPOCH_NS = 1_600_000_000 * 10**9

STORAGE_CHOICES = ('mcap', 'sqlite3')


def image_topic(camera: str = CAMERA, compressed: bool = False) -> str:
    return f'/{camera}/image_raw' + ('/compressed' if compressed else '')


def camera_info_topic(camera: str = CAMERA) -> str:
    return f'/{camera}/camera_info'


def sensor_topic(channel: str) -> str:
    """Topic of a radar or lidar channel: /RADAR_FRONT, /LIDAR_TOP."""
    return f'/{channel}'


def storage_plugin(name: str):
    """The rosbags StoragePlugin of 'mcap' or 'sqlite3'; ValueError naming the choices otherwise."""
    from rosbags.rosbag2 import StoragePlugin
    key = str(name).strip().lower()
    if key not in STORAGE_CHOICES:
        raise ValueError(f'unknown storage plugin {name!r}: rosbags writes {" or ".join(STORAGE_CHOICES)}')
    return StoragePlugin.MCAP if key == 'mcap' else StoragePlugin.SQLITE3


@lru_cache(maxsize=1)
def typestore():
    """rosbags' Jazzy typestore (message definitions + RIHS01 hashes for the metadata)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def _qos(depth: int, transient_local: bool):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    never = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               deadline=never, lifespan=never, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=never, avoid_ros_namespace_conventions=False)


def offered_qos(topic: str) -> list:
    """QoS offered in the metadata: what a recording of a typical driver would hold.

    Sensor topics: reliable, volatile, keep-last 10 (a reliable publisher still feeds best-effort
    subscribers such as the node's sensor-data QoS). /tf_static: transient local, keep-last 1, so a
    late subscriber of a replay still gets the static transforms (tf2's convention).
    """
    if topic == TF_STATIC_TOPIC:
        return [_qos(1, transient_local=True)]
    return [_qos(10, transient_local=False)]
