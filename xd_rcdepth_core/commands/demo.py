"""`xd-rcdepth demo`: the main job on the embedded default data (what `make demo` runs).

Today: generate a short synthetic radar-camera sequence and write one picture panel per frame
(image with radar coloured by depth, lidar ground truth, dense depth, interpolated GT) to OUT.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    parser.add_argument('--frames', type=int, default=6, help='frames to generate (default 6)')
    parser.add_argument('--size', default='450x800', help='image HEIGHTxWIDTH (default 450x800)')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the synthetic world (default 0)')


def run(args) -> int:
    from ..synthetic import command as synth
    out = Path(args.out)
    data = out / 'synthetic'
    synth_args = argparse.Namespace(out=str(data), scenes=1, frames=args.frames, size=args.size, seed=args.seed,
                                    accumulate=4, visualise=0, png=True, overwrite=True, quiet=False)
    synth.run(synth_args)
    panels = sorted((data / 'panels').glob('*.png'))
    print(f'demo: {len(panels)} picture panels in {data / "panels"} (e.g. {panels[0] if panels else "none"})')
    print(f'demo: the sequence itself is in {data}; read it with xd_rcdepth_core.synthetic.read_sequence')
    return 0
