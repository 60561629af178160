"""RadarNet (issue 16): the two-stage baseline built from docs/reference.md Part A 3.3 / 4.4.

Forward shapes at tiny sizes, its parameter count against the paper's, the quasi-dense composition and
the stage-1 labels on hand-made cases, both recipes for a few steps on a tiny synthetic cache (resume
included, and DDP on two CPU processes), DepthEstimator, ONNX export (static; a dynamic export is refused
with the reason) and the node on a replayed bag. Networks here are narrow (TINY) so every test stays
small; the default widths are only built on the meta device.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from xd_rcdepth_core.backends import BACKENDS
from xd_rcdepth_core.export import ExportSpec, export_verified
from xd_rcdepth_core.models import build_model, load_model, read_checkpoint, save_checkpoint
from xd_rcdepth_core.models.radarnet import MAC_POINTS, patch_width_for
from xd_rcdepth_core.models.summary import model_summary
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import generate_sequence
from xd_rcdepth_core.training import Trainer, load_config
from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache
from xd_rcdepth_core.training.targets import correspondence_target, lidar_points_for_radar

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(stage1_image_channels=(8, 8, 8, 8, 8), stage1_point_neurons=(8, 8), stage1_decoder_channels=(8, 8, 8, 8, 8),
            point_latent_grid=(2, 1), stage2_image_channels=(8, 8, 8, 8, 8, 8), stage2_depth_channels=(4,) * 6,
            stage2_decoder_channels=(8, 8, 8, 8, 8, 8), max_points=24, point_chunk=8)
TINY_OVERRIDES = [f'model.config.{k}={list(v) if isinstance(v, tuple) else v}'.replace(' ', '')
                  for k, v in TINY.items()]
PAPER_PARAMS = 22.8e6          # docs/paper.md Results
# The tiny cache of test_train.py (same folder, so one session builds it once): 96 x 192, full-frame items.
RUN = ['data.crop=[96,192]', 'data.batch_size=2', 'data.workers=0', 'log_every=1', 'image_every=1',
       'checkpoint_every=1', 'data.val_limit=1', 'optim.eps=1e-6']

# the synthetic frames hold more radar points than TINY's max_points: RadarNet says so once per model
pytestmark = [pytest.mark.usefixtures('one_thread'), pytest.mark.filterwarnings('ignore:RadarNet. a frame holds')]


@pytest.fixture(autouse=True)
def _restore_determinism_flags():
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return make_synthetic_cache(tmp_path_factory.getbasetemp() / 'xd_rcdepth_synthetic', {'train': 2, 'val': 1},
                                frames=3, size=(96, 192), log=lambda *a: None)


def tiny(stage=2, **extra):
    torch.manual_seed(0)
    return build_model('radarnet', stage=stage, **{**TINY, **extra})


def radar_with(points, batch=1, height=32, width=96):
    """A radar image with (b, v, u, depth) points."""
    radar = torch.zeros(batch, 4, height, width)
    for b, v, u, z in points:
        radar[b, 0, v, u] = z
    return radar


def fully_responding(model, logit=4.0):
    """Stage 1 answering `logit` everywhere: every point claims its whole window with the same response."""
    with torch.no_grad():
        model.stage1.head.weight.zero_()
        model.stage1.head.bias.fill_(logit)
    return model


# ----------------------------------------------------------------------------- the network

@pytest.mark.parametrize('stage', [1, 2])
def test_forward_shapes_train_and_eval(stage):
    model = tiny(stage)
    image = torch.randn(2, 3, 50, 90)
    radar = radar_with([(0, 10, 5, 12.0), (0, 30, 60, 30.0), (0, 40, 70, 8.0), (1, 20, 80, 5.0)], 2, 50, 90)
    model.train()
    assert model.stage1.training == (stage == 1) and model.stage2.training == (stage == 2)   # the frozen stage: eval
    out = model(image, radar)
    assert out['depth'].shape == out['quasi_depth'].shape == out['confidence'].shape == (2, 1, 50, 90)
    hp, wp = 64, 96
    if stage == 1:
        # up to 4 points sampled per image in training (--total_points_sampled 4): 3 here, image 1 has one
        assert out['correspondence_logits'].shape == (2, 3, 50, patch_width_for(90))
        assert out['points'].shape == (2, 3, 3) and out['point_valid'].tolist() == [[True] * 3, [True, False, False]]
        assert {tuple(p) for p in out['points'][0, :3].tolist()} == {(5, 10, 12.0), (60, 30, 30.0), (70, 40, 8.0)}
        assert all(t.shape == (2, 8, hp // 16, wp // 16) for t in out['taps'].values())
    else:
        assert 'correspondence_logits' not in out
        assert [out['taps'][k].shape[1] for k in ('image', 'radar', 'decoder')] == [8, 4, 8]
        assert all(t.shape[-2:] == (hp // 16, wp // 16) for t in out['taps'].values())
        assert ((out['depth'] > 0.99) & (out['depth'] <= 100)).all()
    out['depth'].sum().backward() if stage == 2 else out['correspondence_logits'].sum().backward()
    trained, frozen = (model.stage1, model.stage2) if stage == 1 else (model.stage2, model.stage1)
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert all(p.grad is not None for p in trained.parameters())
    model.eval()
    out = model(image, radar)
    assert 'correspondence_logits' not in out and out['depth'].shape == (2, 1, 50, 90)
    for key in ('image', 'radar', 'decoder'):                 # Grad-CAM can differentiate through the taps
        grad = torch.autograd.grad(out['depth'].mean(), out['taps'][key], retain_graph=True, allow_unused=True)[0]
        assert grad is not None, key


def test_parameters_against_the_paper_and_info(capsys):
    summary = model_summary('radarnet', 896, 1600)
    assert summary['params_total'] == 22_480_690
    # + the reference's 14 residual-block projections that never run (not built here) = the paper's 22.8 M
    assert summary['params_unused_in_reference'] == 324_608
    assert summary['params_reference_comparable'] == pytest.approx(PAPER_PARAMS, rel=0.003)
    parts = summary['params_by_part']
    assert sum(parts.values()) == summary['params_total'] and 'other' not in parts
    assert summary['fusion'] == 'weight_and_project' and 700 < summary['gmacs'] < 950   # at MAC_POINTS radar points
    assert MAC_POINTS == 60
    from xd_rcdepth_core.cli import main
    assert main(['info', '--model', 'radarnet', '--json', '--height', '64', '--width', '96']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['model'] == 'radarnet' and info['params_total'] == 22_480_690 and info['gmacs'] > 0


def test_patch_width_scales_with_the_image_width():
    assert patch_width_for(1600) == 288 and patch_width_for(800) == 160 and patch_width_for(96) == 32
    assert patch_width_for(800, fixed=128) == 128
    with pytest.raises(ValueError, match='multiple of 32'):
        build_model('radarnet', patch_width=100)
    with pytest.raises(ValueError, match='stage must be 1 or 2'):
        build_model('radarnet', stage=3)


def test_quasi_dense_depth_is_the_nearest_responding_point():
    """Two points whose 32-px windows overlap, every response 0.98: each pixel takes the nearer point's
    depth (slots are ordered nearest first, ties go to the first); no response -> 0 (NaN downstream)."""
    model = fully_responding(tiny(1, patch_width=32)).eval()
    image = torch.randn(1, 3, 32, 96)
    radar = radar_with([(0, 5, 10, 20.0), (0, 20, 30, 10.0)])
    out = model(image, radar)
    quasi = out['quasi_depth'][0, 0]
    expected = torch.zeros(96)
    expected[0:26] = 20.0             # window of u=10: columns -6 .. 25
    expected[14:46] = 10.0            # window of u=30: columns 14 .. 45, nearer, wins the overlap
    assert torch.equal(quasi, expected.expand(32, 96))
    assert torch.allclose(out['confidence'][0, 0][quasi > 0], torch.sigmoid(torch.tensor(4.0)))
    assert torch.equal(out['depth'], out['quasi_depth'])     # stage 1's depth is the quasi-dense one
    fully_responding(model, -4.0)     # responses 0.018 < 0.5: zeroed
    assert not model(image, radar)['quasi_depth'].any()


def test_more_points_than_max_points_warns_and_keeps_the_nearest():
    model = fully_responding(tiny(1, patch_width=32, max_points=2)).eval()
    radar = radar_with([(0, 5, 10, 30.0), (0, 6, 40, 8.0), (0, 7, 70, 9.0)])
    with pytest.warns(UserWarning, match='nearest max_points'):
        quasi = model(torch.randn(1, 3, 32, 96), radar)['quasi_depth'][0, 0]
    assert set(quasi.unique().tolist()) == {0.0, 8.0, 9.0}     # the 30 m point is dropped


# ----------------------------------------------------------------------------- stage-1 targets

def test_correspondence_target_hand_made():
    """P = 4: the point at u = 1 owns columns -1 .. 2; column -1 is outside the image (weight 0)."""
    gt = torch.tensor([[10.0, 10.3, 20.0, 0.0, 9.7, 10.0],
                       [0.0, 9.65, 10.39, 10.0, 10.0, 10.0]])[None, None]
    points = torch.tensor([[[1.0, 0.0, 10.0], [4.0, 1.0, 10.0]]])
    valid = torch.tensor([[True, False]])
    label, weight = correspondence_target(points, valid, gt, patch_width=4, threshold=0.4)
    assert label.shape == weight.shape == (1, 2, 2, 4)
    assert label[0, 0].tolist() == [[0, 1, 1, 0], [0, 0, 1, 1]]     # |gt - 10| < 0.4 and gt > 0; pad = 0
    assert weight[0, 0].tolist() == [[0, 1, 1, 1]] * 2                 # column -1 lies outside the image
    assert not weight[0, 1].any()                                      # an empty slot weighs nothing
    assert label[0, 1, 0].tolist() == [0, 0, 1, 1]                     # columns 2 .. 5: 20, 0, 9.7, 10


def test_lidar_points_stand_in_for_radar():
    torch.manual_seed(0)
    gt = torch.zeros(2, 1, 16, 32)
    gt[:, :, 8:] = 12.0
    radar = radar_with([(0, 3, 4, 30.0), (0, 3, 9, 31.0), (1, 2, 2, 5.0)], 2, 16, 32)
    radar[:, 1:] = radar[:, :1] > 0                                    # some RCS / velocity values
    assert torch.equal(lidar_points_for_radar(radar, gt, 0.0, 25.0, 0.4), radar)
    swapped = lidar_points_for_radar(radar, gt, 1.0, 0.0, 0.4)
    for b, count in ((0, 2), (1, 1)):
        depth = swapped[b, 0]
        rows, _ = torch.nonzero(depth, as_tuple=True)
        assert 1 <= rows.numel() <= count and (rows >= 8).all()         # at lidar pixels (duplicates merge)
        assert ((depth[depth > 0] >= 12.0) & (depth[depth > 0] <= 12.4)).all()
        assert not swapped[b, 1:].any()


# ----------------------------------------------------------------------------- training

def config(cache, run_dir, recipe, *extra):
    path = ROOT / 'config' / f'train_{recipe.replace("-", "_")}.yaml'
    return load_config(path, recipe, [f'data.cache={cache}', f'run_dir={run_dir}', *RUN, *TINY_OVERRIDES, *extra])


@pytest.mark.slow
def test_both_recipes_a_few_steps_and_stage1_resume(cache, tmp_path):
    # stage 1: two steps straight, and one step, "killed", then resumed: the same weights
    full = Trainer(config(cache, tmp_path / 's1', 'radarnet-stage1', 'max_steps=2', 'radarnet.lidar_points_p=0.5'),
                   progress=False)
    summary = full.fit()
    assert summary['finished'] and summary['best']['metric'] == 'd1'
    logged = [json.loads(line) for line in (tmp_path / 's1' / 'log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in logged if 'loss/correspondence' in r] == [1, 2]
    part = Trainer(config(cache, tmp_path / 'part', 'radarnet-stage1', 'max_steps=2', 'radarnet.lidar_points_p=0.5'),
                   progress=False)
    assert part.fit(stop_after=1)['step'] == 1
    resumed = Trainer(config(cache, tmp_path / 'part', 'radarnet-stage1', 'max_steps=2', 'radarnet.lidar_points_p=0.5'),
                      resume='auto', progress=False)
    assert resumed.step == 1 and resumed.fit()['step'] == 2
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    stage1 = tmp_path / 's1' / 'checkpoints' / 'last.pt'
    assert read_checkpoint(stage1)['model_config']['stage'] == 1

    # stage 2 from the stage-1 checkpoint: stage 1 stays as it was, stage 2 learns
    with pytest.raises(ValueError, match='set model.init'):
        config(cache, tmp_path / 's2', 'radarnet-stage2', 'max_steps=1')
    trainer = Trainer(config(cache, tmp_path / 's2', 'radarnet-stage2', 'max_steps=2', f'model.init={stage1}'),
                      progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.fit()
    assert summary['finished'] and summary['val']['by_range']['80']['images'] == 1
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('stage1.'))   # BN statistics too
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('stage2.'))
    first = json.loads((tmp_path / 's2' / 'log.jsonl').read_text().splitlines()[0])
    assert {'loss/depth', 'loss/accumulated'} <= set(first)
    model, ckpt = load_model(tmp_path / 's2' / 'checkpoints' / 'best.pt')
    assert ckpt['model_name'] == 'radarnet' and model.config.stage == 2


def test_recipe_and_model_go_together():
    with pytest.raises(ValueError, match='radarnet-stage1, then --recipe radarnet-stage2'):
        load_config(None, 'student', ['model.name=radarnet'])
    with pytest.raises(ValueError, match='radarnet-stage1, then --recipe radarnet-stage2'):
        load_config(None, 'radarnet-stage1', [])
    with pytest.raises(ValueError, match='trains stage 1, but model.config.stage is 2'):
        load_config(None, 'radarnet-stage1', ['model.name=radarnet', 'model.config.stage=2'])


@pytest.mark.slow
def test_ddp_two_cpu_processes_stage1(cache, tmp_path):
    """torchrun, 2 processes, gloo: stage 1 (random points per image, stage 2 frozen and unused) agrees."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    run = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--nnodes', '1',
           '--master_addr', '127.0.0.1', '--master_port', str(port), '-m', 'xd_rcdepth_core.commands.train',
           '--recipe', 'radarnet-stage1', '--config', str(ROOT / 'config' / 'train_radarnet_stage1.yaml'),
           '--run-dir', str(run), '--quiet', f'data.cache={cache}', *RUN, 'data.batch_size=1', 'max_steps=1',
           'data.val_split=null', *TINY_OVERRIDES]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['step'] == 1
    assert len(set(summary['replica_digests'])) == 1


