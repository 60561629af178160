"""`prepare`: turn a dataset into a cache (``cache.py``), in parallel, resumably, with a summary.

Each sample is one task: build its Frame with the dataset's adapter, write it atomically, return
small statistics. A sample whose files are missing or corrupt is skipped and reported (the run goes
on); a sample already in the cache is not redone (its stored statistics are reused), so re-running
after an interruption finishes the job. Workers are forked from the process that opened the dataset,
so the nuScenes tables (GBs for trainval) are loaded once and shared copy-on-write.

Resuming is only sound with the settings that made the existing samples (version, lidar sweeps,
mover rule, crop ...: the adapter's ``content_settings``). Their fingerprint is recorded per split in
index.json and in every sample; a run whose settings differ for a split that already has samples
stops with one ``CacheMismatchError`` before doing any work (a cache silently mixing two settings
would be worse than no cache), and says what differs: use a new ``--out``, or ``overwrite=True``
(``--overwrite``), which deletes that split's samples and prepares it afresh. A run adds to the cache:
splits it does not prepare keep their samples and index entries, and ``limit`` adds samples without
dropping those an earlier run finished.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..frame import DEPTH_MAPS
from ..geometry import project_points
from .adapters import open_adapter
from .cache import (
    TMP_MARK,
    atomic_write_text,
    read_index,
    read_stats,
    remove_stale_temporaries,
    sample_path,
    settings_fingerprint,
    write_index,
    write_sample,
)
from .errors import CacheMismatchError, DataWarning, SampleError


@dataclass
class SampleResult:
    split: str
    name: str
    status: str                      # written | resumed | skipped | failed
    stats: Optional[dict] = None
    error: Optional[str] = None
    warnings: list = field(default_factory=list)


def sample_stats(frame) -> dict:
    """Radar point counts and the fraction of pixels each GT map covers."""
    in_image = len(project_points(frame.radar_in_camera(), frame.K, frame.height, frame.width)) \
        if frame.radar.shape[0] else 0
    stats = {'radar_points': int(frame.radar.shape[0]), 'radar_in_image': int(in_image),
             'height': frame.height, 'width': frame.width}
    for m in DEPTH_MAPS:
        d = getattr(frame, m)
        if d is not None:
            stats[f'coverage_{m}'] = float(np.count_nonzero(d > 0) / d.size)
    return stats


# The worker's adapter and output folder: set in the parent before forking (inherited), or opened by
# _init_worker where fork is unavailable.
_STATE: dict = {}


def _init_worker(spec: dict) -> None:
    if not _STATE:
        _STATE.update(adapter=open_adapter(spec['dataset'], spec['root'], spec['version'], **spec['options']),
                      out=Path(spec['out']), fingerprint=spec['fingerprint'])


def process_sample(task) -> SampleResult:
    """Build, write and describe one sample; never raises for a bad sample."""
    split, name = task
    adapter, out, fingerprint = _STATE['adapter'], _STATE['out'], _STATE['fingerprint']
    path = sample_path(out, split, name)
    if path.is_file():
        try:
            old = read_stats(path)
        except Exception:      # an unreadable old file (e.g. disk full then): redo it
            old = None
        # prepare() checked the split's settings; a stray sample of other settings (left by a killed
        # --overwrite run) is redone rather than mixed in.
        if old is not None and old.get('fingerprint') == fingerprint:
            return SampleResult(split, name, 'resumed', stats=old)
        path.unlink()
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', DataWarning)
        try:
            frame = adapter.frame(name)
            source = adapter.image_file(name)
            fmt = source.suffix.lstrip('.').lower() if source is not None else 'png'
            stats = sample_stats(frame)
            # wall and CPU seconds of this sample (CPU time is what a worker costs on a shared machine)
            stats.update(seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu,
                         fingerprint=fingerprint)
            write_sample(path, frame, stats, source.read_bytes() if source is not None else None, fmt)
            status, error = 'written', None
        except SampleError as exc:
            status, error, stats = 'skipped', str(exc), None
        except Exception as exc:   # a bug or an unforeseen bad input: report it, keep the run going
            status, stats = 'failed', None
            error = f'{type(exc).__name__}: {exc} [{traceback.extract_tb(exc.__traceback__)[-1].name}]'
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    return SampleResult(split, name, status, stats=stats, error=error, warnings=notes)


def _run(tasks, workers: int, spec: dict, progress: bool):
    from tqdm import tqdm
    results, broken = [], None
    bar = tqdm(total=len(tasks), disable=not progress, unit='sample', desc='prepare', dynamic_ncols=True)
    if workers <= 1:
        for task in tasks:
            results.append(process_sample(task))
            bar.update()
    else:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context('fork' if 'fork' in methods else 'spawn')
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spec,)) as pool:
            futures = [pool.submit(process_sample, t) for t in tasks]
            try:
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
            except BrokenProcessPool as exc:
                broken = f'a worker process died ({exc}); finished samples are kept, run prepare again to resume'
                for fut in futures:
                    fut.cancel()
    bar.close()
    return results, broken


def _describe(values) -> dict:
    if not values:
        return {}
    v = np.asarray(values, np.float64)
    return {'mean': float(v.mean()), 'median': float(np.median(v)), 'min': float(v.min()), 'max': float(v.max())}


def summarise(results, split_keys: dict, meta: dict, seconds: float, broken: Optional[str]) -> dict:
    per_split = {}
    for split, keys in split_keys.items():
        rs = [r for r in results if r.split == split]
        per_split[split] = {'total': len(keys), **{s: sum(r.status == s for r in rs)
                                                   for s in ('written', 'resumed', 'skipped', 'failed')}}
        per_split[split]['unfinished'] = len(keys) - len(rs)
    stats = [r.stats for r in results if r.stats]
    notes = [w for r in results for w in r.warnings]
    written = sum(r.status == 'written' for r in results)
    return {
        **meta, 'seconds': round(seconds, 3), 'samples_per_s': written / seconds if seconds > 0 else 0.0,
        'splits': per_split,
        'radar_points': _describe([s['radar_points'] for s in stats]),
        'radar_in_image': _describe([s['radar_in_image'] for s in stats]),
        'cpu_seconds_per_sample': _describe([r.stats['cpu_seconds'] for r in results
                                             if r.status == 'written' and 'cpu_seconds' in r.stats]),
        'coverage': {m: _describe([s[f'coverage_{m}'] for s in stats if f'coverage_{m}' in s])
                     for m in DEPTH_MAPS if any(f'coverage_{m}' in s for s in stats)},
        'warnings': len(notes), 'warning_examples': notes[:20],
        'skipped': [{'split': r.split, 'name': r.name, 'status': r.status, 'reason': r.error}
                    for r in results if r.status in ('skipped', 'failed')],
        'interrupted': broken,
    }


def format_summary(summary: dict) -> str:
    lines = [f"prepared {summary['dataset']} ({summary.get('version') or '-'}) into {summary['out']} in "
             f"{summary['seconds']:.1f} s ({summary['samples_per_s']:.2f} samples/s written, "
             f"{summary['workers']} worker(s))",
             f"{'split':10s} {'total':>7s} {'written':>8s} {'resumed':>8s} {'skipped':>8s} {'failed':>7s} "
             f"{'in cache':>9s}"]
    listed = summary.get('listed', {})
    for split, c in summary['splits'].items():
        lines.append(f"{split:10s} {c['total']:7d} {c['written']:8d} {c['resumed']:8d} {c['skipped']:8d} "
                     f"{c['failed']:7d} {listed.get(split, 0):9d}")
    for key in ('radar_points', 'radar_in_image'):
        d = summary[key]
        if d:
            lines.append(f"{key:15s} per frame: mean {d['mean']:.1f}, median {d['median']:.0f}, "
                         f"min {d['min']:.0f}, max {d['max']:.0f}")
    if summary['cpu_seconds_per_sample']:
        lines.append(f"CPU seconds per sample written: mean {summary['cpu_seconds_per_sample']['mean']:.2f}")
    for m, d in summary['coverage'].items():
        lines.append(f"GT coverage {m:18s}: mean {100 * d['mean']:.2f} % of pixels")
    lines.append(f"warnings: {summary['warnings']}" + ''.join(f'\n  {w}' for w in summary['warning_examples'][:5]))
    for s in summary['skipped'][:20]:
        lines.append(f"{s['status']} {s['split']}/{s['name']}: {s['reason']}")
    if len(summary['skipped']) > 20:
        lines.append(f"... {len(summary['skipped']) - 20} more in summary.json")
    if summary.get('reference_counts'):
        lines.append(summary['reference_counts'])
    if summary['interrupted']:
        lines.append(f"INTERRUPTED: {summary['interrupted']}")
    return '\n'.join(lines)


def _split_samples(out: Path, split: str) -> list:
    return sorted((out / split).glob('*.npz'))


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    diff = [f'{k} {old.get(k, "(unset)")!r} -> {new.get(k, "(unset)")!r}' for k in keys if old.get(k) != new.get(k)]
    return '; '.join(diff)


def check_split_settings(out: Path, split: str, record: dict, settings: dict, fingerprint: str) -> None:
    """Raise CacheMismatchError if ``split`` of the cache already holds samples of other settings.

    The split's index record says which settings made it; a split without one (a run killed before
    it wrote the index) is judged by one of its samples. A split without samples never conflicts."""
    existing = _split_samples(out, split)
    if not existing:
        return
    if record:
        if record.get('fingerprint') == fingerprint:
            return
        what = (_differences(record['settings'], settings) if 'settings' in record else '') \
            or 'by an older version of this code, which recorded no settings fingerprint'
    else:
        try:
            found = read_stats(existing[0]).get('fingerprint')
        except Exception:
            found = None
        if found == fingerprint:
            return
        what = f'its samples (e.g. {existing[0].name}) carry settings fingerprint {found}, this run {fingerprint}'
    raise CacheMismatchError(
        f'cache {out} split {split!r} was prepared with other settings ({what}); resuming would mix samples '
        f'of both. Prepare into a new --out, or pass --overwrite to delete this split\'s samples and '
        f'prepare it again.')


def delete_split(out: Path, split: str) -> int:
    """Remove the sample files (and their temporaries) of one split; returns how many."""
    files = _split_samples(out, split) + sorted((out / split).glob(f'*{TMP_MARK}*'))
    for f in files:
        f.unlink()
    return len(files)


def prepare(dataset: str, root, version: Optional[str] = None, out='cache', workers: int = 1, *,
            splits=None, limit: Optional[int] = None, options: Optional[dict] = None, progress: bool = True,
            log=print, adapter=None, overwrite: bool = False) -> dict:
    """Write the cache of ``dataset`` at ``root`` into ``out``; returns (and prints) the summary.

    splits: names to prepare (default all the adapter offers); limit: first N samples per split;
    options: fields of the adapter's config (e.g. ``{'lidar_sweeps': 20}`` for nuScenes);
    adapter: an already opened adapter to use instead of opening ``dataset`` at ``root``;
    overwrite: delete the existing samples of the splits prepared here first (needed when they were
    made with other settings). Other splits already in ``out`` are kept.
    Raises DatasetError when the dataset as a whole cannot be opened, CacheMismatchError when a split
    holds samples of other settings and ``overwrite`` is off.
    """
    options = dict(options or {})
    out = Path(out)
    started = time.perf_counter()
    if adapter is None:
        adapter = open_adapter(dataset, root, version, **options)
    full_keys = adapter.splits()
    if splits:
        unknown = [s for s in splits if s not in full_keys]
        if unknown:
            raise ValueError(f'split(s) {unknown} not in this dataset; it has {sorted(full_keys)}')
        full_keys = {s: full_keys[s] for s in splits}
    split_keys = full_keys if limit is None else {s: k[:limit] for s, k in full_keys.items()}
    version = getattr(adapter, 'version', version)
    settings = {'dataset': dataset,
                **(adapter.content_settings() if hasattr(adapter, 'content_settings') else options)}
    settings = json.loads(json.dumps(settings, default=str))     # as index.json holds it (tuples -> lists)
    fingerprint = settings_fingerprint(settings)
    record = {'dataset': dataset, 'root': str(root), 'version': version, 'options': options,
              'settings': settings, 'fingerprint': fingerprint,
              'eval_multiple': getattr(adapter, 'eval_multiple', 32)}
    old = read_index(out).get('split_info', {})
    for split in split_keys:              # all checks before any work: refuse as a whole
        if not overwrite:
            check_split_settings(out, split, old.get(split, {}), settings, fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporaries(out)
    if stale:
        log(f'removed {stale} temporary file(s) left by an interrupted run')
    if overwrite:
        deleted = sum(delete_split(out, s) for s in split_keys)
        # Record the new settings at once, so a run killed from here on resumes without --overwrite.
        write_index(out, {s: [] for s in split_keys}, {s: record for s in split_keys})
        old = {}
        if deleted:
            log(f'--overwrite: deleted {deleted} sample file(s) of split(s) {", ".join(split_keys)}')
    spec = dict(dataset=dataset, root=str(root), version=version, options=options, out=str(out),
                fingerprint=fingerprint)
    _STATE.clear()
    _STATE.update(adapter=adapter, out=out, fingerprint=fingerprint)
    try:
        tasks = [(s, k) for s, keys in split_keys.items() for k in keys]
        results, broken = _run(tasks, workers, spec, progress)
    finally:
        _STATE.clear()
    done = {(r.split, r.name) for r in results if r.status in ('written', 'resumed')}
    # Listed: what this run finished, plus what the split's earlier runs (same settings) listed and
    # is still on disk -- so --limit or an interrupted run never shrinks the index.
    lists = {}
    for s, keys in full_keys.items():
        earlier = set()
        if old.get(s, {}).get('fingerprint') == fingerprint and (out / f'{s}.txt').is_file():
            earlier = set((out / f'{s}.txt').read_text().splitlines())
        lists[s] = [k for k in keys if (s, k) in done or (k in earlier and sample_path(out, s, k).is_file())]
    write_index(out, lists, {s: record for s in lists})
    meta = {'dataset': dataset, 'root': str(root), 'version': version, 'options': options, 'out': str(out),
            'workers': workers}
    summary = summarise(results, split_keys, meta, time.perf_counter() - started, broken)
    summary['stale_temporaries_removed'] = stale
    summary['fingerprint'] = fingerprint
    summary['listed'] = {s: len(n) for s, n in lists.items()}
    check = getattr(adapter, 'reference_count_check', None)
    summary['reference_counts'] = check({s: len(k) for s, k in full_keys.items()}) \
        if check is not None and limit is None else None
    atomic_write_text(out / 'summary.json', json.dumps(summary, indent=2))
    log(format_summary(summary))
    return summary


__all__ = ['SampleResult', 'prepare', 'process_sample', 'sample_stats', 'format_summary', 'check_split_settings']
