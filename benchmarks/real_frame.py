"""Checkpoints on the one REAL nuScenes frame in ../shared/data, against the best single constant depth.

    .venv/bin/python benchmarks/real_frame.py                              # the shipped checkpoint
    .venv/bin/python benchmarks/real_frame.py --checkpoint old.pt new.pt \\
        --constant-from-cache out/shipped/cache --split val [--out out/benchmarks/real_frame]

The frame: nuScenes scene-0061, sample ca9a282c9e77460f8360f564131a8af5 (CAM_FRONT 1600 x 900 and
LIDAR_TOP; shared/data/README.md). Its files and metadata tables are assembled into a dataroot the
official devkit loads (docs/reference.md Part B section 7, the route test/test_nuscenes.py takes) and
read through the project's nuScenes adapter, so the ground truth is the devkit's single-sweep lidar
projection (3,052 pixels), evaluated by the paper's protocol (900 -> 896 rows, 50 / 70 / 80 m,
metrics.py).

NO RADAR exists for this sample (no RADAR_FRONT record or file anywhere reachable): every checkpoint
runs with an EMPTY radar cloud (0 points, an all-zero radar image). The numbers measure the camera
branch, and how a radar-camera network copes without radar, not radar-camera fusion.

The constant: the single depth that minimises the MAE at 80 m (mean over images of the per-image MAE,
the protocol's averaging) on a split of a prepared cache, normally the synthetic validation split.
That objective is convex and piecewise linear in the constant, so the 1-D search is exact: its
minimiser is the median of the valid ground-truth pixels, each weighted by 1 / (its image's valid
pixel count). A checkpoint that cannot beat this constant on the real frame has learned nothing about
real images that a number could not say.

Writes OUT/real_frame.json, OUT/real_frame.md and OUT/real_frame.png (the image, the lidar GT, each
prediction) and prints the table. One frame decides nothing statistically; it is a transfer check.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from xd_rcdepth_core.config import PAPER
from xd_rcdepth_core.data.cache import CacheIndex
from xd_rcdepth_core.data.errors import DataWarning
from xd_rcdepth_core.data.nuscenes.adapter import NuScenesAdapter, NuScenesConfig
from xd_rcdepth_core.evaluate import crop_for_eval
from xd_rcdepth_core.metrics import MetricAccumulator, range_key, valid_mask
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.viz import colorize_depth, label_tile, overlay_points, save_png, write_atomic

REAL_SAMPLE = 'ca9a282c9e77460f8360f564131a8af5'
SHIPPED = ROOT / 'models' / 'xd_rcdepth_synthetic.pt'
RANGES = PAPER.depth.eval_ranges
MIN_DEPTH = PAPER.depth.min_depth_eval
RADAR_NOTE = ('no radar: this sample has no RADAR_FRONT record or file, so every checkpoint ran with an EMPTY radar '
              'cloud (0 points, an all-zero radar image): the camera branch alone')
COLUMNS = (('mae', 'MAE'), ('rmse', 'RMSE'), ('abs_rel', 'AbsRel'), ('d1', 'δ1'))


def default_shared_data() -> Path:
    return Path(os.environ.get('XD_RCDEPTH_SHARED_DATA') or ROOT.parent / 'shared' / 'data')


def assemble_dataroot(shared: Path, root: Path) -> Path:
    """docs/reference.md Part B section 7: the shared files -> a devkit dataroot (sensor files symlinked;
    the tables the demo lacks added: log, map, empty instance / sample_annotation)."""
    shared, root = Path(shared), Path(root)
    files = shared / 'mmdetection3d-demo-nuscenes'
    tables_in = shared / 'ros2_bevfusion_demo-nuscenes-tables' / 'v1.0-test'
    if not files.is_dir() or not tables_in.is_dir():
        raise FileNotFoundError(f'the real nuScenes sample is not in {shared} (expected {files.name}/ and '
                                f'{tables_in.parent.name}/); pass --shared-data or set XD_RCDEPTH_SHARED_DATA')
    for f in files.iterdir():
        if '__' in f.name:
            channel = f.name.split('__')[1]
            (root / 'samples' / channel).mkdir(parents=True, exist_ok=True)
            (root / 'samples' / channel / f.name).symlink_to(f.resolve())
    tables = root / 'v1.0-mini'
    tables.mkdir(parents=True)
    for f in tables_in.glob('*.json'):
        records = json.loads(f.read_text())
        for r in records:
            if f.stem in ('sample', 'sample_data'):
                r.setdefault('prev', '')
                r.setdefault('next', '')
            if f.stem == 'scene':
                r['first_sample_token'] = r['last_sample_token'] = REAL_SAMPLE
        (tables / f.name).write_text(json.dumps(records))
    log = json.loads((tables / 'scene.json').read_text())[0]['log_token']
    (tables / 'log.json').write_text(json.dumps([{
        'token': log, 'logfile': 'n015-2018-07-24-11-22-45+0800', 'vehicle': 'n015', 'date_captured': '2018-07-24',
        'location': 'singapore-onenorth'}]))
    (root / 'maps').mkdir()
    (root / 'maps' / 'placeholder.png').write_bytes(b'')
    (tables / 'map.json').write_text(json.dumps([{'token': 'map0', 'log_tokens': [log], 'category': 'semantic_prior',
                                                  'filename': 'maps/placeholder.png'}]))
    for name in ('instance', 'sample_annotation'):
        (tables / f'{name}.json').write_text('[]')
    return root


def real_frame(shared=None):
    """(Frame, adapter warnings, evaluation multiple): the real sample through the nuScenes adapter
    (single-sweep GT; no accumulated GT: one lidar sweep is all there is)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = assemble_dataroot(shared or default_shared_data(), Path(tmp))
        adapter = NuScenesAdapter(root, 'v1.0-mini', NuScenesConfig(skip_last_keyframe=False, accumulate=False))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            frame = adapter.frame(REAL_SAMPLE)
        frame = frame.replace(name='scene-0061_CAM_FRONT_' + REAL_SAMPLE[:8])
        return frame, [str(w.message) for w in caught if issubclass(w.category, DataWarning)], adapter.eval_multiple


