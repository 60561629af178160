"""Distillation ablation (the paper's Table 3) on SYNTHETIC data: a protocol that can decide.

    python benchmarks/distillation.py --plan decide [--only none both] [--seeds 0 1] [--threads 1]
    python benchmarks/distillation.py --plan decide --status        # what is done, what remains
    python benchmarks/distillation.py --plan decide --jobs 12 --teacher-minutes 2.5 --nondeterministic
                                                                     # a lent GPU: 12 runs at once

1. A synthetic cache: train / val / test by scene, never shared (plan `decide`: 30 / 6 / 8 scenes).
2. The CaFNet teacher (CaFNet_single loss), trained once until its val MAE is flat (early stop),
   cached and reused by every student; its test metrics are a row of the table.
   Optional baselines of the paper's table (only with --only; not in the default plan): `lircdepth`
   (LiRCDepth by the student recipe, model.name=lircdepth) and `radarnet` (RadarNet's stage 1 by
   radarnet-stage1, then stage 2 by radarnet-stage2 from stage 1's best checkpoint, each with the
   student budget; config/train_radarnet_stage*.yaml's learning rates), evaluated and tabulated like
   the students.
3. Students: every variant from the same initialisation and data order per seed (the Trainer seeds
   both from `seed`), the same budget, best-on-val checkpoint. The teacher's outputs are computed
   once per training sample (distill.teacher_targets: exact, because items are full frames without
   colour jitter), which halves a distilled step on a CPU.
4. Each run's best checkpoint on the test scenes by the paper's protocol; per variant mean +- std
   over seeds, and the paired per-seed MAE gain over no-KD at 80 m with its 95 % t interval.

Resumable and incremental: finished runs are skipped, a killed run resumes from its last
checkpoint, evaluations are cached, and the table merges every finished run in OUT, so the plan can
run in pieces hours apart, or in two processes at once (a run being trained elsewhere holds a lock
and is skipped). With --jobs N, N runs train at once, each in its own process: the teacher and the
runs that need no teacher first, the distilled runs once the teacher and its cached outputs are
ready. A run this small is bound by its host (Python, kernel launches, items), not by a GPU, so one
GPU serves many runs. Decisions (settings, budgets) are taken on val; test is only reported.
The data are synthetic: the table measures whether the losses help here, not the paper's numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from xd_rcdepth_core.evaluate import EvalOptions, evaluate, frames_from_cache
from xd_rcdepth_core.geometry import perturb_extrinsics
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.reproduce.runs import RunBusy, finished_summary, last_checkpoint, train_run
from xd_rcdepth_core.training import load_config
from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache

# Plans. Step costs on one thread of a 2-core AVX2 EPYC at 96 x 192, batch 4 (s / step): teacher ~5,
# student 0.8, D2-KD 0.85 and X-KD / both 2.7 with cached teacher outputs (the student's Grad-CAM
# double backward is the rest). `decide`: ~2 h per seed for the four variants on such a CPU. On an
# H200 (2026-12-04, 8 runs at once): teacher 0.135 s a step, student 0.18, D2-KD 0.15. One run alone
# there (benchmarks/kd_step.py): student 0.053, X-KD 0.18 (0.66 before distill/grouped_conv.py).
PLANS = {
    # tests: the plumbing (scheduling, resume, tables), not a measurement
    'smoke': dict(size=(64, 128), batch=2, scenes={'train': 2, 'val': 1, 'test': 1}, frames=2,
                  teacher_steps=4, teacher_val_every=2, student_steps=4, val_every=2, seeds=(0,), patience=None),
    'quick': dict(size=(64, 128), batch=2, scenes={'train': 3, 'val': 1, 'test': 1}, frames=4,
                  teacher_steps=40, teacher_val_every=20, student_steps=20, val_every=10, seeds=(0, 1),
                  patience=None),
    'decide': dict(size=(96, 192), batch=4, scenes={'train': 30, 'val': 6, 'test': 8}, frames=12,
                   teacher_steps=2500, teacher_val_every=250, student_steps=1000, val_every=100,
                   seeds=(0, 1, 2, 3, 4), patience=4),
}
TEACHER_MIN_DELTA = 0.01      # teacher early stop: val MAE at 80 m better by < 1 % for `patience` validations
LR = {'teacher': 2e-4, 'student': 2e-4}   # ours for from-scratch CPU budgets (references: 1e-4 / 5e-5)
# Every run: Adam eps 1e-6 (the references' 1e-2 swamps fresh weights' small gradients), full-frame
# items without colour jitter (so teacher outputs can be cached), no smoothness-free shortcuts.
# fp32 everywhere (amp off: on a GPU this loop is bound by its host, and fp16 would make GPU and CPU
# numbers differ and risk X-KD's double backward in fp16).
COMMON = ['optim.eps=1e-6', 'data.color_jitter_p=0', 'amp=false']
STUDENT = ['model.config.init_depth=12.0']   # median single-sweep depth of the synthetic world
# Student variants: the paper's four (the default plan), then the settings tried while searching for what
# makes distillation help (each chosen or rejected on val, never on test) and the calibration-jitter one.
PAPER_VARIANTS = ('none', 'xkd', 'd2kd', 'both')
VARIANTS = {
    'none': ('student', []),
    'xkd': ('distill', ['distill.kd=xkd']),
    'd2kd': ('distill', ['distill.kd=d2kd']),
    'both': ('distill', ['distill.kd=both']),
    # search: the student learns depth alone first, then the KD terms ramp in
    'both_warm': ('distill', ['distill.kd=both', 'distill.kd_start_step=300', 'distill.kd_ramp_steps=200']),
    # search: lighter KD weights (lambda2 = lambda3 = 0.1)
    'both_l0.1': ('distill', ['distill.kd=both', 'distill.lambda_xkd=0.1', 'distill.lambda_d2kd=0.1']),
    # search: softer depth distributions (2 m temperature over 1 m bins)
    'both_tau2': ('distill', ['distill.kd=both', 'distill.d2kd_tau=2.0']),
    # calibration robustness: radar extrinsics jittered by up to 2 degrees and 0.2 m per training item
    'none_jitter': ('student', ['data.extrinsic_jitter=[2.0,0.2]']),
}
# Mis-calibrations the test split is evaluated under (issue 14): (label, yaw deg, pitch deg, translation m)
CALIBRATION = [('exact', 0, 0, 0)] + [(f'yaw {d:g} deg', d, 0, 0) for d in (0.5, 1, 2)] + \
    [(f'pitch {d:g} deg', 0, d, 0) for d in (0.5, 1, 2)] + [(f'shift {c} cm', 0, 0, c / 100) for c in (5, 10, 20)]
CALIBRATION_ROWS = ('none', 'none_jitter')
LABELS = {'teacher': 'CaFNet teacher', 'none': 'student, no KD', 'xkd': 'X-KD only', 'd2kd': 'D2-KD only',
          'both': 'X-KD + D2-KD', 'both_warm': 'both, KD from step 300 (ramp 200)',
          'both_l0.1': 'both, lambda2 = lambda3 = 0.1', 'both_tau2': 'both, D2-KD tau 2',
          'none_jitter': 'no KD, extrinsics jittered in training'}
METRICS = ('mae', 'rmse', 'abs_rel', 'd1')
STOPS = {'plateau': ': val MAE flat', 'time': ': time budget', 'steps': ': step budget'}
# Baselines (--only lircdepth radarnet): (recipe, overrides) of each training run, in order. No init_depth:
# LiRCDepth's head has no bias to set (it starts at 50 m) and RadarNet's output is d_min / (sigmoid + 0.01).
# RadarNet's stage 2 starts from its stage 1 (run folder RUN/stage1; train_baseline sets model.init).
BASELINES = {
    'lircdepth': [('student', ['model.name=lircdepth', 'model.config.fusion=add', f'optim.lr={LR["student"]}'])],
    'radarnet': [('radarnet-stage1', []), ('radarnet-stage2', [])],
}
LABELS = {**LABELS, 'lircdepth': 'LiRCDepth (baseline)', 'radarnet': 'RadarNet (baseline, stage 1 + stage 2)'}


# ----------------------------------------------------------------------------- runs

def train(run_dir: Path, recipe: str, overrides: list, log) -> dict | None:
    """Train (or resume) one run; None when another process is training it (reproduce/runs.py)."""
    if finished_summary(run_dir):
        return finished_summary(run_dir)
    config = load_config(ROOT / 'config' / f'train_{recipe.replace("-", "_")}.yaml', recipe,
                         [f'run_dir={run_dir}', *overrides])
    log(f'  {run_dir.name}: training {recipe}' + (' (resuming)' if last_checkpoint(run_dir) else ''))
    try:
        return train_run(config, log=lambda m: log(f'    {m}'))
    except RunBusy:
        log(f'  {run_dir.name}: being trained by another process; skipped')
        return None


def evaluate_run(run_dir: Path, cache: Path, split: str = 'test') -> dict:
    out = run_dir / f'eval_{split}'
    if (out / 'metrics.json').is_file():
        return json.loads((out / 'metrics.json').read_text())
    ckpt = run_dir / 'checkpoints' / 'best.pt'
    estimator = DepthEstimator.from_checkpoint(ckpt, device='auto', backend='torch')
    return evaluate(estimator, frames_from_cache(cache, split), EvalOptions(progress=False), out,
                    meta={'checkpoint': str(ckpt)})


def calibration_curve(run_dir: Path, cache: Path) -> dict:
    """{label: MAE at 80 m} of a run's best checkpoint on the test split, its radar extrinsics
    mis-calibrated as each CALIBRATION entry says (cached in the run folder)."""
    path = run_dir / 'eval_calibration.json'
    if path.is_file():
        return json.loads(path.read_text())
    est = DepthEstimator.from_checkpoint(run_dir / 'checkpoints' / 'best.pt', device='auto', backend='torch')
    out = {}
    for label, yaw, pitch, shift in CALIBRATION:
        frames = (f.replace(T_camera_radar=perturb_extrinsics(f.T_camera_radar, yaw, pitch, (shift, 0.0, 0.0)))
                  for f in frames_from_cache(cache, 'test'))
        out[label] = mae80(evaluate(est, frames, EvalOptions(progress=False)))
    path.write_text(json.dumps(out, indent=2) + '\n')
    return out


def calibration_table(curves: dict) -> tuple:
    """(markdown lines, {row: mean MAE growth at 1 degree in %}) from {row: {seed: curve}}."""
    labels = [c[0] for c in CALIBRATION]
    lines = ['| variant | seeds | ' + ' | '.join(labels) + ' |', '|---|---|' + '---|' * len(labels)]
    growth = {}
    for row, runs in curves.items():
        mean = {k: float(np.mean([c[k] for c in runs.values()])) for k in labels}
        lines.append(f"| {LABELS.get(row, row)} | {len(runs)} | " + ' | '.join(f'{mean[k]:.3f}' for k in labels) + ' |')
        growth[row] = 100 * (max(mean['yaw 1 deg'], mean['pitch 1 deg']) - mean['exact']) / mean['exact']
    return lines, growth


def calibration_png(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    groups = [('yaw', 'yaw error (deg)', (0, 0.5, 1, 2)), ('pitch', 'pitch error (deg)', (0, 0.5, 1, 2)),
              ('shift', 'lateral offset (cm)', (0, 5, 10, 20))]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, (kind, xlabel, xs) in zip(axes, groups):
        for row, runs in curves.items():
            keys = ['exact'] + [f'{kind} {x:g} {"cm" if kind == "shift" else "deg"}' for x in xs[1:]]
            ys = [np.mean([c[k] for c in runs.values()]) for k in keys]
            ax.plot(xs, ys, marker='o', label=LABELS.get(row, row))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('MAE at 80 m (m), test split')
    axes[0].legend(fontsize=8)
    fig.suptitle('Radar extrinsics mis-calibrated at inference (synthetic test scenes)')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_baseline(run_dir: Path, variant: str, seed: int, common: list, plan: dict, log) -> dict | None:
    """Train a baseline's runs in order (RadarNet: stage 1 in RUN/stage1, then stage 2 from its best
    checkpoint in RUN); the student budget per run. None while a run of it is unfinished."""
    budget = [f'max_steps={plan["student_steps"]}', f'seed={seed}', f'val_every={plan["val_every"]}',
              f'checkpoint_every={plan["val_every"]}']
    stages = BASELINES[variant]
    summary = None
    for i, (recipe, extra) in enumerate(stages):
        last = i == len(stages) - 1
        folder = run_dir if last else run_dir / f'stage{i + 1}'
        init = [f'model.init={run_dir / f"stage{i}" / "checkpoints" / "best.pt"}'] if i else []
        summary = train(folder, recipe, [*common, *budget, *extra, *init], log)
        if summary is None:
            return None
    return summary


# ----------------------------------------------------------------------------- statistics

def _stats(values) -> dict | None:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if v.size > 1 else 0.0, 'n': int(v.size),
            'values': v.tolist()}


def paired_gain(none: dict, other: dict) -> dict | None:
    """Per-seed MAE gain at 80 m of `other` over no-KD, in % of no-KD, with its 95 % t interval."""
    from scipy import stats as st
    seeds = sorted(set(none) & set(other))
    gains = [100 * (none[s] - other[s]) / none[s] for s in seeds]
    out = _stats(gains)
    if out is None:
        return None
    out['seeds'] = seeds
    if out['n'] > 1:
        half = float(st.t.ppf(0.975, out['n'] - 1)) * out['std'] / out['n'] ** 0.5
        out['ci95'] = [out['mean'] - half, out['mean'] + half]
    return out


def mae80(metrics: dict) -> float:
    return metrics['by_range']['80']['mae']


def tabulate(evals: dict, vals: dict) -> dict:
    """{row: {range: {metric: stats}}, gain_80, val_mae_80} from {row: {seed: test metrics}}."""
    table = {}
    none80 = {s: mae80(m) for s, m in evals.get('none', {}).items()}
    for row, runs in evals.items():
        entry = {r: {m: _stats(x['by_range'][r][m] for x in runs.values()) for m in METRICS}
                 for r in ('50', '70', '80')}
        entry['val_mae_80'] = _stats(vals.get(row, {}).values())
        if row not in ('teacher', 'none'):
            entry['gain_80'] = paired_gain(none80, {s: mae80(m) for s, m in runs.items()})
        table[row] = entry
    if {'teacher', 'none', 'both'} <= set(table):
        t, n, b = (table[k]['80']['mae']['mean'] for k in ('teacher', 'none', 'both'))
        table['both']['gap_closed'] = (n - b) / (n - t) if n != t else None
    return table


def markdown(table: dict, meta: dict) -> str:
    def cell(s):
        if s is None:
            return 'n/a'
        return f"{s['mean']:.3f} ± {s['std']:.3f}" if s['n'] > 1 else f"{s['mean']:.3f}"

    def gain(g):
        if g is None:
            return ''
        ci = f" [{g['ci95'][0]:+.1f}, {g['ci95'][1]:+.1f}]" if 'ci95' in g else ''
        return f"{g['mean']:+.2f} %{ci} (n={g['n']})"
    size, scenes = meta['size'], meta['scenes']
    lines = [f"# Distillation ablation on synthetic data (plan {meta['plan']})", '',
             f"Synthetic scenes {scenes['train']} train / {scenes['val']} val / {scenes['test']} test x "
             f"{meta['frames']} frames at {size[0]}x{size[1]} (test: {meta['test_frames']} frames); full-frame "
             f"items, batch {meta['batch']}; teacher up to {meta['teacher_steps']} steps (stopped at "
             f"{meta.get('teacher_stopped_at')}{STOPS.get(meta.get('teacher_stop_reason'), '')}), "
             f"each student {meta['student_steps']} steps, best-on-val "
             f"checkpoint; mean ± sample std over seeds. Synthetic data: not the paper's nuScenes numbers.", '',
             '| variant | seeds | val MAE 80 m | MAE 50 m | MAE 70 m | MAE 80 m | RMSE 80 m | AbsRel 80 m | δ1 80 m '
             '| MAE gain vs no KD at 80 m, paired [95 % CI] |',
             '|---|---|---|---|---|---|---|---|---|---|']
    order = ['teacher', *BASELINES, 'none', 'xkd', 'd2kd', 'both'] + sorted(k for k in table if k not in LABELS)
    for row in order:
        if row not in table:
            continue
        t = table[row]
        lines.append(f"| {LABELS.get(row, row)} | {t['80']['mae']['n']} | {cell(t['val_mae_80'])} | "
                     f"{cell(t['50']['mae'])} | {cell(t['70']['mae'])} | {cell(t['80']['mae'])} | "
                     f"{cell(t['80']['rmse'])} | {cell(t['80']['abs_rel'])} | {cell(t['80']['d1'])} | "
                     f"{gain(t.get('gain_80'))} |")
    if table.get('both', {}).get('gap_closed') is not None:
        lines += ['', f"X-KD + D2-KD closes {100 * table['both']['gap_closed']:.1f} % of the teacher-student gap "
                      f"(MAE at 80 m; paper: 38 %)."]
    lines += ['', 'Paper (nuScenes, 80 m MAE): none 2.232, X-KD 2.114, D2-KD 2.132, both 2.054 (7.97 % gain).']
    return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------------- the plan

def student_runs(seeds, only) -> list:
    """(run name, variant, seed) in the order they are trained: seed by seed, so a partial plan is paired."""
    variants = only or list(PAPER_VARIANTS)
    unknown = sorted(set(variants) - set(VARIANTS) - set(BASELINES))
    if unknown:
        raise SystemExit(f'distillation.py: unknown variant(s) {unknown}; known: {sorted(VARIANTS)}, '
                         f'baselines {sorted(BASELINES)}')
    return [(f'{v}_s{s}', v, s) for s in seeds for v in variants]


def status(out: Path, runs: list) -> str:
    lines = []
    for name in ['teacher'] + [r[0] for r in runs]:
        run_dir = out / 'runs' / name
        if finished_summary(run_dir):
            state = 'done' + (' (evaluated)' if (run_dir / 'eval_test' / 'metrics.json').is_file() else '')
        elif (run_dir / 'checkpoints' / 'last.pt').is_file():
            state = 'started (resumes)'
        else:
            state = 'to do'
        lines.append(f'  {name:<24} {state}')
    todo = sum('to do' in line or 'started' in line for line in lines)
    return '\n'.join(lines) + f'\n  {len(lines) - todo} of {len(lines)} runs finished, {todo} remaining'


def needs_teacher(variant: str) -> bool:
    return variant in VARIANTS and VARIANTS[variant][0] == 'distill'


def plan_settings(plan: dict, cache: Path, jobs: int, name: str | None, deterministic: bool = True) -> list:
    """Overrides every run of the plan shares. Items load in the training process on a CPU (loader
    processes would take its cores). On a GPU the step is host-bound that way (the teacher at 96x192:
    0.19 s a step on an H200; 0.135 s with 4 loaders while 7 students shared the GPU), so loader
    processes overlap it there; with several runs at once the teacher gets four (its steps are the
    longest) and every other run one. Items are seeded per index: same data either way."""
    import torch
    cores = os.cpu_count() or 1
    workers = 0
    if torch.cuda.is_available():
        workers = min(4, cores - 1) if (jobs == 1 or name == 'teacher') else 1
    return [f'data.cache={cache}', f'data.crop={list(plan["size"])}', f'data.batch_size={plan["batch"]}',
            f'data.workers={workers}', 'log_every=20', 'image_every=100000', f'deterministic={deterministic}',
            *COMMON]


def train_teacher(out: Path, common: list, plan: dict, log, minutes: float | None = None) -> dict | None:
    """Until its val MAE is flat (early stop) or plan['teacher_steps']; ``minutes``: a time budget as
    well (a lent GPU), after which it stops at the next validation, finished, with its best-on-val."""
    patience = [f'early_stop_patience={plan["patience"]}', f'early_stop_min_delta={TEACHER_MIN_DELTA}'] \
        if plan['patience'] else []
    if minutes:
        patience.append(f'max_minutes={minutes}')
    return train(out / 'runs' / 'teacher', 'teacher',
                 [*common, 'model.name=cafnet', f'max_steps={plan["teacher_steps"]}', 'seed=0',
                  f'val_every={plan["teacher_val_every"]}', f'checkpoint_every={plan["teacher_val_every"]}',
                  f'optim.lr={LR["teacher"]}', 'loss.w_single=1.0', *patience], log)


def student_overrides(out: Path, variant: str, seed: int, common: list, plan: dict) -> tuple:
    """(recipe, overrides) of a student run."""
    recipe, extra = VARIANTS[variant]
    overrides = [*common, f'max_steps={plan["student_steps"]}', f'seed={seed}', f'optim.lr={LR["student"]}',
                 f'val_every={plan["val_every"]}', f'checkpoint_every={plan["val_every"]}', *STUDENT, *extra]
    if recipe == 'distill':
        overrides += [f'distill.teacher={out / "runs" / "teacher" / "checkpoints" / "best.pt"}',
                      f'distill.teacher_targets={out / "data" / "teacher_targets"}']
    return recipe, overrides


def train_student(out: Path, name: str, variant: str, seed: int, common: list, plan: dict, log) -> dict | None:
    if variant in BASELINES:
        return train_baseline(out / 'runs' / name, variant, seed, common, plan, log)
    return train(out / 'runs' / name, *student_overrides(out, variant, seed, common, plan), log)


def build_teacher_targets(out: Path, variants, common: list, plan: dict, log) -> None:
    """The teacher's cached outputs every distilled variant of the plan reads (one file per teacher
    and X-KD settings: the X-KD variants share one, D2-KD alone has its own), built once before the
    distilled runs start in parallel, so that they do not all compute the same file at once."""
    from xd_rcdepth_core.training import Trainer
    for variant in sorted(v for v in variants if needs_teacher(v)):
        recipe, overrides = student_overrides(out, variant, 0, common, plan)
        config = load_config(ROOT / 'config' / 'train_distill.yaml', recipe,
                             [f'run_dir={out / "runs" / ".targets"}', *overrides])
        log(f'teacher targets for {variant}')
        Trainer(config, log=log, progress=False).close()    # builds them, or finds them built


def run_one(out: Path, name: str, runs: list, cache: Path, common: list, plan: dict, log,
            teacher_minutes: float | None = None) -> int:
    """--run NAME: train one run of the plan (or the teacher, or the teacher targets) and evaluate it."""
    if name == 'targets':
        build_teacher_targets(out, {v for _, v, _ in runs}, common, plan, log)
        return 0
    if name == 'teacher':
        variant = 'teacher'
        summary = train_teacher(out, common, plan, log, teacher_minutes)
    else:
        match = [r for r in runs if r[0] == name]
        if not match:
            raise SystemExit(f'distillation.py: no run {name!r} in this plan; runs: teacher, targets, '
                             f'{", ".join(r[0] for r in runs)}')
        _, variant, seed = match[0]
        if needs_teacher(variant) and not finished_summary(out / 'runs' / 'teacher'):
            raise SystemExit(f'distillation.py: {name} needs the finished teacher; train it first (--run teacher)')
        summary = train_student(out, name, variant, seed, common, plan, log)
    if summary is None:
        return 1
    evaluate_run(out / 'runs' / name, cache)
    if variant in CALIBRATION_ROWS:
        calibration_curve(out / 'runs' / name, cache)
    log(f'{name}: done, evaluated')
    return 0


def run_parallel(args, out: Path, runs: list, jobs: int, log) -> set:
    """Train the plan's runs in up to ``jobs`` processes of this script (--run NAME) at once: the
    teacher and the runs that need no teacher from the start, the teacher targets when the teacher
    is done, then the distilled runs. A loop at 96x192 is bound by the host (kernel launches, items),
    not by a GPU, so several runs share one GPU well. Each process logs to OUT/logs/NAME.log and
    evaluates its run; a run that fails is reported and its dependants are not started. Returns the
    runs that failed or were not started."""
    import subprocess

    import torch
    # A run on a GPU needs one CPU thread (its host work is serial); more would oversubscribe the cores
    # its loader processes and the other runs share. On a CPU the runs split the cores.
    threads = 1 if torch.cuda.is_available() else max(1, (os.cpu_count() or 1) // jobs)
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    distilled = [r[0] for r in runs if needs_teacher(r[1])]
    todo = ['teacher'] + (['targets'] if distilled else []) + [r[0] for r in runs]
    after = {'targets': 'teacher', **{n: 'targets' for n in distilled}}
    done, failed, active = set(), set(), {}
    if finished_summary(out / 'runs' / 'teacher'):
        done.add('teacher')

    def launch(name):
        cmd = [sys.executable, str(Path(__file__).resolve()), '--plan', args.plan, '--out', args.out,
               '--seeds', *map(str, args.seeds_used), '--run', name, '--threads', str(threads),
               '--jobs', str(jobs)]
        if args.only:
            cmd += ['--only', *args.only]
        if args.teacher_minutes:
            cmd += ['--teacher-minutes', str(args.teacher_minutes)]
        if args.student_steps:
            cmd += ['--student-steps', str(args.student_steps)]
        if args.nondeterministic:
            cmd.append('--nondeterministic')
        handle = open(out / 'logs' / f'{name}.log', 'a')
        active[name] = (subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT), handle, time.perf_counter())
        log(f'started {name} ({len(active)} running, {threads} thread(s) each)')

    # `timeout` and schedulers stop a job with SIGTERM: end the runs too (they resume from last.pt)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        while todo or active:
            for name in list(todo):
                if len(active) >= jobs:
                    break
                need = after.get(name)
                if need in failed:
                    todo.remove(name)
                    failed.add(name)
                    log(f'{name}: not started ({need} failed)')
                elif need is None or need in done:
                    todo.remove(name)
                    if name in done:
                        continue
                    launch(name)
            for name, (proc, handle, t0) in list(active.items()):
                if proc.poll() is None:
                    continue
                handle.close()
                del active[name]
                took = time.perf_counter() - t0
                if proc.returncode == 0:
                    done.add(name)
                    log(f'{name}: finished in {took:.0f} s')
                else:
                    failed.add(name)
                    tail = (out / 'logs' / f'{name}.log').read_text().strip().splitlines()[-1:]
                    log(f'{name}: FAILED (exit {proc.returncode}) after {took:.0f} s: {" ".join(tail)} '
                        f'(log: {out / "logs" / f"{name}.log"})')
            time.sleep(0.5)
    finally:
        for proc, handle, _ in active.values():   # stopped from outside: a killed run resumes later
            proc.terminate()
        for proc, handle, _ in active.values():
            proc.wait()
            handle.close()
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--plan', choices=tuple(PLANS), default='decide')
    parser.add_argument('--out', default='out/benchmarks/distillation')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: all cores)')
    parser.add_argument('--seeds', type=int, nargs='+', default=None, help="default: the plan's")
    parser.add_argument('--only', nargs='+', default=None, metavar='VARIANT',
                        help=f'of {", ".join(VARIANTS)}; baselines {", ".join(BASELINES)}')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at once, each in its own process (a GPU: about its host\'s cores; '
                             'a CPU: 1, the runs would share its cores)')
    parser.add_argument('--run', default=None, metavar='NAME',
                        help='train and evaluate one run (teacher, targets or VARIANT_sSEED), then stop')
    parser.add_argument('--teacher-minutes', type=float, default=None,
                        help='a time budget for the teacher (a lent GPU): it stops at the first validation '
                             'after it, finished, and the table says so')
    parser.add_argument('--student-steps', type=int, default=None,
                        help="each student's budget instead of the plan's (a lease too short for the plan); "
                             'the runs go to OUT/PLAN-Nsteps, and the table says the budget')
    parser.add_argument('--nondeterministic', action='store_true',
                        help="cuDNN's fastest algorithms instead of deterministic ones (a GPU; runs are then "
                             'not bitwise repeatable, though every variant still starts from the same weights '
                             'and data order)')
    parser.add_argument('--status', action='store_true', help='print what is done and what remains, then stop')
    parser.add_argument('--no-train', action='store_true', help='only evaluate and tabulate finished runs')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')
    if args.student_steps is not None and args.student_steps < 1:
        parser.error('--student-steps must be at least 1')
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = dict(PLANS[args.plan])
    if args.student_steps:
        plan['student_steps'] = args.student_steps
    seeds = tuple(args.seeds or plan['seeds'])
    args.seeds_used = seeds
    # a shorter student budget is another experiment: its own folder, so finished runs never mix budgets
    out = Path(args.out) / (args.plan if not args.student_steps else f'{args.plan}-{args.student_steps}steps')
    runs = student_runs(seeds, args.only)
    if args.run is None:
        print(f'plan {args.plan} in {out}:\n{status(out, runs)}', flush=True)
    if args.status:
        return 0
    started = time.perf_counter()

    def log(msg):
        print(f'[{time.perf_counter() - started:7.1f} s] {msg}', flush=True)

    cache = make_synthetic_cache(out / 'data', plan['scenes'], plan['frames'], plan['size'], log=log,
                                 workers=os.cpu_count() or 1)
    common = plan_settings(plan, cache, args.jobs, args.run, not args.nondeterministic)
    if args.run:
        return run_one(out, args.run, runs, cache, common, plan, log, args.teacher_minutes)
    teacher_dir = out / 'runs' / 'teacher'
    failed = set()
    if args.no_train:
        pass
    elif args.jobs > 1:
        failed = run_parallel(args, out, runs, args.jobs, log)
    else:
        log('teacher')
        train_teacher(out, common, plan, log, args.teacher_minutes)
        for name, variant, seed in runs:
            if needs_teacher(variant) and not finished_summary(teacher_dir):
                continue
            train_student(out, name, variant, seed, common, plan, log)
    if not finished_summary(teacher_dir):
        log('the teacher is not finished yet: the distilled students wait for it')
        return 1 if failed else 0

    log('evaluating finished runs on the test split')
    evals, vals, speeds = {}, {}, {}
    for run_dir in sorted((out / 'runs').iterdir()):
        summary = finished_summary(run_dir)
        if not summary:
            continue
        row, _, seed = run_dir.name.rpartition('_s')
        row, seed = (row, int(seed)) if seed.isdigit() else (run_dir.name, 0)
        evals.setdefault(row, {})[seed] = evaluate_run(run_dir, cache)
        vals.setdefault(row, {})[seed] = (summary.get('best') or {}).get('value')
        speeds[run_dir.name] = summary.get('samples_per_s')
    teacher_summary = finished_summary(teacher_dir)
    meta = dict(plan=args.plan, size=plan['size'], scenes=plan['scenes'], frames=plan['frames'], batch=plan['batch'],
                teacher_steps=plan['teacher_steps'], student_steps=plan['student_steps'],
                teacher_stopped_at=teacher_summary['step'], teacher_best=teacher_summary.get('best'),
                teacher_stop_reason=teacher_summary.get('stop_reason'),
                test_frames=next(iter(evals['teacher'].values()))['images'], lr=LR, common=COMMON, student=STUDENT,
                variants=VARIANTS, speeds=speeds, threads=torch.get_num_threads(), jobs=args.jobs,
                deterministic=not args.nondeterministic,
                device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu',
                platform=platform.platform(), seconds_this_invocation=round(time.perf_counter() - started, 1))
    table = tabulate(evals, vals)
    curves = {row: {s: calibration_curve(out / 'runs' / f'{row}_s{s}', cache) for s in evals[row]}
              for row in CALIBRATION_ROWS if row in evals}
    text = markdown(table, meta)
    if curves:
        lines, growth = calibration_table(curves)
        calibration_png(curves, out / 'calibration.png')
        text += ('\n## Radar extrinsics mis-calibrated at inference (MAE at 80 m, test split)\n\n' + '\n'.join(lines)
                 + '\n\nMAE growth at 1 degree (the worse of yaw and pitch): '
                 + ', '.join(f'{LABELS.get(r, r)} {g:+.1f} %' for r, g in growth.items()) + ' (goal < 5 % with '
                 'jitter training). Curves: calibration.png.\n')
        table['calibration'] = {'curves': curves, 'growth_at_1_deg_percent': growth}
    (out / 'results.json').write_text(json.dumps({'meta': meta, 'table': table, 'runs': evals}, indent=2) + '\n')
    (out / 'results.md').write_text(text)
    print(text)
    log(f'wrote {out / "results.json"} and {out / "results.md"}\n{status(out, runs)}')
    if failed:
        log(f'{len(failed)} run(s) failed or not started: {", ".join(sorted(failed))} (logs in {out / "logs"})')
    return 1 if failed else 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    sys.exit(main())
