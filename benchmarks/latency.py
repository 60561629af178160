"""Deployment latency: every model x input size x inference path on one device, in one run.

    python benchmarks/latency.py                                   # defaults: ~10 min on a 2-core CPU
    python benchmarks/latency.py --models xd_rcdepth --sizes 448x800 --repeats 20
    python benchmarks/latency.py --compile xd_rcdepth              # also torch.compile the student
    python benchmarks/latency.py --models xd_rcdepth --sizes 448x800 --threads 2   # the CPU goal check
    python benchmarks/latency.py --models radarnet --sizes 448x800 --repeats 3     # at 30/60/120 radar points

Models: the student (xd_rcdepth; the shipped trained checkpoint, models/xd_rcdepth_synthetic.pt, unless
--student-checkpoint says otherwise: int8 calibration and its accuracy gate need trained weights),
the teacher (cafnet), the baseline (lircdepth) (random weights: speed does not depend on them), and
on request RadarNet (--models radarnet), whose stage 1 runs per radar point: its rows are at 30, 60 and
120 points (the frame's own radar points, subsampled or topped up with copies), GMACs counted on
those inputs.
Paths, each the code DepthEstimator runs (xd_rcdepth_core.backends):
    CPU   torch eager fp32 (NCHW; the baseline every ratio uses), torch no_grad (vs inference_mode),
          torch channels_last fp32, torch channels_last bf16 autocast, torch.compile (opt-in),
          onnxruntime fp32 (CPU execution provider), onnxruntime int8 (student: the accuracy-gated
          int8 export of backends/int8.py; its gate result is in the row), openvino fp32 / int8
          (when the optional openvino package is installed; int8 as the backend runs it -- float parts
          in bf16 where the CPU has native bf16 and the gate passed that -- and with them in f32)
    CUDA  torch eager fp32, channels_last fp32, fp32 + CUDA graphs, fp16 autocast, fp16 + CUDA graphs, torch.compile
          (opt-in), onnxruntime fp32 / fp16 where the CUDA execution provider is installed,
          tensorrt fp32 / fp16 where ONNX Runtime has the TensorRT execution provider

Goal check (CPU, the student at 448x800): the fastest path that passes the accuracy requirement
(fp32 paths: exact, |depth - torch| within 0.01 m; int8 paths: their export passed the gate) must be
at least 1.6x onnxruntime fp32 and 6x torch eager fp32. On a busy machine separate timings drift
with the load, so these candidates are timed again interleaved (one call of each in turn, N rounds)
and the ratios come from that, within one run. The report also says what backend 'auto' picks
(backends/auto.py) and whether the measured fastest exact path agrees.
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
from torch.utils.flop_counter import FlopCounterMode

from xd_rcdepth_core import viz
from xd_rcdepth_core.backends import TorchBackend, TorchOptions, onnxruntime_available
from xd_rcdepth_core.backends.auto import candidates
from xd_rcdepth_core.backends.int8 import Int8Settings, describe_gate
from xd_rcdepth_core.backends.openvino_backend import OpenVinoBackend, openvino_available
from xd_rcdepth_core.backends.ort_backend import (
    CUDA_PROVIDER,
    TENSORRT_PROVIDER,
    OnnxRuntimeBackend,
    available_providers,
)
from xd_rcdepth_core.conventions import InputConventions
from xd_rcdepth_core.export import ExportSpec, cached_export, cached_int8_export
from xd_rcdepth_core.exported import read_metadata
from xd_rcdepth_core.inputs import (
    finish_depth,
    normalise_image,
    normalised_chw,
    prepare_inputs,
    radar_image,
    resize_frame_inputs,
)
from xd_rcdepth_core.models import build_model
from xd_rcdepth_core.models.checkpoint import load_model
from xd_rcdepth_core.models.summary import model_summary
from xd_rcdepth_core.synthetic import generate_sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


STUDENT, TEACHER, RADARNET = 'xd_rcdepth', 'cafnet', 'radarnet'
# RadarNet's stage 1 runs once per radar point: its rows are at these counts (issue 16).
RADARNET_POINTS = (30, 60, 120)
DEFAULT_MODELS = (STUDENT, TEACHER, 'lircdepth')   # teacher second: the 8.8x goal needs it
DEFAULT_SIZES = ('896x1600', '448x800')            # the paper's test frame and half of it
BASELINE = 'torch eager fp32'
ORT_FP32 = 'onnxruntime fp32'
PAPER_TEACHER_OVER_STUDENT = 0.132 / 0.015         # docs/paper.md runtimes: CaFNet 0.132 s, XD-RCDepth 0.015 s
SHIPPED_STUDENT = ROOT / 'models' / 'xd_rcdepth_synthetic.pt'
GOAL_SIZE = (448, 800)
GOAL_OVER_ORT, GOAL_OVER_EAGER = 1.6, 6.0
EXACT_M = 0.01                                     # an fp32 path is exact when |depth - torch| <= 1 cm everywhere


@dataclass(frozen=True)
class InferencePath:
    name: str
    backend: str                       # torch | torch-no_grad | onnxruntime | tensorrt | openvino
    precision: str = 'fp32'
    options: TorchOptions = TorchOptions(channels_last=False)
    peak: str = 'fp32'                 # which matmul peak is its floor
    models: tuple | None = None        # None = every model
    float_precision: str | None = None  # openvino: f32 / bf16 arithmetic (None: the backend decides)


def inference_paths(device: torch.device, compile_models: tuple) -> list:
    """In order of importance: if the time budget runs out, the tail is what is skipped."""
    light = (STUDENT, 'lircdepth')
    cl = TorchOptions(channels_last=True)
    paths = [InferencePath(BASELINE, 'torch'), InferencePath('torch channels_last fp32', 'torch', options=cl)]
    if device.type == 'cpu':
        paths += [InferencePath('torch channels_last bf16', 'torch', 'bf16', cl, peak='bf16'),
                  InferencePath(ORT_FP32, 'onnxruntime'),
                  InferencePath('onnxruntime int8', 'onnxruntime', 'int8', models=(STUDENT,)),
                  InferencePath('openvino fp32', 'openvino'),
                  InferencePath('openvino int8', 'openvino', 'int8', models=(STUDENT,)),
                  InferencePath('openvino int8, float parts f32', 'openvino', 'int8', models=(STUDENT,),
                                float_precision='f32'),
                  InferencePath('torch no_grad fp32', 'torch-no_grad', models=light)]
    else:
        # fp32 + CUDA graphs is what backend auto runs on CUDA at fp32: timed so the choice is checked
        paths += [InferencePath('torch fp32 cuda_graphs', 'torch', options=TorchOptions(False, cuda_graphs=True)),
                  InferencePath('torch fp16', 'torch', 'fp16', cl, peak='fp16'),
                  InferencePath('torch fp16 cuda_graphs', 'torch', 'fp16', TorchOptions(True, cuda_graphs=True),
                                peak='fp16'),
                  InferencePath(ORT_FP32, 'onnxruntime'),
                  InferencePath('onnxruntime fp16', 'onnxruntime', 'fp16', peak='fp16'),
                  InferencePath('tensorrt fp32', 'tensorrt'),
                  InferencePath('tensorrt fp16', 'tensorrt', 'fp16', peak='fp16')]
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


def radar_with_points(radar: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """The radar image with exactly ``n`` points (pixels with a depth): a random ``n`` of the frame's
    own, or all of them plus copies moved to random free pixels of the rows they span when the frame
    has fewer (the per-point cost depends on the count, not on the values)."""
    out = radar.clone()
    depth = out[0, 0]
    rows, cols = torch.nonzero(depth > 0, as_tuple=True)
    if len(rows) == 0:
        raise ValueError('the benchmark frame has no radar points to copy')
    g = torch.Generator().manual_seed(seed)
    if len(rows) >= n:
        drop = torch.randperm(len(rows), generator=g)[n:]
        out[0, :, rows[drop], cols[drop]] = 0
        return out
    lo, hi = int(rows.min()), int(rows.max()) + 1
    while int((out[0, 0] > 0).sum()) < n:
        src = int(torch.randint(len(rows), (1,), generator=g))
        r = int(torch.randint(lo, hi, (1,), generator=g))
        c = int(torch.randint(out.shape[-1], (1,), generator=g))
        if out[0, 0, r, c] == 0:
            out[0, :, r, c] = radar[0, :, rows[src], cols[src]]
    return out


def counted_gmacs(model, image, radar) -> float:
    """GMACs of one forward on these inputs (RadarNet's count depends on the points present)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image, radar)
    return counter.get_total_flops() / 2e9


class NoGradRunner:
    """Eager NCHW fp32 under torch.no_grad instead of inference_mode, to measure the difference."""

    def __init__(self, model, device):
        self.model = model.to(device).eval()

    def __call__(self, image, radar):
        with torch.no_grad():
            return self.model(image.contiguous(), radar.contiguous())['depth']


def make_runner(path: InferencePath, model, device, onnx_file, cache_dir: Path):
    if path.backend == 'torch-no_grad':
        return NoGradRunner(model, device)
    if path.backend in ('onnxruntime', 'tensorrt'):
        return OnnxRuntimeBackend(onnx_file, device, threads=torch.get_num_threads(),
                                  tensorrt=path.backend == 'tensorrt', engine_cache=cache_dir / 'tensorrt')
    if path.backend == 'openvino':
        return OpenVinoBackend(onnx_file, device, threads=torch.get_num_threads(), float_precision=path.float_precision)
    return TorchBackend(model, device, path.precision, path.options)


def onnx_export(model, precision: str, cache_dir: Path, conventions=None) -> tuple:
    """(file, seconds): a dynamic export (traced small, valid at every multiple of 32), as the
    pipeline makes on the fly; correctness at each size shows in the row's max |depth diff|. int8:
    the accuracy-gated int8 file DepthEstimator makes (calibration and gate at 448x800)."""
    start = time.perf_counter()
    spec = ExportSpec('onnx', 64, 96, dynamic=True, fp16=precision == 'fp16')
    if precision == 'int8':
        path = cached_int8_export(model, spec, Int8Settings(), cache_dir, conventions)
    else:
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
    sources: dict = field(default_factory=dict)     # model -> where its weights came from
    runners: dict = field(default_factory=dict)     # (model, h, w, path) -> (runner, image, radar): goal check

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
    if path.backend in ('onnxruntime', 'tensorrt', 'openvino'):
        if not onnxruntime_available():
            return 'onnxruntime not installed'
        if path.backend == 'onnxruntime' and device.type == 'cuda' and CUDA_PROVIDER not in available_providers():
            return f'no {CUDA_PROVIDER} in this onnxruntime (install onnxruntime-gpu)'
        if path.backend == 'tensorrt' and TENSORRT_PROVIDER not in available_providers():
            return f'no {TENSORRT_PROVIDER} in this onnxruntime'
    if path.backend == 'openvino' and not openvino_available():
        return 'openvino not installed (optional: pip install openvino)'
    return None


def onnx_file_for(run: Run, model, precision: str, exports: dict, conventions=None) -> tuple:
    """(file, export seconds or None when already made) of the model's export at this precision; an
    export that failed fails again at once (the exception is kept) instead of being retried per size."""
    if precision not in exports:
        try:
            exports[precision] = onnx_export(model, precision, run.args.out / 'onnx_cache', conventions)
        except Exception as exc:
            exports[precision] = exc
            raise
        return exports[precision]
    if isinstance(exports[precision], Exception):
        raise exports[precision]
    return exports[precision][0], None


def failure(exc: Exception) -> str:
    return f'failed: {type(exc).__name__}: {(str(exc).strip().splitlines() or [""])[0][:300]}'


def load_bench_model(name: str, student_checkpoint):
    """(model, conventions, source): the student from its checkpoint when one is given, else random."""
    if name == STUDENT and student_checkpoint:
        model, ckpt = load_model(student_checkpoint, map_location='cpu')
        shown = Path(student_checkpoint).resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        return model.eval(), InputConventions.from_dict(ckpt.get('inputs')), str(shown)
    torch.manual_seed(0)
    return build_model(name).eval(), InputConventions(), 'random weights (seed 0)'


def bench_model(run: Run, name: str, sizes: list, paths: list, peaks: dict) -> None:
    device = run.device
    model, conventions, source = load_bench_model(name, run.args.student_checkpoint)
    run.sources[name] = source
    warmup, repeats = run.repeats(name)
    exports = {}
    for (height, width), points in [(size, n) for size in sizes
                                    for n in (RADARNET_POINTS if name == RADARNET else (None,))]:
        frame, image, radar = frame_inputs(height, width, device)
        if points is None:
            gmacs = model_summary(name, height, width)['gmacs']
        else:
            radar = radar_with_points(radar, points)
            gmacs = counted_gmacs(model.to(device), image, radar)
        label = f'{height}x{width}' + (f' {points} points' if points else '')
        reference = None
        for path in paths:
            why = path_available(path, name, device)
            if why is None and run.over_budget():
                why = f'time budget ({run.args.budget_s:.0f} s) spent'
            if why is not None:
                if why != 'not selected for this model':
                    run.skipped.append({'model': name, 'size': label, 'path': path.name, 'why': why})
                continue
            try:
                setup_s = onnx_file = None
                if path.backend in ('onnxruntime', 'tensorrt', 'openvino'):
                    onnx_file, setup_s = onnx_file_for(run, model, path.precision, exports, conventions)
                runner = make_runner(path, model, device, onnx_file, run.args.out / 'onnx_cache')
                first = time.perf_counter()
                depth = runner(image, radar)             # first call: compile / capture / session warm-up
                sync(device)
                if path.options.compile:
                    setup_s = runner.compile_s
                first_s = time.perf_counter() - first
                times = time_calls(lambda run=runner: run(image, radar), device, max(warmup - 1, 0), repeats)
            except Exception as exc:   # e.g. a model that does not run in half precision: tried, and why it failed
                why = failure(exc)
                run.skipped.append({'model': name, 'size': label, 'path': path.name, 'why': why})
                print(f'  {name:10s} {label} {path.name:26s} {why}', flush=True)
                continue
            depth = depth.float().cpu()
            if reference is None:   # the first path run is the baseline (torch eager fp32)
                reference = depth
            row = {'model': name, 'height': height, 'width': width, 'radar_points': points,
                   'path': path.name, 'backend': path.backend,
                   'precision': path.precision, 'gmacs': gmacs, 'warmup': warmup, 'repeats': repeats,
                   'first_call_s': first_s, 'setup_s': setup_s,
                   'max_abs_diff_m': float((depth - reference).abs().max()), **stats_ms(times)}
            row['floor_ms'] = 1e3 * gmacs / peaks[path.peak]
            row['over_floor'] = row['median_ms'] / row['floor_ms']
            if path.precision == 'int8':
                row['int8_gate'] = read_metadata(onnx_file).get('accuracy_gate')
            row['exact'] = row['max_abs_diff_m'] <= EXACT_M if path.precision == 'fp32' else None
            run.rows.append(row)
            run.runners[(name, height, width, path.name)] = (runner, image, radar)
            print(f"  {name:10s} {label} {path.name:26s} median {row['median_ms']:9.1f} ms  "
                  f"p95 {row['p95_ms']:9.1f}  x floor {row['over_floor']:5.1f}  |diff| {row['max_abs_diff_m']:.2g} m",
                  flush=True)
            if (height, width) != GOAL_SIZE or name != STUDENT or device.type != 'cpu':
                run.runners.pop((name, height, width, path.name), None)
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
        # On the CPU every fast path serves an ONNX file, which takes host NCHW arrays (inputs.normalised_chw).
        'image normalisation': ((lambda: normalised_chw(image)) if device.type == 'cpu'
                                else (lambda: normalise_image(image, device))),
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


def passes_accuracy(row: dict) -> bool:
    """fp32: exact (|depth - torch eager| <= 1 cm); int8: its export passed the accuracy gate; fp16 /
    bf16: not exact, not gated: left out of the CPU goal."""
    if row['precision'] == 'fp32':
        return bool(row.get('exact'))
    if row['precision'] == 'int8':
        return bool(row.get('int8_gate'))
    return False


def interleaved(run: Run, rounds: int) -> dict | None:
    """Median ms of the goal candidates (student, 448x800, CPU), timed one call each in turn for
    ``rounds`` rounds: the load of a busy machine then hits every path alike."""
    keys = [k for k in run.runners if k[0] == STUDENT and (k[1], k[2]) == GOAL_SIZE]
    rows = {r['path']: r for r in run.rows if r['model'] == STUDENT and (r['height'], r['width']) == GOAL_SIZE}
    keys = [k for k in keys if k[3] in rows and (passes_accuracy(rows[k[3]]) or k[3] in (BASELINE, ORT_FP32))]
    if rounds < 1 or not any(k[3] == BASELINE for k in keys) or not any(k[3] == ORT_FP32 for k in keys):
        return None
    times = {k[3]: [] for k in keys}
    for _ in range(rounds):
        for key in keys:
            runner, image, radar = run.runners[key]
            start = time.perf_counter()
            runner(image, radar)
            times[key[3]].append(time.perf_counter() - start)
    return {path: statistics.median(1e3 * t for t in v) for path, v in times.items()}


def cpu_goal(rows: list, timed: dict | None) -> dict | None:
    """The fastest student path at 448x800 that passes the accuracy requirement against onnxruntime
    fp32 and torch eager fp32, from the interleaved timing when there is one."""
    student = {r['path']: r for r in rows if r['model'] == STUDENT and (r['height'], r['width']) == GOAL_SIZE}
    if BASELINE not in student or ORT_FP32 not in student:
        return None
    ms = timed or {p: r['median_ms'] for p, r in student.items()}
    passing = [p for p in ms if p in student and passes_accuracy(student[p])]
    if not passing:
        return None
    best = min(passing, key=ms.get)
    over_ort, over_eager = ms[ORT_FP32] / ms[best], ms[BASELINE] / ms[best]
    return {'path': best, 'ms': ms[best], 'ms_by_path': ms, 'timing': 'interleaved' if timed else 'separate',
            'over_onnxruntime_fp32': over_ort, 'over_torch_eager_fp32': over_eager,
            'goal_over_onnxruntime_fp32': GOAL_OVER_ORT, 'goal_over_torch_eager_fp32': GOAL_OVER_EAGER,
            'met': over_ort >= GOAL_OVER_ORT and over_eager >= GOAL_OVER_EAGER,
            'int8_gate': student[best].get('int8_gate')}


def auto_check(rows: list, device) -> dict:
    """What backend 'auto' picks for fp32 here, and the fastest exact fp32 path measured (student)."""
    choice = candidates(device, 'fp32', onnxruntime_available())
    picked = choice.candidates[0]
    out = {'auto_fp32': picked.backend + (' + CUDA graphs' if picked.torch_options and
                                          picked.torch_options.cuda_graphs else ''), 'reason': picked.why}
    for size in sorted({(r['height'], r['width']) for r in rows if r['model'] == STUDENT}):
        exact = [r for r in rows if r['model'] == STUDENT and (r['height'], r['width']) == size
                 and r['precision'] == 'fp32' and r.get('exact')]
        if exact:
            out[f'fastest_exact_fp32_{size[0]}x{size[1]}'] = min(exact, key=lambda r: r['median_ms'])['path']
    return out


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


def int8_lines(report: dict) -> list:
    lines = []
    for r in report['results']:
        if r['precision'] == 'int8' and r.get('int8_gate'):
            lines.append(f"- {r['model']} {r['path']}: accuracy gate passed, {describe_gate(r['int8_gate'])}")
    return lines


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
        model = r['model'] + (f" ({r['radar_points']} radar points)" if r.get('radar_points') else '')
        lines.append(f"| {model} | {r['height']}x{r['width']} | {r['path']} | {r['median_ms']:.1f} | "
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
    c = g.get('cpu_fastest_accurate_448x800')
    if c:
        by = ', '.join(f'{k} {v:.1f} ms' for k, v in c['ms_by_path'].items())
        lines.append(f"- **CPU goal, student 448x800** (fastest path passing the accuracy requirement >= "
                     f"{c['goal_over_onnxruntime_fp32']}x onnxruntime fp32 and >= {c['goal_over_torch_eager_fp32']}x "
                     f"torch eager fp32, {c['timing']} timing): {c['path']} {c['ms']:.1f} ms = "
                     f"{c['over_onnxruntime_fp32']:.2f}x onnxruntime fp32, {c['over_torch_eager_fp32']:.2f}x torch "
                     f"eager fp32: **{'met' if c['met'] else 'not met'}** ({by})")
    a = g.get('auto')
    if a:
        fastest = ', '.join(f'{k[len("fastest_exact_fp32_"):]}: {v}' for k, v in a.items()
                            if k.startswith('fastest_exact_fp32_'))
        lines.append(f"- backend auto picks {a['auto_fp32']} for fp32 here; fastest exact fp32 path measured: "
                     f"{fastest or '-'}")
    lines += int8_lines(report)
    if report.get('sources'):
        lines.append('- weights: ' + '; '.join(f'{k}: {v}' for k, v in report['sources'].items()))
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
    p.add_argument('--paths', nargs='+', default=None, metavar='PATH',
                   help="only these inference paths (names as in the table, e.g. 'onnxruntime int8'; torch eager "
                        'fp32, the baseline, always runs)')
    p.add_argument('--student-checkpoint', default=str(SHIPPED_STUDENT) if SHIPPED_STUDENT.is_file() else None,
                   help='checkpoint of the student (default: the shipped models/xd_rcdepth_synthetic.pt; '
                        "'' for random weights)")
    p.add_argument('--goal-rounds', type=int, default=15,
                   help='interleaved rounds of the CPU goal check (student 448x800; default 15, 0 = off)')
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
    paths = inference_paths(device, tuple(args.compile))
    if args.paths:
        unknown = set(args.paths) - {p.name for p in paths}
        if unknown:
            raise SystemExit(f'unknown path(s) {sorted(unknown)}: choose from {[p.name for p in paths]}')
        paths = [p for p in paths if p.name in args.paths or p.name == BASELINE]
    peak_sources = {'torch fp32': matmul_peak_gmacs(device, torch.float32),
                    'onnxruntime fp32': onnxruntime_matmul_peak_gmacs(device)}
    low = 'bf16' if device.type == 'cpu' else 'fp16'
    # The floor uses the best library per dtype: a path is measured against what this device can do.
    peaks = {'fp32': max(v for k, v in peak_sources.items() if k.endswith('fp32') and v)}
    if any(p.peak == low for p in paths):   # (a bf16 matmul without AVX512-BF16 can take minutes: only if needed)
        peak_sources[f'torch {low}'] = matmul_peak_gmacs(device, torch.bfloat16 if low == 'bf16' else torch.float16)
        peaks[low] = peak_sources[f'torch {low}']
    print('matmul peak GMAC/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in peak_sources.items() if v), flush=True)
    run = Run(args, device)
    for name in args.models:
        bench_model(run, name, args.sizes, paths, peaks)
    timed = None
    if device.type == 'cpu' and args.goal_rounds:
        print(f'goal check: interleaved timing, {args.goal_rounds} rounds', flush=True)
        timed = interleaved(run, args.goal_rounds)
    run.runners.clear()
    processing = [bench_processing(size, device) for size in args.sizes]
    add_ratios(run.rows)
    env['loadavg_end'] = [round(v, 2) for v in os.getloadavg()]
    report_goals = goals(run.rows, processing)
    if device.type == 'cpu':
        goal = cpu_goal(run.rows, timed)
        if goal:
            report_goals['cpu_fastest_accurate_448x800'] = goal
    report_goals['auto'] = auto_check(run.rows, device)
    report = {'environment': env, 'peak_gmacs': peaks, 'peak_gmacs_by_library': peak_sources, 'results': run.rows,
              'processing': processing, 'sources': run.sources,
              'skipped': run.skipped, 'goals': report_goals,
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
