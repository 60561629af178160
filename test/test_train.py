"""Training: each recipe for a few steps on a tiny SYNTHETIC cache, exact resume, DDP on 2 CPU
processes, the confidence target, the LR schedule, config overrides and bad inputs."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from xd_rcdepth_core import cli as cli_module
from xd_rcdepth_core.distill.losses import (
    bin_centres,
    d2kd_loss,
    masked_l1,
    student_saliency,
    teacher_saliency,
    valid_depth_mask,
    xkd_loss,
)
from xd_rcdepth_core.models import build_model, load_model, read_checkpoint, save_checkpoint
from xd_rcdepth_core.training import Trainer, load_config
from xd_rcdepth_core.training.config import TrainConfig
from xd_rcdepth_core.training.data import make_loader
from xd_rcdepth_core.training.objectives import make_objective
from xd_rcdepth_core.training.optim import PolySchedule, build_optimizer
from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache
from xd_rcdepth_core.training.targets import confidence_target, confidence_target_map

ROOT = Path(__file__).resolve().parents[1]
TINY = ['data.crop=[64,128]', 'data.batch_size=2', 'data.workers=0', 'log_every=1', 'image_every=1',
        'checkpoint_every=2', 'data.val_limit=1']
NO_VAL = ['data.val_split=null']
# A narrower student decoder (4.6 M parameters instead of 8.9 M): same code paths, less time and disk.
SMALL = ['model.config.decoder_channels=[32,16,16,8,8]', 'model.config.bottleneck_channels=32',
         'model.config.daspp_growth=16']


@pytest.fixture(autouse=True)
def _restore_determinism_flags():
    """The Trainer turns on torch's deterministic mode (process-wide); other test files get it back off."""
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """2 train scenes x 3 frames + 1 val scene, 96 x 192 (shared with test_evaluate.py)."""
    return make_synthetic_cache(tmp_path_factory.getbasetemp() / 'xd_rcdepth_synthetic', {'train': 2, 'val': 1},
                                frames=3, size=(96, 192), log=lambda *a: None)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp('teacher') / 'cafnet.pt',
                           build_model('cafnet', image_backbone_depth=18, bts_size=32))


def make_config(cache, run_dir, recipe, *extra, path=None) -> TrainConfig:
    # A narrower CaFNet (ResNet-18 image encoder, BTS width 32) for speed; the same code paths.
    model = ['model.name=cafnet', 'model.config.image_backbone_depth=18', 'model.config.bts_size=32'] \
        if recipe == 'teacher' else []
    return load_config(path, recipe, [f'data.cache={cache}', f'run_dir={run_dir}', *TINY, *model, *extra])


def cli(argv, monkeypatch):
    """`xd-rcdepth ARGV` in-process, with this issue's subcommands registered."""
    return cli_module.main(argv)


def log_lines(run_dir):
    """The training-step records of log.jsonl (val records are separate lines)."""
    lines = [json.loads(line) for line in (Path(run_dir) / 'log.jsonl').read_text().splitlines()]
    return [r for r in lines if 'loss/total' in r]


# ----------------------------------------------------------------------------- recipes


def test_teacher_recipe_few_steps(cache, tmp_path):
    run = tmp_path / 'teacher'
    summary = Trainer(make_config(cache, run, 'teacher', 'max_steps=2', 'loss.w_single=1.0'), progress=False).fit()
    assert summary['finished'] and summary['step'] == 2
    logged = log_lines(run)
    assert [r['step'] for r in logged] == [1, 2]
    assert {'loss/depth', 'loss/single', 'loss/confidence', 'loss/coarse', 'loss/smooth', 'lr'} <= set(logged[0])
    assert sum(v for k, v in logged[0].items() if k.startswith('loss/') and k != 'loss/total') == \
        pytest.approx(logged[0]['loss/total'], rel=1e-5)
    ckpt = read_checkpoint(run / 'checkpoints' / 'last.pt')
    assert ckpt['model_name'] == 'cafnet' and ckpt['step'] == 2 and ckpt['train']['recipe'] == 'teacher'
    assert (run / 'checkpoints' / 'best.pt').is_file() and summary['best']['metric'] == 'mae'
    assert set(summary['val']['by_range']) == {'50', '70', '80'}
    assert yaml.safe_load((run / 'config.yaml').read_text())['recipe'] == 'teacher'
    assert list((run / 'tb').glob('events.out.tfevents.*'))


