"""The xd_rcdepth node over real rclpy on loopback DDS, in-process and as a console script."""
from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from ros_helpers import Harness, console_command, frame_messages, log_tail, nan_equal, spin_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from xd_rcdepth_core.models import build_model  # noqa: E402
from xd_rcdepth_core.models.checkpoint import save_checkpoint  # noqa: E402
from xd_rcdepth_core.pipeline import DepthEstimator  # noqa: E402
from xd_rcdepth_core.synthetic import generate_sequence  # noqa: E402
from xd_rcdepth_ros import convert  # noqa: E402
from xd_rcdepth_ros.convert import array_to_pointcloud2
from xd_rcdepth_ros.diagnostics import KEEP_UP_SAMPLES, NodeStats, diagnostic_array, health  # noqa: E402
from xd_rcdepth_ros.node import DepthNode  # noqa: E402
from xd_rcdepth_ros.params import PARAMETER_NAMES, ParameterError  # noqa: E402
from xd_rcdepth_ros.topics import PUBLICATIONS, SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parents[1]
H, W = 96, 160
_names = itertools.count()


def unique(prefix: str) -> str:
    """A node name of its own per test (rosout and the graph keep names for a while)."""
    return f'{prefix}_{next(_names)}'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import torch
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'student.pt'
    save_checkpoint(path, build_model('xd_rcdepth'))
    return path


@pytest.fixture(scope='module')
def frames():
    return list(generate_sequence(seed=5, n_frames=4, height=H, width=W))


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _node(name, checkpoint, **params):
    overrides = [Parameter('checkpoint', value=str(checkpoint)), Parameter('autostart', value=False)]
    return DepthNode(name, parameter_overrides=overrides + [Parameter(k, value=v) for k, v in params.items()])


def test_depth_equals_estimator_and_saliency_only_while_subscribed(ros, checkpoint, frames):
    T = frames[0].T_camera_radar
    h = Harness(checkpoint, T)
    try:
        h.start()
        est = DepthEstimator.from_checkpoint(checkpoint, device='cpu')
        for i, frame in enumerate(frames[:2]):
            stamp = 100.0 + i / 12
            h.send(*frame_messages(frame, stamp))
            assert spin_until(h.executor, lambda: len(h.depth) > i), f'no depth for frame {i}'
            msg = h.depth[i]
            assert msg.encoding == '32FC1' and (msg.height, msg.width) == (H, W)
            assert msg.header.frame_id == 'CAM_FRONT'
            assert abs(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - stamp) < 1e-6
            expected = est.predict(frame.replace(T_camera_radar=T)).depth
            assert nan_equal(convert.image_msg_to_array(msg), expected), 'node depth differs from DepthEstimator'
        assert spin_until(h.executor, lambda: len(h.depth_info) >= 2)
        np.testing.assert_allclose(convert.camera_info_to_K(h.depth_info[0])[0], frames[0].K)
        assert h.node.stats.counts['saliency_published'] == 0      # nobody subscribed yet
        h.subscribe_saliency()
        h.send(*frame_messages(frames[2], 101.0))
        assert spin_until(h.executor, lambda: len(h.saliency) >= 1), 'no saliency overlay while subscribed'
        sal = h.saliency[0]
        assert sal.encoding == 'bgr8' and (sal.height, sal.width) == (H, W)
        assert convert.image_to_rgb(sal).std() > 0
    finally:
        h.close()


def test_lifecycle_deactivate_unsubscribes_and_reactivate_serves(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name='xd_rcdepth_lc')
    inputs = [h.image_topic, f'{h.base}/input/camera_info', f'{h.base}/input/radar_points']
    try:
        h.start()
        h.send(*frame_messages(frames[0], 200.0))
        assert spin_until(h.executor, lambda: len(h.depth) == 1)
        assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.node.estimator is None
        # Another node sees the subscriptions go: deactivate really unsubscribes.
        assert spin_until(h.executor, lambda: all(h.peer.count_subscribers(t) == 0 for t in inputs), timeout=10), \
            {t: h.peer.count_subscribers(t) for t in inputs}
        h.send(*frame_messages(frames[1], 200.1))
        spin_until(h.executor, lambda: False, timeout=1.0)
        assert len(h.depth) == 1, 'an inactive node published depth'
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        h.wait_matched()
        assert all(h.peer.count_subscribers(t) == 1 for t in inputs)
        h.send(*frame_messages(frames[2], 200.2))
        assert spin_until(h.executor, lambda: len(h.depth) == 2), 'no depth after re-activation'
    finally:
        h.close()


