"""Deployment latency: every model x input size x inference path on one device, in one run.

    python benchmarks/latency.py                                   # defaults: ~10 min on a 2-core CPU
    python benchmarks/latency.py --models xd_rcdepth --sizes 448x800 --repeats 20
    python benchmarks/latency.py --compile xd_rcdepth              # also torch.compile the student

Models: the student (xd_rcdepth), the teacher (cafnet), the baseline (lircdepth). Paths, each the
code DepthEstimator runs (xd_rcdepth_core.backends):
    CPU   torch eager fp32 (NCHW; the baseline every ratio uses), torch no_grad (vs inference_mode),
          torch channels_last fp32, torch channels_last bf16 autocast, torch.compile (opt-in),
          onnxruntime fp32 (CPU execution provider)
    CUDA  torch eager fp32, channels_last fp32, fp16 autocast, fp16 + CUDA graphs, torch.compile
          (opt-in), onnxruntime fp32 / fp16 where the CUDA execution provider is installed
Each path: warm-up passes, then the median and p95 of N timed passes (the teacher gets fewer on the
CPU: ~20 s a pass at 896x1600), and the max |depth - baseline depth| in metres on the same synthetic
frame, so a fast path that changes the answer shows it. Setup cost (ONNX export, compile) is reported
apart. Pre/post-processing of the pipeline (radar projection + encoding, normalisation, finishing,
colourising) is timed separately at each size.

Floor: each model's GMACs (models.summary) divided by the peak multiply-accumulate rate of a large
matrix multiply measured on the same device in the same run (bf16/fp16 paths against that dtype's
peak); "x floor" says how far a path is from compute-bound. The run writes JSON and Markdown with
ratios to the student's torch eager fp32 time and to the teacher. A benchmark reports; it asserts
nothing. Wall-clock numbers are only comparable within one run on an otherwise idle machine: the
load averages at start and end are recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xd_rcdepth_core import viz
from xd_rcdepth_core.backends import TorchBackend, TorchOptions, onnxruntime_available
from xd_rcdepth_core.backends.ort_backend import CUDA_PROVIDER, OnnxRuntimeBackend, available_providers
from xd_rcdepth_core.export import ExportSpec, cached_export
from xd_rcdepth_core.models import build_model
from xd_rcdepth_core.models.summary import model_summary
from xd_rcdepth_core.pipeline import finish_depth, normalise_image, prepare_inputs, radar_image, resize_frame_inputs
from xd_rcdepth_core.synthetic import generate_sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


STUDENT, TEACHER = 'xd_rcdepth', 'cafnet'
DEFAULT_MODELS = (STUDENT, TEACHER, 'lircdepth')   # teacher second: the 8.8x goal needs it
DEFAULT_SIZES = ('896x1600', '448x800')            # the paper's test frame and half of it
BASELINE = 'torch eager fp32'
PAPER_TEACHER_OVER_STUDENT = 0.132 / 0.015         # docs/paper.md runtimes: CaFNet 0.132 s, XD-RCDepth 0.015 s


@dataclass(frozen=True)
class InferencePath:
    name: str
    backend: str                       # torch | torch-no_grad | onnxruntime
    precision: str = 'fp32'
    options: TorchOptions = TorchOptions(channels_last=False)
    peak: str = 'fp32'                 # which matmul peak is its floor
    models: tuple | None = None        # None = every model


def inference_paths(device: torch.device, compile_models: tuple) -> list:
    """In order of importance: if the time budget runs out, the tail is what is skipped."""
    light = (STUDENT, 'lircdepth')
    cl = TorchOptions(channels_last=True)
    paths = [InferencePath(BASELINE, 'torch'), InferencePath('torch channels_last fp32', 'torch', options=cl)]
    if device.type == 'cpu':
        paths += [InferencePath('torch channels_last bf16', 'torch', 'bf16', cl, peak='bf16'),
                  InferencePath('onnxruntime fp32', 'onnxruntime'),
                  InferencePath('torch no_grad fp32', 'torch-no_grad', models=light)]
    else:
        paths += [InferencePath('torch fp16', 'torch', 'fp16', cl, peak='fp16'),
                  InferencePath('torch fp16 cuda_graphs', 'torch', 'fp16', TorchOptions(True, cuda_graphs=True),
                                peak='fp16'),
                  InferencePath('onnxruntime fp32', 'onnxruntime'),
                  InferencePath('onnxruntime fp16', 'onnxruntime', 'fp16', peak='fp16')]
    if compile_models:
        paths.append(InferencePath('torch.compile fp32', 'torch', options=TorchOptions(True, compile=True),
                                   models=tuple(compile_models)))
    return paths


# ----------------------------------------------------------------------------- measuring

def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn, device, warmup: int, repeats: int) -> list:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def stats_ms(times: list) -> dict:
    ms = sorted(1e3 * t for t in times)
    p95 = float(np.percentile(ms, 95)) if len(ms) > 1 else ms[0]
    return {'median_ms': statistics.median(ms), 'p95_ms': p95, 'min_ms': ms[0], 'times_ms': ms}


def matmul_peak_gmacs(device: torch.device, dtype: torch.dtype) -> float:
    """Best multiply-accumulates per second (1e9) of an n x n matmul: the device's practical peak."""
    n = 2048 if device.type == 'cpu' else 8192
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = time_calls(lambda: torch.mm(a, b), device, warmup=2, repeats=5)
    return n ** 3 / min(times) / 1e9