# ----------------------------------------------------------------------------- inference and export

@pytest.fixture(scope='module')
def frame():
    return next(generate_sequence(seed=1, n_frames=1, height=90, width=160))


def test_depth_estimator_on_a_synthetic_frame(frame):
    model = tiny(2)
    result = DepthEstimator(model, device='cpu').predict(frame, saliency_layers=('image', 'radar', 'decoder'))
    assert result.depth.shape == (90, 160) and np.isfinite(result.depth).all() and result.radar_stats.projected > 0
    assert set(result.saliency) == {'image', 'radar', 'decoder'}
    if 'auto' in BACKENDS:
        # backend auto on a CPU tries ONNX Runtime first; RadarNet's on-the-fly export is dynamic, refused: torch
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            auto = DepthEstimator(model, device='cpu', backend='auto')
        assert auto.backend_info['backend'] == 'torch' and 'dynamic shapes' in auto.backend_info['reason']
        np.testing.assert_allclose(auto.predict(frame).depth, result.depth, atol=1e-5)
    # a stage-1 network gives depth only where a point responds (one point here: its 32-px window), NaN elsewhere
    with pytest.warns(UserWarning, match='nearest max_points'):
        quasi = DepthEstimator(fully_responding(tiny(1, max_points=1)), device='cpu').predict(frame).depth
    covered = ~np.isnan(quasi).all(axis=0)
    assert 20 <= covered.sum() <= 40 and np.isnan(quasi[:, ~covered]).all()