def best_constant(gt_maps, max_depth: float = 80.0, min_depth: float = MIN_DEPTH) -> tuple:
    """(c, objective): the constant minimising the mean over images of the per-image MAE against the GT
    maps within (min_depth, max_depth), and that mean. Exact: a weighted median of the valid pixels,
    each weighted 1 / (its image's valid count); images without a valid pixel do not count."""
    values, weights = [], []
    for gt in gt_maps:
        g = np.asarray(gt, np.float64)
        g = g[valid_mask(g, min_depth, max_depth)]
        if g.size:
            values.append(g)
            weights.append(np.full(g.size, 1.0 / g.size))
    if not values:
        raise ValueError(f'no ground-truth pixel within ({min_depth}, {max_depth}) m to choose a constant on')
    v, w = np.concatenate(values), np.concatenate(weights)
    order = np.argsort(v, kind='stable')
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    c = float(v[np.searchsorted(cum, 0.5 * cum[-1])])
    objective = float(np.mean([np.mean(np.abs(g - c)) for g in values]))
    return c, objective


def constant_from_cache(cache, split: str) -> dict:
    index = CacheIndex(cache)
    if split not in index.splits:
        raise SystemExit(f'split {split!r} is not in cache {cache}; it has {sorted(index.splits)}')
    multiple = index.eval_multiple(split)
    maps = [crop_for_eval(index.frame(split, i), multiple).depth_sparse for i in range(len(index.names(split)))]
    c, objective = best_constant(maps, max(RANGES))
    return dict(value=c, cache=str(cache), split=split, images=len(maps),
                objective=f'mean per-image MAE at {max(RANGES):g} m on single-sweep lidar GT, minimised exactly '
                          f'(weighted median)', objective_value=objective)


def constant_metrics(c: float, frame) -> dict:
    acc = MetricAccumulator(ranges=tuple(RANGES))
    acc.add(np.full(frame.depth_sparse.shape, c, np.float32), frame.depth_sparse, frame.name)
    return acc.result()


def run_checkpoint(path, frame, multiple: int):
    """(metrics, prediction, recorded training camera): evaluate.evaluate's loop for one frame, keeping the
    prediction for the panel. DepthEstimator resizes the image to the checkpoint's training focal length."""
    estimator = DepthEstimator.from_checkpoint(path, device='cpu')
    cropped = crop_for_eval(frame, multiple)
    pred = estimator.predict(cropped).depth
    acc = MetricAccumulator(ranges=tuple(RANGES))
    acc.add(pred, cropped.depth_sparse, cropped.name)
    conventions = estimator.conventions
    return acc.result(), pred, dict(focal=conventions.focal, image_size=conventions.image_size)


def panel(frame, entries: list, width: int = 800) -> np.ndarray:
    """Tiles of `width` px in two columns: the image, the lidar GT over it, then each prediction."""
    scale = width / frame.width
    height = int(round(frame.height * scale))

    def fit(img, nearest=False):
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    tiles = [label_tile(fit(frame.image), 'real CAM_FRONT, no radar')]
    v, u = np.nonzero(frame.depth_sparse > 0)
    dim = (fit(frame.image).astype(np.float32) * 0.45).astype(np.uint8)
    gt = overlay_points(dim, np.rint((u + 0.5) * scale - 0.5).astype(int), np.rint((v + 0.5) * scale - 0.5).astype(int),
                        frame.depth_sparse[v, u], 80.0, 1)
    tiles.append(label_tile(gt, f'lidar GT ({u.size} px, 0-80 m)'))
    for e in entries:
        mae = e['by_range'][range_key(80)]['mae']
        tiles.append(label_tile(fit(colorize_depth(e['prediction'], 80.0)),
                                f'{e["short"]}: MAE80 {mae:.2f} m'))
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    return np.concatenate([np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, len(tiles), 2)], axis=0)


