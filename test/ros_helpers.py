"""Test helpers: Frames -> ROS messages, spinning until a condition, an in-process node harness."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from xd_rcdepth_core.frame import DEFAULT_RADAR_FIELDS as RADAR_FIELDS
from xd_rcdepth_core.geometry import rotation_to_quaternion
from xd_rcdepth_ros import convert
from xd_rcdepth_ros.node import DepthNode

ROOT = Path(__file__).resolve().parents[1]


def console_command(name, checkpoint, T, *extra, params_file=ROOT / 'config' / 'xd_rcdepth.param.yaml'):
    """The installed xd_rcdepth_node console script's command line, named `name`, with this checkpoint and T."""
    q = rotation_to_quaternion(T[:3, :3])
    exe = Path(sys.executable).parent / 'xd_rcdepth_node'
    assert exe.exists(), f'{exe} missing: the package is not installed (make test installs it)'
    files = ['--params-file', str(params_file)] if params_file else []
    return [str(exe), '--ros-args', '-r', f'__node:={name}', *files, '-p', f'checkpoint:={checkpoint}',
            '-p', f'T_camera_radar.translation:=[{",".join(map(str, T[:3, 3]))}]',
            '-p', f'T_camera_radar.rotation:=[{",".join(map(str, q))}]', *extra]


def stop_process(proc, timeout: float = 20.0):
    """SIGINT (the node's clean shutdown), then SIGKILL after `timeout`; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def log_tail(log, n=3000):
    """The last n characters of an open log file."""
    log.flush()
    log.seek(0)
    return log.read()[-n:]


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


class Streams:
    """A live camera (Image + CameraInfo) at cam_hz and radar at radar_hz into a Harness, stamped on a
    timeline that follows wall time from `t0` (as live sensors are), spinning the executor between
    messages. The faults tests switch topics off and on, restart publishers and move the timeline.

        s = Streams(h, frames, t0=100.0)
        s.run(2.0)                        # both topics for 2 s of wall time
        s.run(3.0, radar=False)           # the radar stops
        s.jump(to=100.0)                  # the timeline goes back (a looping bag); /clock follows with clock=True
    """

    CLOCK_HZ = 100.0

    def __init__(self, harness, frames, t0: float, cam_hz: float = 12.0, radar_hz: float = 13.0,
                 radar_offset: float = 0.021, clock: bool = False):
        from builtin_interfaces.msg import Time  # noqa: F401  (fails early without ROS)
        self.h, self.cam_hz, self.radar_hz, self.radar_offset = harness, cam_hz, radar_hz, radar_offset
        self.msgs = [frame_messages(f, t0) for f in frames]
        self.sent_images = []            # stamps of every image published
        self.base = t0                   # timeline = base + (wall - wall_base)
        self.wall_base = time.monotonic()
        self.next_image = self.next_radar = None
        self.clock_pub = None
        self._last_clock = None
        if clock:
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock
            self.clock_pub = harness.peer.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        self._k = 0

    def now(self) -> float:
        return self.base + time.monotonic() - self.wall_base

    def jump(self, to: float) -> None:
        """Move the timeline to `to` now (backwards: a bag loop restarting)."""
        self.base, self.wall_base = to, time.monotonic()
        self.next_image = self.next_radar = None

    def _publish_clock(self, t: float) -> None:
        # At most CLOCK_HZ, as `ros2 bag play --clock` does (100 Hz by default): a /clock message on every
        # loop turn floods the node's time-source callback and starves its inference thread of the GIL.
        if self.clock_pub is None:
            return
        if self._last_clock is not None and self._last_clock <= t < self._last_clock + 1.0 / self.CLOCK_HZ:
            return
        from rosgraph_msgs.msg import Clock
        self._last_clock = t
        self.clock_pub.publish(Clock(clock=stamp_msg(t)))

    def run(self, seconds: float, camera: bool = True, radar: bool = True, image_hz: float | None = None,
            until=None) -> bool:
        """Publish for `seconds` of wall time (or until `until()` is true: then True)."""
        end = time.monotonic() + seconds
        image_period = 1.0 / (image_hz or self.cam_hz)
        now = self.now()
        if self.next_image is None or not camera:
            self.next_image = now
        if self.next_radar is None or not radar:
            self.next_radar = now + self.radar_offset
        while time.monotonic() < end:
            if until is not None and until():
                return True
            now = self.now()
            self._publish_clock(now)
            while camera and self.next_image <= now:
                image, info, _ = self.msgs[self._k % len(self.msgs)]
                self._k += 1
                image.header.stamp = info.header.stamp = stamp_msg(self.next_image)
                self.h.pub_info.publish(info)
                self.h.pub_image.publish(image)
                self.sent_images.append(self.next_image)
                self.next_image += image_period
            while radar and self.next_radar <= now:
                radar_msg = self.msgs[self._k % len(self.msgs)][2]
                radar_msg.header.stamp = stamp_msg(self.next_radar)
                self.h.pub_radar.publish(radar_msg)
                self.next_radar += 1.0 / self.radar_hz
            due = min([t for t, on in ((self.next_image, camera), (self.next_radar, radar)) if on] + [now + 0.05])
            self.h.executor.spin_once(timeout_sec=max(0.0, min(0.01, due - self.now())))
        return until is not None and until()


def depth_stamps(h) -> list:
    """Header stamps (s) of the depth images the harness received."""
    return [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in h.depth]
