"""`xd-rcdepth export`: a checkpoint's depth path as ONNX or TorchScript, verified against PyTorch.

    xd-rcdepth export --checkpoint CKPT --format onnx --out model.onnx [--height 896 --width 1600]
                      [--dynamic] [--precision fp32|fp16|int8] [--opset 17] [--tolerance METRES]
                      [--rel-tolerance FRACTION]
    xd-rcdepth export --checkpoint CKPT --precision int8 --height 448 --width 800 --dynamic --out int8.onnx
                      [--calibration-frames 32] [--test-frames 24] [--calibration-method minmax]
                      [--keep-fp32 GROUP ...] [--max-mae-increase 0.03]

int8 (``--precision int8`` or ``--int8``): the fp32 export, verified, then statically quantised
(backends/int8.py: QDQ, per-channel, calibrated on synthetic frames at the export size) and kept only
if its MAE at 80 m on held-out synthetic frames is at most 3 % worse than the fp32 file's; otherwise
the command fails saying by how much, and leaves no file.

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

from ..backends.int8 import KEEP_FP32_GROUPS, Int8Settings, describe_gate
from ..backends.verify import describe_result
from ..conventions import InputConventions
from ..errors import UserError
from ..export import ExportSpec, check_writable, export_int8, export_verified
from ..exported import DEFAULT_OPSET, FORMATS, read_metadata
from ..models.checkpoint import load_model

INT8_DEFAULTS = Int8Settings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='model checkpoint (weights + config)')
    parser.add_argument('--format', default='onnx', choices=FORMATS, help='file format (default onnx)')
    parser.add_argument('--out', required=True, help='output file (.onnx, .pt/.ts for TorchScript)')
    parser.add_argument('--height', type=int, default=896, help='input height (default 896, the paper\'s test size)')
    parser.add_argument('--width', type=int, default=1600, help='input width (default 1600)')
    parser.add_argument('--dynamic', action=argparse.BooleanOptionalAction, default=False,
                        help='accept any height and width that are multiples of 32 (default: exactly HxW)')
    parser.add_argument('--precision', default=None, choices=('fp32', 'fp16', 'int8'),
                        help='fp32 (default); fp16: half-precision weights and activations (I/O stay float32); '
                             'int8: statically quantised, accuracy-gated (ONNX only)')
    parser.add_argument('--fp16', action='store_true', help='the same as --precision fp16')
    parser.add_argument('--int8', action='store_true', help='the same as --precision int8')
    q = parser.add_argument_group('int8', 'calibration and accuracy gate of --precision int8 (at --height x --width)')
    q.add_argument('--calibration-frames', type=int, default=INT8_DEFAULTS.calibration_frames,
                   help=f'synthetic frames the activation ranges come from (default {INT8_DEFAULTS.calibration_frames},'
                        f' over {INT8_DEFAULTS.calibration_scenes} worlds)')
    q.add_argument('--test-frames', type=int, default=INT8_DEFAULTS.test_frames,
                   help=f'held-out synthetic frames of the gate (default {INT8_DEFAULTS.test_frames})')
    q.add_argument('--calibration-method', default=INT8_DEFAULTS.method, choices=('minmax', 'percentile', 'entropy'),
                   help=f'activation ranges (default {INT8_DEFAULTS.method})')
    q.add_argument('--keep-fp32', nargs='*', default=None, metavar='GROUP',
                   help=f'layers left in float: {", ".join(KEEP_FP32_GROUPS)} or node-name prefixes '
                        f'(default: {" ".join(INT8_DEFAULTS.keep_fp32) or "none"})')
    q.add_argument('--max-mae-increase', type=float, default=INT8_DEFAULTS.max_mae_increase,
                   help=f'the gate: int8 MAE at 80 m at most this fraction worse than fp32 '
                        f'(default {INT8_DEFAULTS.max_mae_increase:g})')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--tolerance', type=float, default=None,
                        help='absolute part of the allowed depth error vs PyTorch, metres (default: fp32 0.01 '
                             'on every pixel; fp16 0.5, plus --rel-tolerance, on 99%% of pixels)')
    parser.add_argument('--rel-tolerance', type=float, default=None,
                        help='relative part, a fraction of the depth (default: fp32 0; fp16 0.03)')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='skip the comparison with PyTorch (not recommended)')


def _precision(args) -> str:
    asked = {p for p, flag in (('fp16', args.fp16), ('int8', args.int8)) if flag}
    if args.precision:
        asked.add(args.precision)
    if len(asked) > 1:
        raise UserError(f'choose one precision, got {" and ".join(sorted(asked))}')
    return asked.pop() if asked else 'fp32'


def _int8_settings(args, spec: ExportSpec) -> Int8Settings:
    if args.format != 'onnx':
        raise UserError('--precision int8 is an ONNX export (--format onnx)')
    if not args.verify:
        raise UserError('--precision int8 is always checked (its accuracy gate): drop --no-verify')
    if not 0 <= args.max_mae_increase < 1:
        raise UserError(f'--max-mae-increase must be in [0, 1), got {args.max_mae_increase}')
    if args.height % 32 or args.width % 32:
        raise UserError(f'--precision int8 calibrates at --height x --width, which must be multiples of 32 '
                        f'(got {args.height}x{args.width}; e.g. 448x800)')
    keep = INT8_DEFAULTS.keep_fp32 if args.keep_fp32 is None else tuple(args.keep_fp32)
    try:
        return Int8Settings(height=spec.height, width=spec.width, calibration_frames=args.calibration_frames,
                            test_frames=args.test_frames, method=args.calibration_method, keep_fp32=keep,
                            max_mae_increase=args.max_mae_increase,
                            calibration_scenes=min(INT8_DEFAULTS.calibration_scenes, max(1, args.calibration_frames)),
                            test_scenes=min(INT8_DEFAULTS.test_scenes, max(1, args.test_frames)))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args) -> int:
    if args.tolerance is not None and not args.tolerance > 0:
        raise UserError(f'--tolerance must be positive, got {args.tolerance}')
    if args.rel_tolerance is not None and not args.rel_tolerance >= 0:
        raise UserError(f'--rel-tolerance must be >= 0, got {args.rel_tolerance}')
    precision = _precision(args)
    try:
        spec = ExportSpec(args.format, args.height, args.width, args.dynamic, precision == 'fp16', args.opset)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = _int8_settings(args, spec) if precision == 'int8' else None
    out = Path(args.out)
    _check_out(out)
    model, ckpt = load_model(args.checkpoint, map_location='cpu')
    extra = {'checkpoint': Path(args.checkpoint).name}
    if settings is not None:
        conventions = InputConventions.from_dict(ckpt.get('inputs'))
        print(f'int8: calibrating on {settings.calibration_frames} synthetic frames and gating on '
              f'{settings.test_frames} held-out ones at {settings.height}x{settings.width} (minutes on a small CPU)',
              flush=True)
        path, gate = export_int8(model, out, spec, settings, conventions, extra)
        result = None
    else:
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
    if settings is not None:
        q = meta['int8']
        print(f"int8: {q['quantised_convolutions']} convolutions quantised (QDQ, per-channel, {settings.method} "
              f"calibration on {q['calibration_frames_used']} frames), {q['fp32_convolutions']} kept in fp32 "
              f"({', '.join(settings.keep_fp32) or 'none'})")
        print(f'int8 accuracy gate passed: {describe_gate(gate)}')
    elif result is None:
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
