"""The report of a plan: every measured number beside the paper's, with the difference.

    OUT/report.md      the tables (main results, fusion ablation, distillation ablation, every model at
                       50 / 70 / 80 m, latency, training), figures and notes
    OUT/report.json    the same: ``comparisons`` (one record per number: table, row, quantity, range,
                       ours, paper, diff = ours - paper, diff_percent), ``models`` (metrics, timing,
                       training summary and curves of each), ``stages`` (state of each), ``meta``
    OUT/figures/       training_curves.png, main_results.png, ablation_fusion.png, ablation_distillation.png

Numbers of stages that have not finished are reported as missing, so a report of a partial plan is
still a valid one. The paper's numbers come from paper.py (docs/paper.md).
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Optional

from ..data.cache import atomic_write_text
from ..metrics import METRIC_NAMES
from . import paper as P
from .plan import Plan, checkpoint_of, file_identity, format_duration, paths, read_marker
from .runs import read_run_log, read_summary, seconds_per_step

RANGES = ('50', '70', '80')
FIGURES = ('training_curves.png', 'main_results.png', 'ablation_fusion.png', 'ablation_distillation.png')


# ----------------------------------------------------------------------------- collecting


def _current(result: Optional[dict], checkpoint) -> Optional[dict]:
    """A result file's content when it was made from the checkpoint as it is now."""
    if result and result.get('checkpoint_identity') == file_identity(checkpoint):
        return result
    return None


def collect_models(plan: Plan) -> dict:
    """{model stage: label, paper keys, metrics by range, latency, training summary and curves}."""
    p = paths(plan.options.out)
    out = {}
    for m in plan.models:
        ckpt = str(checkpoint_of(m.stage, plan.options))
        metrics = _current(read_marker(p['eval'] / m.stage / 'metrics.json'), ckpt) if m.evaluated else None
        latency = _current(read_marker(p['latency'] / f'{m.stage}.json'), ckpt) if m.evaluated else None
        entry = {'label': m.label, 'model_name': m.model_name, 'checkpoint': ckpt, 'evaluated': m.evaluated,
                 'paper': [list(k) for k in m.paper],
                 'metrics': metrics['by_range'] if metrics else None,
                 'test_images': metrics['images'] if metrics else None,
                 'latency': latency, 'training': None, 'curves': None}
        if m.stage != 'teacher_import':
            run_dir = p['runs'] / m.stage
            summary = read_summary(run_dir)
            train, val = read_run_log(run_dir)
            entry['training'] = None if summary is None else {
                k: summary.get(k) for k in ('step', 'total_steps', 'finished', 'seconds', 'world_size', 'best')}
            if entry['training'] is not None:
                entry['training']['seconds_per_step'] = seconds_per_step(run_dir)
            entry['curves'] = {
                'step': sorted(train), 'loss': [train[s].get('loss/total') for s in sorted(train)],
                'val_step': sorted(val), 'val_mae_80': [val[s].get('val/80/mae') for s in sorted(val)]}
        out[m.stage] = entry
    return out


def _metric(models: dict, stage: str, metric: str, rng: str = '80') -> Optional[float]:
    entry = models.get(stage)
    if not entry or not entry['metrics'] or rng not in entry['metrics']:
        return None
    return entry['metrics'][rng].get(metric)


def _params_m(models: dict, stage: str) -> Optional[float]:
    lat = (models.get(stage) or {}).get('latency')
    return lat['params_reference_comparable'] / 1e6 if lat else None


def _runtime_s(models: dict, stage: str) -> Optional[float]:
    lat = (models.get(stage) or {}).get('latency')
    return lat['forward_ms']['median'] / 1e3 if lat else None


def _cmp(table: str, row: str, model: Optional[str], quantity: str, rng: Optional[str], ours, paper) -> dict:
    diff = None if ours is None or paper is None else ours - paper
    pct = None if diff is None or not paper else 100.0 * diff / paper
    return {'table': table, 'row': row, 'model': model, 'quantity': quantity, 'range': rng, 'ours': ours,
            'paper': paper, 'diff': diff, 'diff_percent': pct}


