"""The xd_rcdepth lifecycle node: camera + radar in, metric depth + saliency out. Wiring only.

Topics (private; change them by remapping):
  in   ~/input/image (sensor_msgs/Image) or ~/input/image/compressed (CompressedImage, `compressed_image`)
       ~/input/camera_info (CameraInfo), ~/input/radar_points (PointCloud2: x, y, z [+ rcs, vx, vy])
  out  ~/output/depth (32FC1 metres, NaN invalid, header = input image header)
       ~/output/depth/camera_info (the input's calibration), ~/output/depth_colored (bgr8),
       ~/output/points (optional PointCloud2), ~/debug/saliency_overlay (bgr8 Grad-CAM over the image;
       computed only while subscribed), /diagnostics (DiagnosticArray), /tf_static (the static
       T_camera_radar, when `publish_static_tf` and tf2_msgs is importable)

Lifecycle: configure = read and validate every parameter (device and precision included), check the
checkpoint (on the CPU with an ONNX backend: get its serving plan, see below), then create the pairer,
publishers and extrinsics (a failure removes what was made); activate = load the model onto the
device, subscribe, start the inference worker; deactivate =
unsubscribe, stop the worker (which releases the model after its last frame); cleanup = drop
publishers, pairer and TF listener; shutdown / error = all of it. `autostart` (default true) drives
configure + activate from main(), so `ros2 run` and launch users need nothing else.

Inference runs in one worker thread fed by a latest-frame-wins pairer: subscription callbacks only
store messages, so inference never queues behind itself and stale frames are counted as dropped.
Everything else runs on one executor thread, and image-sized buffers are reused (heap.py): on a small
computer the cores belong to inference.
All maths lives in xd_rcdepth_core (DepthEstimator, OnnxEstimator) and in convert.py / sync.py.

Memory: on the CPU with backend auto, onnxruntime or openvino (fp32 or int8) the node serves the
exported ONNX file without importing torch (xd_rcdepth_core/serving.py: a helper process makes the
file and the plan once per checkpoint; ~0.3-0.4 GB resident instead of ~1.2 GB). torch is imported
when ~/debug/saliency_overlay is first subscribed (Grad-CAM needs the PyTorch model), and the log
says so. On CUDA, or with backend torch or precision bf16, the model runs in DepthEstimator.
"""
from __future__ import annotations

import copy
import sys
import threading
import time

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from xd_rcdepth_core import viz
from xd_rcdepth_core.devices import device_type
from xd_rcdepth_core.frame import Frame
from xd_rcdepth_core.geometry import backproject_pixels, rotation_to_quaternion
from xd_rcdepth_core.onnx_estimator import OnnxEstimator
from xd_rcdepth_core.serving import PlanError, can_serve_without_torch, serving_plan

from . import convert, topics
from .diagnostics import NodeStats, WarnThrottle, diagnostic_array, falling_behind, level_name
from .extrinsics import StaticExtrinsics, make_extrinsics
from .heap import keep_large_blocks
from .params import BY_NAME, ParameterError, check_compute, coerce_floats, declare_all, float_problem, read_settings
from .resources import apply_fastdds_profile
from .sync import RadarImagePairer, stamp_to_seconds
from .to_frame import FrameDropped, messages_to_frame

# An image waiting this long (wall time) with no new input is settled (end of a bag, dead radar).
IDLE_FLUSH_S = 0.5
# Pairer counters copied into /diagnostics (with the node's own): every image in is one of paired (then
# published, dropped_stale, bad_* or dropped_inactive), unpaired_*, out_of_order_images or pending_images.
PAIRER_COUNTS = ('paired', 'unpaired_no_radar', 'unpaired_no_camera_info', 'camera_info_fallback', 'dropped_stale',
                 'time_jumps', 'out_of_order_images', 'out_of_order_radar', 'stale_timeline', 'pending_images')


def sensor_qos() -> QoSProfile:
    """A fresh sensor-data profile (best effort, keep last 5) for ONE subscription.

    Fresh on purpose: rclpy's QoS overriding writes the overridden policies into the very profile object
    it is given, so a shared profile (let alone rclpy's global qos_profile_sensor_data) would carry one
    topic's override to every other topic, and to every later user of that object in the process.
    """
    return copy.copy(qos_profile_sensor_data)


