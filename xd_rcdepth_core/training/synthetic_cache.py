"""A small prepared cache of SYNTHETIC scenes, for smoke runs, tests and CPU benchmarks.

Writes the synthetic world's native storage (with a train / val / test scene split in meta.json),
then prepares it into a cache like any dataset. Both steps are skipped when already complete, so a
benchmark that is re-run reuses its data.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from ..data.prepare import prepare
from ..synthetic.sequence import generate_sequence, scene_name, scene_seed
from ..synthetic.storage import read_meta, write_frame, write_meta


def _render(spec: dict, root: Path, height: int, width: int, accumulate: int) -> None:
    frames = generate_sequence(tuple(spec['seed']), spec['frames'], height, width, accumulate=accumulate,
                               scene_name=spec['name'])
    for j, frame in enumerate(frames):
        write_frame(root, spec['name'], j, frame)


def make_synthetic_cache(out, scenes: dict, frames: int, size=(96, 192), seed: int = 0,
                         accumulate: int = 2, log=print, workers: int = 1) -> Path:
    """Cache at out/cache from out/synthetic; `scenes` = {split: number of scenes}. ``workers``:
    processes rendering scenes and preparing the cache (each scene is seeded alone: same data)."""
    out = Path(out)
    root, cache = out / 'synthetic', out / 'cache'
    if (cache / 'index.json').is_file():
        return cache
    height, width = (int(v) for v in size)
    splits, specs, i = {}, [], 0
    for split, count in scenes.items():
        for _ in range(int(count)):
            specs.append(dict(name=scene_name(i), seed=list(scene_seed(seed, i)), frames=int(frames)))
            splits.setdefault(split, []).append(scene_name(i))
            i += 1
    meta = dict(seed=seed, size=[height, width], scenes=specs, frames_per_scene=int(frames), splits=splits,
                generator=dict(accumulate=accumulate), note='synthetic data; not real sensor data')
    try:
        complete = read_meta(root).get('complete', False)
    except (FileNotFoundError, ValueError):
        complete = False
    if not complete:
        log(f'generating {len(specs)} synthetic scenes x {frames} frames of {height}x{width} in {root}')
        write_meta(root, dict(meta, complete=False))
        render = partial(_render, root=root, height=height, width=width, accumulate=accumulate)
        if workers > 1:
            with ProcessPoolExecutor(min(workers, len(specs))) as pool:
                list(pool.map(render, specs))
        else:
            for spec in specs:
                render(spec)
        write_meta(root, dict(meta, complete=True))
    prepare('synthetic', root, out=cache, workers=workers, progress=False, log=lambda *_: None)
    return cache
