"""`xd-rcdepth to-bag`: a dataset scene (or every scene) -> a Jazzy rosbag2 per scene.

    xd-rcdepth to-bag --dataset {nuscenes,synthetic} --root DIR (--scene NAME | --all) --out BAG
                      [--storage mcap|sqlite3] [--compressed-image] [--version v1.0-mini]
                      [--radars RADAR_FRONT,...] [--overwrite] [--quiet]

With --scene, BAG is the bag folder; with --all, BAG is a folder that gets one bag per scene
(BAG/<scene>). Topics, frame ids and the extrinsics sidecar are described in xd_rcdepth_ros/bagfile/schema.py.

Every sensor is written at its own native times, as a vehicle records it: nuScenes through the devkit
(every sample_data record of the scene, keyframes and sweeps, whose file is on disk); synthetic data
takes the camera images from the dataset folder and re-simulates every radar (13 Hz) and lidar (20 Hz)
sweep from the scene's seed (checked against the stored frames), since the folder keeps only the sweep
nearest each image. Header stamps are the dataset's times (synthetic ones shifted by 1.6e9 s, see
schema.SYNTHETIC_EPOCH_NS); extrinsics are the static sensor mounts.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from xd_rcdepth_core.errors import UserError

from ..bagfile.schema import STORAGE_CHOICES
from ..dataset_to_bag import nuscenes, synthetic
from ..dataset_to_bag.scene import write_scene


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', required=True, choices=('nuscenes', 'synthetic'), help='source dataset')
    parser.add_argument('--root', required=True,
                        help='dataset folder (nuScenes dataroot, or an `xd-rcdepth synth` folder)')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--scene', help='scene name (e.g. scene-0061, scene-0001)')
    which.add_argument('--all', action='store_true', help='every scene: OUT becomes a folder of bags, OUT/<scene>')
    parser.add_argument('--out', required=True, help='bag folder to create (a folder of bags with --all)')
    parser.add_argument('--storage', default='mcap', help=f'rosbag2 storage plugin: {" or ".join(STORAGE_CHOICES)} '
                                                          f'(default mcap)')
    parser.add_argument('--compressed-image', action='store_true',
                        help='write sensor_msgs/CompressedImage JPEG (the original bytes for nuScenes) on '
                             '/<camera>/image_raw/compressed instead of rgb8 Image on /<camera>/image_raw')
    parser.add_argument('--jpeg-quality', type=int, default=95,
                        help='JPEG quality when an image has to be encoded (synthetic; default 95)')
    parser.add_argument('--version', default=None, help='nuScenes table folder, e.g. v1.0-mini (default: the only one)')
    parser.add_argument('--camera', default='CAM_FRONT', help='nuScenes camera channel (default CAM_FRONT)')
    parser.add_argument('--radars', default=None,
                        help='comma-separated nuScenes radar channels (default: all five; the first is the one '
                             'replay-eval and the node use)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing bag folder(s)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def _check(args) -> None:
    if args.storage.lower() not in STORAGE_CHOICES:
        raise UserError(f'--storage {args.storage!r} is not a storage plugin rosbags can write: '
                        f'use {" or ".join(STORAGE_CHOICES)}')
    if not Path(args.root).exists():
        raise UserError(f'--root {args.root} does not exist')
    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f'--jpeg-quality must be 1..100, got {args.jpeg_quality}')


def _prepare_out(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not overwrite:
        raise UserError(f'{path} exists; pass --overwrite to replace it')
    if not (path / 'metadata.yaml').is_file():
        raise UserError(f'{path} exists and is not a rosbag2 folder (no metadata.yaml): refusing to delete it')
    shutil.rmtree(path)


def _sources(args):
    """(scene names, factory scene -> SceneSource)."""
    if args.dataset == 'synthetic':
        try:
            names = synthetic.scene_names(args.root)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
        return names, lambda scene: synthetic.SyntheticSceneSource(args.root, scene)
    nusc = nuscenes.open_dataset(args.root, args.version)
    radars = None if args.radars is None else tuple(r.strip() for r in args.radars.split(',') if r.strip())
    return nuscenes.scene_names(nusc), lambda scene: nuscenes.NuScenesSceneSource(nusc, scene, camera=args.camera,
                                                                                 radars=radars)


def run(args) -> int:
    _check(args)
    names, make = _sources(args)
    if args.all:
        if not names:
            raise UserError(f'{args.root} holds no scene')
        jobs = [(name, Path(args.out) / name) for name in names]
    else:
        if args.scene not in names:
            raise UserError(f'no scene {args.scene!r} in {args.root}; scenes: {", ".join(names[:10]) or "none"}'
                            f'{" ..." if len(names) > 10 else ""}')
        jobs = [(args.scene, Path(args.out))]
    for _, out in jobs:
        _prepare_out(out, args.overwrite)
    for scene, out in jobs:
        summary = write_scene(make(scene), out, storage=args.storage, compressed=args.compressed_image,
                              jpeg_quality=args.jpeg_quality, progress=not args.quiet)
        print(summary.table())
    return 0