def _by_paper_key(models: dict, table: str) -> dict:
    """{paper key: model stage} of the models compared with ``table``."""
    return {key: stage for stage, e in models.items() for t, key in e['paper'] if t == table}


def comparisons(models: dict) -> list:
    """One record per number the paper reports, ours beside it (None where not measured)."""
    rows = []
    results = _by_paper_key(models, 'results')
    for key, ref in P.RESULTS.items():
        stage = results.get(key)
        rows.append(_cmp('results', key, stage, 'params_m', None, _params_m(models, stage), ref.params_m))
        rows.append(_cmp('results', key, stage, 'runtime_s', None, _runtime_s(models, stage), ref.runtime_s))
        rows += [_cmp('results', key, stage, m, '80', _metric(models, stage, m), ref.metrics[m])
                 for m in P.PAPER_METRICS]
    fusion = _by_paper_key(models, 'fusion')
    for key, ref in P.FUSION.items():
        stage = fusion.get(key)
        rows.append(_cmp('fusion', key, stage, 'params_m', None, _params_m(models, stage), ref.params_m))
        rows += [_cmp('fusion', key, stage, m, '80', _metric(models, stage, m), ref.metrics[m])
                 for m in P.PAPER_METRICS]
    distill = _by_paper_key(models, 'distillation')
    for key, value in P.DISTILLATION_MAE_80.items():
        rows.append(_cmp('distillation', key, distill.get(key), 'mae', '80',
                         _metric(models, distill.get(key), 'mae'), value))
    for rng, value in P.DISTILLATION_REDUCTION_PERCENT.items():
        none, both = (_metric(models, distill.get(k), 'mae', rng) for k in ('none', 'both'))
        ours = 100.0 * (none - both) / none if none and both is not None else None
        rows.append(_cmp('distillation', 'reduction', None, 'mae_reduction_percent', rng, ours, value))
    teacher, student = results.get('cafnet'), results.get('xd_rcdepth_both')
    t, s = _runtime_s(models, teacher), _runtime_s(models, student)
    rows.append(_cmp('runtime', 'teacher_over_student', None, 'runtime_ratio', None,
                     t / s if t and s else None, P.TEACHER_OVER_STUDENT_RUNTIME))
    return rows


# ----------------------------------------------------------------------------- markdown


def _f(value, spec='.3f') -> str:
    return 'n/a' if value is None else format(value, spec)


def _d(value, spec='+.3f') -> str:
    return '' if value is None else format(value, spec)


def _find(rows, table, row, quantity, rng=None) -> dict:
    return next(r for r in rows if r['table'] == table and r['row'] == row and r['quantity'] == quantity
                and r['range'] == rng)


def _label(models, stage) -> str:
    """The plan's name for the model of ``stage``, or that the plan has none for this row."""
    return models[stage]['label'] if stage else 'not in the plan'


def _metric_cells(rows, table: str, key: str) -> list:
    """Ours, the paper's and the difference of each of the paper's metrics at 80 m."""
    cells = []
    for m in P.PAPER_METRICS:
        r = _find(rows, table, key, m, '80')
        cells += [_f(r['ours']), _f(r['paper']), _d(r['diff'])]
    return cells


def _main_table(rows, models) -> list:
    head = '| method | ours: model | params M | paper | runtime s | paper |' + ''.join(
        f' {P.METRIC_TITLES[m]} | paper | Δ |' for m in P.PAPER_METRICS)
    lines = [head, '|' + '---|' * (6 + 3 * len(P.PAPER_METRICS))]
    for key, ref in P.RESULTS.items():
        pr, rt = _find(rows, 'results', key, 'params_m'), _find(rows, 'results', key, 'runtime_s')
        cells = [ref.label, _label(models, pr['model']), _f(pr['ours'], '.2f'), _f(pr['paper'], '.2f'),
                 _f(rt['ours'], '.4f'), _f(rt['paper'], '.3f')]
        lines.append('| ' + ' | '.join(cells + _metric_cells(rows, 'results', key)) + ' |')
    return lines