def markdown(report: dict) -> str:
    lines = ['| | range | ' + ' | '.join(label for _, label in COLUMNS) + ' |', '|---|---|' + '---|' * len(COLUMNS)]
    for e in report['results']:
        for r in RANGES:
            m = e['by_range'][range_key(r)]
            lines.append(f'| {e["name"]} | {r:g} m | ' + ' | '.join(f'{m[key]:.3f}' for key, _ in COLUMNS) + ' |')
    oracle = report['oracle_constant']
    mae = ' / '.join(f'{oracle["by_range"][range_key(r)]["mae"]:.3f}' for r in RANGES)
    lines.append('')
    lines.append(f'For scale, not a baseline: the best constant for this frame itself ({oracle["value"]:.2f} m, '
                 f'chosen on its own GT) has MAE {mae} m at ' + ' / '.join(f'{r:g}' for r in RANGES) + ' m.')
    frame = report['frame']
    return '\n'.join([f'Real nuScenes frame {frame["sample"]} (scene-0061 CAM_FRONT, {frame["eval_size"][0]}x'
                      f'{frame["eval_size"][1]} after the protocol crop), single-sweep lidar GT '
                      f'({frame["gt_pixels"]} px). **{report["radar"]}.**', ''] + lines) + '\n'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', nargs='*', default=None,
                        help=f'checkpoints to evaluate (default: the shipped {SHIPPED.relative_to(ROOT)}); none: '
                             f'only the constant')
    parser.add_argument('--constant-from-cache', default=None, metavar='CACHE',
                        help='a prepared cache (e.g. synthetic); its --split chooses the best constant depth')
    parser.add_argument('--split', default='val', help='cache split for the constant (default val)')
    parser.add_argument('--shared-data', default=None, help='folder holding the real sample (default ../shared/data)')
    parser.add_argument('--out', default=str(ROOT / 'out' / 'benchmarks' / 'real_frame'))
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = parser.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    checkpoints = [str(SHIPPED)] if args.checkpoint is None else list(args.checkpoint)
    frame, notes, multiple = real_frame(args.shared_data)
    cropped = crop_for_eval(frame, multiple)
    entries = []
    for path in checkpoints:
        result, pred, conventions = run_checkpoint(path, frame, multiple)
        entries.append(dict(name=Path(path).name, short=Path(path).stem[:24], checkpoint=str(path), inputs=conventions,
                            by_range=result['by_range'], prediction=pred))
    constant = None
    if args.constant_from_cache:
        constant = constant_from_cache(args.constant_from_cache, args.split)
        result = constant_metrics(constant['value'], cropped)
        entries.append(dict(name=f'constant {constant["value"]:.2f} m ({args.split} split)',
                            short=f'constant {constant["value"]:.1f} m', constant=constant,
                            by_range=result['by_range'],
                            prediction=np.full(cropped.depth_sparse.shape, constant['value'], np.float32)))
    # For scale only: the best constant for this frame itself (chosen on its own GT: not a baseline).
    value, _ = best_constant([cropped.depth_sparse], max(RANGES))
    oracle = dict(value=value, by_range=constant_metrics(value, cropped)['by_range'])
    report = dict(frame=dict(sample=REAL_SAMPLE, scene='scene-0061', camera='CAM_FRONT',
                             size=[frame.height, frame.width], eval_size=[cropped.height, cropped.width],
                             fx=float(frame.K[0, 0]),
                             gt='devkit single-sweep LIDAR_TOP projection (depth_sparse)',
                             gt_pixels=int(np.count_nonzero(cropped.depth_sparse)),
                             radar_points=int(frame.radar.shape[0]), adapter_warnings=notes),
                  radar=RADAR_NOTE, ranges=[float(r) for r in RANGES], constant=constant,
                  oracle_constant=oracle,
                  results=[{k: v for k, v in e.items() if k not in ('prediction', 'short')} for e in entries])
    out = Path(args.out)
    write_atomic(out / 'real_frame.json', (json.dumps(report, indent=2) + '\n').encode())
    text = markdown(report)
    write_atomic(out / 'real_frame.md', text.encode())
    save_png(out / 'real_frame.png', panel(cropped, entries))
    print(text, end='')
    print(f'wrote {out / "real_frame.json"}, real_frame.md and real_frame.png')
    return report


if __name__ == '__main__':
    main()
