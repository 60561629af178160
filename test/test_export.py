"""`xd-rcdepth export`: ONNX and TorchScript round trips on tiny inputs, metadata, TensorRT op check,
and one-line errors for bad input. Exports are traced at 64x96 (the smallest useful size)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xd_rcdepth_core import cli, export
from xd_rcdepth_core.backends.ort_backend import OnnxRuntimeBackend
from xd_rcdepth_core.backends.verify import reference_depth, synthetic_inputs, verify_export
from xd_rcdepth_core.commands import export as command
from xd_rcdepth_core.export import TENSORRT_OPS, ExportSpec, export_model, tensorrt_report
from xd_rcdepth_core.exported import read_metadata
from xd_rcdepth_core.models import build_model, save_checkpoint
from xd_rcdepth_core.models.fingerprint import model_fingerprint

onnx = pytest.importorskip('onnx')
H, W = 64, 96
SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'xd_rcdepth_synthetic.pt'


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest.py


@pytest.fixture(scope='module')
def student():
    torch.manual_seed(0)
    return build_model('xd_rcdepth').eval()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, student):
    return save_checkpoint(tmp_path_factory.mktemp('ckpt') / 'student.pt', student)


def test_export_is_a_registered_subcommand():
    assert ('export', 'xd_rcdepth_core.commands.export') in [(c.name, c.module) for c in cli.CORE_COMMANDS]
    assert command.FORMATS == export.FORMATS and command.DEFAULT_OPSET == export.DEFAULT_OPSET


def test_onnx_static_round_trip_metadata_and_tensorrt_ops(export_cli, checkpoint, student, tmp_path):
    out = tmp_path / 'student.onnx'
    h, w = 90, 100     # not multiples of 32: the padding is inside the graph
    rc, text, err = export_cli('--checkpoint', checkpoint, '--format', 'onnx', '--height', h, '--width', w,
                               '--out', out)
    assert rc == 0, err
    assert 'max abs depth error' in text and 'every op is in its operator matrix' in text
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props['model_name'] == 'xd_rcdepth' and props['model_config']['fusion'] == 'film'
    assert props['input_size'] == [h, w] and props['opset'] == 17 and props['max_depth'] == 100.0
    assert props['precision'] == 'fp32' and props['dynamic'] is False
    assert props['checkpoint'] == 'student.pt' and props['weights_sha256'] == model_fingerprint(student)
    assert set(props['ops']) <= TENSORRT_OPS and props['tensorrt_unsupported'] == [] and not props['tensorrt_notes']
    assert [i.name for i in proto.graph.input] == ['image', 'radar']
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, h, w]
    image, radar = synthetic_inputs(student, h, w, seed=3)
    got = OnnxRuntimeBackend(out, torch.device('cpu'))(image, radar)
    np.testing.assert_allclose(got.numpy(), reference_depth(student, image, radar).numpy(), atol=1e-4)


def test_dynamic_onnx_takes_other_sizes(export_cli, checkpoint, student, tmp_path):
    out = tmp_path / 'dynamic.onnx'
    rc, text, err = export_cli('--checkpoint', checkpoint, '--height', H, '--width', W, '--dynamic',
                               '--out', out)
    assert rc == 0, err
    meta = read_metadata(out)
    assert meta['input_size'] is None and meta['input_multiple'] == 32 and meta['trace_size'] == [H, W]
    backend = OnnxRuntimeBackend(out, torch.device('cpu'))
    for h, w in ((96, 160), (70, 90)):      # another multiple of 32, and one the backend pads
        image, radar = synthetic_inputs(student, h, w, seed=4)
        got = backend(image, radar)
        assert got.shape == (1, 1, h, w)
        np.testing.assert_allclose(got.numpy(), reference_depth(student, image, radar).numpy(), atol=1e-4)


def test_torchscript_round_trip(export_cli, checkpoint, student, tmp_path):
    out = tmp_path / 'student.pt'
    rc, text, err = export_cli('--checkpoint', checkpoint, '--format', 'torchscript', '--height', H,
                               '--width', W, '--out', out)
    assert rc == 0, err
    assert 'max abs depth error' in text
    meta = read_metadata(out)
    assert meta['model_name'] == 'xd_rcdepth' and meta['input_size'] == [H, W] and meta['opset'] is None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        module = torch.jit.load(str(out))
    image, radar = synthetic_inputs(student, H, W, seed=5)
    with torch.inference_mode():
        got = module(image.contiguous(), radar.contiguous())
    np.testing.assert_allclose(got.numpy(), reference_depth(student, image, radar).numpy(), atol=1e-5)


def test_fp16_onnx_keeps_float32_io(export_cli, checkpoint, tmp_path):
    out = tmp_path / 'half.onnx'
    rc, text, err = export_cli('--checkpoint', checkpoint, '--height', H, '--width', W, '--fp16',
                               '--out', out)
    assert rc == 0, err
    proto = onnx.load(str(out))
    assert read_metadata(out)['precision'] == 'fp16'
    float32 = onnx.TensorProto.FLOAT
    assert all(v.type.tensor_type.elem_type == float32 for v in list(proto.graph.input) + list(proto.graph.output))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)


def test_fp16_export_of_the_shipped_checkpoint_passes_its_tolerance(export_cli, student, tmp_path):
    """The README's fp16 example on the trained checkpoint: half precision is ~1-2 m off at a few
    depth-edge pixels (more than any sane per-pixel bound), so fp16 is judged by 0.5 m + 3 % of depth
    on 99 % of the pixels - which still fails an export of other weights."""
    out = tmp_path / 'shipped_fp16.onnx'
    rc, text, err = export_cli('--checkpoint', SHIPPED, '--dynamic', '--fp16', '--height', H, '--width', W,
                               '--out', out)
    assert rc == 0, err
    assert 'max abs depth error' in text and 'of pixels within 0.5 m + 3 % of depth (needed: 99 %)' in text, text
    with pytest.raises(ValueError, match=r'verification failed: .* of pixels within 0.5 m \+ 3 % of depth'):
        verify_export(out, student)                 # the same graph against an untrained student's weights


# The teacher narrowed (ResNet-18 image encoder, BTS width 64): the same ops, a fifth of the export time.
@pytest.mark.parametrize('name, config', [('cafnet', dict(image_backbone_depth=18, bts_size=64)), ('lircdepth', {})])
def test_teacher_and_baseline_graphs_use_tensorrt_ops(tmp_path, name, config):
    torch.manual_seed(0)
    path = export_model(build_model(name, **config), tmp_path / f'{name}.onnx', ExportSpec('onnx', H, W, dynamic=True))
    report = tensorrt_report(onnx.load(str(path)))
    assert report['unsupported'] == [] and report['notes'] == [], report


def test_bad_input_is_one_clear_line(export_cli, checkpoint, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    cases = [
        (('--checkpoint', tmp_path / 'missing.pt', '--out', tmp_path / 'm.onnx'), 'file not found'),
        (('--checkpoint', checkpoint, '--out', blocker / 'm.onnx'), 'is a file, not a folder'),
        (('--checkpoint', checkpoint, '--out', tmp_path), 'is a directory'),
        (('--checkpoint', checkpoint, '--height', 90, '--width', 100, '--dynamic', '--out', tmp_path / 'd.onnx'),
         'multiple of 32'),
        (('--checkpoint', checkpoint, '--height', 16, '--out', tmp_path / 's.onnx'), 'at least 32x32'),
        (('--checkpoint', checkpoint, '--opset', 7, '--out', tmp_path / 'o.onnx'), 'opset'),
        (('--checkpoint', checkpoint, '--height', H, '--width', W, '--tolerance', 1e-12, '--out', tmp_path / 't.onnx'),
         'verification failed'),
    ]
    for args, message in cases:
        rc, text, err = export_cli(*args)
        assert rc == 2, (args, text, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith('xd-rcdepth export: error:'), err
    assert not (tmp_path / 't.onnx').exists(), 'a file that failed verification was left behind'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file'], 'temporary files were left behind'
