"""int8: static quantisation calibrated on synthetic frames, its accuracy gate (MAE at 80 m vs fp32 by the
paper's protocol), `xd-rcdepth export --precision int8`, and DepthEstimator precision int8 (cached like
the fp32 on-the-fly export). Everything runs the shipped checkpoint at 64x96 with a few frames: the
wiring, not the accuracy, which benchmarks/latency.py measures at 448x800 (benchmarks/README.md)."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from xd_rcdepth_core import export
from xd_rcdepth_core.backends.int8 import Int8GateError, Int8Settings, describe_gate, synthetic_frames
from xd_rcdepth_core.backends.openvino_backend import OpenVinoBackend, cpu_has_bf16, openvino_available
from xd_rcdepth_core.backends.ort_backend import OnnxRuntimeBackend
from xd_rcdepth_core.backends.verify import synthetic_inputs
from xd_rcdepth_core.export import ExportSpec, export_int8
from xd_rcdepth_core.exported import read_metadata
from xd_rcdepth_core.models.checkpoint import load_model
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import generate_sequence

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'xd_rcdepth_synthetic.pt'
H, W = 64, 96
# Small and quick; the gate is loose here (a 64x96 frame has a few dozen lidar points): the tests check
# that it is computed, recorded and enforced, not that 64x96 int8 is accurate.
SMALL = Int8Settings(height=H, width=W, calibration_frames=2, calibration_scenes=1, test_frames=2, test_scenes=1,
                     max_mae_increase=0.5)
SPEC = ExportSpec('onnx', H, W, dynamic=True)

pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


@pytest.fixture(scope='module')
def shipped():
    model, ckpt = load_model(SHIPPED, map_location='cpu')
    return model


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('int8_cache')


@pytest.fixture(scope='module')
def fp32_file(shipped, cache_dir):
    """The fp32 export every int8 file here starts from (made once: the exports dominate the time)."""
    return export.cached_export(shipped, SPEC, cache_dir)


@pytest.fixture
def reuse_fp32(fp32_file, monkeypatch):
    """The command's fp32 export step copies the module's export (same weights, same settings)."""
    import shutil

    def copy(model, path, spec, *args, **kwargs):
        assert spec == SPEC
        shutil.copyfile(fp32_file, path)
        return Path(path), None
    monkeypatch.setattr(export, 'export_verified', copy)


def test_calibration_and_gate_frames_are_synthetic_held_apart_and_cropped():
    calib = list(synthetic_frames(1501, 2, 3, 70, 100))
    test = list(synthetic_frames(1502, 1, 1, 70, 100))
    assert [f.name for f in calib] == ['int8-1501-00_frame-0000', 'int8-1501-00_frame-0018', 'int8-1501-01_frame-0000']
    assert all((f.height, f.width) == (64, 96) for f in calib + test)          # cropped as the protocol does
    assert all(f.depth_sparse is not None and (f.depth_sparse > 0).any() and len(f.radar) for f in calib + test)
    assert not np.array_equal(calib[0].image, test[0].image)


def test_int8_export_is_quantised_gated_and_recorded(shipped, fp32_file, tmp_path):
    path, gate = export_int8(shipped, tmp_path / 'student_int8.onnx', SPEC, SMALL, fp32_path=fp32_file)
    meta = read_metadata(path)
    assert meta['precision'] == 'int8' and meta['dynamic'] and meta['weights_sha256']
    assert meta['accuracy_gate'] == gate and gate['frames'] == 2 and gate['range_m'] == 80.0
    assert gate['mae_increase'] == pytest.approx(gate['mae_int8_m'] / gate['mae_fp32_m'] - 1)
    assert meta['int8']['calibration_frames_used'] == 2 and meta['int8']['quantised_convolutions'] > 50
    assert meta['int8']['fp32_convolutions'] > 20 and meta['int8']['keep_fp32'] == list(SMALL.keep_fp32)
    assert all(n.startswith(('/model/radar_encoder/', '/model/fusion.', '/model/decoder/up'))
               for n in meta['int8']['fp32_nodes_kept'])
    assert meta['int8']['method'] == 'minmax' and meta['int8']['per_channel'] is True
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear', 'Conv'} <= ops and set(meta['ops']) == ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    assert meta['tensorrt_unsupported'] == []
    # The gate also measured the float parts in bf16 where OpenVINO runs them so (the bound is the same).
    bf16 = gate['openvino_bf16']
    if not openvino_available():
        assert bf16 == {'measured': False, 'why': 'openvino not installed where the file was made'}
    elif not cpu_has_bf16():
        assert bf16 == {'measured': False, 'why': 'no native bf16 on the CPU the file was made on'}
    else:
        assert bf16['measured'] and np.isfinite(bf16['mae_m'])
        assert bf16['mae_increase'] == pytest.approx(bf16['mae_m'] / gate['mae_fp32_m'] - 1)
        assert bf16['passed'] == (bf16['mae_increase'] <= SMALL.max_mae_increase)
        assert 'float parts in bf16 (OpenVINO)' in describe_gate(gate)
    # Left in float: the groups asked for (here the depth head) keep float weights.
    kept, kept_gate = export_int8(shipped, tmp_path / 'kept.onnx', SPEC, replace(SMALL, keep_fp32=('depth_head',)),
                                  fp32_path=fp32_file)
    assert read_metadata(kept)['int8']['fp32_nodes_kept'] == ['/model/decoder/head/Conv']
    assert read_metadata(kept)['int8']['fp32_convolutions'] == 1
    if openvino_available() and cpu_has_bf16():   # quantised FiLM: OpenVINO cannot compile it; the file stands
        assert not kept_gate['openvino_bf16']['measured'] and 'cannot compile' in kept_gate['openvino_bf16']['why']
    # It runs at another size too (dynamic), giving finite depth in range.
    image, radar = synthetic_inputs(shipped, 96, 160)
    depth = OnnxRuntimeBackend(path, torch.device('cpu'))(image, radar)
    assert depth.shape == (1, 1, 96, 160) and torch.isfinite(depth).all() and 0 < depth.min() <= depth.max() <= 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ['kept.onnx', 'student_int8.onnx'], 'temporary files left'


def test_a_failed_gate_says_by_how_much_and_leaves_no_file(shipped, fp32_file, tmp_path):
    strict = replace(SMALL, max_mae_increase=-0.5)      # demands int8 be half as wrong as fp32: always fails
    expected = (r"int8 export failed its accuracy gate: MAE at 80 m .* m against fp32's .* m on 2 held-out "
                r'synthetic frames \(64x96\), [+-]\d+\.\d+ % where at most -50\.00 % is allowed '
                r'\(over by \d+\.\d+ points\); no file written')
    with pytest.raises(Int8GateError, match=expected):
        export_int8(shipped, tmp_path / 'bad.onnx', SPEC, strict, fp32_path=fp32_file)
    assert list(tmp_path.iterdir()) == []
    assert fp32_file.is_file(), 'the fp32 file given is not the export\'s to remove'
    # Without a given fp32 file the export makes (and removes) its own.
    with pytest.raises(Int8GateError):
        export_int8(shipped, tmp_path / 'bad.onnx', SPEC, replace(strict, calibration_frames=1, test_frames=1))
    assert list(tmp_path.iterdir()) == []


def test_estimator_int8_is_cached_by_weights_and_settings(shipped, cache_dir, fp32_file):
    est = DepthEstimator(shipped, device='cpu', precision='int8', backend='onnxruntime', cache_dir=cache_dir,
                         int8=SMALL, threads=1)
    info = est.backend_info
    assert info['backend'] == 'onnxruntime' and info['precision'] == 'int8'
    files = sorted(cache_dir.glob('*int8*.onnx'))
    assert len(files) == 1 and Path(info['onnx']) == files[0]
    frame = next(generate_sequence(seed=3, n_frames=1, height=90, width=160))
    depth = est.predict(frame).depth
    fp32 = DepthEstimator(shipped, device='cpu').predict(frame).depth
    assert depth.shape == fp32.shape and np.isfinite(depth).all()
    assert np.median(np.abs(depth - fp32) / fp32) < 0.3, 'int8 depth far from fp32'
    res = est.predict(frame, saliency_layers=('decoder',))        # saliency: the fp32 torch model, as always
    np.testing.assert_array_equal(res.depth, depth)
    mtime = files[0].stat().st_mtime_ns
    auto = DepthEstimator(shipped, device='cpu', precision='int8', backend='auto', cache_dir=cache_dir, int8=SMALL)
    fastest = 'openvino' if openvino_available() else 'onnxruntime'     # int8 runs faster in OpenVINO
    assert auto.backend_info['backend'] == fastest and 'int8 asked for' in auto.backend_info['reason']
    assert sorted(cache_dir.glob('*int8*.onnx')) == files and files[0].stat().st_mtime_ns == mtime, 'not reused'
    DepthEstimator(shipped, device='cpu', precision='int8', backend='onnxruntime', cache_dir=cache_dir,
                   int8=replace(SMALL, calibration_frames=3))          # other settings: another file
    assert len(list(cache_dir.glob('*int8*.onnx'))) == 2
    assert not list(cache_dir.glob('.*')), 'temporary files left in the cache'


def test_estimator_refuses_an_int8_file_for_fp32_and_vice_versa(shipped, cache_dir):
    int8_file = sorted(cache_dir.glob('*int8*.onnx'))[0]
    with pytest.raises(ValueError, match='is a int8 export but precision is fp32'):
        DepthEstimator(shipped, device='cpu', backend='onnxruntime', onnx_path=int8_file)
    est = DepthEstimator(shipped, device='cpu', precision='int8', backend='onnxruntime', onnx_path=int8_file)
    assert est.backend_info['onnx'] == str(int8_file)


def test_openvino_runs_the_int8_file(shipped, cache_dir):
    pytest.importorskip('openvino', reason='openvino is installed by make test (requirements.txt)')
    int8_file = sorted(cache_dir.glob('*int8*.onnx'))[0]
    est = DepthEstimator(shipped, device='cpu', precision='int8', backend='openvino', onnx_path=int8_file, threads=1)
    ort = DepthEstimator(shipped, device='cpu', precision='int8', backend='onnxruntime', onnx_path=int8_file)
    frame = next(generate_sequence(seed=4, n_frames=1, height=H, width=W))
    a, b = est.predict(frame).depth, ort.predict(frame).depth
    assert est.backend_info['backend'] == 'openvino' and np.isfinite(a).all()
    assert np.median(np.abs(a - b) / b) < 0.05       # two int8 runtimes: the same quantised model
    # Its float parts: bf16 where the CPU has it natively and the gate passed it, else f32.
    check = read_metadata(int8_file)['accuracy_gate']['openvino_bf16']
    expected = 'bf16' if cpu_has_bf16() and check['measured'] and check['passed'] else 'f32'
    backend = est.backend
    assert backend.float_precision == est.backend_info['float_precision'] == expected
    assert backend.config['INFERENCE_PRECISION_HINT'] == expected
    # A second backend of the same file alive beside it, as a benchmark holds them: the same numbers,
    # within a step of the int8 output (~2 % here).
    f32 = OpenVinoBackend(int8_file, 'cpu', 1, float_precision='f32')
    image, radar = synthetic_inputs(shipped, H, W)
    x, y = backend.infer(image.numpy(), radar.numpy()), f32.infer(image.numpy(), radar.numpy())
    assert np.median(np.abs(x - y) / y) < 0.05, 'bf16 float parts far from f32'
    assert f32.core is backend.core, 'one openvino.Core per process'


@pytest.mark.parametrize('check, cpu_bf16, expected, why', [
    ({'measured': True, 'passed': True, 'mae_increase': 0.001, 'mae_m': 1.0}, True, 'bf16', r'run bf16 .*\+0\.10 %'),
    ({'measured': True, 'passed': False, 'mae_increase': 0.2, 'mae_m': 1.0}, True, 'f32',
     r'\+20\.00 % .*over the gate'),
    ({'measured': False, 'why': 'openvino not installed where the file was made'}, True, 'f32',
     'did not measure them in bf16 \\(openvino not installed'),
    (None, True, 'f32', 'made before that check existed'),
    ({'measured': True, 'passed': True, 'mae_increase': 0.001, 'mae_m': 1.0}, False, 'f32', 'no native bf16'),
])
def test_openvino_float_parts_follow_the_gate_and_the_cpu(cache_dir, fp32_file, tmp_path, monkeypatch, check,
                                                          cpu_bf16, expected, why):
    pytest.importorskip('openvino', reason='openvino is installed by make test (requirements.txt)')
    from xd_rcdepth_core.backends import openvino_backend
    int8_file = sorted(cache_dir.glob('*int8*.onnx'))[0]
    meta = read_metadata(int8_file)
    if check is None:
        meta['accuracy_gate'].pop('openvino_bf16', None)
    else:
        meta['accuracy_gate']['openvino_bf16'] = check
    copy = tmp_path / 'copy.onnx'
    copy.write_bytes(int8_file.read_bytes())
    export._set_onnx_metadata(copy, meta)
    # Whether the CPU has bf16 is the host's; the decision on each answer is what is tested here.
    monkeypatch.setattr(openvino_backend, 'cpu_has_bf16', lambda: cpu_bf16)
    backend = OpenVinoBackend(copy, 'cpu', 1)
    assert backend.float_precision == expected and backend.config['INFERENCE_PRECISION_HINT'] == expected
    assert re.search(why, backend.info['float_precision_reason'])
    assert OpenVinoBackend(fp32_file, 'cpu', 1).float_precision == 'f32', 'precision fp32 runs f32 arithmetic'


# ----------------------------------------------------------------------------- the command

def test_export_int8_command(export_cli, reuse_fp32, tmp_path):
    out = tmp_path / 'int8.onnx'
    rc, text, err = export_cli('--checkpoint', SHIPPED, '--int8', '--height', H, '--width', W, '--dynamic',
                               '--calibration-frames', 2, '--test-frames', 2, '--keep-fp32', 'depth_head',
                               '--max-mae-increase', 0.5, '--out', out)
    assert rc == 0, err
    assert 'int8 accuracy gate passed: MAE at 80 m' in text and 'on 2 held-out synthetic frames at 64x96' in text
    assert '1 kept in fp32 (depth_head)' in text and 'int8, input any HxW' in text
    meta = read_metadata(out)
    assert meta['precision'] == 'int8' and meta['checkpoint'] == SHIPPED.name
    assert meta['int8']['keep_fp32'] == ['depth_head'] and meta['int8']['max_mae_increase'] == 0.5


def test_export_int8_failing_gate_is_one_line_and_no_file(export_cli, reuse_fp32, tmp_path, monkeypatch):
    real = export.accuracy_gate
    monkeypatch.setattr(export, 'accuracy_gate', lambda f, i, s, *a: real(f, i, replace(s, max_mae_increase=-0.5), *a))
    out = tmp_path / 'int8.onnx'
    rc, text, err = export_cli('--checkpoint', SHIPPED, '--precision', 'int8', '--height', H, '--width', W,
                               '--dynamic', '--calibration-frames', 2, '--test-frames', 2, '--out', out)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('xd-rcdepth export: error: int8 export failed its accuracy gate')
    assert 'over by' in lines[0] and 'no file written' in lines[0]
    assert list(tmp_path.iterdir()) == [], 'a file was left behind'


@pytest.mark.parametrize('args, message', [
    (('--int8', '--fp16'), 'choose one precision'),
    (('--int8', '--format', 'torchscript'), 'ONNX export'),
    (('--int8', '--height', 90), 'multiples of 32'),
    (('--int8', '--no-verify'), 'always checked'),
    (('--int8', '--max-mae-increase', 1.5), '--max-mae-increase'),
    (('--int8', '--calibration-frames', 0), 'at least one calibration'),
])
def test_export_int8_bad_arguments(export_cli, tmp_path, args, message):
    rc, text, err = export_cli('--checkpoint', SHIPPED, '--height', H, '--width', W, *args, '--out',
                               tmp_path / 'x.onnx')
    assert rc == 2, (text, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
