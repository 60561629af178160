"""Forward-pass latency of every model at the paper's sizes; writes JSON and a Markdown table.

    python benchmarks/models.py                       # all models, 896x1600 and 352x704
    python benchmarks/models.py --models xd_rcdepth xd_rcdepth:add --sizes 352x704 --repeats 20

Batch 1, eval mode, inference_mode; a few warm-up passes, then the median (and min) of
``--repeats`` timed passes. fp32 always; on CUDA also fp16 autocast. Params and GMACs come from
models.summary (FlopCounterMode, MACs = FLOPs / 2). "vs teacher" is the model's median latency
divided by CaFNet's at the same size and precision. Inputs are random (latency does not depend on
values; radar is ~3 % non-zero like a real radar image). A benchmark reports; it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    from xd_rcdepth_core.models import build_model
    from xd_rcdepth_core.models.summary import model_summary
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from xd_rcdepth_core.models import build_model
    from xd_rcdepth_core.models.summary import model_summary

TEACHER = 'cafnet'
DEFAULT_MODELS = ('xd_rcdepth', 'lircdepth', 'cafnet')
DEFAULT_SIZES = ('896x1600', '352x704')   # test frame (docs/reference.md 1.2) and training crop


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 352x704, got {text!r}') from None
    return h, w


def parse_model(spec: str) -> tuple[str, dict]:
    """'xd_rcdepth' or 'xd_rcdepth:add' (student fusion variant)."""
    name, _, fusion = spec.partition(':')
    return name, ({'fusion': fusion} if fusion else {})


def inputs(height, width, device):
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, height, width, generator=g)
    radar = torch.zeros(1, 4, height, width)
    hit = torch.rand(1, 1, height, width, generator=g) < 0.03
    radar = torch.where(hit, torch.rand(1, 4, height, width, generator=g) * 50, radar)
    return image.to(device), radar.to(device)


def time_forward(model, image, radar, device, precision, warmup, repeats) -> list[float]:
    cuda = device.type == 'cuda'
    autocast = torch.autocast('cuda', dtype=torch.float16) if precision == 'fp16' else torch.autocast(
        device.type, enabled=False)
    times = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(image, radar)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def run(args) -> dict:
    device = torch.device(args.device)
    precisions = ['fp32'] + (['fp16'] if device.type == 'cuda' else [])
    repeats = args.repeats or (20 if device.type == 'cuda' else 3)
    warmup = args.warmup if args.warmup is not None else (5 if device.type == 'cuda' else 1)
    results = []
    for spec in args.models:
        name, config = parse_model(spec)
        torch.manual_seed(0)
        model = build_model(name, **config).eval().to(device)
        for height, width in args.sizes:
            summary = model_summary(name, height, width, **config)
            image, radar = inputs(height, width, device)
            for precision in precisions:
                times = time_forward(model, image, radar, device, precision, warmup, repeats)
                row = {'model': spec, 'fusion': summary['fusion'], 'height': height, 'width': width,
                       'precision': precision, 'params': summary['params_total'], 'gmacs': summary['gmacs'],
                       'latency_ms_median': 1e3 * statistics.median(times), 'latency_ms_min': 1e3 * min(times),
                       'times_ms': [1e3 * t for t in times], 'warmup': warmup, 'repeats': repeats}
                results.append(row)
                print(f"  {spec:16s} {height}x{width} {precision}: {row['latency_ms_median']:.1f} ms", flush=True)
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    teacher = {(r['height'], r['width'], r['precision']): r['latency_ms_median']
               for r in results if r['model'] == TEACHER}
    for r in results:
        ref = teacher.get((r['height'], r['width'], r['precision']))
        r['vs_teacher'] = r['latency_ms_median'] / ref if ref else None
    return {'device': str(device), 'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda'
                                                   else platform.processor() or platform.machine()),
            'torch': torch.__version__, 'threads': torch.get_num_threads(), 'batch': 1, 'results': results}


def markdown(report: dict) -> str:
    repeats = report['results'][0]['repeats'] if report['results'] else 0
    lines = [f"Device: {report['device']} ({report['device_name']}), torch {report['torch']}, "
             f"{report['threads']} threads, batch 1, median of {repeats}.",
             '',
             '| model | input | precision | params (M) | GMACs | latency (ms) | FPS | vs teacher |',
             '|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        ratio = f"{r['vs_teacher']:.3f}" if r['vs_teacher'] is not None else '-'
        ms = r['latency_ms_median']
        lines.append(f"| {r['model']} | {r['height']}x{r['width']} | {r['precision']} | {r['params'] / 1e6:.2f} | "
                     f"{r['gmacs']:.1f} | {ms:.1f} | {1e3 / ms:.2f} | {ratio} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS),
                        help='model names, optionally name:fusion (default: %(default)s)')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                        help='HxW input sizes (default: 896x1600 352x704)')
    parser.add_argument('--repeats', type=int, default=None, help='timed passes (default 3 on CPU, 20 on CUDA)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed passes (default 1 on CPU, 5 on CUDA)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', type=Path, default=Path('out/benchmarks'), help='output folder (default: %(default)s)')
    args = parser.parse_args(argv)
    report = run(args)
    table = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'models.json').write_text(json.dumps(report, indent=2) + '\n')
    (args.out / 'models.md').write_text(table)
    print()
    print(table, end='')
    print(f"\nwrote {args.out / 'models.json'} and {args.out / 'models.md'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
