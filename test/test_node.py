"""The xd_rcdepth node over real rclpy on loopback DDS, in-process and as a console script."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ros_helpers import Harness, frame_messages, nan_equal, spin_until  # noqa: E402
from xd_rcdepth_core.models import build_model  # noqa: E402
from xd_rcdepth_core.models.checkpoint import save_checkpoint  # noqa: E402
from xd_rcdepth_core.pipeline import DepthEstimator  # noqa: E402
from xd_rcdepth_core.synthetic import generate_sequence  # noqa: E402
from xd_rcdepth_ros import convert  # noqa: E402
from xd_rcdepth_ros.node import DepthNode  # noqa: E402
from xd_rcdepth_ros.params import PARAMETER_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
H, W = 96, 160


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


def test_lifecycle_deactivate_and_reactivate(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name='xd_rcdepth_lc')
    try:
        h.start()
        h.send(*frame_messages(frames[0], 200.0))
        assert spin_until(h.executor, lambda: len(h.depth) == 1)
        assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.node.estimator is None
        h.send(*frame_messages(frames[1], 200.1))
        spin_until(h.executor, lambda: False, timeout=1.0)
        assert len(h.depth) == 1, 'an inactive node published depth'
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        h.wait_matched()
        h.send(*frame_messages(frames[2], 200.2))
        assert spin_until(h.executor, lambda: len(h.depth) == 2), 'no depth after re-activation'
    finally:
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
    from xd_rcdepth_ros.convert import array_to_pointcloud2
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


def test_bad_inputs_are_counted_and_good_frames_still_served(ros, checkpoint, frames):
    h = Harness(checkpoint, frames[0].T_camera_radar, name='xd_rcdepth_bad')
    try:
        h.start()
        stamp = 300.0
        for k in range(len(_bad_inputs(frames[0], stamp))):
            reason, image, info, radar = _bad_inputs(frames[0], stamp)[k]   # stamped now: time moves on
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


@pytest.mark.parametrize('content', [None, b'not a checkpoint at all'])
def test_configure_fails_for_missing_or_foreign_checkpoint(ros, tmp_path, content, frames):
    path = tmp_path / 'model.pt'
    if content is not None:
        path.write_bytes(content)
    node = DepthNode('xd_rcdepth_badckpt', parameter_overrides=[Parameter('checkpoint', value=str(path))])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


def test_invalid_parameter_fails_configure(ros, checkpoint):
    node = DepthNode('xd_rcdepth_badparam', parameter_overrides=[
        Parameter('checkpoint', value=str(checkpoint)), Parameter('input_height', value=64)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE   # input_width missing
    finally:
        node.destroy_node()


def test_console_script_serves_and_stops_on_sigint(ros, checkpoint, frames, tmp_path):
    exe = Path(sys.executable).parent / 'xd_rcdepth_node'
    assert exe.exists(), f'{exe} missing: the package is not installed (make test installs it)'
    T = frames[0].T_camera_radar
    from xd_rcdepth_core.geometry import rotation_to_quaternion
    q = rotation_to_quaternion(T[:3, :3])
    cmd = [str(exe), '--ros-args', '-r', '__node:=xd_rcdepth_proc', '--params-file',
           str(ROOT / 'config' / 'xd_rcdepth.param.yaml'), '-p', f'checkpoint:={checkpoint}',
           '-p', f'T_camera_radar.translation:=[{",".join(map(str, T[:3, 3]))}]',
           '-p', f'T_camera_radar.rotation:=[{",".join(map(str, q))}]']
    log = open(tmp_path / 'node.log', 'w+')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    peer = rclpy.create_node('console_script_peer')
    ex = SingleThreadedExecutor()
    ex.add_node(peer)
    got = []
    try:
        pubs = [peer.create_publisher(t, f'/xd_rcdepth_proc/input/{n}', qos_profile_sensor_data)
                for t, n in ((CameraInfo, 'camera_info'), (PointCloud2, 'radar_points'), (Image, 'image'))]
        peer.create_subscription(Image, '/xd_rcdepth_proc/output/depth', lambda m: got.append(m), QoSProfile(depth=10))
        assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs), timeout=60), \
            'the node never subscribed: ' + _tail(log)
        image, info, radar = frame_messages(frames[0], 500.0)
        for _ in range(30):
            for p, m in zip(pubs, (info, radar, image)):
                p.publish(m)
            if spin_until(ex, lambda: got, timeout=1.0):
                break
        assert got, 'no depth from the console script: ' + _tail(log)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        rc = proc.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert rc in (0, -signal.SIGINT), f'exit code {rc}: ' + _tail(log)
        assert 'Traceback' not in _tail(log)
        assert 'Fast DDS profile' in _tail(log, 100000)
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.destroy_node()
        ex.shutdown()


def _tail(log, n=3000):
    log.flush()
    log.seek(0)
    return log.read()[-n:]


def _launch_arguments():
    tree = ast.parse((ROOT / 'launch' / 'xd_rcdepth.launch.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'ARGUMENTS':
            return ast.literal_eval(node.value)
    raise AssertionError('ARGUMENTS not found in the launch file')


def _flatten(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_launch_arguments_and_yaml_match_declared_parameters():
    wiring = {'namespace', 'params_file', 'image', 'camera_info', 'radar', 'rviz', 'use_sim_time'}
    for name, (default, desc) in _launch_arguments().items():
        assert desc, f'launch argument {name} has no description'
        assert name in PARAMETER_NAMES or name in wiring, f'launch argument {name} maps to no parameter'
    params = yaml.safe_load((ROOT / 'config' / 'xd_rcdepth.param.yaml').read_text())['/**']['ros__parameters']
    flat = _flatten(params)
    assert set(flat) == set(PARAMETER_NAMES), (set(flat) ^ set(PARAMETER_NAMES))


def test_launch_file_runs_when_launch_ros_is_installed():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI; runs on a full ROS 2 install')
    from launch import LaunchDescription
    import importlib.util
    spec = importlib.util.spec_from_file_location('xd_launch', ROOT / 'launch' / 'xd_rcdepth.launch.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert isinstance(mod.generate_launch_description(), LaunchDescription)
