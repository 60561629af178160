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


# ----------------------------------------------------------------------------- backend auto

def test_auto_on_a_cpu_runs_onnxruntime_and_says_why(student, frames, cache_dir, ort_estimator):
    est = DepthEstimator(student, device='cpu', backend='auto', cache_dir=cache_dir, threads=1)
    info = est.backend_info
    assert info['backend'] == 'onnxruntime' and info['chosen_by'] == 'auto'
    assert info['reason'].startswith('auto: CPU, fp32: onnxruntime')
    assert est.backend.path == ort_estimator.backend.path, 'auto exported again instead of using the cache'
    np.testing.assert_array_equal(est.predict(frames[0]).depth, ort_estimator.predict(frames[0]).depth)
    # A backend asked for by name records no choice.
    assert 'reason' not in ort_estimator.backend_info and 'chosen_by' not in ort_estimator.backend_info


def test_auto_without_onnxruntime_falls_back_to_torch(student, monkeypatch):
    from xd_rcdepth_core import pipeline
    monkeypatch.setattr(pipeline, 'onnxruntime_available', lambda: False)
    info = DepthEstimator(student, device='cpu', backend='auto').backend_info
    assert info['backend'] == 'torch' and 'onnxruntime: not installed' in info['reason']
    # bf16 is a torch path whatever is installed; int8 needs onnxruntime.
    monkeypatch.undo()
    assert DepthEstimator(student, device='cpu', backend='auto', precision='bf16').backend_info['backend'] == 'torch'
    monkeypatch.setattr(pipeline, 'onnxruntime_available', lambda: False)
    with pytest.raises(ValueError, match='int8 runs a quantised ONNX model: install onnx and onnxruntime'):
        DepthEstimator(student, device='cpu', backend='auto', precision='int8')


def test_auto_skips_a_path_that_does_not_start(student, cache_dir, monkeypatch):
    """A candidate that fails to start (TensorRT libraries missing, say) is skipped, and the reason says so."""
    from xd_rcdepth_core import pipeline
    from xd_rcdepth_core.backends.auto import AutoChoice, Candidate
    choice = AutoChoice([Candidate('tensorrt', 'first choice'), Candidate('onnxruntime', 'second choice')])
    monkeypatch.setattr(pipeline, 'candidates', lambda *a: choice)
    info = DepthEstimator(student, device='cpu', backend='auto', cache_dir=cache_dir).backend_info
    assert info['backend'] == 'onnxruntime'
    assert info['reason'].startswith('auto: second choice; tensorrt: backend tensorrt runs on a CUDA device')


def test_auto_cuda_order_and_fallbacks(monkeypatch):
    """No GPU here: the CUDA choice is checked on the candidate list, with the providers an
    onnxruntime-gpu build would report."""
    from xd_rcdepth_core.backends import auto
    cuda = torch.device('cuda', 0)
    monkeypatch.setattr(auto, '_ort_providers', lambda: ['TensorrtExecutionProvider', 'CUDAExecutionProvider',
                                                         'CPUExecutionProvider'])
    order = auto.candidates(cuda, 'fp16', True).candidates
    assert [c.backend for c in order] == ['tensorrt', 'torch', 'onnxruntime', 'torch']
    assert order[1].torch_options.cuda_graphs and not order[3].torch_options.cuda_graphs
    assert [c.backend for c in auto.candidates(cuda, 'int8', True).candidates] == ['tensorrt']
    # The pinned CPU wheel on a GPU machine: torch on CUDA (CUDA graphs first), saying why not the others.
    monkeypatch.setattr(auto, '_ort_providers', lambda: ['CPUExecutionProvider'])
    choice = auto.candidates(cuda, 'fp32', True)
    assert [c.backend for c in choice.candidates] == ['torch', 'torch']
    assert any('onnxruntime-gpu' in s for s in choice.skipped)
    assert [c.backend for c in auto.candidates(cuda, 'fp32', False).candidates] == ['torch', 'torch']
    with pytest.raises(ValueError, match='int8 on a GPU needs the TensorRT execution provider'):
        auto.candidates(cuda, 'int8', True)


