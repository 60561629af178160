"""`xd-rcdepth train`: train the teacher, a student, or a student distilled from a frozen teacher.

    xd-rcdepth train --recipe {teacher,student,distill} --config FILE [--run-dir DIR] [--resume [CKPT]]
                     [key=value ...]
    torchrun --nproc_per_node N $(which xd-rcdepth) train ...     (DistributedDataParallel)

Overrides use dotted keys of the config (training/config.py): data.cache=PATH optim.lr=5e-5
distill.kd=xkd model.config.fusion=add. --resume without a path continues RUN/checkpoints/last.pt.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.errors import DatasetError
from ..errors import UserError
from ..training import Trainer, load_config
from ..training.config import RECIPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--recipe', required=True, choices=RECIPES, help='what to train')
    parser.add_argument('--config', default=None, help='YAML recipe file (e.g. config/train_distill.yaml)')
    parser.add_argument('--run-dir', default=None, help='run folder (overrides run_dir of the config)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='continue a run: its RUN/checkpoints/last.pt, or the checkpoint given')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument('overrides', nargs='*', metavar='key=value', help='config overrides (dotted keys)')


def run(args) -> int:
    overrides = list(args.overrides)
    if args.resume and '=' in args.resume and not Path(args.resume).exists():
        # `--resume key=value`: argparse took the first override for the optional CKPT.
        overrides.insert(0, args.resume)
        args.resume = 'auto'
    if args.run_dir:
        overrides.append(f'run_dir={args.run_dir}')
    config = load_config(args.config, args.recipe, overrides)
    try:
        trainer = Trainer(config, resume=args.resume, progress=not args.quiet)
    except (KeyError, DatasetError) as exc:
        raise UserError(str(exc).strip('"\'')) from None
    try:
        summary = trainer.fit()
    except FloatingPointError as exc:
        raise UserError(str(exc)) from None
    finally:
        trainer.close()
    if trainer.dist.is_main:
        best = summary['best']
        best_text = (f"best val {best['metric']} at {best['range']:g} m: {best['value']:.4f} (step {best['step']})"
                     if best else 'no val split: no best checkpoint')
        print(f"trained {config.recipe} to step {summary['step']} in {summary['seconds']:.1f} s "
              f"({summary['samples_per_s']:.2f} samples/s); {best_text}; run folder {config.run_dir}")
    return 0


def main(argv=None) -> int:
    """`python -m xd_rcdepth_core.commands.train ...`: the same command without the `xd-rcdepth` front end
    (torchrun can launch either)."""
    import sys
    parser = argparse.ArgumentParser(prog='xd-rcdepth train', description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command = 'train'
    try:
        return run(args)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f'xd-rcdepth train: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    raise SystemExit(main())