def test_student_recipe_through_the_cli_and_yaml(cache, tmp_path, monkeypatch, capsys):
    run = tmp_path / 'student'
    rc = cli(['train', '--recipe', 'student', '--config', str(ROOT / 'config' / 'train_student.yaml'),
              '--run-dir', str(run), '--quiet', f'data.cache={cache}', *TINY, 'max_steps=2'], monkeypatch)
    assert rc == 0, capsys.readouterr().err
    assert 'trained student to step 2' in capsys.readouterr().out
    config = yaml.safe_load((run / 'config.yaml').read_text())
    assert config['optim']['lr'] == 5e-5 and config['optim']['eps'] == 1e-2      # from the YAML
    assert config['data']['crop'] == [64, 128]                                    # from the override
    assert {'loss/depth', 'loss/single', 'loss/smooth'} <= set(log_lines(run)[0])


@pytest.mark.parametrize('kd, terms', [('none', set()), ('xkd', {'xkd'}), ('d2kd', {'d2kd'}),
                                       ('both', {'xkd', 'd2kd'})])
def test_distill_recipe_kd_switches(cache, teacher_ckpt, tmp_path, kd, terms):
    run = tmp_path / kd
    config = make_config(cache, run, 'distill', f'distill.teacher={teacher_ckpt}', f'distill.kd={kd}',
                         'max_steps=1', *NO_VAL, *SMALL)
    trainer = Trainer(config, progress=False)
    before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    trainer.fit()
    logged = set(log_lines(run)[0])
    assert {f'loss/{t}' for t in terms} <= logged
    assert not ({'loss/xkd', 'loss/d2kd'} - {f'loss/{t}' for t in terms}) & logged
    assert all(not p.requires_grad for p in trainer.teacher.parameters()) and not trainer.teacher.training
    assert all(torch.equal(before[k], v) for k, v in trainer.teacher.state_dict().items())   # frozen teacher


def test_distill_objective_weights_each_term_as_the_paper(teacher_ckpt, tmp_path):
    """L = 1.0 L_depth + 0.5 L_XKD + 0.5 L_D2KD, each term recomputed here from the loss functions."""
    config = load_config(None, 'distill', [f'distill.teacher={teacher_ckpt}', 'distill.kd=both',
                                           'loss.w_single=0', 'loss.w_smooth=0', f'run_dir={tmp_path}'])
    assert (config.distill.lambda_depth, config.distill.lambda_xkd, config.distill.lambda_d2kd) == (1.0, 0.5, 0.5)
    teacher, _ = load_model(teacher_ckpt)
    teacher.eval().requires_grad_(False)
    torch.manual_seed(0)
    student = build_model('xd_rcdepth', init_depth=12.0)
    student.train()
    g = torch.Generator().manual_seed(1)
    image, radar = torch.randn(2, 3, 32, 64, generator=g), torch.zeros(2, 4, 32, 64)
    radar[:, 0, 10, 20:40:4] = 15.0
    gt = torch.rand(2, 1, 32, 64, generator=g) * 40 + 2
    gt[:, :, :8] = 0                                    # no GT in the top rows (sky)
    batch = {'image': image, 'radar': radar, 'depth_interp': gt, 'depth_sparse': gt}
    out = student(image, radar)
    loss, terms = make_objective(config, teacher)(student, out, batch)
    valid = valid_depth_mask(gt, config.loss.min_depth)
    t_out, t_maps = teacher_saliency(teacher, image, radar)
    expect = {'depth': masked_l1(out['depth'], gt, config.loss.min_depth),
              'xkd': 0.5 * xkd_loss(student_saliency(student, image, radar), t_maps)[0],
              'd2kd': 0.5 * d2kd_loss(out['depth'], t_out['depth'], bin_centres(100, 100.0), 1.0, valid)}
    assert set(terms) == set(expect)
    for name, value in expect.items():
        assert float(terms[name]) == pytest.approx(float(value.detach()), rel=1e-4, abs=1e-6), name
    assert float(loss.detach()) == pytest.approx(sum(float(v.detach()) for v in expect.values()), rel=1e-5)