def test_auto_on_a_cpu_runs_int8_in_openvino_when_installed():
    from xd_rcdepth_core.backends import auto
    cpu = torch.device('cpu')
    assert [c.backend for c in auto.candidates(cpu, 'int8', True, openvino=True).candidates] == ['openvino',
                                                                                                'onnxruntime']
    choice = auto.candidates(cpu, 'int8', True, openvino=False)
    assert [c.backend for c in choice.candidates] == ['onnxruntime'] and 'pip install openvino' in choice.skipped[0]
    # fp32: OpenVINO measured slower than ONNX Runtime, so never auto's choice.
    assert auto.candidates(cpu, 'fp32', True, openvino=True).candidates[0].backend == 'onnxruntime'


@pytest.mark.parametrize('kwargs, message', [
    (dict(backend='openvino', precision='bf16'), 'bf16'),
    (dict(backend='tensorrt'), 'CUDA device'),
    (dict(backend='torch', precision='int8'), 'int8 runs a quantised ONNX model'),
    (dict(backend='auto', precision='fp16'), 'fp16 needs a CUDA'),
])
def test_bad_auto_int8_openvino_settings_are_clear_errors(student, cache_dir, kwargs, message):
    pytest.importorskip('openvino') if kwargs.get('backend') == 'openvino' else None
    with pytest.raises(ValueError, match=message):
        DepthEstimator(student, device='cpu', cache_dir=cache_dir, **kwargs)


# ----------------------------------------------------------------------------- OpenVINO (optional)

def test_openvino_missing_is_one_clear_error(student, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'openvino', None)      # import openvino -> ImportError
    with pytest.raises(ValueError, match=r'backend openvino needs the optional openvino package.*pip install '
                                         'openvino'):
        DepthEstimator(student, device='cpu', backend='openvino')


def test_openvino_matches_torch(student, frames, cache_dir):
    pytest.importorskip('openvino', reason='openvino is installed by make test (requirements.txt)')
    est = DepthEstimator(student, device='cpu', backend='openvino', cache_dir=cache_dir, threads=1)
    info = est.backend_info
    assert info['backend'] == 'openvino' and info['precision'] == 'fp32' and info['dynamic']
    reference = DepthEstimator(student, device='cpu').predict(frames[0]).depth
    got = est.predict(frames[0]).depth
    assert got.shape == (H, W)
    np.testing.assert_allclose(got, reference, atol=1e-3)   # fp32 (precision hint f32), another summation order
    np.testing.assert_array_equal(est.predict(frames[0]).depth, got)   # a second call reuses the compiled size


# ----------------------------------------------------------------------------- the node's parameters

def _settings(**changes):
    from xd_rcdepth_ros.params import PARAMETERS, read_settings
    values = {p.name: p.default for p in PARAMETERS}
    values.update(checkpoint='model.pt', **changes)
    return read_settings(values.__getitem__)


def test_node_backend_defaults_to_auto_and_int8_is_checked():
    from xd_rcdepth_ros.params import BY_NAME, ParameterError, check_compute
    assert BY_NAME['backend'].default == 'auto' and 'int8' in BY_NAME['precision'].choices
    assert set(BY_NAME['backend'].choices) == {'auto', 'torch', 'onnxruntime', 'tensorrt', 'openvino'}
    assert check_compute(_settings(device='cpu', precision='int8')) == 'cpu'   # the CPU without asking torch
    for changes, message in ((dict(precision='int8', backend='torch'), "'precision' = 'int8' needs backend auto"),
                             (dict(precision='bf16', backend='openvino'), "'precision' = 'bf16' needs backend torch"),
                             (dict(backend='tensorrt2'), "'backend'")):
        with pytest.raises(ParameterError, match=message):
            _settings(**changes)
    with pytest.raises(ParameterError, match="'precision' = 'fp16' with backend 'auto' on cpu"):
        check_compute(_settings(device='cpu', precision='fp16'))


def test_node_default_backend_is_auto(ros, student, cache_dir, tmp_path, monkeypatch):
    from ros_helpers import Harness
    monkeypatch.setenv('XD_RCDEPTH_CACHE', str(cache_dir))    # the export made above is reused
    checkpoint = save_checkpoint(tmp_path / 'student.pt', student)
    h = Harness(checkpoint, np.eye(4), 'xd_rcdepth_auto', torch_threads=1)
    try:
        h.start()
        info = h.node.estimator.backend_info
        assert info['backend'] == 'onnxruntime' and info['chosen_by'] == 'auto' and 'CPU, fp32' in info['reason']
    finally:
        h.close()
