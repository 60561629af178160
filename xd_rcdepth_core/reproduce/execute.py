"""Running a plan: the stages in order, a finished one skipped, a started one resumed, the report last.

Every stage leaves proof that it finished, written only once it has: a training run its
``summary.json`` (``finished``), the synthetic set, preparation and an import a marker
``OUT/stages/<stage>.json`` holding the stage's settings, an evaluation its ``metrics.json`` and a
timing its JSON, both recording the size and modification time of the checkpoint they measured (a
retrained checkpoint is measured again). A killed training run resumes from its last checkpoint,
preparation from the samples it wrote; the synthetic set is written under a temporary name and
renamed when complete. ``OUT/plan.json`` holds the plan's settings: a second invocation with other
settings (scale, dataset root, teacher) is refused instead of mixing results. One invocation at a time
works in an output folder (a lock on ``OUT/.lock``), except the followers of a several-machine run.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from ..data.cache import CacheIndex, atomic_write_text
from ..data.nuscenes.writer import write_nuscenes
from ..data.prepare import prepare
from ..errors import UserError
from ..evaluate import EvalOptions, crop_for_eval, evaluate, frames_from_cache
from ..models.official import import_official
from ..pipeline import DepthEstimator
from ..training import load_config
from .plan import Plan, Stage, build_plan, file_identity, paths, read_marker, stage_is_done
from .report import write_report
from .runs import RunBusy, finished_summary, last_checkpoint, run_lock, torchrun_argv, train_run

PLAN_FORMAT = 1
FOLLOWER_POLL_S = 10.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]    # the folder holding xd_rcdepth_core


class Interrupted(Exception):
    """A stage stopped before its end on request (the test hook ``stop_after``)."""


def check_output_folder(plan: Plan) -> None:
    """OUT is new, or holds a plan of the same settings (plan.json); writes plan.json for a new one."""
    options = plan.options
    out, p = Path(options.out), paths(options.out)
    settings = options.settings()
    saved = read_marker(p['plan_json'])
    if saved is not None:
        old = saved.get('settings', {})
        if old != settings:
            diff = '; '.join(f'{k} {old.get(k)!r} -> {settings.get(k)!r}' for k in sorted(set(old) | set(settings))
                             if old.get(k) != settings.get(k))
            raise UserError(f'--out {out} holds a plan made with other settings ({diff}); use another --out, or the '
                            f'same settings to continue it')
        return
    if p['plan_json'].exists():
        raise UserError(f'{p["plan_json"]} cannot be read; remove it only if {out} holds nothing of value')
    if out.exists() and (not out.is_dir() or any(x.name != '.lock' for x in out.iterdir())):
        raise UserError(f'--out {out} exists and holds no reproduce plan (no plan.json); choose a new or empty folder')
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p['plan_json'], json.dumps({'format': PLAN_FORMAT, 'settings': settings,
                                                  'created': time.strftime('%Y-%m-%d %H:%M:%S')}, indent=2) + '\n')


def write_marker(plan: Plan, stage: Stage, seconds: float, result: Optional[dict] = None) -> None:
    path = paths(plan.options.out)['stages'] / f'{stage.name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({'stage': stage.name, 'spec': stage.spec, 'seconds': round(seconds, 3),
                                        'finished_at': time.strftime('%Y-%m-%d %H:%M:%S'), 'result': result},
                                       indent=2, default=str) + '\n')


# ----------------------------------------------------------------------------- the stages


def run_synth(plan: Plan, stage: Stage, log) -> dict:
    """Write the synthetic nuScenes-format set under a temporary name; rename it when complete."""
    s = stage.spec
    root = paths(plan.options.out)['data']
    partial = root.with_name(root.name + '.partial')
    for leftover in (root, partial):          # no marker: whatever is there is an interrupted write
        if leftover.exists():
            shutil.rmtree(leftover)
    scenes = sum(s['scenes'].values())
    report = write_nuscenes(partial, seed=s['seed'], n_scenes=scenes, samples_per_scene=s['samples_per_scene'],
                            height=s['size'][0], width=s['size'][1], accumulate=s['accumulate'],
                            keyframe_every=s['keyframe_every'], camera_sweeps=False)
    names, splits, i = list(report.scenes), {}, 0
    for split, count in s['scenes'].items():       # scenes in order: train, then val, then test
        splits[split], i = names[i:i + count], i + count
    (partial / report.version / 'splits.json').write_text(json.dumps(splits, indent=1) + '\n')
    os.replace(partial, root)
    log(f'wrote {scenes} scenes to {root} ({", ".join(f"{k} {len(v)}" for k, v in splits.items())})')
    return {'version': report.version, 'splits': splits, 'files': report.files}


def run_prepare(plan: Plan, stage: Stage, log) -> dict:
    s = stage.spec
    cache = paths(plan.options.out)['cache']
    summary = prepare('nuscenes', s['root'], s['version'], cache, s['workers'], splits=list(s['splits']),
                      options=s['options'], progress=False, log=lambda m: log('  ' + str(m).replace('\n', '\n  ')))
    unfinished = {k: c['unfinished'] for k, c in summary['splits'].items() if c['unfinished']}
    if summary['interrupted'] or unfinished:
        why = summary['interrupted'] or unfinished
        raise UserError(f'stage {stage.name}: preparation stopped before its end ({why}); run reproduce again to '
                        f'resume it')
    empty = [k for k, c in summary['splits'].items() if c['written'] + c['resumed'] == 0]
    if empty:
        raise UserError(f'stage {stage.name}: no usable sample in split(s) {", ".join(empty)} of {s["root"]} '
                        f'({s["version"]}); see {cache / "summary.json"}')
    return {'splits': summary['splits'], 'skipped': len(summary['skipped'])}


def run_import(plan: Plan, stage: Stage, log) -> dict:
    o = plan.options
    if not o.teacher_format:
        log(f'teacher {o.teacher}: our checkpoint, used as it is')
        return {'checkpoint': str(o.teacher)}
    try:
        path, report = import_official(o.teacher_format, o.teacher, paths(o.out)['import'])
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f'--teacher {o.teacher}: {exc}') from None
    log(f'imported {report.variant}: {report.mapped} of {report.tensors} tensors -> {path}')
    return {'checkpoint': str(path), 'import': report.to_dict()}


def run_train(plan: Plan, stage: Stage, log, stop_after: Optional[int] = None) -> dict:
    s, o = stage.spec, plan.options
    run_dir = Path(s['run_dir'])
    if o.launch.distributed:
        argv = torchrun_argv(o.launch, s['recipe'], s['config_file'], s['overrides'],
                             last_checkpoint(run_dir) is not None, stage.name, o.python)
        log('$ ' + ' '.join(argv))
        env = dict(os.environ)    # the worker processes import this checkout's packages
        env['PYTHONPATH'] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get('PYTHONPATH')) if p)
        rc = subprocess.call(argv, env=env)
        summary = finished_summary(run_dir)
        if rc != 0 or summary is None:
            raise UserError(f'stage {stage.name}: torchrun exited with status {rc} before the run finished; run '
                            f'reproduce again to resume it from {run_dir / "checkpoints" / "last.pt"}')
        return summary
    config = load_config(s['config_file'], s['recipe'], s['overrides'])
    try:
        summary = train_run(config, log=lambda m: log(f'  {m}'), stop_after=stop_after)
    except RunBusy as exc:
        raise UserError(str(exc)) from None
    except FloatingPointError as exc:
        raise UserError(f'stage {stage.name}: {exc}') from None
    except KeyError as exc:
        raise UserError(f'stage {stage.name}: {str(exc).strip(chr(34) + chr(39))}') from None
    if not summary.get('finished'):
        raise Interrupted(f'stage {stage.name} stopped at step {summary["step"]} of {summary["total_steps"]}')
    return summary


def run_eval(plan: Plan, stage: Stage, log) -> dict:
    s, o = stage.spec, plan.options
    cache = paths(o.out)['cache']
    ckpt = s['checkpoint']
    estimator = DepthEstimator.from_checkpoint(ckpt, device=o.device, backend='torch')
    index = CacheIndex(cache)
    meta = {'checkpoint': ckpt, 'checkpoint_identity': file_identity(ckpt), 'model': estimator.model.model_name,
            'source': 'cache/test', 'device': str(estimator.device), 'backend': 'torch', 'precision': 'fp32'}
    result = evaluate(estimator, frames_from_cache(cache, 'test'),
                      EvalOptions(progress=False, multiple=index.eval_multiple('test'), limit=o.scale.eval_limit),
                      s['out'], meta=meta)
    if not result['images']:
        raise UserError(f'stage {stage.name}: the test split of {cache} has no frames')
    r80 = result['by_range'].get('80', {})
    log(f'{result["images"]} frames; at 80 m MAE {r80.get("mae", float("nan")):.3f}, RMSE '
        f'{r80.get("rmse", float("nan")):.3f}')
    return result


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                name = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return f'{name}, {torch.get_num_threads()} thread(s)'


def _ms(values) -> dict:
    v = sorted(values)
    return {'median': statistics.median(v), 'p95': v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))], 'min': v[0]}


def run_latency(plan: Plan, stage: Stage, log) -> dict:
    """DepthEstimator's own timing (the one inference path; as benchmarks/latency.py measures its
    'torch eager fp32' path) of the first test frame at the evaluation crop."""
    s, o = stage.spec, plan.options
    index = CacheIndex(paths(o.out)['cache'])
    frame = crop_for_eval(index.frame('test', 0), index.eval_multiple('test'))
    ckpt = s['checkpoint']
    estimator = DepthEstimator.from_checkpoint(ckpt, device=o.device, backend='torch')
    image_t = estimator.prepare(frame)[0]
    for _ in range(s['warmup']):
        estimator.predict(frame)
    timings = [estimator.predict(frame).timings_ms for _ in range(s['repeats'])]
    model = estimator.model
    params = sum(p.numel() for p in model.parameters())
    uncounted = int(getattr(model, 'REFERENCE_UNCOUNTED_PARAMS', 0))
    result = {'model': model.model_name, 'checkpoint': ckpt, 'checkpoint_identity': file_identity(ckpt),
              'device': str(estimator.device), 'device_name': device_name(estimator.device), 'backend': 'torch',
              'precision': 'fp32', 'frame': [frame.height, frame.width], 'network_input': list(image_t.shape[-2:]),
              'warmup': s['warmup'], 'repeats': s['repeats'],
              'forward_ms': _ms([t['forward'] for t in timings]), 'total_ms': _ms([t['total'] for t in timings]),
              'params': params, 'params_reference_comparable': params + uncounted}
    Path(s['out']).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(s['out']), json.dumps(result, indent=2) + '\n')
    log(f'forward {result["forward_ms"]["median"]:.1f} ms (median of {s["repeats"]}), whole frame '
        f'{result["total_ms"]["median"]:.1f} ms on {result["device_name"]}')
    return result


RUNNERS = {'synth': run_synth, 'prepare': run_prepare, 'import': run_import, 'eval': run_eval,
           'latency': run_latency}


# ----------------------------------------------------------------------------- the plan


def _deps_done(plan: Plan, stage: Stage) -> bool:
    for name in stage.depends:
        dep = plan.stage(name)
        if dep.kind == 'train':
            if not finished_summary(dep.spec['run_dir']):
                return False
        elif not stage_is_done(dep, plan.options):
            return False
    return True


def execute(plan: Plan, log: Callable = print, stop_after: Optional[dict] = None) -> dict:
    """Run the plan's unfinished stages in order (the report always); returns {stage: 'skipped' |
    'ran'}. ``stop_after`` {stage: step}: stop that training stage after the step, as a kill would
    (raises Interrupted; a test hook)."""
    options = plan.options
    if options.follower:
        return _follow(plan, log)
    check_output_folder(plan)
    started = time.perf_counter()
    outcome = {}
    with run_lock(options.out) as mine:
        if not mine:
            raise UserError(f'another reproduce is running in {options.out} (it holds {Path(options.out) / ".lock"})')
        total = len(plan.stages)
        for i, stage in enumerate(plan.stages, 1):
            def say(msg, _i=i, _name=stage.name):
                log(f'[{time.perf_counter() - started:8.1f} s] [{_i}/{total}] {_name}: {msg}')
            if stage.kind == 'train':
                done = finished_summary(stage.spec['run_dir']) is not None
            elif stage.kind == 'report':
                done = False
            else:
                done = stage_is_done(stage, options)
            if done:
                say('finished earlier; skipped')
                outcome[stage.name] = 'skipped'
                continue
            resuming = stage.kind == 'train' and last_checkpoint(stage.spec['run_dir']) is not None
            say(f'{stage.title}' + (' (resuming from its last checkpoint)' if resuming else ''))
            t0 = time.perf_counter()
            if stage.kind == 'train':
                run_train(plan, stage, say, (stop_after or {}).get(stage.name))
            elif stage.kind == 'report':
                fresh = build_plan(options)       # states and measured speeds as they are now
                md = write_report(fresh)
                say(f'wrote {md} and {paths(options.out)["report_json"]}')
            else:
                result = RUNNERS[stage.kind](plan, stage, say)
                if stage.kind in ('synth', 'prepare', 'import'):
                    write_marker(plan, stage, time.perf_counter() - t0, result)
            say(f'done in {time.perf_counter() - t0:.1f} s')
            outcome[stage.name] = 'ran'
    log(f'reproduce: finished in {time.perf_counter() - started:.1f} s; report {paths(options.out)["report_md"]}')
    return outcome


def _follow(plan: Plan, log) -> dict:
    """A machine other than the first of a several-machine run: join every training stage's torchrun
    rendezvous, in the plan's order, once the stages it needs have finished (the output folder must
    be shared with the first machine); everything else is the first machine's work."""
    outcome = {}
    for stage in plan.stages:
        if stage.kind != 'train':
            continue
        if finished_summary(stage.spec['run_dir']):
            outcome[stage.name] = 'skipped'
            continue
        while not _deps_done(plan, stage):
            log(f'{stage.name}: waiting for {", ".join(stage.depends)}')
            time.sleep(FOLLOWER_POLL_S)
        log(f'{stage.name}: joining the run')
        run_train(plan, stage, log)
        outcome[stage.name] = 'ran'
    return outcome


__all__ = ['Interrupted', 'execute', 'check_output_folder', 'RUNNERS']