def test_cached_teacher_targets_give_the_online_losses(cache, teacher_ckpt, tmp_path):
    """distill.teacher_targets (full-frame crops, no colour jitter) feeds the objective exactly what
    running the teacher on the batch gives: same D2-KD and X-KD terms on the same batches."""
    full = ['data.crop=[96,192]', 'data.color_jitter_p=0', f'distill.teacher={teacher_ckpt}', 'distill.kd=both',
            'max_steps=1', *NO_VAL, *SMALL]
    online = Trainer(make_config(cache, tmp_path / 'online', 'distill', *full), progress=False)
    cached = Trainer(make_config(cache, tmp_path / 'cached', 'distill', *full,
                                 f'distill.teacher_targets={tmp_path / "targets"}'), progress=False)
    assert online.teacher_targets is None and cached.teacher_targets is not None
    assert len(list((tmp_path / 'targets').glob('train-*.pt'))) == 1
    online.sampler.set_position(0, 0)
    batch = next(iter(make_loader(online.train_dataset, online.sampler, 0, False)))
    looked_up = cached.teacher_targets.lookup(batch['name'], batch['flipped'])
    assert batch['flipped'].any() and not batch['flipped'].all()     # both flips in this batch
    student = online.model.train()
    out = student(batch['image'], batch['radar'])
    _, terms_online = online.objective(student, out, batch)
    _, terms_cached = cached.objective(student, out, {**batch, **looked_up})
    for name in ('d2kd', 'xkd', 'depth'):
        assert float(terms_cached[name]) == pytest.approx(float(terms_online[name]), rel=1e-4, abs=1e-6), name
    # a second trainer reuses the file; a crop smaller than the frame is refused
    again = Trainer(make_config(cache, tmp_path / 'again', 'distill', *full,
                                f'distill.teacher_targets={tmp_path / "targets"}'), progress=False)
    assert torch.equal(again.teacher_targets.depth, cached.teacher_targets.depth)
    with pytest.raises(ValueError, match='full-frame'):
        Trainer(make_config(cache, tmp_path / 'crop', 'distill', *full, 'data.crop=[64,128]',
                            f'distill.teacher_targets={tmp_path / "targets"}'), progress=False)
    with pytest.raises(ValueError, match='color_jitter_p=0'):
        make_config(cache, tmp_path / 'x', 'distill', *full, 'data.color_jitter_p=0.5',
                    f'distill.teacher_targets={tmp_path / "targets"}')


def test_early_stop_on_a_validation_plateau_and_resume_stays_stopped(cache, tmp_path):
    # min_delta 100 %: no validation after the first counts as an improvement
    common = ['max_steps=12', 'val_every=1', 'early_stop_patience=2', 'early_stop_min_delta=1.0', *SMALL]
    summary = Trainer(make_config(cache, tmp_path / 'run', 'student', *common), progress=False).fit()
    assert summary['stopped_early'] and summary['finished'] and summary['step'] == 3
    ckpt = read_checkpoint(tmp_path / 'run' / 'checkpoints' / 'last.pt')
    assert ckpt['step'] == 3 and ckpt['plateau']['stopped']
    resumed = Trainer(make_config(cache, tmp_path / 'run', 'student', *common), resume='auto', progress=False)
    assert resumed.fit()['step'] == 3
    with pytest.raises(ValueError, match='early_stop_patience'):
        make_config(cache, tmp_path / 'x', 'student', 'early_stop_patience=2', *NO_VAL)


