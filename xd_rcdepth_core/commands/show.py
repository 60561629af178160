"""`xd-rcdepth show`: a picture of one cached sample (image, radar, ground truth).

    xd-rcdepth show --cache CACHE [--split S] --index I --out x.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.cache import CacheIndex
from ..data.show import render_frame
from ..viz import save_png


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cache', required=True, help='a folder written by `xd-rcdepth prepare`')
    parser.add_argument('--split', default=None, help='split to index (default: the first in the cache)')
    parser.add_argument('--index', type=int, default=0, help='sample number within the split')
    parser.add_argument('--out', required=True, help='PNG picture to write')


def run(args) -> int:
    index = CacheIndex(args.cache)
    split = args.split or next(iter(index.splits), None)
    if split is None:
        raise ValueError(f'cache {args.cache} has no samples')
    names = index.names(split)
    if not -len(names) <= args.index < len(names):
        raise ValueError(f'--index {args.index} out of range: split {split!r} has {len(names)} samples')
    picture = render_frame(index.frame(split, args.index))
    out = save_png(Path(args.out), picture)
    print(f'wrote {out} ({split}[{args.index}] = {names[args.index]})')
    return 0
