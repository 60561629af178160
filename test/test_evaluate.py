"""Evaluation by the paper's protocol on a tiny SYNTHETIC set: metrics.json shape, sources, files, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xd_rcdepth_core import cli as cli_module
from xd_rcdepth_core.data.images import read_depth_png
from xd_rcdepth_core.evaluate import (
    EvalOptions,
    combine_records,
    crop_for_eval,
    evaluate,
    frames_from_cache,
    frames_from_synthetic,
)
from xd_rcdepth_core.frame import Frame
from xd_rcdepth_core.metrics import METRIC_NAMES, MetricAccumulator
from xd_rcdepth_core.models import build_model, save_checkpoint
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache

VAL_SCENE = 'scene-0003'      # make_synthetic_cache: scenes 1-2 train, 3 val
SMALL_STUDENT = dict(decoder_channels=[32, 16, 16, 8, 8], bottleneck_channels=32, daspp_growth=16)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """The same tiny synthetic set test_train.py uses (made once per session)."""
    base = tmp_path_factory.getbasetemp() / 'xd_rcdepth_synthetic'
    make_synthetic_cache(base, {'train': 2, 'val': 1}, frames=3, size=(96, 192), log=lambda *a: None)
    return base


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp('ckpt')
    torch.manual_seed(0)
    student = save_checkpoint(folder / 'student.pt', build_model('xd_rcdepth', **SMALL_STUDENT))
    teacher = save_checkpoint(folder / 'teacher.pt', build_model('cafnet', image_backbone_depth=18, bts_size=32))
    return student, teacher


def cli(argv, monkeypatch):
    return cli_module.main(argv)


def test_evaluate_writes_metrics_predictions_and_figures(data, checkpoints, tmp_path):
    student = DepthEstimator.from_checkpoint(checkpoints[0], device='cpu')
    teacher = DepthEstimator.from_checkpoint(checkpoints[1], device='cpu')
    out = tmp_path / 'eval'
    options = EvalOptions(progress=False, save_predictions=True, figures=1, limit=2)
    result = evaluate(student, frames_from_synthetic(data / 'synthetic', VAL_SCENE), options, out, teacher=teacher,
                      meta={'model': 'xd_rcdepth'})
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics == json.loads(json.dumps(result))
    assert set(metrics['by_range']) == {'50', '70', '80'} and metrics['images'] == 2
    for entry in metrics['by_range'].values():
        assert set(METRIC_NAMES) <= set(entry) and entry['images'] == 2
        assert entry['mae'] > 0 and 0 <= entry['d1'] <= entry['d2'] <= entry['d3'] <= 1
    assert metrics['gt'] == 'depth_sparse' and metrics['model'] == 'xd_rcdepth'
    assert '| 80 m | 2 |' in (out / 'metrics.md').read_text()
    assert len((out / 'per_image.jsonl').read_text().splitlines()) == 2
    frame = next(iter(frames_from_synthetic(data / 'synthetic', VAL_SCENE)))
    pred = student.predict(crop_for_eval(frame)).depth
    stored = read_depth_png(out / 'predictions' / f'{frame.name}.png')
    assert stored.shape == pred.shape
    assert np.array_equal(stored, np.floor(np.nan_to_num(pred) * 256) / 256)
    figures = sorted((out / 'figures').glob('*.png'))
    assert len(figures) == 1
    import cv2
    assert cv2.imread(str(figures[0])).shape == (2 * frame.height, 4 * frame.width, 3)


def test_cache_and_native_synthetic_sources_agree(data, checkpoints):
    """Two sources of the same frames go through one loop; they differ only by the cache's 1/256 m
    quantisation of the ground truth."""
    student = DepthEstimator.from_checkpoint(checkpoints[0], device='cpu')
    options = EvalOptions(progress=False)
    from_cache = evaluate(student, frames_from_cache(data / 'cache', 'val'), options)
    native = evaluate(student, frames_from_synthetic(data / 'synthetic', VAL_SCENE), options)
    assert from_cache['images'] == native['images'] == 3
    for key in ('50', '70', '80'):
        assert from_cache['by_range'][key]['mae'] == pytest.approx(native['by_range'][key]['mae'], abs=5e-3)


def test_crop_for_eval_drops_top_rows_like_the_references():
    H, W = 100, 70
    depth = np.arange(H * W, dtype=np.float32).reshape(H, W)
    K = np.array([[50.0, 0, 35], [0, 50.0, 50], [0, 0, 1]])
    frame = Frame(image=np.zeros((H, W, 3), np.uint8), K=K, depth_sparse=depth, name='f')
    cropped = crop_for_eval(frame, 32)
    assert (cropped.height, cropped.width) == (96, 64)
    assert cropped.K[1, 2] == 46 and cropped.K[0, 2] == 35
    assert np.array_equal(cropped.depth_sparse, depth[4:, :64])
    assert crop_for_eval(frame, 0) is frame


def test_combine_records_equals_the_accumulator():
    rng = np.random.default_rng(0)
    acc = MetricAccumulator()
    for i in range(3):
        gt = np.where(rng.random((8, 8)) < 0.5, rng.uniform(1, 90, (8, 8)), 0).astype(np.float32)
        acc.add(rng.uniform(1, 90, (8, 8)), gt if i else np.zeros_like(gt), f'{i}')
    expected = acc.result()
    combined = combine_records(acc.per_image)
    for key, entry in expected['by_range'].items():
        for name, value in entry.items():
            assert combined['by_range'][key][name] == pytest.approx(value)
    assert combined['images'] == expected['images'] == 3


def test_cli_eval_and_saliency(data, checkpoints, tmp_path, monkeypatch, capsys):
    student, teacher = (str(p) for p in checkpoints)
    out = tmp_path / 'eval'
    assert cli(['eval', '--checkpoint', student, '--cache', str(data / 'cache'), '--split', 'val', '--out', str(out),
                '--limit', '1', '--quiet'], monkeypatch) == 0
    assert '| 80 m | 1 |' in capsys.readouterr().out
    assert json.loads((out / 'metrics.json').read_text())['by_range']['80']['images'] == 1
    sal = tmp_path / 'saliency'
    assert cli(['saliency', '--checkpoint', student, '--teacher', teacher, '--synthetic', str(data / 'synthetic'),
                '--scene', VAL_SCENE, '--out', str(sal), '--limit', '1', '--layers', 'image', 'decoder'],
               monkeypatch) == 0
    summary = json.loads((sal / 'saliency.json').read_text())
    assert summary['frames'] == 1 and set(summary['cosine_student_teacher']) == {'image', 'decoder'}
    assert len(list(sal.glob('*.png'))) == 1
    capsys.readouterr()
    assert cli(['eval', '--checkpoint', student, '--cache', str(data / 'cache'), '--synthetic', str(data)],
               monkeypatch) == 2
    assert 'exactly one frame source' in capsys.readouterr().err
    assert cli(['eval', '--checkpoint', student, '--cache', str(data / 'cache'), '--split', 'test'], monkeypatch) == 2
    assert "split 'test' not in cache" in capsys.readouterr().err