def test_a_non_finite_loss_stops_training_before_any_checkpoint_holds_it(cache, tmp_path):
    """The loss is checked one step late (no GPU wait per step), but always before a log line, a
    validation or a checkpoint: the error names the step, and last.pt keeps the last finite state."""
    from xd_rcdepth_core.training.data import cache_datasets
    config = make_config(cache, tmp_path / 'run', 'student', 'max_steps=8', 'log_every=50', 'image_every=50',
                         'checkpoint_every=4', 'val_every=50', *SMALL)
    train, val_frames = cache_datasets(config)

    class Poisoned(torch.utils.data.Dataset):     # from the 6th item on (step 2 at batch 2), NaN images
        def __init__(self):
            self.calls = 0

        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            item, self.calls = dict(train[i]), self.calls + 1
            if self.calls > 5:
                item['image'] = torch.full_like(item['image'], float('nan'))
            return item
    trainer = Trainer(config, train_dataset=Poisoned(), val_frames=val_frames, progress=False)
    with pytest.raises(FloatingPointError, match=r'loss is nan at step 2 '):
        trainer.fit()
    assert trainer.step == 3           # found at the start of the next step, before step 4's checkpoint
    assert not (tmp_path / 'run' / 'checkpoints' / 'last.pt').exists()

    at_save = Trainer(make_config(cache, tmp_path / 'run2', 'student', 'max_steps=8', 'log_every=50',
                                  'image_every=50', 'checkpoint_every=3', 'val_every=50', *SMALL),
                      train_dataset=Poisoned(), val_frames=val_frames, progress=False)
    with pytest.raises(FloatingPointError, match='at step 2 '):
        at_save.fit()                  # step 2 is the last before checkpoint 3: checked there, at once
    assert at_save.step == 3 and not (tmp_path / 'run2' / 'checkpoints' / 'last.pt').exists()


def test_time_budget_stops_at_a_validation_and_counts_as_finished(cache, tmp_path):
    """max_minutes: the run stops at the first validation after the budget, finished, with its reason."""
    common = ['max_steps=50', 'val_every=2', 'max_minutes=1e-9', *SMALL]
    summary = Trainer(make_config(cache, tmp_path / 'run', 'student', *common), progress=False).fit()
    assert summary['finished'] and summary['stop_reason'] == 'time' and summary['step'] == 2
    assert (tmp_path / 'run' / 'checkpoints' / 'best.pt').is_file()
    plain = Trainer(make_config(cache, tmp_path / 'plain', 'student', 'max_steps=2', 'val_every=2', *SMALL),
                    progress=False).fit()
    assert plain['finished'] and plain['stop_reason'] == 'steps'
    with pytest.raises(ValueError, match='max_minutes'):
        make_config(cache, tmp_path / 'x', 'student', 'max_minutes=5', *NO_VAL)


