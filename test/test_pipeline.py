"""DepthEstimator: the one inference path, on real (tiny) models and synthetic frames."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xd_rcdepth_core.commands import eval as eval_command
from xd_rcdepth_core.devices import resolve_device
from xd_rcdepth_core.models import build_model
from xd_rcdepth_core.models.checkpoint import save_checkpoint
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import generate_sequence

H, W = 90, 160


@pytest.fixture(scope='module')
def frame():
    return next(generate_sequence(seed=1, n_frames=1, height=H, width=W))


@pytest.fixture(scope='module')
def student():
    torch.manual_seed(0)
    return build_model('xd_rcdepth')


def test_depth_shape_range_and_determinism(frame, student):
    est = DepthEstimator(student, device='cpu')
    a = est.predict(frame)
    b = est.predict(frame)
    assert a.depth.shape == (H, W) and a.depth.dtype == np.float32
    assert np.all(np.isfinite(a.depth)) and np.nanmin(a.depth) > 0 and np.nanmax(a.depth) <= 100
    np.testing.assert_array_equal(a.depth, b.depth)
    assert a.radar_stats.projected > 0 and a.radar_stats.missing_features == ()
    assert set(a.timings_ms) == {'prepare', 'forward', 'finish', 'total'}


def test_radar_changes_the_prediction(frame, student):
    est = DepthEstimator(student, device='cpu')
    without = est.predict(frame.replace(radar=frame.radar[:0]))
    assert without.radar_stats.projected == 0
    assert not np.array_equal(without.depth, est.predict(frame).depth)


def test_max_depth_marks_far_pixels_nan(frame, student):
    full = DepthEstimator(student, device='cpu').predict(frame).depth
    cap = float(np.median(full))
    capped = DepthEstimator(student, device='cpu', max_depth=cap).predict(frame).depth
    assert np.array_equal(np.isnan(capped), full > cap)
    assert np.isnan(capped).any() and (~np.isnan(capped)).any()


def test_input_size_resizes_and_returns_image_size(frame, student):
    res = DepthEstimator(student, device='cpu', input_size=(64, 96)).predict(frame)
    assert res.depth.shape == (H, W)
    assert res.radar_stats.projected > 0   # radar projected with the scaled K, not lost


def test_saliency_maps_are_normalised_and_do_not_change_depth(frame, student):
    est = DepthEstimator(student, device='cpu')
    plain = est.predict(frame)
    res = est.predict(frame, saliency_layers=('image', 'decoder'))
    assert set(res.saliency) == {'image', 'decoder'}
    for sal in res.saliency.values():
        assert sal.shape == (H, W) and 0 <= sal.min() and sal.max() <= 1 + 1e-6 and sal.max() > 0.5
    np.testing.assert_allclose(res.depth, plain.depth, atol=1e-5)
    with pytest.raises(ValueError, match='unknown saliency layer'):
        est.predict(frame, saliency_layers=('nope',))


def test_saliency_works_on_frozen_weights(frame):
    model = build_model('xd_rcdepth')
    for p in model.parameters():
        p.requires_grad_(False)
    res = DepthEstimator(model, device='cpu').predict(frame, saliency_layers=('radar',))
    assert res.saliency['radar'].shape == (H, W)


@pytest.mark.parametrize('kwargs, message', [
    (dict(device='tpu'), 'device'),
    (dict(device='cuda:7'), 'CUDA' if not torch.cuda.is_available() else 'does not exist'),
    (dict(precision='int8'), 'precision int8 runs a quantised ONNX model: use backend auto'),   # torch: no int8
    (dict(precision='int4', backend='auto'), "precision 'int4' is not supported"),
    (dict(backend='tpu'), "backend 'tpu' is not supported: use auto, torch, onnxruntime, tensorrt, openvino"),
    (dict(device='cpu', precision='fp16'), 'fp16 needs a CUDA'),
    (dict(device='cpu', input_size=(8, 8)), 'input_size'),
])
def test_bad_settings_are_clear_errors(student, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthEstimator(student, **kwargs)


def test_default_backend_is_torch_and_auto_is_asked_for(frame, student):
    """DepthEstimator itself stays on torch (a model in memory may be training: an export would be stale);
    its users (node, eval, replay-eval, demo) ask for 'auto'."""
    est = DepthEstimator(student, device='cpu')
    assert est.backend_info['backend'] == 'torch' and 'chosen_by' not in est.backend_info
    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    assert parser.parse_args(['--checkpoint', 'x.pt']).backend == 'auto'


def test_auto_device_and_checkpoint_round_trip(tmp_path, frame, student):
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    path = save_checkpoint(tmp_path / 'm.pt', student)
    a = DepthEstimator(student, device='cpu').predict(frame).depth
    b = DepthEstimator.from_checkpoint(path, device='cpu').predict(frame).depth
    np.testing.assert_array_equal(a, b)


def test_info_model_json_reports_parameters():
    exe = Path(sys.executable).parent / 'xd-rcdepth'
    out = subprocess.run([str(exe), 'info', '--model', 'xd_rcdepth', '--height', '64', '--width', '96', '--json'],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert abs(info['params_total'] - 8.89e6) / 8.89e6 < 0.02
    assert sum(info['params_by_part'].values()) == info['params_total']
    assert info['gmacs'] > 0
    bad = subprocess.run([str(exe), 'info', '--model', 'nosuchnet', '--json'], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and 'nosuchnet' in bad.stderr and 'Traceback' not in bad.stderr


def test_host_inputs_equal_the_tensor_inputs(frame):
    """prepare_host_inputs (what ONNX files on the CPU get: the node's OnnxEstimator, DepthEstimator with
    an exported backend) makes the same numbers as the torch path, and its per-plane normalisation is
    the formula's, bit for bit, also of a non-contiguous image."""
    from xd_rcdepth_core.config import IMAGENET_MEAN, IMAGENET_STD
    from xd_rcdepth_core.inputs import normalised_chw, prepare_host_inputs, prepare_inputs
    image, radar, _ = prepare_host_inputs(frame, (64, 96))
    image_t, radar_t, _ = prepare_inputs(frame, (64, 96), torch.device('cpu'))
    assert image.shape == (1, 3, 64, 96) and image.dtype == np.float32 and image.flags['C_CONTIGUOUS']
    np.testing.assert_allclose(image, image_t.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(radar, radar_t.numpy())
    flipped = frame.image[:, ::-1]            # a strided view, as a bgr8 -> rgb conversion may give
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    formula = ((flipped.astype(np.float32) * (1 / (255 * std)).astype(np.float32))
               + (-mean / std).astype(np.float32)).transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(normalised_chw(flipped), formula)
