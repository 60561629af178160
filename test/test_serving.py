"""Serving without torch: serving plans (made in a helper process, cached), OnnxEstimator, and the node
process that imports torch only when saliency is first subscribed (issue: the node's memory)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from xd_rcdepth_core import serving
from xd_rcdepth_core.models import build_model
from xd_rcdepth_core.models.checkpoint import save_checkpoint
from xd_rcdepth_core.onnx_estimator import OnnxEstimator
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.serving import PlanError, ServingPlan, serving_plan
from xd_rcdepth_core.synthetic import generate_sequence

ROOT = Path(__file__).resolve().parents[1]
H, W = 96, 160


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import torch
    torch.manual_seed(3)
    return save_checkpoint(tmp_path_factory.mktemp('serving') / 'student.pt', build_model('xd_rcdepth'))


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('serving_cache')


@pytest.fixture(scope='module')
def plan(checkpoint, cache_dir):
    return serving_plan(checkpoint, 'auto', 'fp32', cache_dir=cache_dir)


@pytest.fixture(scope='module')
def frames():
    return list(generate_sequence(seed=11, n_frames=3, height=H, width=W))


def test_plan_names_the_export_auto_chose_and_the_checkpoint(plan, checkpoint, cache_dir):
    assert plan.asked == 'auto' and plan.backend == 'onnxruntime' and plan.precision == 'fp32'
    assert Path(plan.onnx).is_file() and Path(plan.onnx).parent == cache_dir
    assert plan.checkpoint == str(Path(checkpoint).resolve()) and plan.model_name == 'xd_rcdepth'
    assert plan.checkpoint_sha256 == serving.file_sha256(checkpoint)
    assert plan.reason.startswith('auto: CPU, fp32: onnxruntime')
    saved = list((cache_dir / 'serving').glob('*.json'))
    assert len(saved) == 1 and ServingPlan.from_json(saved[0].read_text()) == plan


def test_onnx_estimator_matches_depth_estimator_on_the_same_file(plan, checkpoint, frames):
    ours = OnnxEstimator(plan, threads=1)
    ref = DepthEstimator.from_checkpoint(checkpoint, device='cpu', backend='onnxruntime', onnx_path=plan.onnx,
                                         threads=1)
    for frame in frames:
        a, b = ours.predict(frame), ref.predict(frame)
        assert a.depth.shape == (H, W) and np.array_equal(np.isnan(a.depth), np.isnan(b.depth))
        # Same file, numpy vs torch normalisation: float32 rounding only (a pipeline bug is metres).
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, equal_nan=True)
        assert a.radar_stats.projected == b.radar_stats.projected
    assert set(ours.predict(frames[0]).timings_ms) == {'prepare', 'forward', 'finish', 'total'}
    info = ours.backend_info
    assert info['backend'] == 'onnxruntime' and info['chosen_by'] == 'auto' and info['torch'] == 'not loaded'


def test_saliency_loads_the_torch_model_once_and_says_so(plan, checkpoint, frames):
    heard = []
    ours = OnnxEstimator(plan, threads=1, on_torch_load=heard.append)
    plain = ours.predict(frames[0])
    assert plain.saliency is None and not ours.torch_loaded and heard == []
    result = ours.predict(frames[0], saliency_layers=('image', 'decoder'))
    assert ours.torch_loaded and len(heard) == 1 and 'loaded torch' in heard[0]
    ref = DepthEstimator.from_checkpoint(checkpoint, device='cpu', backend='torch').predict(
        frames[0], saliency_layers=('image', 'decoder'))
    for layer in ('image', 'decoder'):
        assert result.saliency[layer].shape == (H, W)
        np.testing.assert_allclose(result.saliency[layer], ref.saliency[layer], atol=1e-3)
    np.testing.assert_array_equal(result.depth, plain.depth)   # asking for saliency never changes depth
    ours.predict(frames[1], saliency_layers=('image',))
    assert len(heard) == 1 and ours.backend_info['torch'] == 'loaded (saliency)'
    with pytest.raises(ValueError, match='unknown saliency layer'):
        ours.predict(frames[1], saliency_layers=('nope',))


def test_a_cached_plan_is_reused_and_any_change_makes_a_new_one(plan, checkpoint, cache_dir, tmp_path, monkeypatch):
    made = []
    real = serving.make_plan
    monkeypatch.setattr(serving, 'make_plan', lambda *a: made.append(a) or real(*a))
    assert serving_plan(checkpoint, 'auto', 'fp32', cache_dir=cache_dir) == plan and made == []
    # Another setting is another plan; the same file under another name is the same weights.
    other = serving_plan(checkpoint, 'onnxruntime', 'fp32', cache_dir=cache_dir)
    assert len(made) == 1 and other.asked == 'onnxruntime' and other.reason is None and other.onnx == plan.onnx
    # A deleted export is made again rather than served from a stale plan.
    Path(plan.onnx).unlink()
    again = serving_plan(checkpoint, 'auto', 'fp32', cache_dir=cache_dir)
    assert len(made) == 2 and Path(again.onnx).is_file()
    # Other weights in the same file: another sha256, another plan and export.
    import torch
    torch.manual_seed(4)
    changed = save_checkpoint(tmp_path / 'student.pt', build_model('xd_rcdepth'))
    new = serving_plan(changed, 'auto', 'fp32', cache_dir=cache_dir)
    assert len(made) == 3 and new.checkpoint_sha256 != plan.checkpoint_sha256 and new.onnx != plan.onnx


def test_helper_process_makes_the_plan_and_names_a_foreign_checkpoint(checkpoint, tmp_path):
    plan = serving._plan_in_helper(Path(checkpoint).resolve(), 'auto', 'fp32', tmp_path / 'cache')
    assert plan.backend == 'onnxruntime' and Path(plan.onnx).is_file()
    foreign = tmp_path / 'foreign.pt'
    foreign.write_bytes(b'not a checkpoint at all')
    with pytest.raises(PlanError) as err:
        serving._plan_in_helper(foreign, 'auto', 'fp32', tmp_path / 'cache')
    assert err.value.parameter == 'checkpoint' and 'foreign.pt' in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_missing_checkpoint_and_settings_a_plan_cannot_serve(tmp_path):
    with pytest.raises(PlanError, match='file not found') as err:
        serving_plan(tmp_path / 'nope.pt')
    assert err.value.parameter == 'checkpoint'
    assert serving.can_serve_without_torch('cpu', 'auto', 'int8')
    for device, backend, precision in (('cuda:0', 'auto', 'fp32'), ('cpu', 'torch', 'fp32'),
                                       ('cpu', 'auto', 'bf16'), ('cpu', 'tensorrt', 'fp32')):
        assert not serving.can_serve_without_torch(device, backend, precision)


def test_the_node_and_onnx_serving_modules_import_without_torch():
    code = textwrap.dedent('''
        import sys
        import xd_rcdepth_ros.node, xd_rcdepth_ros.cli, xd_rcdepth_core.onnx_estimator, xd_rcdepth_core.serving
        from xd_rcdepth_core.devices import host_device
        from xd_rcdepth_core.backends.settings import check_settings
        check_settings(host_device('cpu'), 'int8', 'auto')
        print('torch' in sys.modules)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False', 'importing the node or the ONNX serving path imported torch'


# ----------------------------------------------------------------------------- the node as a process

def _diagnostic_values(msgs, name):
    for msg in reversed(msgs):
        for status in msg.status:
            if status.name.startswith(f'{name}:') and any(kv.key == 'torch_loaded' for kv in status.values):
                return {kv.key: kv.value for kv in status.values}
    return None


def test_node_process_serves_depth_without_torch_until_saliency_is_subscribed(checkpoint, frames, tmp_path):
    rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from ros_helpers import console_command, frame_messages, log_tail, spin_until, stop_process
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    name = 'xd_rcdepth_torch_free'
    env = dict(os.environ, PYTHONUNBUFFERED='1', XD_RCDEPTH_CACHE=str(tmp_path / 'cache'))   # no plan yet
    cmd = console_command(name, checkpoint, frames[0].T_camera_radar, '-p', 'diagnostics_period:=0.5',
                           '-p', 'torch_threads:=1', '-p', 'input_height:=32', '-p', 'input_width:=64')
    rclpy.init()
    peer = rclpy.create_node('torch_free_peer')
    ex = SingleThreadedExecutor()
    ex.add_node(peer)
    depth, overlays, diagnostics = [], [], []
    pubs = [peer.create_publisher(t, f'/{name}/input/{n}', qos_profile_sensor_data)
            for t, n in ((CameraInfo, 'camera_info'), (PointCloud2, 'radar_points'), (Image, 'image'))]
    peer.create_subscription(Image, f'/{name}/output/depth', depth.append, QoSProfile(depth=10))
    peer.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    stamp = [600.0]

    def send_until(got, tries=40):
        for _ in range(tries):
            image, info, radar = frame_messages(frames[0], stamp[0])
            stamp[0] += 0.1
            for p, m in zip(pubs, (info, radar, image)):
                p.publish(m)
            if spin_until(ex, lambda: got, timeout=1.0):
                return True
        return False

    def run_node(log_name):
        log = open(tmp_path / log_name, 'w+')
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log

    proc, log = run_node('first.log')
    try:
        assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs), timeout=120), \
            'the node never subscribed: ' + log_tail(log)
        assert send_until(depth), 'no depth from the node process: ' + log_tail(log)
        text = log_tail(log, 100000)
        assert 'making the serving plan' in text and 'torch is not loaded' in text, text
        # a fixed network input size: one blank inference before subscribing, and it left torch unloaded
        assert 'warm-up: one inference at 32x64' in text, text
        if platform.libc_ver()[0] == 'glibc':    # heap.py: image-sized buffers reused
            assert 'heap: large message buffers reused' in text, text
        assert spin_until(ex, lambda: _diagnostic_values(diagnostics, name), timeout=10)
        values = _diagnostic_values(diagnostics, name)
        assert values['torch_loaded'] == 'no' and values['backend'] == 'onnxruntime', values
        # The first saliency subscriber loads torch (and the log says so); depth keeps coming.
        peer.create_subscription(Image, f'/{name}/debug/saliency_overlay', overlays.append, QoSProfile(depth=10))
        assert send_until(overlays), 'no saliency overlay from the torch-free node: ' + log_tail(log)
        assert 'loaded torch' in log_tail(log, 100000)
        diagnostics.clear()
        assert spin_until(ex, lambda: (_diagnostic_values(diagnostics, name) or {}).get('torch_loaded') == 'yes',
                          timeout=10), 'diagnostics never said torch_loaded yes'
        assert stop_process(proc) == 0, log_tail(log)
        # A restart reads the cached plan: no helper process this time.
        proc, log = run_node('second.log')
        depth.clear()
        assert spin_until(ex, lambda: all(p.get_subscription_count() for p in pubs), timeout=120)
        time.sleep(0.5)   # the restarted subscriptions match: avoid counting on the old ones
        assert send_until(depth), 'no depth after a restart: ' + log_tail(log)
        text = log_tail(log, 100000)
        assert 'making the serving plan' not in text and 'torch is not loaded' in text, text
    finally:
        stop_process(proc)
        peer.destroy_node()
        ex.shutdown()
        rclpy.try_shutdown()
