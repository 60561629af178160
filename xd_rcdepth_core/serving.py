"""Serving plans: which exported ONNX file, backend and input conventions serve a checkpoint on the CPU.

Why: ``import torch`` alone is ~0.5 GB resident (the pinned wheel carries CUDA), while the student in
ONNX Runtime needs a fraction of that. A process that only serves depth on the CPU therefore runs the
exported file with numpy (onnx_estimator.OnnxEstimator) and never imports torch. But *deciding* what
to run needs torch: read the checkpoint, export and verify it (or quantise and gate it for int8),
make backend auto's choice. So that work happens once, in a helper process
(``python -m xd_rcdepth_core.serving``) that exits when done, and its answer, a ServingPlan, is cached
beside the exports. Later starts read the plan and spawn nothing.

A plan is keyed by the checkpoint file's sha256, the backend and precision asked for, the installed
runtimes, and the source of the code that makes exports and chooses backends: a changed file, setting
or runtime makes a new plan, so a stale one is never served. A process that has torch loaded already
(tests, a training script) makes the plan in-process: a helper would only load torch a second time.

Plans are for the CPU with an ONNX backend (backend auto, onnxruntime or openvino; fp32 or int8).
When auto picks torch (no onnxruntime, say) the plan says so (backend 'torch') and the caller loads
DepthEstimator instead.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from importlib import metadata as pkg_metadata
from pathlib import Path

from .conventions import InputConventions
from .exported import default_cache_dir
from .filehash import file_sha256

PLAN_FORMAT = 1
# Where a plan can serve without torch; anything else (CUDA, bf16, backend torch/tensorrt) runs DepthEstimator.
SERVING_BACKENDS = ('auto', 'onnxruntime', 'openvino')
SERVING_PRECISIONS = ('fp32', 'int8')
# The code whose change changes an export or the backend chosen: hashed into the plan's key.
_CODE = ('export.py', 'exported.py', 'pipeline.py', 'conventions.py', 'backends', 'models')


class PlanError(ValueError):
    """A plan could not be made; ``parameter`` names the setting at fault ('checkpoint') when known."""

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class ServingPlan:
    checkpoint: str             # the file the plan was made from (absolute)
    checkpoint_sha256: str
    asked: str                  # the backend asked for: auto | onnxruntime | openvino
    backend: str                # what runs: onnxruntime | openvino, or torch (auto chose torch: DepthEstimator)
    precision: str              # fp32 | int8
    onnx: str | None            # the exported file (None for backend torch)
    model_name: str
    max_depth: float            # the model's output range (DepthEstimator's default max_depth)
    conventions: dict           # conventions.InputConventions.to_dict() of the checkpoint
    reason: str | None          # backend auto: why this backend (its backend_info['reason'])
    format: int = PLAN_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ServingPlan':
        values = json.loads(text)
        if values.get('format') != PLAN_FORMAT:
            raise ValueError(f'serving plan format {values.get("format")!r}, expected {PLAN_FORMAT}')
        return cls(**values)


def can_serve_without_torch(device: str, backend: str, precision: str) -> bool:
    """The settings a plan serves: the CPU ('cpu' from devices.host_device), an ONNX backend, fp32 or int8."""
    return device == 'cpu' and backend in SERVING_BACKENDS and precision in SERVING_PRECISIONS


def _code_fingerprint() -> str:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _CODE:
        path = root / name
        for file in sorted(path.rglob('*.py')) if path.is_dir() else [path]:
            h.update(str(file.relative_to(root)).encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def _installed(package: str) -> str:
    try:
        return pkg_metadata.version(package)
    except pkg_metadata.PackageNotFoundError:
        return 'absent'


def plan_key(checkpoint_sha256: str, backend: str, precision: str) -> str:
    runtimes = [f'{p}={_installed(p)}' for p in ('onnxruntime', 'onnx', 'openvino', 'torch')]
    text = '|'.join([checkpoint_sha256, backend, precision, _code_fingerprint(), *runtimes])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def serving_plan(checkpoint, backend: str = 'auto', precision: str = 'fp32', cache_dir=None,
                 log=None) -> ServingPlan:
    """The cached plan for these settings, else a new one (made in a helper process unless torch is
    loaded here already) written to the cache. ``log(text)`` hears when a plan is being made.
    PlanError says why none could be made."""
    checkpoint = Path(checkpoint).resolve()
    if not checkpoint.is_file():
        raise PlanError(f'file not found: {checkpoint}', parameter='checkpoint')
    sha = file_sha256(checkpoint)
    folder = Path(cache_dir or default_cache_dir()) / 'serving'
    path = folder / f'{plan_key(sha, backend, precision)}.json'
    plan = _read_plan(path)
    if plan is not None:
        return plan
    if 'torch' in sys.modules:
        plan = make_plan(checkpoint, backend, precision, cache_dir)
    else:
        if log:
            log(f'making the serving plan for {checkpoint.name} ({backend}, {precision}) in a helper process: it '
                'loads torch, exports and checks the ONNX file, then exits (once per checkpoint and setting; '
                'this process stays torch-free)')
        plan = _plan_in_helper(checkpoint, backend, precision, cache_dir)
    if plan.checkpoint_sha256 != sha:   # the file changed while the plan was being made
        raise PlanError(f'{checkpoint} changed while its serving plan was made: start again', parameter='checkpoint')
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(plan.to_json())
    os.replace(tmp, path)               # atomic: a concurrent reader sees no half-written plan
    return plan


def _read_plan(path: Path) -> ServingPlan | None:
    """The plan at ``path`` when it is readable and its ONNX file still exists; else None (make it again)."""
    try:
        plan = ServingPlan.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
    if plan.onnx is not None and not Path(plan.onnx).is_file():
        return None
    return plan


def _plan_in_helper(checkpoint: Path, backend: str, precision: str, cache_dir) -> ServingPlan:
    cmd = [sys.executable, '-m', 'xd_rcdepth_core.serving', '--checkpoint', str(checkpoint), '--backend', backend,
           '--precision', precision] + (['--cache-dir', str(cache_dir)] if cache_dir else [])
    # stderr passes through: the helper's warnings and the int8 calibration's progress reach the user.
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if done.returncode == 0 and 'plan' in answer:
        return ServingPlan(**answer['plan'])
    raise PlanError(answer.get('error') or f'the serving-plan helper exited with code {done.returncode} '
                    f'(see its messages above); command: {" ".join(cmd)}', parameter=answer.get('parameter'))


def make_plan(checkpoint, backend: str = 'auto', precision: str = 'fp32', cache_dir=None) -> ServingPlan:
    """Make a plan here (imports torch): load the checkpoint, start DepthEstimator on the CPU with these
    settings (which exports, verifies and, for int8, gates the ONNX file into the cache), and record what
    it runs."""
    from .models.checkpoint import load_model
    from .pipeline import DepthEstimator
    checkpoint = Path(checkpoint).resolve()
    sha = file_sha256(checkpoint)
    try:
        model, ckpt = load_model(checkpoint, map_location='cpu')
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise PlanError(str(exc), parameter='checkpoint') from None
    conventions = InputConventions.from_dict(ckpt.get('inputs'))
    try:
        est = DepthEstimator(model, device='cpu', precision=precision, backend=backend, checkpoint=str(checkpoint),
                             conventions=conventions, cache_dir=cache_dir)
    except (ValueError, RuntimeError, ImportError, OSError) as exc:
        raise PlanError(f'cannot start backend {backend} ({precision}) on the CPU: {exc}') from None
    info = est.backend_info
    onnx = str(est.backend.path) if est.backend is not est.torch else None
    plan = ServingPlan(checkpoint=str(checkpoint), checkpoint_sha256=sha, asked=backend, backend=info['backend'],
                       precision=precision, onnx=onnx, model_name=model.model_name, max_depth=est.max_depth,
                       conventions=conventions.to_dict(), reason=info.get('reason'))
    est.release()
    return plan


def main(argv=None) -> int:
    """The helper: make a plan, print it as one JSON line ({'plan': ...} or {'error': ..., 'parameter': ...})."""
    parser = argparse.ArgumentParser(prog='python -m xd_rcdepth_core.serving', description=main.__doc__)
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--backend', default='auto', choices=SERVING_BACKENDS)
    parser.add_argument('--precision', default='fp32', choices=SERVING_PRECISIONS)
    parser.add_argument('--cache-dir', default=None)
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args.checkpoint, args.backend, args.precision, args.cache_dir)
    except PlanError as exc:
        print(json.dumps({'error': str(exc), 'parameter': exc.parameter}))
        return 2
    except Exception as exc:   # a bug, not bad input: the traceback to stderr, one line to the caller
        traceback.print_exc()
        print(json.dumps({'error': f'serving-plan helper failed: {type(exc).__name__}: {exc} (traceback above)'}))
        return 1
    print(json.dumps({'plan': asdict(plan)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
