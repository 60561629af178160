"""The xd_rcdepth lifecycle node: camera + radar in, metric depth + saliency out. Wiring only.

Topics (private; change them by remapping):
  in   ~/input/image (sensor_msgs/Image) or ~/input/image/compressed (CompressedImage, `compressed_image`)
       ~/input/camera_info (CameraInfo), ~/input/radar_points (PointCloud2: x, y, z [+ rcs, vx, vy])
  out  ~/output/depth (32FC1 metres, NaN invalid, header = input image header)
       ~/output/depth/camera_info, ~/output/depth_colored (bgr8), ~/output/points (optional PointCloud2)
       ~/debug/saliency_overlay (bgr8 Grad-CAM over the image; computed only while subscribed)
       /diagnostics (DiagnosticArray)

Lifecycle: configure = read and validate parameters, check the checkpoint, create publishers and
extrinsics; activate = load the model onto the device, subscribe, start the inference worker;
deactivate = unsubscribe, stop the worker, free GPU memory. `autostart` (default true) drives
configure + activate from main(), so `ros2 run` and launch users need nothing else.

Inference runs in one worker thread fed by a latest-frame-wins pairer: subscription callbacks only
store messages, so inference never queues behind itself and stale frames are counted as dropped.
All maths lives in xd_rcdepth_core (DepthEstimator) and in convert.py / sync.py.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from . import convert
from .diagnostics import NodeStats, diagnostic_array
from .extrinsics import make_extrinsics
from .params import declare_all, read_settings
from .resources import apply_fastdds_profile
from .sync import RadarImagePairer, stamp_to_seconds

RADAR_FIELDS = ('x', 'y', 'z', 'rcs', 'vx', 'vy')
# Publishers: reliable with an explicit depth (REP-2003 advice; Fast DDS' default depth is 1).
OUTPUT_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
# An image waiting this long (wall time) with no new input is settled (end of a bag, dead radar).
IDLE_FLUSH_S = 0.5


class DepthNode(LifecycleNode):
    def __init__(self, node_name: str = 'xd_rcdepth', **kwargs):
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.stats = NodeStats()
        self.settings = None
        self.estimator = None
        self.pairer = None
        self._extrinsics = None
        self._pubs = {}
        self._subs = []
        self._diag_timer = None
        self._worker = None
        self._stop = threading.Event()
        self._last_saliency = 0.0
        self._warned_missing = set()
        self._last_unpaired = 0

    # ------------------------------------------------------------------ lifecycle transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            self.settings = read_settings(lambda name: self.get_parameter(name).value)
            from xd_rcdepth_core.models.checkpoint import read_checkpoint
            read_checkpoint(self.settings.checkpoint)   # fails early on a missing or foreign file
        except (ValueError, FileNotFoundError, OSError) as exc:
            log.error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        s = self.settings
        opts = QoSOverridingOptions.with_default_policies
        self._pubs = {
            'depth': self.create_lifecycle_publisher(Image, '~/output/depth', OUTPUT_QOS,
                                                     qos_overriding_options=opts()),
            'depth_info': self.create_lifecycle_publisher(CameraInfo, '~/output/depth/camera_info', OUTPUT_QOS,
                                                          qos_overriding_options=opts()),
            'colored': self.create_lifecycle_publisher(Image, '~/output/depth_colored', OUTPUT_QOS,
                                                       qos_overriding_options=opts()),
            'saliency': self.create_lifecycle_publisher(Image, '~/debug/saliency_overlay', OUTPUT_QOS,
                                                        qos_overriding_options=opts()),
        }
        if s.points_enabled:
            self._pubs['points'] = self.create_lifecycle_publisher(PointCloud2, '~/output/points', OUTPUT_QOS,
                                                                   qos_overriding_options=opts())
        from diagnostic_msgs.msg import DiagnosticArray
        self._pubs['diagnostics'] = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        self._extrinsics = make_extrinsics(self, s.use_tf, s.T_camera_radar, s.tf_timeout)
        self.pairer = RadarImagePairer(tolerance=s.sync_tolerance, radar_sweeps=s.radar_sweeps)
        log.info(f'configured: checkpoint {s.checkpoint}, extrinsics from {self._extrinsics.source}, '
                 f'image backend {convert.IMAGE_BACKEND}, point cloud backend {convert.POINTCLOUD_BACKEND}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        import torch
        from xd_rcdepth_core.pipeline import DepthEstimator
        s, log = self.settings, self.get_logger()
        try:
            if s.torch_threads:
                torch.set_num_threads(s.torch_threads)
            self.estimator = DepthEstimator.from_checkpoint(s.checkpoint, device=s.device, precision=s.precision,
                                                            max_depth=s.max_depth, input_size=s.input_size,
                                                            backend=s.backend, threads=s.torch_threads or None)
        except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
            log.error(f'activate failed: cannot load the model: {exc}')
            return TransitionCallbackReturn.FAILURE
        log.info(f'model {type(self.estimator.model).__name__} on {self.estimator.device} '
                 f'({s.precision}, torch threads {torch.get_num_threads()}), backend {self.estimator.backend_info}')
        if s.backend != 'torch':
            log.info(f'backend {s.backend}: ~/debug/saliency_overlay (Grad-CAM) runs the torch model, '
                     'only while subscribed')
        self._subscribe()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name='xd_rcdepth_inference', daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        if self.estimator is not None:
            self.estimator.release()
            self.estimator = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        self._teardown_publishers()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ wiring
    def _subscribe(self) -> None:
        s, log = self.settings, self.get_logger()
        opts = QoSOverridingOptions.with_default_policies
        if s.compressed_image:
            image_sub = self.create_subscription(CompressedImage, '~/input/image/compressed', self._on_image,
                                                 qos_profile_sensor_data, qos_overriding_options=opts())
        else:
            image_sub = self.create_subscription(Image, '~/input/image', self._on_image, qos_profile_sensor_data,
                                                 qos_overriding_options=opts())
        info_sub = self.create_subscription(CameraInfo, '~/input/camera_info', self._on_camera_info,
                                            qos_profile_sensor_data, qos_overriding_options=opts())
        radar_sub = self.create_subscription(PointCloud2, '~/input/radar_points', self._on_radar,
                                             qos_profile_sensor_data, qos_overriding_options=opts())
        self._subs = [image_sub, info_sub, radar_sub]
        for sub in self._subs:
            q = sub.qos_profile
            log.info(f'subscribed {sub.topic_name}: reliability {q.reliability.name}, '
                     f'durability {q.durability.name}, depth {q.depth}')

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _stop_worker(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _teardown_publishers(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for name, pub in self._pubs.items():
            if name == 'diagnostics':
                self.destroy_publisher(pub)
            else:
                self.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, msg) -> None:
        self.stats.arrived('image')
        self.pairer.add_image(stamp_to_seconds(msg.header.stamp), (msg, time.monotonic()))

    def _on_radar(self, msg) -> None:
        self.stats.arrived('radar')
        self.pairer.add_radar(stamp_to_seconds(msg.header.stamp), msg)

    def _on_camera_info(self, msg) -> None:
        self.stats.arrived('camera_info')
        self.pairer.add_camera_info(stamp_to_seconds(msg.header.stamp), msg)

    # ------------------------------------------------------------------ inference worker
    def _work(self) -> None:
        idle_since = time.monotonic()
        while not self._stop.is_set():
            pair = self.pairer.wait_for_pair(timeout=0.1)
            if pair is None:
                if time.monotonic() - idle_since > IDLE_FLUSH_S and self.pairer.stats.pending_images:
                    self.pairer.flush()
                    idle_since = time.monotonic()
                continue
            idle_since = time.monotonic()
            try:
                self._process(pair)
            except Exception as exc:  # keep serving: one bad frame must not kill the node
                self._bad('processing_error', f'frame dropped: {type(exc).__name__}: {exc}')

    def _bad(self, reason: str, message: str) -> None:
        n = self.stats.bad_message(reason)
        self.get_logger().warning(f'{message} [{reason}: {n} so far]', throttle_duration_sec=5.0)

    def _process(self, pair) -> None:
        from xd_rcdepth_core.frame import Frame
        image_msg, received = pair.image.msg
        header = image_msg.header
        try:
            rgb = convert.any_image_to_rgb(image_msg)
        except convert.ConversionError as exc:
            return self._bad('bad_image', f'image dropped: {exc}')
        if pair.camera_info is None:
            return self._bad('no_camera_info', 'image dropped: no CameraInfo received on ~/input/camera_info yet')
        try:
            K, (h, w) = convert.camera_info_to_K(pair.camera_info.msg)
        except convert.ConversionError as exc:
            return self._bad('bad_camera_info', f'image dropped: bad CameraInfo: {exc}')
        if (h, w) != rgb.shape[:2]:
            return self._bad('camera_info_size', f'image dropped: CameraInfo is {w}x{h} but the image is '
                                                 f'{rgb.shape[1]}x{rgb.shape[0]}')
        radar = self._radar_points(pair)
        if radar is None:
            return
        radar_frame = pair.radar.msg.header.frame_id
        try:
            T = self._extrinsics.lookup(header.frame_id, radar_frame, header.stamp)
            frame = Frame(image=rgb, K=K, radar=radar, radar_fields=RADAR_FIELDS, T_camera_radar=T,
                          timestamp=pair.stamp, name=f'{pair.stamp:.6f}')
        except Exception as exc:  # TF lookup errors and Frame validation both drop the frame
            return self._bad('extrinsics', f'image dropped: {exc}')
        layers = (self.settings.saliency_layer,) if self._want_saliency() else ()
        result = self.estimator.predict(frame, saliency_layers=layers)
        stats = result.radar_stats
        if stats.non_finite:
            self._bad('radar_non_finite_points', f'{stats.non_finite} radar points with NaN/inf dropped')
        self._publish(header, rgb, K, result)
        self.stats.latency('inference', result.timings_ms['total'])
        self.stats.latency('total', 1e3 * (time.monotonic() - received))
        self.stats.count('published')

    def _radar_points(self, pair):
        """Radar points (N x 6, RADAR_FIELDS) of the pair's sweeps; None (counted) when a cloud is malformed."""
        fmap = self.settings.radar_field_map
        names = ['x', 'y', 'z', fmap['rcs'], fmap['vx'], fmap['vy']]
        arrays = []
        for sweep in pair.sweeps:
            try:
                arr, missing = convert.pointcloud2_to_array(sweep.msg, names)
            except convert.ConversionError as exc:
                self._bad('bad_radar', f'image dropped: malformed radar PointCloud2: {exc}')
                return None
            for name in set(missing) - self._warned_missing:
                self._warned_missing.add(name)
                self.get_logger().warning(f"radar PointCloud2 has no field '{name}': that model input is zero "
                                          f'(fields present: {convert.pointcloud2_field_names(sweep.msg)}; '
                                          f'set the radar_fields.* parameters)')
            arrays.append(arr)
        if not arrays or sum(len(a) for a in arrays) == 0:
            self.stats.count('empty_radar')
        return np.concatenate(arrays, axis=0) if arrays else np.zeros((0, 6), np.float32)

    def _want_saliency(self) -> bool:
        pub = self._pubs.get('saliency')
        if pub is None or pub.get_subscription_count() == 0 or self.settings.saliency_max_rate <= 0:
            return False
        now = time.monotonic()
        if now - self._last_saliency < 1.0 / self.settings.saliency_max_rate:
            return False
        self._last_saliency = now
        return True

    def _publish(self, header, rgb, K, result) -> None:
        from xd_rcdepth_core import viz
        s = self.settings
        h, w = result.depth.shape
        self._pubs['depth'].publish(convert.depth_to_image_msg(result.depth, header))
        self._pubs['depth_info'].publish(convert.camera_info_msg(K, h, w, header))
        if self._pubs['colored'].get_subscription_count():
            lo, hi = s.depth_color_range
            colored = viz.colorize_depth(result.depth, max_depth=hi, min_depth=lo)
            self._pubs['colored'].publish(convert.rgb_to_image_msg(colored, header, encoding='bgr8'))
        if result.saliency:
            overlay = viz.saliency_overlay(rgb, result.saliency[s.saliency_layer])
            self._pubs['saliency'].publish(convert.rgb_to_image_msg(overlay, header, encoding='bgr8'))
            self.stats.count('saliency_published')
        if 'points' in self._pubs and self._pubs['points'].get_subscription_count():
            from xd_rcdepth_core.geometry import backproject_pixels
            v, u = np.mgrid[0:h:s.points_stride, 0:w:s.points_stride]
            z = result.depth[v, u]
            ok = np.isfinite(z)
            xyz = backproject_pixels(u[ok], v[ok], z[ok], K).astype(np.float32)
            self._pubs['points'].publish(convert.array_to_pointcloud2(xyz, ('x', 'y', 'z'), header))

    def _publish_diagnostics(self) -> None:
        if self.pairer is not None:
            p = self.pairer.stats
            for key in ('paired', 'unpaired_no_radar', 'dropped_stale', 'time_jumps'):
                self.stats.counts[key] = getattr(p, key)
            if p.unpaired_no_radar > self._last_unpaired:
                self.get_logger().warning(
                    f'{p.unpaired_no_radar - self._last_unpaired} image(s) had no radar within sync_tolerance '
                    f'{self.settings.sync_tolerance} s (last radar offset {p.last_radar_offset}); check '
                    f'~/input/radar_points and the clocks', throttle_duration_sec=5.0)
                self._last_unpaired = p.unpaired_no_radar
        device = str(self.estimator.device) if self.estimator is not None else 'not loaded'
        msg = diagnostic_array(self.get_name(), self.stats, device, self.get_clock().now().to_msg())
        self._pubs['diagnostics'].publish(msg)


def main(args=None) -> None:
    profile_note = apply_fastdds_profile()
    rclpy.init(args=args)
    node = DepthNode()
    node.get_logger().info(profile_note)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._unsubscribe()
        node._stop_worker()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