def test_kd_warm_up_starts_and_ramps_the_kd_terms(teacher_ckpt, tmp_path):
    """distill.kd_start_step / kd_ramp_steps: no KD (the teacher is not run) before the start, then the
    terms' weights rise linearly to lambda2 / lambda3."""
    from xd_rcdepth_core.training.objectives import make_objective
    config = load_config(None, 'distill', [f'distill.teacher={teacher_ckpt}', 'distill.kd=both', f'run_dir={tmp_path}',
                                           'distill.kd_start_step=2', 'distill.kd_ramp_steps=2'])
    teacher, _ = load_model(teacher_ckpt)
    objective = make_objective(config, teacher.eval().requires_grad_(False))
    torch.manual_seed(0)
    student = build_model('xd_rcdepth', init_depth=12.0, **{k.split('.')[-1].split('=')[0]: yaml.safe_load(
        k.split('=')[1]) for k in SMALL}).train()
    g = torch.Generator().manual_seed(1)
    batch = {'image': torch.randn(2, 3, 32, 64, generator=g), 'radar': torch.zeros(2, 4, 32, 64),
             'depth_interp': torch.rand(2, 1, 32, 64, generator=g) * 40 + 2}
    batch['depth_sparse'] = batch['depth_interp']
    out = student(batch['image'], batch['radar'])
    seen = {}
    for step in range(5):
        objective.step = step
        seen[step] = {k: float(v) for k, v in objective(student, out, batch)[1].items()}
    assert 'xkd' not in seen[0] and 'd2kd' not in seen[1]
    assert seen[2]['d2kd'] == pytest.approx(0.5 * seen[3]['d2kd']) and seen[3]['d2kd'] == pytest.approx(seen[4]['d2kd'])
    assert seen[2]['xkd'] == pytest.approx(0.5 * seen[4]['xkd'])
    with pytest.raises(ValueError, match='kd_start_step'):
        load_config(None, 'distill', [f'distill.teacher={teacher_ckpt}', 'distill.kd_start_step=-1'])


# ----------------------------------------------------------------------------- resume


def test_resume_after_interruption_equals_uninterrupted_run(cache, tmp_path):
    # 3 batches per epoch: the interruption at step 2 is mid-epoch, the run ends in the second epoch.
    common = ['max_steps=4', 'val_every=4', 'optim.grad_clip_norm=0.5', *SMALL]
    full = Trainer(make_config(cache, tmp_path / 'full', 'student', *common), progress=False)
    full.fit()
    part = Trainer(make_config(cache, tmp_path / 'part', 'student', *common), progress=False)
    assert part.fit(stop_after=2)['step'] == 2            # "killed" after its step-2 checkpoint
    # Resume in a fresh Trainer; a worker process now draws the items (the augmentation must not care).
    resumed = Trainer(make_config(cache, tmp_path / 'part', 'student', *common, 'data.workers=1'),
                      resume='auto', progress=False)
    assert resumed.step == 2
    assert resumed.fit()['step'] == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    sa, sb = full.optimizer.state_dict()['state'], resumed.optimizer.state_dict()['state']
    assert all(torch.equal(sa[i]['exp_avg_sq'], sb[i]['exp_avg_sq']) for i in sa)
    lr_full = {r['step']: (r['lr'], r['loss/total']) for r in log_lines(tmp_path / 'full')}
    lr_part = {r['step']: (r['lr'], r['loss/total']) for r in log_lines(tmp_path / 'part')}
    assert lr_full == lr_part                               # same LR and same loss at every step
    assert read_checkpoint(tmp_path / 'part' / 'checkpoints' / 'last.pt')['step'] == 4


def test_resume_refuses_other_model_and_weights_only_files(cache, tmp_path, teacher_ckpt):
    with pytest.raises(ValueError, match='holds weights only'):
        Trainer(make_config(cache, tmp_path / 'r', 'student', 'max_steps=1', *NO_VAL), resume=teacher_ckpt,
                progress=False)
    with pytest.raises(FileNotFoundError, match='nothing to resume'):
        Trainer(make_config(cache, tmp_path / 'r', 'student', 'max_steps=1', *NO_VAL), resume='auto', progress=False)