def _fusion_table(rows, models) -> list:
    lines = ['| fusion | ours: model | params M | paper |' + ''.join(
        f' {P.METRIC_TITLES[m]} | paper | Δ |' for m in P.PAPER_METRICS), '|' + '---|' * (4 + 3 * len(P.PAPER_METRICS))]
    for key, ref in P.FUSION.items():
        pr = _find(rows, 'fusion', key, 'params_m')
        cells = [ref.label, _label(models, pr['model']), _f(pr['ours'], '.2f'), _f(pr['paper'], '.2f')]
        lines.append('| ' + ' | '.join(cells + _metric_cells(rows, 'fusion', key)) + ' |')
    return lines


def _distill_tables(rows, models) -> list:
    titles = {'none': 'none', 'xkd': 'X-KD', 'd2kd': 'D2-KD', 'both': 'X-KD + D2-KD'}
    lines = ['| distillation | ours: model | MAE 80 m | paper | Δ | Δ % |', '|---|---|---|---|---|---|']
    for key in P.DISTILLATION_MAE_80:
        r = _find(rows, 'distillation', key, 'mae', '80')
        lines.append(f"| {titles[key]} | {_label(models, r['model'])} | "
                     f"{_f(r['ours'])} | {_f(r['paper'])} | {_d(r['diff'])} | {_d(r['diff_percent'], '+.1f')} |")
    lines += ['', 'MAE reduction of X-KD + D2-KD over no distillation, in % of no distillation:', '',
              '| range | ours | paper | Δ (points) |', '|---|---|---|---|']
    for rng in RANGES:
        r = _find(rows, 'distillation', 'reduction', 'mae_reduction_percent', rng)
        lines.append(f"| {rng} m | {_f(r['ours'], '.2f')} | {_f(r['paper'], '.2f')} | {_d(r['diff'], '+.2f')} |")
    return lines


def _all_ranges_table(models) -> list:
    names = ('mae', 'rmse', 'abs_rel', 'log10', 'd1', 'd2', 'd3')
    lines = ['| model | range | images | ' + ' | '.join(P.METRIC_TITLES[m] for m in names) + ' |',
             '|---|---|---|' + '---|' * len(names)]
    for stage, e in models.items():
        if not e['evaluated']:
            continue
        for rng in RANGES:
            entry = (e['metrics'] or {}).get(rng)
            if entry is None:
                lines.append(f"| {e['label']} | {rng} m | n/a |" + ' n/a |' * len(names))
                continue
            lines.append(f"| {e['label']} | {rng} m | {entry.get('images')} | "
                         + ' | '.join(_f(entry.get(m)) for m in names) + ' |')
    return lines


def _latency_table(rows, models) -> list:
    paper_rt = {stage: P.RESULTS[key].runtime_s for key, stage in _by_paper_key(models, 'results').items()}
    lines = ['| model | device | network input | params (ours, M) | forward ms (median) | p95 | whole frame ms | '
             'paper runtime ms |', '|---|---|---|---|---|---|---|---|']
    for stage, e in models.items():
        if not e['evaluated']:
            continue
        lat, rt = e['latency'], paper_rt.get(stage)
        paper_ms = _f(rt and 1e3 * rt, '.0f')
        if lat is None:
            lines.append(f"| {e['label']} | n/a | | | | | | {paper_ms} |")
            continue
        fwd, size = lat['forward_ms'], lat['network_input']
        lines.append(f"| {e['label']} | {lat['device_name']} | {size[0]}x{size[1]} | {lat['params'] / 1e6:.2f} | "
                     f"{fwd['median']:.1f} | {fwd['p95']:.1f} | {lat['total_ms']['median']:.1f} | {paper_ms} |")
    r = _find(rows, 'runtime', 'teacher_over_student', 'runtime_ratio')
    lines += ['', f"Teacher / student forward time: ours {_f(r['ours'], '.1f')}x, paper {_f(r['paper'], '.1f')}x "
                  '(CaFNet 0.132 s, XD-RCDepth 0.015 s on their GPU).']
    return lines