def onnxruntime_matmul_peak_gmacs(device: torch.device) -> float | None:
    """The same n x n fp32 matmul in ONNX Runtime (its MLAS kernels, not torch's MKL/cuBLAS), so the
    floor is not set by one library's weaker GEMM on this CPU."""
    if not onnxruntime_available() or device.type != 'cpu':
        return None
    import onnx.helper as oh
    import onnxruntime as ort
    n = 2048
    io = [oh.make_tensor_value_info(k, 1, [n, n]) for k in 'abc']
    graph = oh.make_graph([oh.make_node('MatMul', ['a', 'b'], ['c'])], 'matmul', io[:2], io[2:])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid('', 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    feeds = {k: np.random.default_rng(0).random((n, n), dtype=np.float32) for k in 'ab'}
    times = time_calls(lambda: session.run(None, feeds), device, warmup=2, repeats=5)
    return n ** 3 / min(times) / 1e9


def frame_inputs(height: int, width: int, device):
    """(image, radar) network inputs and the Frame of one synthetic frame at height x width."""
    frame = next(iter(generate_sequence(seed=0, n_frames=1, height=height, width=width)))
    image, radar, _ = prepare_inputs(frame, None, device)
    return frame, image, radar


class NoGradRunner:
    """Eager NCHW fp32 under torch.no_grad instead of inference_mode, to measure the difference."""

    def __init__(self, model, device):
        self.model = model.to(device).eval()

    def __call__(self, image, radar):
        with torch.no_grad():
            return self.model(image.contiguous(), radar.contiguous())['depth']


def make_runner(path: InferencePath, model, device, onnx_file):
    if path.backend == 'torch-no_grad':
        return NoGradRunner(model, device)
    if path.backend == 'onnxruntime':
        return OnnxRuntimeBackend(onnx_file, device, threads=torch.get_num_threads())
    return TorchBackend(model, device, path.precision, path.options)


def onnx_export(model, precision: str, cache_dir: Path) -> tuple:
    """(file, seconds): a dynamic export (traced small, valid at every multiple of 32), as the
    pipeline makes on the fly; correctness at each size shows in the row's max |depth diff|."""
    start = time.perf_counter()
    spec = ExportSpec('onnx', 64, 96, dynamic=True, fp16=precision == 'fp16')
    path = cached_export(model, spec, cache_dir, verify=False)
    return path, time.perf_counter() - start


# ----------------------------------------------------------------------------- the run

@dataclass
class Run:
    args: argparse.Namespace
    device: torch.device
    started: float = field(default_factory=time.perf_counter)
    rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def over_budget(self) -> bool:
        return time.perf_counter() - self.started > self.args.budget_s

    def repeats(self, model_name: str) -> tuple:
        cpu = self.device.type == 'cpu'
        if model_name == TEACHER and cpu:
            return self.args.teacher_warmup, self.args.teacher_repeats
        return (self.args.warmup if self.args.warmup is not None else (1 if cpu else 10),
                self.args.repeats if self.args.repeats is not None else (7 if cpu else 50))


def path_available(path: InferencePath, name: str, device) -> str | None:
    """None, or why the path cannot run here."""
    if path.models is not None and name not in path.models:
        return 'not selected for this model'
    if path.backend == 'onnxruntime':
        if not onnxruntime_available():
            return 'onnxruntime not installed'
        if device.type == 'cuda' and CUDA_PROVIDER not in available_providers():
            return f'no {CUDA_PROVIDER} in this onnxruntime (install onnxruntime-gpu)'
    return None


def onnx_file_for(run: Run, model, precision: str, exports: dict) -> tuple:
    """(file, export seconds or None when already made) of the model's export at this precision; an
    export that failed fails again at once (the exception is kept) instead of being retried per size."""
    if precision not in exports:
        try:
            exports[precision] = onnx_export(model, precision, run.args.out / 'onnx_cache')
        except Exception as exc:
            exports[precision] = exc
            raise
        return exports[precision]
    if isinstance(exports[precision], Exception):
        raise exports[precision]
    return exports[precision][0], None


def failure(exc: Exception) -> str:
    return f'failed: {type(exc).__name__}: {(str(exc).strip().splitlines() or [""])[0][:300]}'


def bench_model(run: Run, name: str, sizes: list, paths: list, peaks: dict) -> None:
    device = run.device
    torch.manual_seed(0)
    model = build_model(name).eval()
    warmup, repeats = run.repeats(name)
    exports = {}
    for height, width in sizes:
        gmacs = model_summary(name, height, width)['gmacs']
        frame, image, radar = frame_inputs(height, width, device)
        reference = None
        for path in paths:
            why = path_available(path, name, device)
            if why is None and run.over_budget():
                why = f'time budget ({run.args.budget_s:.0f} s) spent'
            if why is not None:
                if why != 'not selected for this model':
                    run.skipped.append({'model': name, 'size': f'{height}x{width}', 'path': path.name, 'why': why})
                continue
            try:
                setup_s = onnx_file = None
                if path.backend == 'onnxruntime':
                    onnx_file, setup_s = onnx_file_for(run, model, path.precision, exports)
                runner = make_runner(path, model, device, onnx_file)
                first = time.perf_counter()
                depth = runner(image, radar)             # first call: compile / capture / session warm-up
                sync(device)
                if path.options.compile:
                    setup_s = runner.compile_s
                first_s = time.perf_counter() - first
                times = time_calls(lambda run=runner: run(image, radar), device, max(warmup - 1, 0), repeats)
            except Exception as exc:   # e.g. a model that does not run in half precision: tried, and why it failed
                why = failure(exc)
                run.skipped.append({'model': name, 'size': f'{height}x{width}', 'path': path.name, 'why': why})
                print(f'  {name:10s} {height}x{width} {path.name:26s} {why}', flush=True)
                continue
            depth = depth.float().cpu()
            if reference is None:   # the first path run is the baseline (torch eager fp32)
                reference = depth
            row = {'model': name, 'height': height, 'width': width, 'path': path.name, 'backend': path.backend,
                   'precision': path.precision, 'gmacs': gmacs, 'warmup': warmup, 'repeats': repeats,
                   'first_call_s': first_s, 'setup_s': setup_s,
                   'max_abs_diff_m': float((depth - reference).abs().max()), **stats_ms(times)}
            row['floor_ms'] = 1e3 * gmacs / peaks[path.peak]
            row['over_floor'] = row['median_ms'] / row['floor_ms']
            run.rows.append(row)
            print(f"  {name:10s} {height}x{width} {path.name:26s} median {row['median_ms']:9.1f} ms  "
                  f"p95 {row['p95_ms']:9.1f}  x floor {row['over_floor']:5.1f}  |diff| {row['max_abs_diff_m']:.2g} m",
                  flush=True)
            del runner
            if device.type == 'cuda':
                torch.cuda.empty_cache()


def bench_processing(size, device, repeats: int = 20) -> dict:
    """Pipeline pre/post-processing at one size, each step alone (median ms)."""
    height, width = size
    frame, _, _ = frame_inputs(height, width, device)
    image, K, h, w = resize_frame_inputs(frame, None)
    depth_t = torch.rand(1, 1, h, w, device=device) * 80
    depth = finish_depth(depth_t, height, width, 100.0)
    steps = {
        'radar projection + encoding': lambda: radar_image(frame, K, h, w),
        'image normalisation': lambda: normalise_image(image, device),
        'finish (to numpy, NaN mask)': lambda: finish_depth(depth_t, height, width, 100.0),
        'colourise (viz.colorize_depth)': lambda: viz.colorize_depth(depth, max_depth=80.0),
    }
    out = {name: statistics.median(1e3 * t for t in time_calls(fn, device, 2, repeats)) for name, fn in steps.items()}
    out['total'] = sum(out.values())
    return {'height': height, 'width': width, 'steps_ms': out, 'radar_points': int(len(frame.radar))}


# ----------------------------------------------------------------------------- ratios and goals

def add_ratios(rows: list) -> None:
    def find(model, h, w, path):
        return next((r for r in rows if (r['model'], r['height'], r['width'], r['path']) == (model, h, w, path)), None)
    for r in rows:
        base = find(STUDENT, r['height'], r['width'], BASELINE)
        teacher = find(TEACHER, r['height'], r['width'], BASELINE)
        same_teacher = find(TEACHER, r['height'], r['width'], r['path'])
        r['vs_student_fp32'] = r['median_ms'] / base['median_ms'] if base else None
        r['teacher_fp32_over_this'] = teacher['median_ms'] / r['median_ms'] if teacher else None
        r['teacher_same_path_over_this'] = same_teacher['median_ms'] / r['median_ms'] if same_teacher else None


def goals(rows: list, processing: list) -> dict:
    def rows_of(model, h, w):
        return [r for r in rows if r['model'] == model and (r['height'], r['width']) == (h, w)]
    out = {}
    student, teacher = rows_of(STUDENT, 896, 1600), rows_of(TEACHER, 896, 1600)
    if student and teacher:
        same = {r['path']: t['median_ms'] / r['median_ms'] for r in student for t in teacher if t['path'] == r['path']}
        best_s, best_t = min(student, key=lambda r: r['median_ms']), min(teacher, key=lambda r: r['median_ms'])
        out['teacher_over_student_896x1600'] = {
            'same_path': same, 'best_vs_best': best_t['median_ms'] / best_s['median_ms'],
            'best_paths': [best_s['path'], best_t['path']], 'goal': PAPER_TEACHER_OVER_STUDENT}
    if student:
        base = next((r for r in student if r['path'] == BASELINE), None)
        best = min(student, key=lambda r: r['median_ms'])
        if base:
            out['fastest_student_speedup_896x1600'] = {'path': best['path'],
                                                       'speedup': base['median_ms'] / best['median_ms'], 'goal': 4.0}
    small = rows_of(STUDENT, 448, 800)
    if small:
        out['student_fps_448x800'] = {r['path']: 1e3 / r['median_ms'] for r in small}
    shares = {}
    for p in processing:
        srows = rows_of(STUDENT, p['height'], p['width'])
        if srows:
            best = min(srows, key=lambda r: r['median_ms'])
            shares[f"{p['height']}x{p['width']}"] = {
                'pre_post_ms': p['steps_ms']['total'], 'fastest_path': best['path'],
                'fraction_of_fastest': p['steps_ms']['total'] / best['median_ms'], 'goal': 0.10}
    if shares:
        out['pre_post_fraction'] = shares
    return out


# ----------------------------------------------------------------------------- report

def fmt(v, spec='.2f', none='-'):
    return none if v is None else format(v, spec)


def markdown(report: dict) -> str:
    env = report['environment']
    lines = [f"Device: {env['device']} ({env['device_name']}); torch {env['torch']}, onnxruntime {env['onnxruntime']}, "
             f"{env['threads']} threads; load average {env['loadavg_start']} at start, {env['loadavg_end']} at end.",
             'Matmul peak (GMAC/s, 2048^2 on the CPU, 8192^2 on CUDA): '
             + ', '.join(f'{k} {v:.1f}' for k, v in report['peak_gmacs_by_library'].items() if v)
             + '; floors use the best per dtype.',
             '', '| model | input | path | median ms | p95 ms | FPS | vs student fp32 | teacher fp32 / this | '
                 'GMACs | floor ms | x floor | max abs diff m | setup s |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        lines.append(f"| {r['model']} | {r['height']}x{r['width']} | {r['path']} | {r['median_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {1e3 / r['median_ms']:.2f} | {fmt(r['vs_student_fp32'], '.3f')} | "
                     f"{fmt(r['teacher_fp32_over_this'], '.1f')} | {r['gmacs']:.1f} | {r['floor_ms']:.1f} | "
                     f"{r['over_floor']:.1f} | {r['max_abs_diff_m']:.2g} | {fmt(r['setup_s'], '.1f')} |")
    if report['processing']:
        steps = list(report['processing'][0]['steps_ms'])
        lines += ['', 'Pipeline pre/post-processing (median ms, each step alone):', '',
                  '| input | ' + ' | '.join(steps) + ' |', '|---' * (len(steps) + 1) + '|']
        for p in report['processing']:
            lines.append(f"| {p['height']}x{p['width']} | " + ' | '.join(f'{v:.2f} ms' for v in p['steps_ms'].values())
                         + ' |')
    lines += ['', '**Goals**', '']
    g = report['goals']
    if 'teacher_over_student_896x1600' in g:
        t = g['teacher_over_student_896x1600']
        same = ', '.join(f'{k}: {v:.1f}x' for k, v in t['same_path'].items())
        lines.append(f"- teacher / student at 896x1600 (goal >= {t['goal']:.1f}x): same path {same}; "
                     f"best vs best {t['best_vs_best']:.1f}x ({t['best_paths'][0]} vs {t['best_paths'][1]})")
    if 'fastest_student_speedup_896x1600' in g:
        s = g['fastest_student_speedup_896x1600']
        lines.append(f"- fastest student path vs torch eager fp32 at 896x1600 (goal >= {s['goal']:.0f}x): "
                     f"{s['speedup']:.2f}x ({s['path']})")
    if 'student_fps_448x800' in g:
        fps = g['student_fps_448x800']
        lines.append('- student FPS at 448x800: ' + ', '.join(f'{k} {v:.1f}' for k, v in fps.items()))
    for size, s in g.get('pre_post_fraction', {}).items():
        lines.append(f"- pre/post-processing at {size}: {s['pre_post_ms']:.1f} ms = "
                     f"{100 * s['fraction_of_fastest']:.1f} % "
                     f"of the fastest student path ({s['fastest_path']}; goal < {100 * s['goal']:.0f} %)")
    if report['skipped']:
        lines += ['', 'Skipped: ' + '; '.join(f"{s['model']} {s['size']} {s['path']} ({s['why']})"
                                              for s in report['skipped'])]
    return '\n'.join(lines) + '\n'


def environment(device, threads) -> dict:
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or platform.machine())
    if device.type == 'cpu':
        try:
            with open('/proc/cpuinfo') as f:
                name = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
        except (OSError, StopIteration):
            pass
    return {'device': str(device), 'device_name': name, 'cpus': os.cpu_count(), 'threads': threads,
            'torch': torch.__version__, 'onnxruntime': ort_version,
            'loadavg_start': [round(v, 2) for v in os.getloadavg()]}


