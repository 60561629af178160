"""Inference backends: ONNX Runtime against PyTorch through DepthEstimator, the on-the-fly export
cache, saliency beside ONNX Runtime, torch fast-path options, and the node with backend onnxruntime
(real rclpy over loopback DDS, in-process with ros_helpers.Harness)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xd_rcdepth_core.backends import TorchOptions
from xd_rcdepth_core.export import ExportSpec, export_model
from xd_rcdepth_core.models import build_model
from xd_rcdepth_core.models.checkpoint import save_checkpoint
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import generate_sequence
from xd_rcdepth_ros import convert

pytest.importorskip('onnxruntime')
H, W = 90, 160          # not multiples of 32: the ONNX Runtime backend pads like the model does


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


@pytest.fixture(scope='module')
def student():
    torch.manual_seed(0)
    return build_model('xd_rcdepth')


@pytest.fixture(scope='module')
def frames():
    return list(generate_sequence(seed=5, n_frames=3, height=H, width=W))


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('onnx_cache')


@pytest.fixture(scope='module')
def ort_estimator(student, cache_dir):
    return DepthEstimator(student, device='cpu', backend='onnxruntime', cache_dir=cache_dir, threads=1)


def test_onnxruntime_matches_torch_and_caches_the_export(student, frames, cache_dir, ort_estimator):
    torch_est = DepthEstimator(student, device='cpu')
    for frame in frames[:2]:
        a, b = torch_est.predict(frame).depth, ort_estimator.predict(frame).depth
        assert a.shape == b.shape == (H, W)
        np.testing.assert_allclose(b, a, atol=1e-4)
    files = sorted(cache_dir.glob('*.onnx'))
    assert len(files) == 1 and files[0].name.startswith('xd_rcdepth-')
    info = ort_estimator.backend_info
    assert info['backend'] == 'onnxruntime' and info['providers'] == ['CPUExecutionProvider'] and info['dynamic']
    mtime = files[0].stat().st_mtime_ns
    DepthEstimator(student, device='cpu', backend='onnxruntime', cache_dir=cache_dir)   # same weights: reused
    assert sorted(cache_dir.glob('*.onnx')) == files and files[0].stat().st_mtime_ns == mtime
    assert not list(cache_dir.glob('.*')), 'temporary files left in the cache'


def test_changed_weights_get_a_new_export(cache_dir, tmp_path):
    torch.manual_seed(1)
    other = build_model('xd_rcdepth')
    est = DepthEstimator(other, device='cpu', backend='onnxruntime', cache_dir=tmp_path)
    assert len(list(tmp_path.glob('*.onnx'))) == 1
    assert est.backend.path.name not in {p.name for p in cache_dir.glob('*.onnx')}


def test_saliency_beside_onnxruntime_leaves_depth_unchanged(frames, ort_estimator):
    plain = ort_estimator.predict(frames[0])
    res = ort_estimator.predict(frames[0], saliency_layers=('decoder', 'radar'))
    np.testing.assert_array_equal(res.depth, plain.depth)
    assert set(res.saliency) == {'decoder', 'radar'}
    for sal in res.saliency.values():
        assert sal.shape == (H, W) and 0 <= sal.min() and sal.max() <= 1 + 1e-6
    assert 'saliency' in res.timings_ms and 'saliency' not in plain.timings_ms


def test_given_onnx_file_is_checked_against_the_settings(student, tmp_path):
    static = export_model(student, tmp_path / 'static.onnx', ExportSpec('onnx', 64, 96))
    est = DepthEstimator(student, device='cpu', backend='onnxruntime', onnx_path=static, input_size=(64, 96))
    assert est.backend_info['dynamic'] is False
    with pytest.raises(ValueError, match='static 64x96 export'):
        DepthEstimator(student, device='cpu', backend='onnxruntime', onnx_path=static)
    torch.manual_seed(0)
    baseline = build_model('lircdepth')
    with pytest.raises(ValueError, match='holds xd_rcdepth'):
        DepthEstimator(baseline, device='cpu', backend='onnxruntime', onnx_path=static)


def test_onnx_file_of_other_weights_is_refused(student, tmp_path):
    """Same model, same size, other weights: depth would come from the file and saliency from the torch
    model, so the file's weights fingerprint must be the checkpoint's."""
    import onnx
    exported = export_model(student, tmp_path / 'student.onnx', ExportSpec('onnx', 64, 96, dynamic=True))
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / 'other.pt', build_model('xd_rcdepth'))
    with pytest.raises(ValueError, match='exported from other weights') as err:
        DepthEstimator.from_checkpoint(other, device='cpu', backend='onnxruntime', onnx_path=exported)
    assert str(exported) in str(err.value) and str(other) in str(err.value)
    # Without a fingerprint (an older export) nothing can be checked: refused too, saying so.
    proto = onnx.load(str(exported))
    kept = [p for p in proto.metadata_props if p.key != 'weights_sha256']
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    old = tmp_path / 'old.onnx'
    onnx.save(proto, str(old))
    with pytest.raises(ValueError, match='records no weights fingerprint'):
        DepthEstimator(student, device='cpu', backend='onnxruntime', onnx_path=old)
    est = DepthEstimator(student, device='cpu', backend='onnxruntime', onnx_path=exported)   # its own weights
    assert est.backend_info['onnx'] == str(exported)


@pytest.mark.parametrize('kwargs, message', [
    (dict(backend='tensorrt'), 'backend'),
    (dict(backend='onnxruntime', precision='bf16'), 'bf16'),
    (dict(torch_options=TorchOptions(cuda_graphs=True)), 'CUDA'),
    (dict(threads=0), 'threads'),
])
def test_bad_backend_settings_are_clear_errors(student, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthEstimator(student, device='cpu', **kwargs)


def test_torch_layouts_and_bf16_agree(student, frames):
    fast = DepthEstimator(student, device='cpu').predict(frames[0]).depth            # channels_last (default)
    plain = DepthEstimator(student, device='cpu', torch_options=TorchOptions(channels_last=False))
    np.testing.assert_allclose(plain.predict(frames[0]).depth, fast, atol=1e-4)
    assert plain.backend_info['channels_last'] is False
    half = DepthEstimator(student, device='cpu', precision='bf16').predict(frames[0]).depth
    assert np.isfinite(half).all()
    # bf16 keeps 8 mantissa bits: within a few percent of the fp32 depth.
    assert np.median(np.abs(half - fast) / fast) < 0.05
    assert next(student.parameters()).is_contiguous(), 'the fast path must leave the model layout alone'


# ----------------------------------------------------------------------------- the node

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_node_runs_with_backend_onnxruntime(ros, student, frames, cache_dir, ort_estimator, tmp_path, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_helpers import Harness, frame_messages, nan_equal, spin_until
    monkeypatch.setenv('XD_RCDEPTH_CACHE', str(cache_dir))    # the export made above is reused
    checkpoint = save_checkpoint(tmp_path / 'student.pt', student)
    T = frames[0].T_camera_radar
    h = Harness(checkpoint, T, 'xd_rcdepth_ort', backend='onnxruntime', torch_threads=1)
    try:
        h.start()                                               # configure, activate, discovery
        assert h.node.estimator.backend_info['backend'] == 'onnxruntime'
        assert len(list(cache_dir.glob('*.onnx'))) == 1, 'the node exported again instead of using the cache'
        h.send(*frame_messages(frames[1], 600.0))
        assert spin_until(h.executor, lambda: h.depth), 'no depth from the node with backend onnxruntime'
        expected = ort_estimator.predict(frames[1].replace(T_camera_radar=T)).depth
        assert nan_equal(convert.image_msg_to_array(h.depth[0]), expected), 'node depth differs from DepthEstimator'
        h.subscribe_saliency()                                  # waits until the node sees it
        for k in range(20):     # saliency is rate-limited: send until one overlay arrives
            h.send(*frame_messages(frames[2], 601.0 + k / 10))
            if spin_until(h.executor, lambda: h.saliency, timeout=1.0):
                break
        assert h.saliency, 'no saliency overlay with backend onnxruntime'
        assert h.saliency[0].encoding == 'bgr8' and (h.saliency[0].height, h.saliency[0].width) == (H, W)
        assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.node.estimator is None
    finally:
        h.close()
