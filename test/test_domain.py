"""Issue 14, transfer to real cameras: the training settings of the canonical focal length and the
stronger jitter (config -> AugmentConfig, the recorded training camera), and benchmarks/real_frame.py
(the best constant depth, the real nuScenes frame with an empty radar cloud)."""
import json
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

from xd_rcdepth_core.config import NUSCENES_CAM_FRONT
from xd_rcdepth_core.data.cache import sample_path, write_index, write_sample
from xd_rcdepth_core.frame import Frame
from xd_rcdepth_core.metrics import MetricAccumulator
from xd_rcdepth_core.training import load_config
from xd_rcdepth_core.training.data import augment_config, cache_datasets, check_augmentation, training_camera

sys.path.insert(0, str(ROOT / 'benchmarks'))
import real_frame  # noqa: E402

H, W = 64, 128
K = NUSCENES_CAM_FRONT.intrinsics(H, W)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache')
    rng = np.random.default_rng(0)
    names = {'train': [], 'val': []}
    for split in names:
        for i in range(2):
            depth = np.where(rng.random((H, W)) < 0.1, rng.uniform(2, 90, (H, W)), 0).astype(np.float32)
            f = Frame(image=rng.integers(0, 255, (H, W, 3), dtype=np.uint8), K=K, radar=np.zeros((0, 6), np.float32),
                      radar_fields=('x', 'y', 'z', 'rcs', 'vx', 'vy'), depth_sparse=depth, depth_interp=depth,
                      name=f'{split}{i}')
            write_sample(sample_path(root, split, f.name), f, {})
            names[split].append(f.name)
    write_index(root, names, {s: {'dataset': 'test'} for s in names})
    return root


def _config(cache, *overrides):
    return load_config(recipe='student', overrides=[f'data.cache={cache}', 'data.crop=[32,64]', *overrides])


def test_data_settings_reach_the_dataset_and_the_recorded_camera(cache):
    cfg = _config(cache, 'data.canonical_focal=40.0', 'data.contrast=[0.7,1.3]', 'data.saturation=[0.5,1.5]',
                  'data.blur_p=0.3', 'data.blur_sigma=[0.5,1.5]', 'data.noise_p=0.5', 'data.noise_std=[0,0.03]')
    aug = augment_config(cfg)
    assert aug.canonical_focal == 40.0 and aug.contrast == (0.7, 1.3) and aug.saturation == (0.5, 1.5)
    assert (aug.blur_p, aug.blur_sigma, aug.noise_p, aug.noise_std) == (0.3, (0.5, 1.5), 0.5, (0.0, 0.03))
    train, _ = cache_datasets(cfg)
    assert train.augment == aug
    # the checkpoint's training camera is the canonical one, at the size the frames were resized to
    inputs = training_camera(cfg)
    scale = 40.0 / K[0, 0]
    assert inputs['focal'] == 40.0 and inputs['image_size'] == [round(H * scale), round(W * scale)]
    plain = training_camera(_config(cache))
    assert plain['focal'] == pytest.approx(K[0, 0]) and plain['image_size'] == [H, W]
    assert augment_config(_config(cache)) == type(aug)(crop=(32, 64))     # defaults: the references' items


@pytest.mark.parametrize('override, message', [
    ('data.contrast=[1.2,0.8]', 'data.contrast'),
    ('data.noise_std=[-0.1,0.1]', 'data.noise_std'),
    ('data.blur_p=1.5', 'data.blur_p'),
    ('data.canonical_focal=-3', 'data.canonical_focal'),
])
def test_bad_data_settings_are_refused(cache, override, message):
    with pytest.raises(ValueError, match=message):
        check_augmentation(_config(cache, override))


def test_teacher_targets_refuse_resized_or_noisy_items(cache, tmp_path):
    cfg = _config(cache, 'data.color_jitter_p=0', f'distill.teacher_targets={tmp_path}', 'data.canonical_focal=40')
    with pytest.raises(ValueError, match='teacher_targets'):
        check_augmentation(cfg)


def test_best_constant_is_the_minimiser_of_the_mean_per_image_mae():
    rng = np.random.default_rng(1)
    maps = [np.where(rng.random((20, 30)) < p, rng.uniform(1, 120, (20, 30)), 0) for p in (0.05, 0.3, 0.6)]
    c, objective = real_frame.best_constant(maps, 80.0)

    def mean_mae(value):
        acc = MetricAccumulator(ranges=(80.0,))
        for gt in maps:
            acc.add(np.full(gt.shape, value), gt)
        return acc.result()['by_range']['80']['mae']
    assert objective == pytest.approx(mean_mae(c))
    grid = list(np.linspace(1, 80, 150)) + [c + d for d in (-0.5, -0.05, -0.005, 0.005, 0.05, 0.5)]
    assert mean_mae(c) <= min(mean_mae(v) for v in grid) + 1e-9
    with pytest.raises(ValueError, match='no ground-truth pixel'):
        real_frame.best_constant([np.zeros((4, 4))])


@pytest.mark.skipif(not (SHARED_DATA / 'mmdetection3d-demo-nuscenes').is_dir(),
                    reason='the real nuScenes sample (../shared/data) is absent: set XD_RCDEPTH_SHARED_DATA')
def test_real_frame_benchmark_with_a_constant(cache, tmp_path, capsys):
    report = real_frame.main(['--checkpoint', '--constant-from-cache', str(cache), '--split', 'val',
                              '--shared-data', str(SHARED_DATA), '--out', str(tmp_path)])
    frame = report['frame']
    assert frame['radar_points'] == 0 and frame['gt_pixels'] == 3052 and frame['eval_size'] == [896, 1600]
    assert 'EMPTY radar' in report['radar'] and 'EMPTY radar' in capsys.readouterr().out
    (entry,) = report['results']
    assert entry['constant']['split'] == 'val' and entry['constant']['images'] == 2
    assert set(entry['by_range']) == {'50', '70', '80'}
    assert json.loads((tmp_path / 'real_frame.json').read_text())['results'][0]['by_range'] == entry['by_range']
    assert (tmp_path / 'real_frame.png').stat().st_size > 0 and 'δ1' in (tmp_path / 'real_frame.md').read_text()