def _training_table(models) -> list:
    lines = ['| run | steps | finished | wall | s / step | processes | best val MAE 80 m (step) |',
             '|---|---|---|---|---|---|---|']
    for stage, e in models.items():
        t = e['training']
        if t is None:
            if stage != 'teacher_import':
                lines.append(f"| {stage} | n/a | no | | | | |")
            continue
        best = t.get('best') or {}
        best_text = f"{best['value']:.3f} ({best['step']})" if best.get('value') is not None else 'n/a'
        wall = format_duration(t['seconds'] or 0)
        lines.append(f"| {stage} | {t['step']:,} / {t['total_steps']:,} | {'yes' if t['finished'] else 'no'} | "
                     f"{wall} (last invocation) | {_f(t.get('seconds_per_step'), '.3f')} | "
                     f"{t.get('world_size') or 1} | {best_text} |")
    return lines


def markdown(plan: Plan, models: dict, rows: list, meta: dict) -> str:
    o = plan.options
    tiny = o.scale.name == 'tiny'
    lines = [f'# XD-RCDepth reproduced (scale {o.scale.name})', '',
             f"{meta['data']}. Evaluated on the test split by the paper's protocol (single-sweep lidar GT, per-image "
             f"metrics averaged over images, 50 / 70 / 80 m). The paper's numbers: {P.SOURCE} (nuScenes, one "
             f"{P.SETUP['gpu']}, batch {P.SETUP['batch_size']}); Δ = ours − paper. Made {meta['written']} on "
             f"{meta['host']}.", '']
    if tiny:
        lines += ['**Scale tiny**: a few training steps of narrower networks on a handful of synthetic frames. '
                  'This checks that the whole plan runs; its numbers say nothing about the method and are not '
                  "comparable with the paper's.", '']
    todo = [s.name for s in plan.stages if s.kind != 'report' and not s.done]
    if todo:
        lines += [f'**Unfinished stages** ({len(todo)}): {", ".join(todo)}; their numbers are n/a.', '']
    lines += ['## Main results (nuScenes, 80 m)', '', *_main_table(rows, models), '',
              'Params: ours as the paper counts them (CaFNet: with the authors\' unused ImageNet heads; README '
              '"Models"). Runtime: our forward pass (torch fp32, batch 1) on the device named under Latency, the '
              "paper's on its GPU.", '',
              '## Fusion ablation (80 m, no distillation)', '', *_fusion_table(rows, models), '',
              '## Distillation ablation', '', *_distill_tables(rows, models), '',
              '## Every model at 50 / 70 / 80 m (ours; the paper gives absolute numbers at 80 m only)', '',
              *_all_ranges_table(models), '',
              '## Latency', '', *_latency_table(rows, models), '',
              '## Training', '', *_training_table(models), '',
              '## Figures', '',
              '![training curves](figures/training_curves.png)', '',
              '![main results](figures/main_results.png) ![fusion ablation](figures/ablation_fusion.png) '
              '![distillation ablation](figures/ablation_distillation.png)', '',
              '## Notes', '']
    lines += [f'- {n}' for n in meta['notes']]
    return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------------- figures