def test_cleanup_drops_everything_and_shutdown_releases_the_model(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_cleanup'))
    try:
        h.start()
        node = h.node
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.pairer is None and node._extrinsics is None and node.settings is None and node._pubs == {}
        assert spin_until(h.executor, lambda: h.peer.count_publishers(f'{h.base}/output/depth') == 0, timeout=10)
        h.start()                                                  # configure + activate again: serves
        h.send(*frame_messages(frames[0], 210.0))
        assert spin_until(h.executor, lambda: h.depth), 'no depth after cleanup + configure + activate'
        released = threading.Event()
        est = node.estimator
        real_release = est.release
        est.release = lambda: (released.set(), real_release())
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS   # straight from active
        assert released.is_set() and node.estimator is None and node.pairer is None
    finally:
        h.close()


def test_deactivate_during_a_long_inference_releases_the_model_after_it(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_slow'))
    go = threading.Event()
    try:
        h.start()
        est = h.node.estimator
        entered, released = threading.Event(), threading.Event()
        real_predict, real_release = est.predict, est.release

        def slow_predict(*args, **kwargs):   # an inference longer than the deactivate's join timeout
            entered.set()
            go.wait(20)
            return real_predict(*args, **kwargs)

        est.predict = slow_predict
        est.release = lambda: (released.set(), real_release())
        h.node.WORKER_JOIN_TIMEOUT_S = 0.3
        h.send(*frame_messages(frames[0], 220.0))
        assert spin_until(h.executor, entered.is_set)
        t0 = time.monotonic()
        assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert time.monotonic() - t0 < 3.0
        assert not released.is_set(), 'the model was released under a running inference'
        go.set()
        assert released.wait(20), 'the model was never released'
        spin_until(h.executor, lambda: False, timeout=0.5)
        assert h.depth == [], 'the frame finished after deactivate was published'
    finally:
        go.set()
        h.close()


def _bad_inputs(frame, stamp):
    """(reason counted by the node, image, info, radar) for each kind of bad input."""
    image, info, radar = frame_messages(frame, stamp)
    cases = []
    bad = frame_messages(frame, stamp)[2]
    bad.point_step = 8                                   # smaller than the 6 float fields
    cases.append(('bad_radar', image, info, bad))
    bad = frame_messages(frame, stamp)[2]
    bad.data = bytes(bad.data)[:-5]                      # data length != row_step * height
    cases.append(('bad_radar', image, info, bad))
    noxyz = array_to_pointcloud2(np.zeros((3, 2), np.float32), ('a', 'b'), radar.header)
    cases.append(('bad_radar', image, info, noxyz))
    img = frame_messages(frame, stamp)[0]
    img.encoding = 'yuv422_weird'
    cases.append(('bad_image', img, info, radar))
    zero = frame_messages(frame, stamp)[1]
    zero.k = [0.0] * 9
    cases.append(('bad_camera_info', image, zero, radar))
    small = convert.camera_info_msg(frame.K, H // 2, W // 2, info.header)
    cases.append(('camera_info_size', image, small, radar))
    return cases


def test_bad_inputs_are_counted_and_good_frames_still_served(ros, checkpoint, frames, capfd):
    h = Harness(checkpoint, frames[0].T_camera_radar, name='xd_rcdepth_bad')
    try:
        h.start()
        stamp = 300.0
        reasons = []
        for k in range(len(_bad_inputs(frames[0], stamp))):
            reason, image, info, radar = _bad_inputs(frames[0], stamp)[k]   # stamped now: time moves on
            reasons.append(reason)
            before = h.node.stats.bad.get(reason, 0)
            h.send(image, info, radar)
            assert spin_until(h.executor, lambda: h.node.stats.bad.get(reason, 0) > before), reason
            stamp += 0.1
            h.send(*frame_messages(frames[1], stamp))     # a good frame right after is still served
            n = len(h.depth)
            assert spin_until(h.executor, lambda: len(h.depth) > n), f'no depth after {reason}'
            stamp += 0.1
        # NaN/inf radar points are dropped and counted; an empty cloud still gives depth.
        f = frames[2]
        radar = f.radar.copy()
        radar[:3, 0] = np.nan
        radar[3, 1] = np.inf
        n = len(h.depth)
        h.send(*frame_messages(f.replace(radar=radar), stamp))
        assert spin_until(h.executor, lambda: len(h.depth) > n)
        assert h.node.stats.bad.get('radar_non_finite_points', 0) >= 1
        n = len(h.depth)
        h.send(*frame_messages(f.replace(radar=f.radar[:0]), stamp + 0.1))
        assert spin_until(h.executor, lambda: len(h.depth) > n), 'an empty radar cloud must still give depth'
        assert h.node.stats.counts['empty_radar'] >= 1
        # All within a few seconds, yet each kind was logged: the throttle is per reason, not per call site.
        err = capfd.readouterr().err
        for reason in set(reasons) | {'radar_non_finite_points', 'empty_radar'}:
            assert f'[{reason}: ' in err, f'no warning logged for {reason}'
    finally:
        h.close()


def test_images_without_radar_are_counted(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name='xd_rcdepth_norad', sync_tolerance=0.02)
    try:
        h.start()
        image, info, radar = frame_messages(frames[0], 400.0)
        h.pub_info.publish(info)
        h.pub_radar.publish(frame_messages(frames[0], 399.5)[2])      # 0.5 s older: outside tolerance
        h.pub_image.publish(image)
        assert spin_until(h.executor, lambda: h.node.pairer.stats.unpaired_no_radar >= 1, timeout=10)
        assert len(h.depth) == 0
    finally:
        h.close()


def test_compressed_image_end_to_end_and_depth_info_keeps_the_calibration(ros, checkpoint, frames):
    T = frames[0].T_camera_radar
    h = Harness(checkpoint, T, name=unique('xd_rcdepth_png'), compressed_image=True)
    try:
        h.start()
        image, info, radar = frame_messages(frames[0], 450.0, compressed=True)
        assert image.format.endswith('png compressed bgr8')
        info.distortion_model, info.d = 'rational_polynomial', [0.1, -0.05, 0.001, 0.002, 0.01, 0.2, -0.1, 0.03]
        h.send(image, info, radar)
        assert spin_until(h.executor, lambda: h.depth and h.depth_info), 'no depth from a CompressedImage'
        expected = DepthEstimator.from_checkpoint(checkpoint, device='cpu').predict(frames[0]).depth
        assert nan_equal(convert.image_msg_to_array(h.depth[0]), expected)
        out = h.depth_info[0]
        assert out.distortion_model == 'rational_polynomial' and list(out.d) == list(info.d)
        assert out.header.frame_id == 'CAM_FRONT' and (out.height, out.width) == (H, W)
    finally:
        h.close()


def _endpoint_reliability(node, topic, publishers: bool):
    infos = (node.get_publishers_info_by_topic if publishers else node.get_subscriptions_info_by_topic)(topic)
    mine = [i for i in infos if i.node_name == node.get_name()]
    return mine[0].qos_profile.reliability if mine else None


def test_qos_override_of_one_topic_changes_only_that_topic(ros, checkpoint, frames):
    name = unique('xd_rcdepth_qos')
    h = Harness(checkpoint, frames[0].T_camera_radar, name=name, **{
        f'qos_overrides./{name}/input/image.subscription.reliability': 'reliable',
        f'qos_overrides./{name}/output/depth.publisher.reliability': 'best_effort'})
    try:
        node = h.node
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        base = f'/{name}'
        want = {(f'{base}/input/image', False): QoSReliabilityPolicy.RELIABLE,
                (f'{base}/input/camera_info', False): QoSReliabilityPolicy.BEST_EFFORT,
                (f'{base}/input/radar_points', False): QoSReliabilityPolicy.BEST_EFFORT,
                (f'{base}/output/depth', True): QoSReliabilityPolicy.BEST_EFFORT,
                (f'{base}/output/depth/camera_info', True): QoSReliabilityPolicy.RELIABLE,
                (f'{base}/output/depth_colored', True): QoSReliabilityPolicy.RELIABLE,
                (f'{base}/debug/saliency_overlay', True): QoSReliabilityPolicy.RELIABLE}

        def got():
            return {key: _endpoint_reliability(node, *key) for key in want}
        assert spin_until(h.executor, lambda: got() == want, timeout=10), got()
        # rclpy writes overrides into the profile it is given: the process-wide one must be untouched.
        assert qos_profile_sensor_data.reliability == QoSReliabilityPolicy.BEST_EFFORT
    finally:
        h.close()


def test_diagnostics_content_and_levels(ros, checkpoint, frames):
    from diagnostic_msgs.msg import DiagnosticStatus
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_diag'), diagnostics_period=0.2)
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert spin_until(h.executor, lambda: h.diagnostics, timeout=10), 'no /diagnostics while configured'
        first = h.diagnostics[-1]
        assert first.level == DiagnosticStatus.ERROR and 'model not loaded' in first.message
        assert first.hardware_id == 'cpu'
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        h.wait_matched()
        for i in range(3):
            h.send(*frame_messages(frames[i], 500.0 + i / 12))
            assert spin_until(h.executor, lambda: len(h.depth) > i)
        n = len(h.diagnostics)
        assert spin_until(h.executor, lambda: len(h.diagnostics) > n + 1)
        ok = h.diagnostics[-1]
        values = {kv.key: kv.value for kv in ok.values}
        assert ok.level == DiagnosticStatus.OK, ok.message
        assert ok.hardware_id == 'cpu' and values['device'] == 'cpu'
        assert int(values['published']) == 3 and int(values['paired']) == 3 and int(values['image_in']) == 3
        assert float(values['inference_latency_p50_ms']) > 0 and 'total_latency_p95_ms' in values
        # The latency split: total = pairing + slot + inference + the node's own work, per frame.
        split = {k: float(values[f'{k}_latency_p50_ms']) for k in ('pairing', 'slot', 'inference', 'work', 'total')}
        assert min(split.values()) >= 0 and split['total'] >= split['inference']
        # added = total - inference = pairing + slot + work of each frame, so its p50 is at least each
        # part's p50 and at most the total's (order statistics keep a per-frame inequality).
        added = float(values['added_latency_p50_ms'])
        assert max(split['pairing'], split['slot'], split['work']) <= added <= split['total']
        assert values['backend'] == 'onnxruntime' and values['torch_loaded'] in ('yes', 'no')
        assert 'image_rate_hz' in values and 'radar_rate_hz' in values and float(values['depth_rate_hz']) >= 0
        assert values['keeping_up'] == ''        # judged from KEEP_UP_SAMPLES timed frames on, 3 so far
        bad = frame_messages(frames[0], 501.0)
        bad[0].encoding = 'nv12_unknown'
        h.send(*bad)
        assert spin_until(h.executor, lambda: h.diagnostics[-1].level == DiagnosticStatus.WARN, timeout=10)
        warn = h.diagnostics[-1]
        assert 'dropped' in warn.message and {kv.key: kv.value for kv in warn.values}['bad_bad_image'] == '1'
        # Inference slower than the camera (timings injected: a real one would need a slow model or a fast
        # camera): OK, with the depth rate of the image rate in the message, keeping_up no, said once.
        assert not h.node._said_falling_behind
        for _ in range(KEEP_UP_SAMPLES):
            h.node.stats.latency('inference', 10000.0)   # longer than any image period in this test
        for _ in range(5):
            h.node.stats.arrived('image')
            time.sleep(0.02)

        def behind():
            values = {kv.key: kv.value for kv in h.diagnostics[-1].values}
            return values['keeping_up'] == 'no' and h.diagnostics[-1].level == DiagnosticStatus.OK
        assert spin_until(h.executor, behind, timeout=10), h.diagnostics[-1].message
        assert 'inference is slower than the camera' in h.diagnostics[-1].message
        assert h.node._said_falling_behind
    finally:
        h.close()


def test_health_errors_when_images_arrive_but_nothing_is_published():
    from diagnostic_msgs.msg import DiagnosticStatus
    stats = NodeStats()
    assert health(stats, model_loaded=False)[0] == DiagnosticStatus.ERROR
    assert health(stats, model_loaded=True) == (DiagnosticStatus.WARN, 'no image received yet')
    stats.arrived('image')
    assert health(stats, True, stall_s=0.2)[0] == DiagnosticStatus.WARN        # just started
    time.sleep(0.25)
    stats.arrived('image')
    level, message = health(stats, True, stall_s=0.2)
    assert level == DiagnosticStatus.ERROR and 'no depth published' in message
    stats.count('published')
    assert health(stats, True, stall_s=0.2)[0] == DiagnosticStatus.OK
    time.sleep(0.25)
    level, message = health(stats, True, stall_s=0.2)
    assert level == DiagnosticStatus.WARN and message.startswith('no image for')


def test_health_says_when_inference_is_slower_than_the_camera():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from xd_rcdepth_ros.diagnostics import falling_behind
    stats = NodeStats()
    for k in range(6):                                # images every ~20 ms (~50 Hz), depth for every other
        stats.arrived('image')
        stats.arrived('radar')
        if k % 2 == 0:
            stats.count('published')
            stats.timed('depth')
        time.sleep(0.02)
    for _ in range(KEEP_UP_SAMPLES - 1):
        stats.latency('inference', 100.0)
    assert falling_behind(stats) is None              # too few frames timed to judge (warm-up)
    stats.latency('inference', 100.0)
    behind = falling_behind(stats)
    assert behind and 'inference (100 ms p50) is slower than the camera' in behind and 'dropped_stale' in behind
    level, message = health(stats, True)
    assert level == DiagnosticStatus.OK and 'inference is slower than the camera' in message, message
    values = {kv.key: kv.value for kv in diagnostic_array('n', stats, 'cpu', Time()).status[0].values}
    assert values['keeping_up'] == 'no' and float(values['depth_rate_hz']) > 0
    for _ in range(200):                              # faster now: the window's p50 is 5 ms
        stats.latency('inference', 5.0)
    assert falling_behind(stats) is None and health(stats, True) == (DiagnosticStatus.OK, 'publishing depth')
    values = {kv.key: kv.value for kv in diagnostic_array('n', stats, 'cpu', Time()).status[0].values}
    assert values['keeping_up'] == 'yes'


def test_health_names_a_missing_input_and_a_returned_one_is_no_error():
    from diagnostic_msgs.msg import DiagnosticStatus
    stats = NodeStats()
    stats.arrived('image')
    stats.arrived('radar')
    stats.count('published')
    assert health(stats, True, stall_s=1.0, missing_s=0.1)[0] == DiagnosticStatus.OK
    end = time.monotonic() + 1.2
    while time.monotonic() < end:                     # images go on, the radar has stopped
        time.sleep(0.15)
        stats.arrived('image')
        level, message = health(stats, True, stall_s=1.0, missing_s=0.1)
        assert level == DiagnosticStatus.WARN and message.startswith('no radar for'), message
    stats.arrived('radar')                            # back; no depth for more than stall_s, but not a fault
    level, message = health(stats, True, stall_s=1.0, missing_s=0.1)
    assert level == DiagnosticStatus.WARN and 'inputs are back' in message, message
    stats.count('published')
    assert health(stats, True, stall_s=1.0, missing_s=0.1)[0] == DiagnosticStatus.OK
    camera = NodeStats()                              # a camera driver restarting: radar goes on
    camera.arrived('image')
    camera.arrived('radar')
    camera.count('published')
    time.sleep(0.15)
    camera.arrived('radar')
    level, message = health(camera, True, stall_s=1.0, missing_s=0.1)
    assert level == DiagnosticStatus.WARN and 'no image for' in message and 'radar arrives' in message, message


def test_saliency_is_rate_limited(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_salrate'),
                **{'saliency.max_rate': 1.0})
    try:
        h.start()
        h.subscribe_saliency()
        t0 = time.monotonic()
        for i in range(6):
            h.send(*frame_messages(frames[i % len(frames)], 550.0 + i / 12))
            assert spin_until(h.executor, lambda: len(h.depth) > i)
        elapsed = time.monotonic() - t0
        spin_until(h.executor, lambda: False, timeout=0.3)
        n = h.node.stats.counts['saliency_published']
        assert 1 <= n <= 1 + int(elapsed * 1.0), (n, elapsed)
        assert len(h.saliency) == n and len(h.depth) == 6
    finally:
        h.close()


def test_live_parameters_apply_at_once_and_the_others_need_a_reconfigure(ros, checkpoint, frames):
    from rclpy.parameter_client import AsyncParameterClient
    T = frames[0].T_camera_radar
    h = Harness(checkpoint, T, name=unique('xd_rcdepth_live'))
    try:
        h.start()
        node = h.node
        client = AsyncParameterClient(h.peer, node.get_name())
        assert client.wait_for_services(timeout_sec=10.0)

        def remote_set(*params):   # as `ros2 param set` does: the node's set_parameters service
            future = client.set_parameters(list(params))
            assert spin_until(h.executor, future.done, timeout=10)
            return future.result().results

        results = remote_set(Parameter('saliency.max_rate', value=5.0), Parameter('depth_colored.max', value=50),
                             Parameter('max_depth', value=60), Parameter('sync_tolerance', value=0.2),
                             Parameter('wait_for_next_radar', value=False), Parameter('saliency.layer', value='image'))
        assert all(r.successful for r in results), [r.reason for r in results]
        s = node.settings
        assert (s.saliency_max_rate, s.depth_color_range, s.saliency_layer) == (5.0, (0.0, 50.0), 'image')
        assert node.estimator.max_depth == 60.0 and node.get_parameter('max_depth').value == 60.0
        assert node.pairer.tolerance == 0.2 and node.pairer.wait_for_next_radar is False
        refused = remote_set(Parameter('points.enabled', value=True))[0]
        assert not refused.successful and 'configure' in refused.reason and 'points.enabled' in refused.reason
        for param, word in ((Parameter('depth_colored.min', value=70.0), 'depth_colored.min'),
                            (Parameter('radar_fields.vy', value='vx'), 'radar_fields.vy'),
                            (Parameter('max_depth', value='far'), 'max_depth')):
            r = remote_set(param)[0]
            assert not r.successful and word in r.reason, r.reason
        # A live extrinsics change is used for the next frame; the depth matches the estimator with it.
        T2 = T.copy()
        T2[:3, 3] += [0.1, -0.05, 0.2]
        assert node.set_parameters([Parameter('T_camera_radar.translation',
                                              value=[float(v) for v in T2[:3, 3]])])[0].successful
        h.send(*frame_messages(frames[1], 600.0))
        assert spin_until(h.executor, lambda: h.depth)
        est = DepthEstimator.from_checkpoint(checkpoint, device='cpu', max_depth=60.0)
        expected = est.predict(frames[1].replace(T_camera_radar=T2)).depth
        assert nan_equal(convert.image_msg_to_array(h.depth[0]), expected)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert remote_set(Parameter('points.enabled', value=True))[0].successful   # unconfigured: accepted
    finally:
        h.close()


def test_integers_for_float_parameters_are_accepted(ros, checkpoint):
    node = _node(unique('xd_rcdepth_ints'), checkpoint, max_depth=80, **{'T_camera_radar.translation': [0, 0, 1],
                                                                        'depth_colored.max': 60})
    try:
        assert node.get_parameter('max_depth').value == 80.0
        assert node.get_parameter('T_camera_radar.translation').value == [0.0, 0.0, 1.0]
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.settings.T_camera_radar[2, 3] == 1.0 and node.settings.depth_color_range == (0.0, 60.0)
        assert node.set_parameters([Parameter('max_depth', value=70)])[0].successful
        assert node.get_parameter('max_depth').value == 70.0
    finally:
        node.destroy_node()


@pytest.mark.parametrize('params, named', [
    ({'radar_sweeps': 2.5}, 'radar_sweeps'),               # wrong type
    ({'max_depth': 'deep'}, 'max_depth'),
    ({'sync_tolerance': 0.0}, 'sync_tolerance'),           # out of range
    ({'max_depth': 5000}, 'max_depth'),                    # an int, out of the float range
])
def test_a_bad_override_fails_construction_with_one_clear_error(ros, checkpoint, params, named):
    with pytest.raises(ParameterError, match=f"parameter '{named}'"):
        _node(unique('xd_rcdepth_badtype'), checkpoint, **params)


@pytest.mark.parametrize('tolerance', [0.001, 1.0])
def test_sync_tolerance_at_either_end_of_its_range_configures(ros, checkpoint, tolerance):
    node = _node(unique('xd_rcdepth_tol'), checkpoint, sync_tolerance=tolerance)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.pairer.tolerance == tolerance
    finally:
        node.destroy_node()


@pytest.mark.parametrize('params, named', [
    ({'radar_fields.vy': 'vx'}, 'radar_fields.vy'),
    ({'radar_fields.rcs': 'z'}, 'radar_fields.rcs'),
    ({'precision': 'fp16', 'device': 'cpu'}, 'precision'),
    ({'input_height': 16, 'input_width': 64}, 'input_height'),
    ({'input_height': 64}, 'input_width'),
    ({'device': 'cuda:7'}, 'device'),
    ({'qos_overrides./{name}/output/depth.publisher.reliability': 'sometimes'}, 'output/depth.publisher'),
])
def test_configure_failure_names_the_parameter_and_leaves_nothing_behind(ros, checkpoint, capfd, params, named):
    name = unique('xd_rcdepth_cfg')
    node = _node(name, checkpoint, **{k.format(name=name): v for k, v in params.items()})
    try:
        capfd.readouterr()
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        lines = [line for line in capfd.readouterr().err.splitlines() if 'configure failed' in line]
        assert len(lines) == 1 and named in lines[0], lines
        assert node._pubs == {} and node.pairer is None and node._diag_timer is None and node.settings is None
        assert node.count_publishers(f'/{name}/output/depth') == 0
        assert not [i for i in node.get_publishers_info_by_topic('/diagnostics') if i.node_name == name]
    finally:
        node.destroy_node()


@pytest.mark.parametrize('content', [None, b'not a checkpoint at all'])
def test_configure_fails_for_missing_or_foreign_checkpoint(ros, tmp_path, content, frames, capfd):
    path = tmp_path / 'model.pt'
    if content is not None:
        path.write_bytes(content)
    node = DepthNode(unique('xd_rcdepth_badckpt'), parameter_overrides=[Parameter('checkpoint', value=str(path))])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "parameter 'checkpoint'" in capfd.readouterr().err
    finally:
        node.destroy_node()


def test_static_transform_for_rviz(ros, checkpoint, frames):
    T = frames[0].T_camera_radar
    h = Harness(checkpoint, T, name=unique('xd_rcdepth_tf'))
    try:
        h.start()
        h.send(*frame_messages(frames[0], 650.0))
        assert spin_until(h.executor, lambda: h.depth)
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:   # pip ROS 2: no tf2_msgs wheel; the node says so and publishes nothing
            assert 'tf2_msgs' in h.node.tf_static_note and h.node._tf_static is None
            assert h.peer.count_publishers('/tf_static') == 0
            return
        from rclpy.qos import QoSDurabilityPolicy
        got = []
        h.peer.create_subscription(TFMessage, '/tf_static', got.append, QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        assert spin_until(h.executor, lambda: got), 'no /tf_static for a late subscriber'
        tf = got[-1].transforms[0]
        assert (tf.header.frame_id, tf.child_frame_id) == ('CAM_FRONT', 'RADAR_FRONT')
        t = tf.transform.translation
        np.testing.assert_allclose([t.x, t.y, t.z], T[:3, 3], atol=1e-9)
    finally:
        h.close()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_console_script_serves_and_exits_cleanly_on_a_signal(ros, checkpoint, frames, tmp_path, sig):
    name = f'xd_rcdepth_proc_{sig.name.lower()}'
    params_file = ROOT / 'config' / 'xd_rcdepth.param.yaml'
    if sig == signal.SIGTERM:   # the shipped file with integers for floats, as users write them: accepted
        params = yaml.safe_load(params_file.read_text())
        params['/**']['ros__parameters'].update({'max_depth': 80, 'depth_colored': {'min': 0, 'max': 60}})
        params_file = tmp_path / 'int_floats.yaml'
        params_file.write_text(yaml.safe_dump(params))
    cmd = console_command(name, checkpoint, frames[0].T_camera_radar, params_file=params_file)
    log = open(tmp_path / 'node.log', 'w+')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    peer = rclpy.create_node(f'console_script_peer_{sig.name.lower()}')
    ex = SingleThreadedExecutor()
    ex.add_node(peer)
    got = []
    try:
        pubs = [peer.create_publisher(t, f'/{name}/input/{n}', qos_profile_sensor_data)
                for t, n in ((CameraInfo, 'camera_info'), (PointCloud2, 'radar_points'), (Image, 'image'))]
        peer.create_subscription(Image, f'/{name}/output/depth', lambda m: got.append(m), QoSProfile(depth=10))
        assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs), timeout=60), \
            'the node never subscribed: ' + log_tail(log)
        image, info, radar = frame_messages(frames[0], 500.0)
        for _ in range(30):
            for p, m in zip(pubs, (info, radar, image)):
                p.publish(m)
            if spin_until(ex, lambda: got, timeout=1.0):
                break
        assert got, 'no depth from the console script: ' + log_tail(log)
        proc.send_signal(sig)
        t0 = time.monotonic()
        rc = proc.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert rc == 0, f'exit code {rc} after {sig.name}: ' + log_tail(log)
        assert 'Traceback' not in log_tail(log, 100000)
        assert 'Fast DDS profile' in log_tail(log, 100000)
        assert 'QoS subscription' in log_tail(log, 100000)
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.destroy_node()
        ex.shutdown()


def test_console_script_bad_parameter_type_is_one_clear_line(checkpoint, frames, tmp_path):
    cmd = console_command('xd_rcdepth_badarg', checkpoint, frames[0].T_camera_radar, '-p', 'radar_sweeps:=many',
                           params_file=None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert 'Traceback' not in out
    lines = [line for line in out.splitlines() if "parameter 'radar_sweeps'" in line]
    assert len(lines) == 1 and 'integer' in lines[0], out


def _launch_module():
    spec = importlib.util.spec_from_file_location('xd_rcdepth_launch', ROOT / 'launch' / 'xd_rcdepth.launch.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # launch imports are inside its functions: loads without launch installed
    return mod


def _flatten(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_every_launch_argument_reaches_the_node_and_yaml_matches_declared_parameters():
    mod = _launch_module()
    defaults = {name: default for name, (default, _) in mod.ARGUMENTS.items()}
    assert all(desc for _, desc in mod.ARGUMENTS.values()), 'a launch argument has no description'
    for name in mod.ARGUMENTS:
        value = 'true' if name in mod.BOOLEAN_ARGUMENTS else f'/probe/{name}'
        w = mod.node_wiring(dict(defaults, **{name: value}), '/share')
        params_file, overrides = w['parameters']
        if name in mod.PARAMETER_ARGUMENTS:
            assert name in PARAMETER_NAMES or name == 'use_sim_time', f'{name} is no node parameter'
            assert overrides[name] == (True if name in mod.BOOLEAN_ARGUMENTS else value), name
        elif name in mod.REMAP_ARGUMENTS:
            private = mod.REMAP_ARGUMENTS[name]
            assert (private, value) in w['remappings'], name
            assert private in {t.name for t in SUBSCRIPTIONS + PUBLICATIONS}, f'the node has no topic {private}'
        elif name == 'namespace':
            assert w['namespace'] == value
        elif name == 'params_file':
            assert params_file == value
        elif name == 'rviz':
            assert w['rviz'] is True
        else:
            raise AssertionError(f'launch argument {name} reaches neither a parameter nor a remap')
    # Outputs are remappable too: one argument per private output topic of the node, each defaulting to
    # that private name, which adds no remap (nothing changes by default); inputs always remap.
    assert set(mod.REMAP_ARGUMENTS) == set(mod.INPUT_REMAP_ARGUMENTS) | set(mod.OUTPUT_REMAP_ARGUMENTS)
    assert set(mod.INPUT_REMAP_ARGUMENTS.values()) == {t.name for t in SUBSCRIPTIONS if t.name.startswith('~/')}
    assert set(mod.OUTPUT_REMAP_ARGUMENTS.values()) == {t.name for t in PUBLICATIONS if t.name.startswith('~/')}
    default_remaps = dict(mod.node_wiring(defaults, '/share')['remappings'])
    for name, private in mod.OUTPUT_REMAP_ARGUMENTS.items():
        assert defaults[name] == private, f'output argument {name} must default to {private}'
        assert private not in default_remaps, f'{private} is remapped by default'
        w = mod.node_wiring(dict(defaults, **{name: f'/probe/{name}'}), '/share')
        assert (private, f'/probe/{name}') in w['remappings'], name
        assert dict(w['remappings']).keys() - default_remaps.keys() == {private}, name   # only that one
    for name, private in mod.INPUT_REMAP_ARGUMENTS.items():
        assert default_remaps[private] == defaults[name], name
    setup = inspect.getsource(mod._setup)   # and _setup hands every piece of the wiring to the Node
    for key in ('namespace', 'parameters', 'remappings', 'rviz', 'use_sim_time'):
        assert f"wiring['{key}']" in setup, key
    params = yaml.safe_load((ROOT / 'config' / 'xd_rcdepth.param.yaml').read_text())['/**']['ros__parameters']
    flat = _flatten(params)
    assert set(flat) == set(PARAMETER_NAMES), (set(flat) ^ set(PARAMETER_NAMES))


def test_launch_file_runs_when_launch_ros_is_installed():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; runs on a full ROS 2 install')
    from launch import LaunchDescription
    assert isinstance(_launch_module().generate_launch_description(), LaunchDescription)


def test_the_first_frame_is_not_lost_when_its_camera_info_lands_after_it(ros, checkpoint, frames):
    """CameraInfo travels on its own topic: the node can handle an image before the CameraInfo published
    with it. The image waits for its own (matched by stamp) instead of being dropped or paired with an
    older one -- the very first frame included, which has no older one."""
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_first'))
    try:
        h.start()
        node = h.node
        node.IDLE_FLUSH_S = 30.0                               # (a loaded host's pauses are not the point here)
        for i, frame in enumerate(frames[:2]):
            stamp = 700.0 + i / 12
            image, info, radar = frame_messages(frame, stamp)
            info.k[0] += i                                     # each frame's own calibration, told apart
            h.pub_radar.publish(radar)                         # radar at the image stamp: pairing is final
            assert spin_until(h.executor, lambda: node.pairer.stats.radar_in > i)
            h.pub_image.publish(image)
            assert spin_until(h.executor, lambda: node.pairer.stats.images_in > i)
            assert node.pairer.stats.pending_images == 1        # waiting for its CameraInfo
            h.pub_info.publish(info)
            assert spin_until(h.executor, lambda: len(h.depth_info) > i), f'frame {i} lost'
            assert h.depth_info[i].k[0] == info.k[0]             # its own CameraInfo
        assert node.stats.bad.get('no_camera_info', 0) == 0
        assert node.pairer.stats.camera_info_fallback == 0
    finally:
        h.close()


def test_a_latched_camera_info_serves_every_frame_and_is_said_once(ros, checkpoint, frames, capfd):
    h = Harness(checkpoint, frames[0].T_camera_radar, name=unique('xd_rcdepth_latched'))
    try:
        h.start()
        h.node.IDLE_FLUSH_S = 30.0                             # no idle flush: the pairing alone must settle
        info = frame_messages(frames[0], 799.0)[1]             # published once, long before the images
        h.pub_info.publish(info)
        assert spin_until(h.executor, lambda: h.node.pairer.stats.camera_info_in == 1)
        for i in range(6):
            image, _, radar = frame_messages(frames[i % len(frames)], 800.0 + i / 12)
            h.pub_radar.publish(radar)
            assert spin_until(h.executor, lambda: h.node.pairer.stats.radar_in > i)
            h.pub_image.publish(image)
            assert spin_until(h.executor, lambda: h.node.pairer.stats.images_in > i)
            if i < 2:   # the first two wait: a latched CameraInfo looks like a late one at first
                assert h.node.pairer.stats.pending_images == i + 1
            else:       # then nobody waits: each image is paired on arrival and served
                assert h.node.pairer.stats.pending_images == 0
                assert spin_until(h.executor, lambda: len(h.depth) >= i - 1), f'frame {i} not served'
        assert spin_until(h.executor, lambda: len(h.depth_info) >= 4)
        p = h.node.pairer.stats
        assert p.camera_info_fallback == p.paired == 6 and p.dropped_stale == 2
        assert [m.header.stamp.nanosec for m in h.depth_info] == [frame_messages(frames[0], 800.0 + i / 12)[0]
                                                                  .header.stamp.nanosec for i in range(2, 6)]
        err = capfd.readouterr().err
        assert err.count('using the newest CameraInfo') == 1, err[-3000:]
    finally:
        h.close()
