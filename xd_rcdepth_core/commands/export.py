"""`xd-rcdepth export`: a checkpoint's depth path as ONNX or TorchScript, verified against PyTorch.

    xd-rcdepth export --checkpoint CKPT --format onnx --out model.onnx [--height 896 --width 1600]
                      [--dynamic] [--fp16] [--opset 17] [--tolerance METRES] [--rel-tolerance FRACTION]

The file is written only if, run on a synthetic frame, it gives PyTorch's depth within the
tolerance of its precision (printed with the max abs error; outside it the command fails and no
file is left): fp32 within 0.01 m on every pixel; fp16 within 0.5 m + 3 % of depth on 99 % of the
pixels (half precision has a relative error and outliers at depth edges; backends/verify.py says
what was measured). See xd_rcdepth_core/export.py for the graph's inputs, the metadata (with the
weights' fingerprint) and TensorRT notes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..backends.verify import describe_result
from ..errors import UserError
from ..export import ExportSpec, check_writable, export_verified
from ..exported import DEFAULT_OPSET, FORMATS, read_metadata
from ..models.checkpoint import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='model checkpoint (weights + config)')
    parser.add_argument('--format', default='onnx', choices=FORMATS, help='file format (default onnx)')
    parser.add_argument('--out', required=True, help='output file (.onnx, .pt/.ts for TorchScript)')
    parser.add_argument('--height', type=int, default=896, help='input height (default 896, the paper\'s test size)')
    parser.add_argument('--width', type=int, default=1600, help='input width (default 1600)')
    parser.add_argument('--dynamic', action=argparse.BooleanOptionalAction, default=False,
                        help='accept any height and width that are multiples of 32 (default: exactly HxW)')
    parser.add_argument('--fp16', action='store_true', help='half-precision weights and activations (I/O stay float32)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--tolerance', type=float, default=None,
                        help='absolute part of the allowed depth error vs PyTorch, metres (default: fp32 0.01 '
                             'on every pixel; fp16 0.5, plus --rel-tolerance, on 99%% of pixels)')
    parser.add_argument('--rel-tolerance', type=float, default=None,
                        help='relative part, a fraction of the depth (default: fp32 0; fp16 0.03)')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='skip the comparison with PyTorch (not recommended)')


def run(args) -> int:
    if args.tolerance is not None and not args.tolerance > 0:
        raise UserError(f'--tolerance must be positive, got {args.tolerance}')
    if args.rel_tolerance is not None and not args.rel_tolerance >= 0:
        raise UserError(f'--rel-tolerance must be >= 0, got {args.rel_tolerance}')
    try:
        spec = ExportSpec(args.format, args.height, args.width, args.dynamic, args.fp16, args.opset)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out)
    _check_out(out)
    model, _ = load_model(args.checkpoint, map_location='cpu')
    extra = {'checkpoint': Path(args.checkpoint).name}
    path, result = export_verified(model, out, spec, args.tolerance, args.verify, extra, args.rel_tolerance)
    meta = read_metadata(path)
    size = 'any HxW, multiples of 32' if spec.dynamic else f'{spec.height}x{spec.width}'
    opset = f", opset {meta['opset']}" if meta.get('opset') else ''
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {meta['model_name']} depth path, {spec.format}{opset}, "
          f"{meta['precision']}, input {size}; weights sha256 {meta['weights_sha256'][:16]}...")
    if spec.format == 'onnx':
        print(f"ops: {' '.join(meta['ops'])}")
        bad = meta['tensorrt_unsupported']
        print('TensorRT ONNX parser: ' + (f"ops outside its operator matrix: {', '.join(bad)}" if bad else
                                          'every op is in its operator matrix'))
        for note in meta['tensorrt_notes']:
            print(f'TensorRT note: {note}')
    if result is None:
        print('not verified (--no-verify)')
    else:
        print(f"verified on a synthetic frame against PyTorch fp32: {describe_result(result)}")
    return 0


def _check_out(out: Path) -> None:
    """Fail before loading anything when the output cannot be written."""
    try:
        check_writable(out)
    except ValueError as exc:
        raise UserError(str(exc)) from None
