"""Test helpers: Frames -> ROS messages, spinning until a condition, an in-process node harness."""
from __future__ import annotations

import time

import numpy as np

from xd_rcdepth_core.frame import DEFAULT_RADAR_FIELDS as RADAR_FIELDS
from xd_rcdepth_core.geometry import rotation_to_quaternion
from xd_rcdepth_ros import convert
from xd_rcdepth_ros.node import DepthNode


def stamp_msg(seconds: float):
    from builtin_interfaces.msg import Time
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def frame_messages(frame, stamp: float, camera_frame='CAM_FRONT', radar_frame='RADAR_FRONT', compressed=False):
    """(Image rgb8 or PNG CompressedImage, CameraInfo, PointCloud2 with x y z rcs vx vy) of a Frame, all
    stamped `stamp`."""
    from std_msgs.msg import Header
    cam = Header(stamp=stamp_msg(stamp), frame_id=camera_frame)
    if compressed:   # PNG: lossless, so the node sees exactly frame.image
        image = convert.rgb_to_compressed_msg(frame.image, cam, fmt='png')
    else:
        image = convert.rgb_to_image_msg(frame.image, cam, encoding='rgb8')
    info = convert.camera_info_msg(frame.K, frame.height, frame.width, cam)
    cols = [frame.radar_fields.index(n) for n in RADAR_FIELDS]
    radar = convert.array_to_pointcloud2(frame.radar[:, cols], RADAR_FIELDS,
                                         Header(stamp=stamp_msg(stamp), frame_id=radar_frame))
    return image, info, radar


def spin_until(executor, condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def nan_equal(a, b, atol=1e-5) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    ok = ~np.isnan(a)
    return bool(np.all(np.abs(a[ok] - b[ok]) <= atol))


class Harness:
    """A DepthNode plus a test node publishing inputs and recording outputs, on one executor."""

    def __init__(self, checkpoint, T_camera_radar, name='xd_rcdepth', **params):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        overrides = [Parameter('checkpoint', value=str(checkpoint)), Parameter('autostart', value=False),
                     Parameter('T_camera_radar.translation', value=[float(v) for v in T_camera_radar[:3, 3]]),
                     Parameter('T_camera_radar.rotation',
                               value=[float(v) for v in rotation_to_quaternion(T_camera_radar[:3, :3])])]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.node = DepthNode(name, parameter_overrides=overrides)
        self.peer = rclpy.create_node(f'{name}_test_peer')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        base = f'/{name}'
        self.compressed = bool(params.get('compressed_image', False))
        self.image_topic = f'{base}/input/image' + ('/compressed' if self.compressed else '')
        self.pub_image = self.peer.create_publisher(CompressedImage if self.compressed else Image, self.image_topic,
                                                    qos_profile_sensor_data)
        self.pub_info = self.peer.create_publisher(CameraInfo, f'{base}/input/camera_info', qos_profile_sensor_data)
        self.pub_radar = self.peer.create_publisher(PointCloud2, f'{base}/input/radar_points', qos_profile_sensor_data)
        self.depth, self.depth_info, self.colored, self.saliency = [], [], [], []
        q = QoSProfile(depth=10)
        self.peer.create_subscription(Image, f'{base}/output/depth', lambda m: self.depth.append(m), q)
        self.peer.create_subscription(CameraInfo, f'{base}/output/depth/camera_info',
                                      lambda m: self.depth_info.append(m), q)
        self.peer.create_subscription(Image, f'{base}/output/depth_colored', lambda m: self.colored.append(m), q)
        self.diagnostics = []   # this node's DiagnosticStatus messages, in order
        self.peer.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.name = name
        self.base = base
        self.saliency_sub = None

    def _on_diagnostics(self, msg):
        self.diagnostics += [s for s in msg.status if s.name.startswith(f'{self.name}:')]

    def start(self):
        from rclpy.lifecycle import TransitionCallbackReturn
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.wait_matched()

    def wait_matched(self):
        assert spin_until(self.executor, lambda: self.pub_image.get_subscription_count() > 0
                          and self.pub_radar.get_subscription_count() > 0
                          and self.pub_info.get_subscription_count() > 0
                          and self.peer.count_publishers(f'{self.base}/output/depth') > 0), 'discovery failed'

    def subscribe_saliency(self):
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image
        self.saliency_sub = self.peer.create_subscription(
            Image, f'{self.base}/debug/saliency_overlay', lambda m: self.saliency.append(m), QoSProfile(depth=10))
        pub = self.node._pubs['saliency']
        assert spin_until(self.executor, lambda: pub.get_subscription_count() > 0)

    def send(self, image, info, radar):
        self.pub_info.publish(info)
        self.pub_radar.publish(radar)
        self.pub_image.publish(image)

    def close(self):
        self.executor.remove_node(self.node)
        self.executor.remove_node(self.peer)
        self.node._unsubscribe()
        self.node._stop_worker()
        self.node.destroy_node()
        self.peer.destroy_node()
        self.executor.shutdown()
