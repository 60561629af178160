"""Distillation ablation (like the paper's Table 3) on SYNTHETIC data, CPU-feasible and resumable.

    python benchmarks/distillation.py [--plan quick|short|full] [--out out/benchmarks/distillation] [--threads 2]

1. A synthetic cache (train / val / test scenes) at a small resolution.
2. The teacher (CaFNet, CaFNet_single loss: + L1 on the single-sweep GT) trained once.
   Every run starts from its recipe file (config/train_{teacher,student,distill}.yaml) with the
   budget, data and LR overridden.
3. Students with the same budget and seeds: no KD, X-KD only, D2-KD only, both (2 seeds for none and
   both, more with --seeds), and D2-KD alone with two alternative (bins, range, tau) settings.
4. Every run's best-on-val checkpoint evaluated on the held-out test scenes through DepthEstimator
   (paper protocol: single-sweep GT, per-image mean, 50 / 70 / 80 m).
Writes OUT/results.json and OUT/results.md. Re-running resumes: finished runs are skipped, killed
ones continue from their last checkpoint, evaluations are cached. Run it on an otherwise idle machine:
with other processes competing for the cores, PyTorch's CPU thread pools slow down by up to 20x (seen
here). The data are synthetic: the table
measures whether the losses help in this setting, not the paper's nuScenes numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Budgets. Measured on 2 CPU cores at 128 x 256, batch 4 (s / step): teacher ~3, student alone 0.4,
# D2-KD 1.15 (teacher forward), X-KD or both 3.6 (teacher Grad-CAM + the student's double backward,
# whose depthwise-conv part PyTorch runs group by group on the CPU). Full: 800 x 3 + 300 x (2 x 0.4 +
# 3 x 1.15 + 3 x 3.6) = ~6,900 s, under 2 h with data, validation and test evaluation.
FULL = dict(size=(160, 320), crop=(128, 256), batch=4, scenes={'train': 12, 'val': 2, 'test': 4}, frames=20,
            teacher_steps=800, student_steps=300, val_every=100, val_limit=8, seeds=(0, 1))
QUICK = dict(size=(96, 192), crop=(64, 128), batch=2, scenes={'train': 3, 'val': 1, 'test': 1}, frames=4,
             teacher_steps=60, student_steps=30, val_every=15, val_limit=2, seeds=(0, 1))
SHORT = dict(size=(160, 320), crop=(96, 192), batch=4, scenes={'train': 12, 'val': 2, 'test': 4}, frames=20,
             teacher_steps=150, student_steps=150, val_every=50, val_limit=8, seeds=(0, 1))
PLANS = {'quick': QUICK, 'short': SHORT, 'full': FULL}
LR = {'teacher': 2e-4, 'student': 2e-4}     # ours for short CPU budgets (references: 1e-4 / 5e-5 over 200 epochs)
# Ours for from-scratch runs of a few hundred steps (measured on the shipped model's data, 100 student
# steps: val MAE 80 m 22.1 as configured, 11.4 with the depth prior, 9.4 with the prior and eps 1e-6):
# Adam's eps 1e-2 (references, ImageNet encoders) swamps the small gradients of fresh weights, and
# the head's default bias starts every pixel at 50 m. Same settings for every run of the table.
SHORT_BUDGET = ['optim.eps=1e-6']
STUDENT_PRIOR = ['model.config.init_depth=12.0']   # median single-sweep depth of the synthetic world
# D2-KD alternatives measured against the default (distill.d2kd_*: 100 bins over 0-100 m, tau 1).
D2KD_ALTERNATIVES = {
    'd2kd_tau0.5': ['distill.d2kd_tau=0.5'],                                                   # sharper
    'd2kd_b40_r80_tau2': ['distill.d2kd_bins=40', 'distill.d2kd_max_depth=80', 'distill.d2kd_tau=2.0'],  # coarser
}


def run_specs(seeds) -> list:
    """(name, recipe, kd, seed, extra overrides) of every student run."""
    specs = [(f'none_s{s}', 'student', 'none', s, []) for s in seeds]
    specs += [(f'both_s{s}', 'distill', 'both', s, []) for s in seeds]
    specs += [(f'xkd_s{seeds[0]}', 'distill', 'xkd', seeds[0], []), (f'd2kd_s{seeds[0]}', 'distill', 'd2kd', seeds[0], [])]
    specs += [(f'{name}_s{seeds[0]}', 'distill', 'd2kd', seeds[0], extra) for name, extra in D2KD_ALTERNATIVES.items()]
    return specs


def train(run_dir: Path, recipe: str, overrides: list, log) -> dict:
    from xd_rcdepth_core.training import Trainer, load_config
    summary_path = run_dir / 'summary.json'
    if summary_path.is_file() and json.loads(summary_path.read_text()).get('finished'):
        log(f'  {run_dir.name}: done')
        return json.loads(summary_path.read_text())
    resume = 'auto' if (run_dir / 'checkpoints' / 'last.pt').is_file() else None
    config = load_config(ROOT / 'config' / f'train_{recipe}.yaml', recipe, [f'run_dir={run_dir}', *overrides])
    log(f'  {run_dir.name}: training {recipe}' + (' (resuming)' if resume else ''))
    trainer = Trainer(config, resume=resume, log=lambda m: log(f'    {m}'), progress=False)
    try:
        return trainer.fit()
    finally:
        trainer.close()


def evaluate_run(run_dir: Path, cache: Path, split: str) -> dict:
    from xd_rcdepth_core.evaluate import EvalOptions, evaluate, frames_from_cache
    from xd_rcdepth_core.pipeline import DepthEstimator
    out = run_dir / f'eval_{split}'
    if (out / 'metrics.json').is_file():
        return json.loads((out / 'metrics.json').read_text())
    ckpt = run_dir / 'checkpoints' / 'best.pt'
    estimator = DepthEstimator.from_checkpoint(ckpt, device='cpu')
    return evaluate(estimator, frames_from_cache(cache, split), EvalOptions(progress=False), out,
                    meta={'checkpoint': str(ckpt)})


def _stats(values):
    import numpy as np
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    return {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if v.size > 1 else 0.0, 'n': int(v.size),
            'values': v.tolist()}


ROWS = [('teacher', 'CaFNet teacher'), ('none', 'student, no KD'), ('xkd', 'X-KD only'), ('d2kd', 'D2-KD only'),
        ('both', 'X-KD + D2-KD'), ('d2kd_tau0.5', 'D2-KD only, tau 0.5'),
        ('d2kd_b40_r80_tau2', 'D2-KD only, 40 bins 0-80 m, tau 2')]
METRICS = ('mae', 'rmse', 'abs_rel', 'd1')


def _runs_of(evals: dict, row: str) -> dict:
    """{seed (or None for the teacher): metrics} of one table row."""
    out = {}
    for name, metrics in evals.items():
        base, _, seed = name.rpartition('_s')
        if name == row:
            out[None] = metrics
        elif base == row and seed.isdigit():
            out[int(seed)] = metrics
    return out


def tabulate(evals: dict) -> dict:
    """{row: {range: {metric: stats over seeds}, 'mae_gain_80': stats}} from {run name: metrics}.

    The gain is paired by seed: (MAE_none(s) - MAE_row(s)) / MAE_none(s) in %, over the seeds both
    rows have, so a row trained with seed 0 only is compared with the seed-0 student."""
    table, none = {}, _runs_of(evals, 'none')
    for row, _ in ROWS:
        runs = _runs_of(evals, row)
        if not runs:
            continue
        table[row] = {r: {m: _stats(x['by_range'][r][m] for x in runs.values()) for m in METRICS}
                      for r in ('50', '70', '80')}
        paired = [100 * (none[s]['by_range']['80']['mae'] - m['by_range']['80']['mae']) / none[s]['by_range']['80']['mae']
                  for s, m in runs.items() if s in none and row != 'none']
        table[row]['mae_gain_80'] = _stats(paired)
    return table


def markdown(table: dict, meta: dict) -> str:
    def cell(s):
        if s is None:
            return 'n/a'
        return f"{s['mean']:.3f} ± {s['std']:.3f}" if s['n'] > 1 else f"{s['mean']:.3f}"
    lines = [f"# Distillation ablation on synthetic data ({meta['mode']})", '',
             f"Test split: {meta['test_frames']} synthetic frames at {meta['size'][0]}x{meta['size'][1]}; "
             f"train crops {meta['crop'][0]}x{meta['crop'][1]}, batch {meta['batch']}; teacher "
             f"{meta['teacher_steps']} steps, each student {meta['student_steps']} steps; seeds {meta['seeds']} "
             f"(mean ± sample std where a row has several). Synthetic data: not the paper's nuScenes numbers.", '',
             '| variant | MAE 50 m | MAE 70 m | MAE 80 m | RMSE 80 m | AbsRel 80 m | δ1 80 m | MAE gain vs no KD, same seed (80 m) |',
             '|---|---|---|---|---|---|---|---|']
    for row, label in ROWS:
        if row not in table:
            continue
        t = table[row]
        g = t.get('mae_gain_80')
        gain = '' if g is None else (f"{g['mean']:+.2f} ± {g['std']:.2f} %" if g['n'] > 1 else f"{g['mean']:+.2f} %")
        lines.append(f"| {label} | {cell(t['50']['mae'])} | {cell(t['70']['mae'])} | {cell(t['80']['mae'])} | "
                     f"{cell(t['80']['rmse'])} | {cell(t['80']['abs_rel'])} | {cell(t['80']['d1'])} | {gain} |")
    lines += ['', 'Paper (nuScenes, 80 m MAE): none 2.232, X-KD 2.114, D2-KD 2.132, both 2.054.', '',
              'Timings: ' + ', '.join(f"{k} {v:.2f} samples/s" for k, v in meta['speeds'].items())]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='out/benchmarks/distillation')
    parser.add_argument('--quick', action='store_true', help='tiny budget (~5 min): checks the pipeline, not the losses')
    parser.add_argument('--plan', choices=tuple(PLANS), default=None,
                        help='quick (~5 min), short (~40 min to 1.5 h on 2 cores), full (~2 h idle); default full, or quick with --quick')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: all cores)')
    parser.add_argument('--seeds', type=int, nargs='+', default=None, help='seeds of none / both (default 0 1)')
    parser.add_argument('--only', nargs='+', default=None, metavar='VARIANT',
                        help='train only these student variants (none both xkd d2kd d2kd_tau0.5 d2kd_b40_r80_tau2)')
    parser.add_argument('--distill-overrides', nargs='+', default=[], metavar='KEY=VALUE',
                        help='extra config overrides for every distilled run (e.g. distill.d2kd_pixels=valid)')
    parser.add_argument('--teacher-steps', type=int, default=None)
    parser.add_argument('--student-steps', type=int, default=None)
    args = parser.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    mode = args.plan or ('quick' if args.quick else 'full')
    plan = dict(PLANS[mode])
    for key in ('seeds', 'teacher_steps', 'student_steps'):
        if getattr(args, key) is not None:
            plan[key] = tuple(getattr(args, key)) if key == 'seeds' else getattr(args, key)
    out = Path(args.out) / mode
    started = time.perf_counter()

    def log(msg):
        print(f'[{time.perf_counter() - started:7.1f} s] {msg}', flush=True)

    from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache
    cache = make_synthetic_cache(out / 'data', plan['scenes'], plan['frames'], plan['size'], log=log)
    common = [f'data.cache={cache}', f'data.crop={list(plan["crop"])}', f'data.batch_size={plan["batch"]}',
              'data.workers=0', f'val_every={plan["val_every"]}', f'data.val_limit={plan["val_limit"]}',
              f'checkpoint_every={plan["val_every"]}', 'log_every=10', 'image_every=100000']
    log('teacher')
    teacher_overrides = [*common, 'model.name=cafnet', f'max_steps={plan["teacher_steps"]}', 'seed=0',
                         f'optim.lr={LR["teacher"]}', 'loss.w_single=1.0', *SHORT_BUDGET]
    summaries = {'teacher': train(out / 'runs' / 'teacher', 'teacher', teacher_overrides, log)}
    teacher_ckpt = out / 'runs' / 'teacher' / 'checkpoints' / 'best.pt'
    log('students')
    for name, recipe, kd, seed, extra in run_specs(plan['seeds']):
        if args.only and name.rpartition('_s')[0] not in args.only:
            continue
        overrides = [*common, f'max_steps={plan["student_steps"]}', f'seed={seed}', f'optim.lr={LR["student"]}',
                     *SHORT_BUDGET, *STUDENT_PRIOR, *extra]
        if recipe == 'distill':
            overrides += [f'distill.teacher={teacher_ckpt}', f'distill.kd={kd}', *args.distill_overrides]
        summaries[name] = train(out / 'runs' / name, recipe, overrides, log)
    log('evaluating on the test split')
    evals = {name: evaluate_run(out / 'runs' / name, cache, 'test') for name in summaries}
    speeds = {name: s['samples_per_s'] for name, s in summaries.items() if s.get('samples_per_s')}
    test_frames = next(iter(evals.values()))['images']
    meta = dict(mode=mode, size=plan['size'], crop=plan['crop'], batch=plan['batch'],
                teacher_steps=plan['teacher_steps'], student_steps=plan['student_steps'], seeds=list(plan['seeds']),
                test_frames=test_frames, speeds=speeds, threads=torch.get_num_threads(), platform=platform.platform(),
                seconds_this_invocation=round(time.perf_counter() - started, 1), lr=LR,
                d2kd_alternatives=D2KD_ALTERNATIVES, common_overrides=SHORT_BUDGET, student_overrides=STUDENT_PRIOR,
                distill_overrides=args.distill_overrides)
    table = tabulate(evals)
    (out / 'results.json').write_text(json.dumps({'meta': meta, 'table': table, 'runs': evals}, indent=2) + '\n')
    (out / 'results.md').write_text(markdown(table, meta))
    print(markdown(table, meta))
    log(f'wrote {out / "results.json"} and {out / "results.md"}')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
    sys.exit(main())