class _Evil:
    """Unpickling this runs Path.touch(marker): what weights_only=True loading must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_checkpoint_is_not_executed(cache, tmp_path, monkeypatch, capsys):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pt'
    torch.save({'format': 'xd_rcdepth.checkpoint', 'version': 1, 'model_name': 'xd_rcdepth', 'model_config': {},
                'state_dict': {}, 'optimizer': _Evil(marker), 'step': 1, 'train': {}}, evil)
    with pytest.raises(ValueError, match='weights_only=True'):
        Trainer(make_config(cache, tmp_path / 'r', 'student', 'max_steps=1', *NO_VAL), resume=evil, progress=False)
    with pytest.raises(ValueError, match='weights_only=True'):
        Trainer(make_config(cache, tmp_path / 'r', 'student', 'max_steps=1', *NO_VAL, f'model.init={evil}'),
                progress=False)
    assert cli(['eval', '--checkpoint', str(evil), '--cache', str(cache), '--quiet'], monkeypatch) == 2
    assert 'weights_only=True' in capsys.readouterr().err
    assert not marker.exists()


# ----------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_agree_on_the_weights(cache, teacher_ckpt, tmp_path):
    """torchrun, 2 processes, gloo on 127.0.0.1, the distill recipe with both KD terms (X-KD's
    double backward under DistributedDataParallel included)."""
    run = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--nnodes', '1',
           '--master_addr', '127.0.0.1', '--master_port', str(_free_port()),
           '-m', 'xd_rcdepth_core.commands.train', '--recipe', 'distill', '--run-dir', str(run), '--quiet',
           f'data.cache={cache}', f'distill.teacher={teacher_ckpt}', 'data.crop=[64,128]', 'data.batch_size=1',
           'data.workers=0', 'max_steps=2', 'data.val_limit=2', *SMALL]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['world_size'] == 2 and summary['step'] == 2
    digests = summary['replica_digests']
    assert len(digests) == 2 and digests[0] == digests[1]
    assert summary['val']['images'] == 2                 # the val frames, sharded over the 2 ranks


# ----------------------------------------------------------------------------- pieces


def test_confidence_target_window_rule():
    radar = torch.zeros(1, 4, 5, 9)
    gt = torch.full((1, 1, 5, 9), 10.0)
    gt[..., 0, :] = 20.0
    radar[0, 0, 1, 1] = 10.2            # first in raster order: window rows 0-2, cols 0-3 (clipped)
    radar[0, 0, 2, 3] = 20.1            # later: rows 1-3, cols 1-5, overwrites the overlap with its labels
    target = confidence_target(radar, gt, window=(1, 2), threshold=0.4)
    assert target.shape == (1, 1, 5, 9)
    expected = torch.zeros(5, 9)
    expected[1:3, 0:4] = 1.0            # |10 - 10.2| < 0.4 (row 0 holds 20 m: |20 - 10.2| >= 0.4)
    expected[1:4, 1:6] = 0.0            # second window: |10 - 20.1| >= 0.4 everywhere in rows 1-3
    assert torch.equal(target[0, 0], expected)
    label = confidence_target_map(radar[0, 0].numpy(), gt[0, 0].numpy(), window=(1, 2), threshold=0.4)
    assert label.dtype.name == 'float32' and label.sum() == expected.sum()


def test_poly_schedule_and_parameter_groups():
    sched = PolySchedule(1e-4, total_steps=100, end_ratio=0.1, power=0.9)
    assert sched.lr(0) == pytest.approx(1e-4)
    assert sched.lr(100) == pytest.approx(1e-5)
    assert sched.lr(50) == pytest.approx(0.9e-4 * 0.5 ** 0.9 + 1e-5)
    model = build_model('xd_rcdepth')
    config = TrainConfig()
    optimizer = build_optimizer(model, config.optim)
    groups = {g['name']: g for g in optimizer.param_groups}
    assert groups['decoder']['weight_decay'] == 0.0 and groups['encoders']['weight_decay'] == 1e-4
    assert optimizer.defaults['eps'] == 1e-2
    decoder_ids = {id(p) for p in model.decoder.parameters()}
    assert {id(p) for p in groups['decoder']['params']} == decoder_ids
    assert sum(len(g['params']) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_config_overrides_and_errors(tmp_path):
    config = load_config(ROOT / 'config' / 'train_distill.yaml', 'distill',
                         ['optim.lr=2e-5', 'distill.kd=xkd', 'model.config.fusion=add', 'max_steps=null'])
    assert config.optim.lr == 2e-5 and config.distill.kd == 'xkd' and config.model.config == {'fusion': 'add'}
    assert config.distill.lambda_depth == 1.0 and config.distill.lambda_xkd == 0.5 and config.distill.lambda_d2kd == 0.5
    assert config.max_steps is None and config.distill.xkd_layers == ('image', 'radar', 'decoder')
    with pytest.raises(ValueError, match='unknown config key optim.lrr'):
        load_config(None, 'student', ['optim.lrr=1'])
    with pytest.raises(ValueError, match='distill.kd must be one of'):
        load_config(None, 'student', ['distill.kd=all'])
    with pytest.raises(ValueError, match='optim.lr: cannot use'):
        load_config(None, 'student', ['optim.lr=fast'])
    with pytest.raises(ValueError, match='key=value'):
        load_config(None, 'student', ['optim.lr'])
    with pytest.raises(FileNotFoundError, match='config file not found'):
        load_config(tmp_path / 'missing.yaml', 'student')
    with pytest.raises(ValueError, match='trains a CaFNet'):
        load_config(None, 'teacher')
    with pytest.raises(ValueError, match='needs a teacher checkpoint'):
        load_config(None, 'distill')


def _one_error_line(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'xd-rcdepth {command}: error:'), err
    return err[0]


def test_cli_bad_inputs_give_one_line_and_nonzero_exit(cache, tmp_path, teacher_ckpt, monkeypatch, capsys):
    run = ['--run-dir', str(tmp_path / 'bad'), '--quiet']
    assert cli(['train', '--recipe', 'student', '--config', str(tmp_path / 'nope.yaml'), *run], monkeypatch) == 2
    assert 'config file not found' in _one_error_line(capsys, 'train')
    assert cli(['train', '--recipe', 'student', *run, 'data.batchsize=2'], monkeypatch) == 2
    assert 'unknown config key data.batchsize' in _one_error_line(capsys, 'train')
    assert cli(['train', '--recipe', 'teacher', *run, f'data.cache={cache}'], monkeypatch) == 2
    assert 'trains a CaFNet' in _one_error_line(capsys, 'train')
    student_ckpt = save_checkpoint(tmp_path / 'student.pt', build_model('xd_rcdepth'))
    assert cli(['train', '--recipe', 'distill', *run, f'data.cache={cache}', *TINY,
                f'distill.teacher={student_ckpt}'], monkeypatch) == 2
    assert 'needs a CaFNet teacher' in _one_error_line(capsys, 'train')
    assert cli(['train', '--recipe', 'student', *run, f'data.cache={cache}', *TINY,
                f'model.init={teacher_ckpt}'], monkeypatch) == 2
    assert "holds a 'cafnet' model" in _one_error_line(capsys, 'train')
    assert cli(['train', '--recipe', 'student', *run, f'data.cache={tmp_path / "nocache"}'], monkeypatch) == 2
    assert 'not a prepared cache' in _one_error_line(capsys, 'train')
    assert cli(['train', '--recipe', 'student', *run, f'data.cache={cache}', 'data.train_split=test'],
               monkeypatch) == 2
    assert "split 'test' not in cache" in _one_error_line(capsys, 'train')
    # `--resume key=value`: the override is not taken for a checkpoint path; the run's last.pt is looked for.
    assert cli(['train', '--recipe', 'student', *run, '--resume', f'data.cache={cache}', *TINY], monkeypatch) == 2
    assert 'nothing to resume' in _one_error_line(capsys, 'train')
    assert cli(['eval', '--checkpoint', str(tmp_path / 'missing.pt'), '--cache', str(cache)], monkeypatch) == 2
    assert 'file not found' in _one_error_line(capsys, 'eval')
