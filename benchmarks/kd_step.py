"""One student training step under each distillation objective; writes JSON and a Markdown table.

    python benchmarks/kd_step.py                          # the device torch finds; 96x192, batch 4
    python benchmarks/kd_step.py --size 352x704 --steps 10 --device cpu

The distillation benchmark's step (benchmarks/distillation.py): the student's forward, its loss
(depth, plus X-KD and / or D2-KD against the teacher's cached outputs, as distill.teacher_targets
gives them), backward and an Adam step. The teacher has random weights; its outputs are computed
once, outside the timing, as the cache does. X-KD is timed twice: as training runs it, and with
PyTorch's own double backward of grouped convolutions (the row 'X-KD, per-group double backward'),
which calls one convolution per channel of every depthwise layer (distill/grouped_conv.py). Median
of --steps timed steps after 3 warm-up steps. A benchmark reports; it asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from xd_rcdepth_core.devices import resolve_device  # noqa: E402
from xd_rcdepth_core.distill import losses  # noqa: E402
from xd_rcdepth_core.distill.grouped_conv import pytorch_grouped_conv_grads  # noqa: E402
from xd_rcdepth_core.models import build_model  # noqa: E402
from xd_rcdepth_core.training import load_config  # noqa: E402
from xd_rcdepth_core.training.objectives import make_objective  # noqa: E402

ROWS = [('none', 'student, no KD', True), ('d2kd', 'D2-KD', True), ('xkd', 'X-KD', True),
        ('both', 'X-KD + D2-KD', True), ('xkd', 'X-KD, per-group double backward', False)]


def make_batch(batch: int, height: int, width: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    hit = torch.rand(batch, 1, height, width, generator=g) < 0.03      # ~3 % of pixels carry radar
    depth = torch.rand(batch, 1, height, width, generator=g) * 60 + 2
    return {'image': torch.randn(batch, 3, height, width, generator=g).to(device),
            'radar': (torch.rand(batch, 4, height, width, generator=g) * 50 * hit).to(device),
            'depth_interp': depth.to(device), 'depth_sparse': (depth * hit).to(device)}


def time_step(kd: str, fast: bool, teacher, batch: dict, device, steps: int) -> list:
    torch.manual_seed(0)
    student = build_model('xd_rcdepth', init_depth=12.0).to(device).train()
    optimizer = torch.optim.Adam(student.parameters(), 2e-4, eps=1e-6)
    config = load_config(None, 'distill', [f'distill.kd={kd}', 'distill.teacher=random', 'run_dir=unused'])
    objective = make_objective(config, teacher)
    t_out, t_maps = losses.teacher_saliency(teacher, batch['image'], batch['radar'], config.distill.xkd_layers)
    batch = {**batch, 'teacher_depth': t_out['depth'], 'teacher_maps': t_maps}
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    times = []
    with contextlib.nullcontext() if fast else pytorch_grouped_conv_grads():
        for i in range(3 + steps):
            sync()
            start = time.perf_counter()
            out = student(batch['image'], batch['radar'])
            loss, _ = objective(student, out, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync()
            if i >= 3:
                times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='auto')
    parser.add_argument('--size', default='96x192', help='HxW (default: the decide plan\'s)')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default='out/benchmarks/kd_step')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    height, width = (int(v) for v in args.size.lower().split('x'))
    torch.backends.cudnn.benchmark = True
    teacher = build_model('cafnet').to(device).eval().requires_grad_(False)
    batch = make_batch(args.batch, height, width, device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    rows = []
    for kd, label, fast in ROWS:
        times = time_step(kd, fast, teacher, batch, device, args.steps)
        rows.append({'objective': label, 'kd': kd, 'fast_grouped_conv_grads': fast,
                     'median_ms': 1000 * statistics.median(times), 'min_ms': 1000 * min(times)})
        print(f'{label:34s} {rows[-1]["median_ms"]:8.1f} ms', flush=True)
    none = rows[0]['median_ms']
    lines = [f'Student training step at {height}x{width}, batch {args.batch} ({name}; median of {args.steps})', '',
             '| objective | median (ms) | min (ms) | vs no KD |', '|---|---|---|---|']
    lines += [f"| {r['objective']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['median_ms'] / none:.2f}x |"
              for r in rows]
    text = '\n'.join(lines) + '\n'
    print('\n' + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(device=name, size=[height, width], batch=args.batch, steps=args.steps, torch=torch.__version__,
                platform=platform.platform())
    (out / 'kd_step.json').write_text(json.dumps({'meta': meta, 'rows': rows}, indent=2) + '\n')
    (out / 'kd_step.md').write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