def output_qos() -> QoSProfile:
    """A fresh profile for ONE publisher: reliable, explicit depth (REP-2003; Fast DDS' default depth is 1)."""
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.VOLATILE)


def describe_qos(q: QoSProfile) -> str:
    return (f'{q.reliability.name.lower()}, {q.durability.name.lower()}, '
            f'{q.history.name.lower()} depth {q.depth}')


class DepthNode(LifecycleNode):
    # Longest wait at deactivate for the frame in flight; past it the worker releases the model itself.
    WORKER_JOIN_TIMEOUT_S = 5.0
    IDLE_FLUSH_S = IDLE_FLUSH_S

    def __init__(self, node_name: str = 'xd_rcdepth', **kwargs):
        super().__init__(node_name, **kwargs)
        declare_all(self)                                       # ParameterError names a bad override
        self.add_pre_set_parameters_callback(coerce_floats)     # -p max_depth:=80 is a float
        self.add_on_set_parameters_callback(self._check_parameter_change)
        self.add_post_set_parameters_callback(self._apply_parameter_change)
        self.stats = NodeStats()
        self._throttle = WarnThrottle(5.0)
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
        self._said_info_fallback = False   # the one log line about a latched / slower CameraInfo
        self._said_falling_behind = False  # the one log line about inference slower than the camera
        self._last_level = None            # /diagnostics level last published (state changes are logged)
        self._last_input = time.monotonic()   # when the last input message arrived (the idle flush)
        self._device = None
        self._plan = None                  # serving.ServingPlan: depth from an ONNX file without torch
        self._hardware_id = ''
        self._tf_static = None             # /tf_static publisher (publish_static_tf, tf2_msgs importable)
        self._tf_static_sent = None        # (camera frame, radar frame, T) last published
        self.tf_static_note = ''

    def _param(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:  # validate everything before creating anything
            s = read_settings(self._param)
            device = check_compute(s)
            pairer = self._make_pairer(s)
            plan = self._check_checkpoint(s, device)   # fails early on a missing or foreign file
        except ParameterError as exc:
            log.error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        try:
            self.settings, self.pairer, self._device, self._plan = s, pairer, device, plan
            self._create_publishers(s)
            self._extrinsics = make_extrinsics(self, s.use_tf, s.T_camera_radar, s.tf_timeout)
            self._diag_timer = self.create_timer(s.diagnostics_period, self._publish_diagnostics)
        except Exception as exc:  # e.g. an invalid QoS override: leave nothing behind
            what = str(exc) if isinstance(exc, ParameterError) else f'{type(exc).__name__}: {exc}'
            log.error(f'configure failed: {what}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        log.info(f'configured: checkpoint {s.checkpoint}, device {s.device} -> {device}, extrinsics from '
                 f'{self._extrinsics.source}, image backend {convert.IMAGE_BACKEND}, point cloud backend '
                 f'{convert.POINTCLOUD_BACKEND}, pairing: tolerance {s.sync_tolerance} s, '
                 f'wait_for_next_radar {s.wait_for_next_radar}')
        if self.tf_static_note:
            log.info(self.tf_static_note)
        return TransitionCallbackReturn.SUCCESS

    def _check_checkpoint(self, s, device):
        """The serving plan when depth can run without torch (CPU, ONNX backend), else None; either way
        the checkpoint has been read, so a missing or foreign file fails configure naming it."""
        if can_serve_without_torch(str(device), s.backend, s.precision):
            try:
                plan = serving_plan(s.checkpoint, s.backend, s.precision, log=self.get_logger().info)
            except PlanError as exc:
                if exc.parameter == 'checkpoint':
                    raise ParameterError(f"parameter 'checkpoint' = {s.checkpoint!r}: {exc}") from None
                raise ParameterError(f'cannot prepare {s.checkpoint} for serving: {exc}') from None
            return plan if plan.onnx else None    # auto chose torch: DepthEstimator at activate
        from xd_rcdepth_core.models.checkpoint import read_checkpoint
        try:
            read_checkpoint(s.checkpoint)
        except (ValueError, OSError) as exc:
            raise ParameterError(f"parameter 'checkpoint' = {s.checkpoint!r}: {exc}") from None
        return None

    def _load_estimator(self, s):
        """OnnxEstimator on the configure's serving plan (no torch), else DepthEstimator (imports torch)."""
        threads = s.torch_threads or None
        if self._plan is not None:
            try:
                return OnnxEstimator(self._plan, max_depth=s.max_depth, input_size=s.input_size, threads=threads,
                                     on_torch_load=self.get_logger().info)
            except (ValueError, RuntimeError, OSError) as exc:   # e.g. the cached file was deleted meanwhile
                self.get_logger().warning(f'cannot serve {self._plan.onnx} without torch ({exc}): loading the '
                                          'model in torch instead')
        import torch

        from xd_rcdepth_core.pipeline import DepthEstimator
        if threads:
            torch.set_num_threads(threads)
        return DepthEstimator.from_checkpoint(s.checkpoint, device=s.device, precision=s.precision,
                                              max_depth=s.max_depth, input_size=s.input_size,
                                              backend=s.backend, threads=threads)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        s, log = self.settings, self.get_logger()
        try:
            estimator = self._load_estimator(s)
        except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
            log.error(f'activate failed: cannot load the model: {exc}')
            return TransitionCallbackReturn.FAILURE
        if s.input_size:
            self._warm_up(estimator, s.input_size)
        try:
            self._subscribe()
        except Exception as exc:  # an invalid QoS override of a subscription
            log.error(f'activate failed: cannot subscribe: {exc}')
            self._unsubscribe()
            estimator.release()
            return TransitionCallbackReturn.FAILURE
        self.estimator = estimator
        self._hardware_id = hardware_id(estimator.device)
        log.info(f'model {estimator.model_name} on {self._hardware_id} ({s.precision}, '
                 f'{s.torch_threads or "default"} inference threads), backend {estimator.backend_info}')
        if isinstance(estimator, OnnxEstimator):
            log.info('torch is not loaded: depth runs from the ONNX file; the first ~/debug/saliency_overlay '
                     'subscriber loads torch and the model for Grad-CAM (a few seconds, once)')
        elif s.backend != 'torch':
            log.info(f'backend {s.backend}: ~/debug/saliency_overlay (Grad-CAM) runs the torch model, '
                     'only while subscribed')
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, args=(estimator, self.pairer, self._stop),
                                        name='xd_rcdepth_inference', daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def _warm_up(self, estimator, size) -> None:
        """One inference on a blank frame at the fixed network input size before subscribing, so the
        first camera frame does not pay for CUDA graph capture, cuDNN's algorithm search or ONNX
        Runtime's first-run allocations: 4.5 s on an H200 with CUDA graphs, during which ~50 frames at
        12 Hz went stale. (Without input_height/width the input size follows the camera: the first
        frame warms up.)"""
        h, w = size
        blank = Frame(image=np.zeros((h, w, 3), np.uint8), K=np.array([[w, 0.0, w / 2], [0.0, w, h / 2], [0, 0, 1]]))
        t0 = time.perf_counter()
        try:
            estimator.predict(blank)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only moves its cost to the first frame
            self.get_logger().warning(f'warm-up inference failed ({exc}); the first frame pays for it instead')
            return
        self.get_logger().info(f'warm-up: one inference at {h}x{w} in {1e3 * (time.perf_counter() - t0):.0f} ms '
                               'before subscribing')

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # A transition raised: undo everything so the node is cleanly unconfigured again.
        self.get_logger().error(f'error in a transition from {state.label}: cleaning up to unconfigured')
        self.on_shutdown(state)
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ wiring
    def _make_pairer(self, s) -> RadarImagePairer:
        try:
            # CameraInfo by stamp: each image waits briefly for its own (another topic: it may land after
            # the image), unless the driver latches one or publishes it slower (then the newest is used).
            return RadarImagePairer(tolerance=s.sync_tolerance, radar_sweeps=s.radar_sweeps,
                                    wait_for_next_radar=s.wait_for_next_radar, camera_info='match')
        except ValueError as exc:
            raise ParameterError(f"parameters 'sync_tolerance' / 'radar_sweeps': {exc}") from None

    def _create_publishers(self, s) -> None:
        opts = QoSOverridingOptions.with_default_policies
        outputs = {'depth': (Image, topics.OUTPUT_DEPTH), 'depth_info': (CameraInfo, topics.OUTPUT_DEPTH_CAMERA_INFO),
                   'colored': (Image, topics.OUTPUT_DEPTH_COLORED), 'saliency': (Image, topics.DEBUG_SALIENCY_OVERLAY)}
        if s.points_enabled:
            outputs['points'] = (PointCloud2, topics.OUTPUT_POINTS)
        for key, (msg_type, topic) in outputs.items():
            self._pubs[key] = self._with_qos_overrides(
                'publisher', topic, lambda: self.create_lifecycle_publisher(msg_type, topic, output_qos(),
                                                                            qos_overriding_options=opts()))
        from diagnostic_msgs.msg import DiagnosticArray
        self._pubs['diagnostics'] = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self._create_tf_static(s)
        for pub in [p for p in self._pubs.values()] + ([self._tf_static] if self._tf_static else []):
            self.get_logger().info(f'QoS publisher {pub.topic_name}: {describe_qos(pub.qos_profile)}')

    def _create_tf_static(self, s) -> None:
        self.tf_static_note = ''
        if not s.publish_static_tf or s.use_tf:
            return
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.tf_static_note = ('publish_static_tf: tf2_msgs is not importable (pip ROS 2?), so T_camera_radar '
                                   'is not published on /tf_static; RViz needs a TF from the radar frame to '
                                   'the camera frame to place the radar cloud')
            return
        # As tf2_ros.StaticTransformBroadcaster: reliable, transient local, depth 1 (late joiners get it).
        qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self._tf_static = self.create_publisher(TFMessage, topics.TF_STATIC, qos)
        self._tf_static_sent = None

    def _publish_tf_static(self, camera_frame: str, radar_frame: str, T: np.ndarray) -> None:
        """Latch the static radar->camera transform the node uses, once per change of frames or T."""
        key = (camera_frame, radar_frame, T.tobytes())
        if self._tf_static is None or self._tf_static_sent == key or not camera_frame or not radar_frame:
            return
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage
        tf = TransformStamped()
        tf.header.stamp = self.get_clock().now().to_msg()
        tf.header.frame_id, tf.child_frame_id = camera_frame, radar_frame   # parent <- child = T_camera_radar
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = \
            (float(v) for v in T[:3, 3])
        w, x, y, z = (float(v) for v in rotation_to_quaternion(T[:3, :3]))
        tf.transform.rotation.w, tf.transform.rotation.x, tf.transform.rotation.y, tf.transform.rotation.z = \
            w, x, y, z
        self._tf_static.publish(TFMessage(transforms=[tf]))
        self._tf_static_sent = key

    def _subscribe(self) -> None:
        s, log = self.settings, self.get_logger()
        opts = QoSOverridingOptions.with_default_policies
        if s.compressed_image:
            image = (CompressedImage, topics.INPUT_IMAGE_COMPRESSED)
        else:
            image = (Image, topics.INPUT_IMAGE)
        for (msg_type, topic), callback in ((image, self._on_image),
                                            ((CameraInfo, topics.INPUT_CAMERA_INFO), self._on_camera_info),
                                            ((PointCloud2, topics.INPUT_RADAR_POINTS), self._on_radar)):
            self._subs.append(self._with_qos_overrides(
                'subscription', topic, lambda: self.create_subscription(msg_type, topic, callback, sensor_qos(),
                                                                        qos_overriding_options=opts())))
        for sub in self._subs:   # what each entity really got, overrides applied
            log.info(f'QoS subscription {sub.topic_name}: {describe_qos(sub.qos_profile)}')

    def _with_qos_overrides(self, kind: str, topic: str, create):
        """create(), with a bad qos_overrides.* value reported under its parameter's name."""
        try:
            return create()
        except (RuntimeError, ValueError, TypeError) as exc:   # rclpy: 'Unexpected QoS override ...'
            raise ParameterError(f"parameter 'qos_overrides.{self.resolve_topic_name(topic)}.{kind}.*': "
                                 f'{exc}') from None

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _stop_worker(self) -> bool:
        """Stop the worker; True when it ended in time (it releases its model when it ends either way)."""
        self._stop.set()
        worker, self._worker = self._worker, None
        self.estimator = None
        if worker is None:
            return True
        worker.join(timeout=self.WORKER_JOIN_TIMEOUT_S)
        if worker.is_alive():
            self.get_logger().warning(f'inference still running after {self.WORKER_JOIN_TIMEOUT_S:.1f} s: the '
                                      'model is released when that frame finishes')
            return False
        return True

    def _teardown(self) -> None:
        """Undo configure: timer, publishers, TF listener, pairer, settings (safe on a partial configure)."""
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for name, pub in self._pubs.items():
            if name == 'diagnostics':
                self.destroy_publisher(pub)
            else:
                self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._tf_static is not None:
            self.destroy_publisher(self._tf_static)
            self._tf_static = None
        if self._extrinsics is not None:
            self._extrinsics.close()
        self._extrinsics = None
        self.pairer = None
        self.settings = None
        self._plan = None

    # ------------------------------------------------------------------ parameters set while running
    def _check_parameter_change(self, parameters) -> SetParametersResult:
        """Refuse a set that the node could not honour: bad values, or read-at-configure ones while configured."""
        ours = {p.name: p.value for p in parameters if p.name in BY_NAME}
        for name, value in ours.items():   # float parameters are dynamically typed (to take ints): check here
            problem = float_problem(BY_NAME[name], value) if BY_NAME[name].is_float else None
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        if not ours or self.settings is None:   # unconfigured: everything else is checked at configure
            return SetParametersResult(successful=True)
        later = [name for name in ours if not BY_NAME[name].live]
        if later:
            return SetParametersResult(successful=False, reason=(
                f"parameter '{later[0]}' is read at configure: deactivate and clean up the node, set it, then "
                'configure (and activate) again'))
        try:
            read_settings(lambda name: ours[name] if name in ours else self._param(name))
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameter_change(self, parameters) -> None:
        """Apply live parameters at once (validated by _check_parameter_change)."""
        if self.settings is None or not any(p.name in BY_NAME for p in parameters):
            return
        s = read_settings(self._param)
        self.settings = s   # colour range, saliency, stride, radar fields: read per frame
        if self.pairer is not None:
            self.pairer.retune(tolerance=s.sync_tolerance, radar_sweeps=s.radar_sweeps,
                               wait_for_next_radar=s.wait_for_next_radar)
        if self.estimator is not None:
            self.estimator.max_depth = s.max_depth
        if isinstance(self._extrinsics, StaticExtrinsics):
            self._extrinsics = StaticExtrinsics(s.T_camera_radar)
        self.get_logger().info('parameters applied: ' + ', '.join(f'{p.name}={p.value}' for p in parameters
                                                                  if p.name in BY_NAME))

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, msg) -> None:
        self.stats.arrived('image')
        self._last_input = now = time.monotonic()
        self.pairer.add_image(stamp_to_seconds(msg.header.stamp), (msg, now))

    def _on_radar(self, msg) -> None:
        self.stats.arrived('radar')
        self._last_input = time.monotonic()
        self.pairer.add_radar(stamp_to_seconds(msg.header.stamp), msg)

    def _on_camera_info(self, msg) -> None:
        self.stats.arrived('camera_info')
        self._last_input = time.monotonic()
        self.pairer.add_camera_info(stamp_to_seconds(msg.header.stamp), msg)

    # ------------------------------------------------------------------ inference worker
    def _work(self, estimator, pairer: RadarImagePairer, stop: threading.Event) -> None:
        """One activation's worker; it owns `estimator` and releases it after its last frame, so a
        deactivate that times out never frees the model under a running inference."""
        try:
            while not stop.is_set():
                pair = pairer.wait_for_pair(timeout=0.1)
                if pair is None:
                    # Images still waiting with no input for IDLE_FLUSH_S (the end of a bag, a topic that
                    # stopped): settle them. Idle since the last *input*, not the last pair: after a gap
                    # (radar back, camera restarted) the first image may wait its usual while.
                    if time.monotonic() - self._last_input > self.IDLE_FLUSH_S and pairer.stats.pending_images:
                        pairer.flush()
                    continue
                try:
                    self._process(pair, estimator, stop)
                except Exception as exc:  # keep serving: one bad frame must not kill the node
                    self._bad('processing_error', f'frame dropped: {type(exc).__name__}: {exc}')
        finally:
            estimator.release()

    def _warn(self, reason: str, message: str) -> None:
        if self._throttle.ready(reason):   # per reason: each kind of problem is seen (see WarnThrottle)
            self.get_logger().warning(message)

    def _bad(self, reason: str, message: str) -> None:
        n = self.stats.bad_message(reason)
        self._warn(reason, f'{message} [{reason}: {n} so far]')

    def _process(self, pair, estimator, stop: threading.Event) -> None:
        picked = time.monotonic()
        s = self.settings
        if s is None:
            self.stats.count('dropped_inactive')   # cleaned up meanwhile
            return
        if pair.camera_info_fallback and not self._said_info_fallback:
            self._said_info_fallback = True
            self.get_logger().warning(
                f'no CameraInfo stamped within sync_tolerance {s.sync_tolerance} s of the image (the driver '
                'latches one, or publishes it at another rate or stamp): using the newest CameraInfo for such '
                'images (said once; counted as camera_info_fallback in /diagnostics)')
        image_msg, received = pair.image.msg
        header = image_msg.header
        radar_msgs = [sweep.msg for sweep in pair.sweeps]
        info_msg = pair.camera_info.msg if pair.camera_info is not None else None
        try:
            frame, missing = messages_to_frame(image_msg, info_msg, radar_msgs, pair.stamp, s.radar_field_map,
                                               self._extrinsics.lookup)
        except FrameDropped as exc:
            return self._bad(exc.reason, str(exc))
        for name in set(missing) - self._warned_missing:
            self._warned_missing.add(name)
            self.get_logger().warning(f"radar PointCloud2 has no field '{name}': that model input is zero "
                                      f'(fields present: {convert.pointcloud2_field_names(radar_msgs[-1])}; '
                                      f'set the radar_fields.* parameters)')
        if len(frame.radar) == 0:  # served (depth from the image alone) but worth knowing: a dead radar looks so
            self.stats.count('empty_radar')
            self._warn('empty_radar', f'radar cloud on ~/input/radar_points is empty: depth from the image alone '
                                      f"[empty_radar: {self.stats.counts['empty_radar']} so far]")
        if isinstance(self._extrinsics, StaticExtrinsics):
            self._publish_tf_static(header.frame_id, pair.radar.msg.header.frame_id, frame.T_camera_radar)
        rgb, K = frame.image, frame.K
        layers = (s.saliency_layer,) if self._want_saliency(s) else ()
        result = estimator.predict(frame, saliency_layers=layers)
        stats = result.radar_stats
        if stats.non_finite:
            self._bad('radar_non_finite_points', f'{stats.non_finite} radar points with NaN/inf dropped')
        if stop.is_set():   # deactivated meanwhile: the publishers are (being) deactivated
            self.stats.count('dropped_inactive')
            return
        self._publish(header, rgb, pair.camera_info.msg, K, result, s)
        # received -> published = pairing (waiting for radar / camera_info) + slot (waiting for the busy
        # worker: a frame's age when taken, up to one camera period) + inference + the node's own work
        # (message conversion, saliency, publishing).
        done = time.monotonic()
        inference = result.timings_ms['total']
        self.stats.latency('pairing', 1e3 * max(0.0, pair.ready - received))
        self.stats.latency('slot', 1e3 * max(0.0, picked - pair.ready))
        self.stats.latency('inference', inference)
        self.stats.latency('work', max(0.0, 1e3 * (done - picked) - inference))
        total = 1e3 * (done - received)
        self.stats.latency('total', total)
        self.stats.timed('depth')
        # What the node adds to inference, per frame (issue 15's goal; a difference of the p50s above is
        # not the p50 of the differences).
        self.stats.latency('added', max(0.0, total - inference))
        self.stats.count('published')

    def _want_saliency(self, s) -> bool:
        pub = self._pubs.get('saliency')
        if pub is None or pub.get_subscription_count() == 0 or s.saliency_max_rate <= 0:
            return False
        now = time.monotonic()
        if now - self._last_saliency < 1.0 / s.saliency_max_rate:
            return False
        self._last_saliency = now
        return True

    def _publish(self, header, rgb, info_msg, K, result, s) -> None:
        h, w = result.depth.shape
        self._pubs['depth'].publish(convert.depth_to_image_msg(result.depth, header))
        # The depth is pixel-aligned with the input image (not rectified here): same calibration.
        self._pubs['depth_info'].publish(convert.depth_camera_info(info_msg, header))
        if self._pubs['colored'].get_subscription_count():
            lo, hi = s.depth_color_range
            colored = viz.colorize_depth(result.depth, max_depth=hi, min_depth=lo)
            self._pubs['colored'].publish(convert.rgb_to_image_msg(colored, header, encoding='bgr8'))
        if result.saliency:
            layer = s.saliency_layer if s.saliency_layer in result.saliency else next(iter(result.saliency))
            overlay = viz.saliency_overlay(rgb, result.saliency[layer])
            self._pubs['saliency'].publish(convert.rgb_to_image_msg(overlay, header, encoding='bgr8'))
            self.stats.count('saliency_published')
        if 'points' in self._pubs and self._pubs['points'].get_subscription_count():
            v, u = np.mgrid[0:h:s.points_stride, 0:w:s.points_stride]
            z = result.depth[v, u]
            ok = np.isfinite(z)
            xyz = backproject_pixels(u[ok], v[ok], z[ok], K).astype(np.float32)
            self._pubs['points'].publish(convert.array_to_pointcloud2(xyz, ('x', 'y', 'z'), header))

    def _publish_diagnostics(self) -> None:
        pairer, s = self.pairer, self.settings
        if pairer is not None:
            p = pairer.stats
            for key in PAIRER_COUNTS:
                self.stats.counts[key] = getattr(p, key)
            if p.unpaired_no_radar > self._last_unpaired and s is not None:
                self._warn('unpaired_no_radar', (
                    f'{p.unpaired_no_radar - self._last_unpaired} image(s) had no radar within sync_tolerance '
                    f'{s.sync_tolerance} s (last radar offset {p.last_radar_offset}); check '
                    f'~/input/radar_points and the clocks'))
                self._last_unpaired = p.unpaired_no_radar
        estimator = self.estimator
        loaded = estimator is not None
        device = str(estimator.device) if loaded else 'not loaded'
        # torch_loaded: the node's memory story at a glance (no until saliency is first asked for).
        extra = {}
        if loaded:
            extra = {'backend': estimator.backend_info['backend'],
                     'torch_loaded': 'yes' if 'torch' in sys.modules else 'no'}
        msg = diagnostic_array(self.get_name(), self.stats, device, self.get_clock().now().to_msg(),
                               hardware_id=self._hardware_id or str(self._device or ''), model_loaded=loaded,
                               extra=extra)
        self._pubs['diagnostics'].publish(msg)
        behind = falling_behind(self.stats) if loaded else None
        if behind and not self._said_falling_behind:
            self._said_falling_behind = True
            self.get_logger().info(
                f'{behind}. Fine for a live view; for depth on every image use precision int8 (CPU), a GPU, '
                f'or a smaller input_height / input_width (away from the checkpoint\'s scale: check the accuracy '
                f'with replay-eval). Said once; /diagnostics keeping_up says whether it still holds')
        status = msg.status[0]
        if status.level != self._last_level and self._last_level is not None:   # a state change, once
            self.get_logger().info(f'diagnostics {level_name(status.level)}: {status.message}')
        self._last_level = status.level