def _bars(path: Path, title: str, labels: list, ours: list, paper: list, ylabel: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels) + 1.5), 3.6))
    ax.bar(x - 0.2, [np.nan if v is None else v for v in ours], 0.4, label='ours')
    ax.bar(x + 0.2, [np.nan if v is None else v for v in paper], 0.4, label='paper')
    ax.set_xticks(x, labels, fontsize=8, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _curves(path: Path, models: dict) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for stage, e in models.items():
        c = e['curves']
        if not c:
            continue
        pts = [(s, v) for s, v in zip(c['step'], c['loss']) if v is not None]
        if pts:
            left.plot(*zip(*pts), marker='.' if len(pts) < 30 else None, label=stage)
        vals = [(s, v) for s, v in zip(c['val_step'], c['val_mae_80']) if v is not None]
        if vals:
            right.plot(*zip(*vals), marker='o', label=stage)
    left.set(xlabel='step', ylabel='training loss (total)', title='training loss')
    right.set(xlabel='step', ylabel='MAE at 80 m (m)', title='validation MAE at 80 m')
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if left.lines and all(min(line.get_ydata()) > 0 for line in left.lines):
        left.set_yscale('log')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_figures(folder: Path, models: dict, rows: list) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    _curves(folder / 'training_curves.png', models)
    main = [r for r in rows if r['table'] == 'results' and r['quantity'] == 'mae']
    _bars(folder / 'main_results.png', 'Main results: MAE at 80 m', [P.RESULTS[r['row']].label for r in main],
          [r['ours'] for r in main], [r['paper'] for r in main], 'MAE (m)')
    fusion = [r for r in rows if r['table'] == 'fusion' and r['quantity'] == 'mae']
    _bars(folder / 'ablation_fusion.png', 'Fusion ablation: MAE at 80 m', [P.FUSION[r['row']].label for r in fusion],
          [r['ours'] for r in fusion], [r['paper'] for r in fusion], 'MAE (m)')
    distill = [r for r in rows if r['table'] == 'distillation' and r['quantity'] == 'mae']
    _bars(folder / 'ablation_distillation.png', 'Distillation ablation: MAE at 80 m', [r['row'] for r in distill],
          [r['ours'] for r in distill], [r['paper'] for r in distill], 'MAE (m)')
    return [folder / f for f in FIGURES]


# ----------------------------------------------------------------------------- the report


def notes(plan: Plan) -> list:
    o = plan.options
    out = ["LiRCDepth is trained with the student recipe: this project has no implementation of LiRCDepth's own "
           'feature distillation (docs/reference.md Part A 4.3), so its row is LiRCDepth without it.',
           "The paper's CaFNet row is CaFNet_single (docs/reference.md Part A 4.2): "
           + ('the given teacher stands in that row.' if o.teacher else
              'our CaFNet_single (teacher_single) stands there; plain CaFNet (teacher) is listed as its own model.'),
           ('RadarNet trains by its two reference recipes (radarnet_stage1, then radarnet: stage 2 on the frozen '
            'stage 1; docs/reference.md Part A 4.4); its row is the stage-2 model.' if o.radarnet else
            "RadarNet is in the paper's table but not in this plan (--radarnet adds it: its budgets cost more than "
            'the rest of the plan).'),
           'The FiLM row of the fusion ablation and the "none" row of the distillation ablation are the same run '
           '(student_none), as in the paper.',
           f'Budgets: {o.scale.title}. Time per stage: see report.json "stages".']
    if o.launch.distributed:
        out.append(f'Training ran under torchrun with {o.launch.world_size} process(es); each process takes a batch '
                   f'of data.batch_size, so the global batch is {o.launch.world_size} x the paper\'s.')
    out += plan.notes
    return out


def write_report(plan: Plan) -> Path:
    """Write report.md, report.json and the figures of ``plan`` (as its folder holds it now)."""
    p = paths(plan.options.out)
    models = collect_models(plan)
    rows = comparisons(models)
    o = plan.options
    meta = {'scale': o.scale.name, 'dataset': o.dataset, 'root': str(o.root) if o.root else None,
            'teacher': str(o.teacher) if o.teacher else None, 'teacher_format': o.teacher_format,
            'world_size': o.launch.world_size, 'device': plan.device, 'host': platform.node() or 'this machine',
            'written': time.strftime('%Y-%m-%d %H:%M'), 'paper_source': P.SOURCE,
            'data': (f'nuScenes at {o.root} (v1.0-trainval train / val, v1.0-test test)' if o.root else
                     'A synthetic nuScenes-format set (the devkit reads it; train / val / test by scene)'),
            'notes': notes(plan)}
    stages = {}
    for s in plan.stages:
        marker = read_marker(p['stages'] / f'{s.name}.json') or {}
        stages[s.name] = {'kind': s.kind, 'state': s.state, 'title': s.title, 'budget': s.budget,
                          'seconds': marker.get('seconds'), 'command': s.command}
    for stage, e in models.items():
        if e['training'] and stage in stages:
            stages[stage]['seconds'] = e['training']['seconds']
    figures = write_figures(p['figures'], models, rows)
    report = {'meta': meta, 'comparisons': rows, 'models': models, 'stages': stages,
              'figures': [str(f.relative_to(p['out'])) for f in figures], 'metric_names': list(METRIC_NAMES)}
    atomic_write_text(p['report_json'], json.dumps(report, indent=2, default=str) + '\n')
    atomic_write_text(p['report_md'], markdown(plan, models, rows, meta))
    return p['report_md']


__all__ = ['write_report', 'collect_models', 'comparisons', 'markdown', 'FIGURES']