def test_onnx_export_static_and_dynamic_refused(frame, tmp_path):
    pytest.importorskip('onnxruntime')
    model = fully_responding(tiny(2)).eval()   # responses far from the 0.5 cut: no pixel can flip across it
    path, check = export_verified(model, tmp_path / 'radarnet.onnx', ExportSpec('onnx', 90, 160))
    assert check['max_abs_error_m'] <= 0.01
    with pytest.raises(ValueError, match='cannot be exported with dynamic shapes: its patch width'):
        export_verified(model, tmp_path / 'dyn.onnx', ExportSpec('onnx', 64, 96, dynamic=True))
    # the file always runs max_points (24) slots; a frame with 5 points gives torch's depth (torch runs 5)
    few = frame.replace(radar=frame.radar[:5])
    torch_depth = DepthEstimator(model, device='cpu').predict(few).depth
    ort = DepthEstimator(model, device='cpu', backend='onnxruntime', onnx_path=path, input_size=(90, 160))
    assert ort.backend_info['backend'] == 'onnxruntime'
    np.testing.assert_allclose(ort.predict(few).depth, torch_depth, atol=1e-3)


# ----------------------------------------------------------------------------- the node

@pytest.mark.slow
def test_node_runs_radarnet_on_a_replayed_bag(tmp_path):
    pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
    from test_bag import FRAMES, make_synthetic_bag

    from xd_rcdepth_ros.replay_eval.run import EvalOptions, run_live
    from xd_rcdepth_ros.resources import apply_fastdds_profile
    apply_fastdds_profile()
    bag = make_synthetic_bag(tmp_path / 'bag')[1]
    ckpt = save_checkpoint(tmp_path / 'radarnet.pt', tiny(2))
    live = run_live(EvalOptions(bag=str(bag), checkpoint=str(ckpt), out=str(tmp_path / 'live'), live=True, figures=0,
                                node_timeout=120))
    assert live['valid'], live['invalid_reason']
    assert live['images'] == FRAMES and live['dropped_frames'] == []
    assert '80' in live['by_range'] and live['by_range']['80']['mae'] > 0