def parse_size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 448x800, got {text!r}') from None
    return h, w


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS), help='default: %(default)s')
    p.add_argument('--sizes', nargs='+', type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                   help='HxW (default: 896x1600 448x800)')
    p.add_argument('--repeats', type=int, default=None, help='timed passes (default 7 on CPU, 50 on CUDA)')
    p.add_argument('--warmup', type=int, default=None, help='untimed passes incl. the first (default 1 CPU, 10 CUDA)')
    p.add_argument('--teacher-repeats', type=int, default=2, help='timed teacher passes on the CPU (default 2)')
    p.add_argument('--teacher-warmup', type=int, default=1, help='untimed teacher passes on the CPU (default 1)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None, help='intra-op threads for torch and onnxruntime')
    p.add_argument('--compile', nargs='*', default=[], metavar='MODEL',
                   help='also time torch.compile for these models (compile time is reported; minutes on a CPU)')
    p.add_argument('--budget-s', type=float, default=840.0,
                   help='stop starting new measurements after this many seconds (default 840)')
    p.add_argument('--out', type=Path, default=Path('out/benchmarks'), help='output folder (default %(default)s)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(device, torch.get_num_threads())
    print(f"{env['device']} ({env['device_name']}), {env['threads']} threads, load {env['loadavg_start']}", flush=True)
    peak_sources = {'torch fp32': matmul_peak_gmacs(device, torch.float32),
                    'onnxruntime fp32': onnxruntime_matmul_peak_gmacs(device)}
    low = 'bf16' if device.type == 'cpu' else 'fp16'
    peak_sources[f'torch {low}'] = matmul_peak_gmacs(device, torch.bfloat16 if low == 'bf16' else torch.float16)
    # The floor uses the best library per dtype: a path is measured against what this device can do.
    peaks = {'fp32': max(v for k, v in peak_sources.items() if k.endswith('fp32') and v),
             low: peak_sources[f'torch {low}']}
    print('matmul peak GMAC/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in peak_sources.items() if v), flush=True)
    run = Run(args, device)
    paths = inference_paths(device, tuple(args.compile))
    for name in args.models:
        bench_model(run, name, args.sizes, paths, peaks)
    processing = [bench_processing(size, device) for size in args.sizes]
    add_ratios(run.rows)
    env['loadavg_end'] = [round(v, 2) for v in os.getloadavg()]
    report = {'environment': env, 'peak_gmacs': peaks, 'peak_gmacs_by_library': peak_sources, 'results': run.rows,
              'processing': processing,
              'skipped': run.skipped, 'goals': goals(run.rows, processing),
              'wall_s': time.perf_counter() - run.started}
    table = markdown(report)
    (args.out / 'latency.json').write_text(json.dumps(report, indent=2) + '\n')
    (args.out / 'latency.md').write_text(table)
    print()
    print(table, end='')
    print(f"\nwrote {args.out / 'latency.json'} and {args.out / 'latency.md'} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