def hardware_id(device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA ...)' (torch is loaded whenever the device is a GPU)."""
    if device_type(device) != 'cuda':
        return str(device)
    import torch
    return f'{device} ({torch.cuda.get_device_name(device)})'


def main(args=None) -> None:
    profile_note = apply_fastdds_profile()
    heap_note = keep_large_blocks()    # before DDS and numpy allocate their first image buffers
    rclpy.init(args=args)
    try:
        node = DepthNode()
    except ParameterError as exc:   # a bad -p / params-file value: one clear line, no traceback
        rclpy.logging.get_logger('xd_rcdepth').fatal(f'cannot start: {exc}')
        rclpy.try_shutdown()
        sys.exit(1)
    node.get_logger().info(profile_note)
    node.get_logger().info(heap_note)
    # One thread: the callbacks only store messages (inference has its own thread), and rclpy's
    # multi-threaded executor cost 3x the CPU per message (13 % vs 4 % of a core at 12 Hz 900x1600 +
    # 13 Hz radar), taken from inference on small machines.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(1)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):   # Ctrl-C, SIGTERM
        pass
    except Exception:
        # rclpy's signal handler can shut the context down between the executor's ok() check and its
        # wait, which raises RCLError ('context is not valid') instead of ExternalShutdownException.
        if rclpy.ok():
            raise
    except SystemExit as exc:
        code = exc.code
    finally:
        node._unsubscribe()
        node._stop_worker()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(code)


if __name__ == '__main__':
    main()
