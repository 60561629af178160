"""`xd-rcdepth synth`: write synthetic radar-camera sequences to disk (format: storage.py).

    xd-rcdepth synth --out DIR [--scenes N] [--frames M] [--size HxW] [--seed S] [--accumulate K]
                     [--randomise] [--visualise N | --png] [--overwrite] [--quiet]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

from ..data.nuscenes.writer import write_nuscenes
from ..errors import UserError
from ..synthetic.randomise import DomainRandomisation
from ..synthetic.sequence import generate_sequence, scene_name, scene_seed
from ..synthetic.storage import read_meta, write_frame, write_meta
from ..synthetic.world import WorldSettings, scene_domain
from ..viz import frame_panel, save_png

SIZE = re.compile(r'^\s*(\d+)\s*[xX]\s*(\d+)\s*$')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True, help='output folder (created; must be empty unless --overwrite)')
    parser.add_argument('--format', choices=('native', 'nuscenes'), default='native',
                        help='native: this project\'s lossless format (storage.py); nuscenes: a nuScenes-format '
                             'dataset (v1.0-mini tables, JPG, radar .pcd, lidar .pcd.bin) the official devkit loads, '
                             'with --frames keyframes per scene')
    parser.add_argument('--scenes', type=int, default=1, help='number of scenes (default 1)')
    parser.add_argument('--frames', type=int, default=10, help='camera frames per scene, 12 Hz (default 10)')
    parser.add_argument('--size', default='900x1600', help='image HEIGHTxWIDTH (default 900x1600, nuScenes)')
    parser.add_argument('--seed', type=int, default=0, help='random seed; same seed, same data (default 0)')
    parser.add_argument('--accumulate', type=int, default=4,
                        help='lidar sweeps before and after each frame merged into the accumulated GT (default 4)')
    parser.add_argument('--visualise', type=int, default=0, metavar='N',
                        help='also write frame_panel PNGs of the first N frames of each scene to OUT/panels')
    parser.add_argument('--png', action='store_true', help='write frame_panel PNGs of every frame')
    parser.add_argument('--randomise', action='store_true',
                        help='domain randomisation per scene, drawn from its seed (synthetic/randomise.py): light, '
                             'sun, weather-like haze and contrast, textures, camera height / pitch / focal length '
                             '(+-20 %%; K follows), radar density, noise, clutter, ghosts and elevation spread; '
                             'recorded in meta.json (native format only)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing synthetic dataset in OUT')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def parse_size(text: str) -> tuple:
    match = SIZE.match(str(text))
    if not match:
        raise UserError(f'--size must be HEIGHTxWIDTH such as 900x1600, got {text!r}')
    h, w = int(match.group(1)), int(match.group(2))
    if h < 8 or w < 8 or h > 4320 or w > 7680:
        raise UserError(f'--size {h}x{w} is out of range: each side from 8 to 4320 x 7680 pixels')
    return h, w


def _check(args) -> tuple:
    size = parse_size(args.size)
    for name in ('scenes', 'frames'):
        if getattr(args, name) < 1:
            raise UserError(f'--{name} must be a positive integer, got {getattr(args, name)}')
    if args.seed < 0:
        raise UserError(f'--seed must be a non-negative integer, got {args.seed}')
    if args.accumulate < 0:
        raise UserError(f'--accumulate must be 0 or more, got {args.accumulate}')
    if args.visualise < 0:
        raise UserError(f'--visualise must be 0 or more, got {args.visualise}')
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f'--out {out} exists and is not a folder')
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise UserError(f'--out {out} is not empty; pass --overwrite to replace a synthetic dataset there')
        _clear(out)
    return size, out


def _clear(out: Path) -> None:
    """Remove a previous synthetic dataset; refuse to delete a folder that is not one."""
    try:
        meta = read_meta(out)
    except (FileNotFoundError, ValueError):
        raise UserError(f'--out {out} is not empty and holds no synthetic dataset (no valid meta.json); '
                        f'refusing to delete it') from None
    root = out.resolve()
    for scene in meta.get('scenes', []):
        target = (out / str(scene.get('name', ''))).resolve()
        # meta.json is user-editable: delete only direct children of --out, never a path it points at.
        if target.parent != root:
            raise UserError(f'{out / "meta.json"} names scene {scene.get("name")!r} outside {out}; '
                            f'refusing to delete it (remove the folder by hand)')
        shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(out / 'panels', ignore_errors=True)
    (out / 'meta.json').unlink(missing_ok=True)


def run(args) -> int:
    if getattr(args, 'format', 'native') == 'nuscenes':
        return _run_nuscenes(args)
    (height, width), out = _check(args)
    from tqdm import tqdm


    randomise = DomainRandomisation() if getattr(args, 'randomise', False) else None
    settings = WorldSettings(randomise=randomise)
    scenes = [dict(name=scene_name(i), seed=list(scene_seed(args.seed, i)), frames=args.frames)
              for i in range(args.scenes)]
    generator = dict(accumulate=args.accumulate, camera_rate_hz=settings.camera_rate,
                     lidar_rate_hz=settings.lidar.rate_hz, radar_rate_hz=settings.radar.rate_hz,
                     far_m=settings.far, layout_duration_s=settings.duration,
                     camera='nuScenes CAM_FRONT intrinsics scaled to size')
    if randomise is not None:
        # The ranges (so prepare's settings fingerprint changes) and what each scene drew.
        generator.update(randomise=randomise.to_dict(),
                         camera='nuScenes CAM_FRONT scaled to size, randomised per scene (focal length, principal '
                                'point, mount height, pitch, roll): each frame\'s K is its own')
        for scene in scenes:
            scene['domain'] = scene_domain(tuple(scene['seed']), settings).values
    meta = dict(seed=args.seed, size=[height, width], scenes=scenes, frames_per_scene=args.frames,
                generator=generator,
                note='synthetic data from the xd_rcdepth procedural street world; not real sensor data')
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, dict(meta, complete=False))
    n_panels = args.frames if args.png else min(args.visualise, args.frames)
    start, total_bytes = time.perf_counter(), 0
    with tqdm(total=args.scenes * args.frames, unit='frame', disable=args.quiet, file=sys.stderr) as bar:
        for scene in scenes:
            frames = generate_sequence(tuple(scene['seed']), args.frames, height, width,
                                       accumulate=args.accumulate, scene_name=scene['name'], settings=settings)
            for i, frame in enumerate(frames):
                for path in write_frame(out, scene['name'], i, frame):
                    total_bytes += path.stat().st_size
                if i < n_panels:
                    save_png(out / 'panels' / f'{frame.name}.png', frame_panel(frame))
                bar.update(1)
    write_meta(out, dict(meta, complete=True))
    seconds = time.perf_counter() - start
    n = args.scenes * args.frames
    print(f'wrote {n} frames ({args.scenes} scenes x {args.frames}) of {height}x{width} to {out}: '
          f'{total_bytes / 1e6:.1f} MB in {seconds:.1f} s ({seconds / n:.2f} s/frame)')
    return 0


def _run_nuscenes(args) -> int:
    """Write the world as a nuScenes-format dataset (data/nuscenes/writer.py)."""
    size = parse_size(args.size)
    for name in ('scenes', 'frames'):
        if getattr(args, name) < 1:
            raise UserError(f'--{name} must be a positive integer, got {getattr(args, name)}')
    if getattr(args, 'randomise', False):
        raise UserError('--randomise is for the native format: the nuScenes-format writer records one camera '
                        'calibration for every scene')
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise UserError(f'--out {out} is not empty; pass --overwrite to replace a nuScenes-format set there')
        if not (out / 'v1.0-mini').is_dir():
            raise UserError(f'--out {out} is not empty and holds no v1.0-mini tables; refusing to delete it')
        shutil.rmtree(out)
    start = time.perf_counter()
    report = write_nuscenes(out, seed=args.seed, n_scenes=args.scenes, samples_per_scene=args.frames,
                            height=size[0], width=size[1], accumulate=max(args.accumulate, 0),
                            progress=not args.quiet)
    samples = sum(len(v) for v in report.scenes.values())
    print(f'wrote a nuScenes-format dataset ({report.version}) to {out}: {len(report.scenes)} scenes, {samples} '
          f'keyframes, {report.files} files in {time.perf_counter() - start:.1f} s')
    return 0
