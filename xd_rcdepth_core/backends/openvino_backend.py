"""An exported depth-path ONNX file (export.py) run in OpenVINO on the CPU (optional: `pip install openvino`).

OpenVINO reads the ONNX file itself (fp32, or the int8 QDQ file of backends/int8.py, which it runs
with its own int8 kernels). fp32 is asked for explicitly (INFERENCE_PRECISION_HINT f32): on CPUs with
AMX or AVX512-BF16 OpenVINO would otherwise run bf16, which is not what precision fp32 promises.
Latency mode, one stream, ``threads`` inference threads.

The float parts of an int8 file (the layers its quantisation keeps in float: the radar encoder's
high-resolution blocks, FiLM, the decoder's last two blocks) run in bf16 where the CPU computes bf16
natively (OpenVINO reports BF16: AVX512-BF16 or AMX) and the file's accuracy gate measured that
combination within its bound (backends/int8.py records it as ``openvino_bf16``); otherwise in f32.
On the 2-core AVX512-BF16 host at 448x800 that took the int8 student from 73 to 53 ms a frame, its
MAE at 80 m within 0.2 % of the f32 float parts on 72 held-out frames (benchmarks/README.md). A
file whose gate did not measure it (made without OpenVINO, or on a CPU without bf16) runs f32.

Shapes: a dynamic export is compiled for each input size it meets (the first frame at a size pays
the compile, ~1 s for the student; a camera's size never changes), padded to a multiple of 32 as
the ONNX Runtime backend does. OpenVINO's GPU plugin drives Intel GPUs, not CUDA devices: this
backend runs on the CPU only.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..devices import device_type
from ..exported import read_metadata
from .ort_backend import host_inputs

PIP_PACKAGE = 'openvino'


def openvino_available() -> bool:
    from importlib.util import find_spec
    return find_spec('openvino') is not None


def require_openvino():
    """The openvino module, or a ValueError naming the pip package."""
    try:
        import openvino
    except ImportError:
        raise ValueError(f'backend openvino needs the optional {PIP_PACKAGE} package, which is not installed: '
                         f'pip install {PIP_PACKAGE} (or use backend onnxruntime)') from None
    return openvino


class OpenVinoBackend:
    name = 'openvino'

    def __init__(self, onnx_path, device='cpu', threads: int | None = None, float_precision: str | None = None):
        """``float_precision``: 'f32' or 'bf16' for the file's float arithmetic; None decides by the
        file (module docstring): f32 for an fp32 file, bf16 for an int8 file whose gate passed it here."""
        ov = require_openvino()
        if device_type(device) != 'cpu':
            raise ValueError(f'backend openvino runs on the CPU (its GPU plugin is for Intel GPUs), not {device}: '
                             'use device cpu')
        self.path = Path(onnx_path)
        self.meta = read_metadata(self.path)
        self.device = device
        self.threads = threads
        self.precision = self.meta.get('precision', 'fp32')
        if self.precision == 'fp16':
            raise ValueError(f'{self.path.name} is an fp16 export: backend openvino runs fp32 or int8 files on the CPU')
        self.core = shared_core()
        self.model = self.core.read_model(str(self.path))
        if float_precision not in (None, 'f32', 'bf16'):
            raise ValueError(f"OpenVINO float precision '{float_precision}': use f32 or bf16")
        if float_precision is None:
            float_precision, self.float_reason = self._float_precision()
        else:
            self.float_reason = 'asked for'
        self.float_precision = float_precision
        self.config = {'INFERENCE_PRECISION_HINT': float_precision, 'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': '1'}
        if threads:
            self.config['INFERENCE_NUM_THREADS'] = str(int(threads))
        self.input_size = tuple(self.meta['input_size']) if self.meta.get('input_size') else None
        self.multiple = int(self.meta.get('input_multiple', 1))
        self._compiled = {}        # input shapes -> (compiled model, infer request)
        self.version = ov.__version__
        # Compile once now, at the size the file was traced at (small), so a file OpenVINO cannot
        # compile fails here, where backend 'auto' can still take the next path, not at the first frame.
        h, w = self.input_size or self.meta.get('trace_size') or (64, 96)
        channels = int(self.meta.get('radar_channels', 4))
        try:
            self._request((1, 3, h, w), (1, channels, h, w))
        except RuntimeError as exc:
            raise ValueError(f'OpenVINO {ov.__version__} cannot compile {self.path.name}: '
                             f'{_first_line(exc)}') from None

    @property
    def info(self) -> dict:
        return {'backend': self.name, 'device': str(self.device), 'precision': self.precision,
                'onnx': str(self.path), 'dynamic': self.input_size is None, 'openvino': self.version,
                'threads': self.threads or 'openvino default', 'float_precision': self.float_precision,
                'float_precision_reason': self.float_reason}

    def _float_precision(self) -> tuple:
        """('f32' | 'bf16', why) for this file on this CPU."""
        if self.precision != 'int8':
            return 'f32', f'precision {self.precision} runs f32 arithmetic'
        if not cpu_has_bf16():
            return 'f32', 'the int8 file\'s float parts run f32: this CPU has no native bf16'
        check = (self.meta.get('accuracy_gate') or {}).get('openvino_bf16') or {}
        if not check.get('measured'):
            return 'f32', ('the int8 file\'s float parts run f32: its accuracy gate did not measure them in bf16 '
                           f"({check.get('why', 'made before that check existed')})")
        if not check.get('passed'):
            return 'f32', (f"the int8 file's float parts run f32: in bf16 its MAE at 80 m moved "
                           f"{100 * check['mae_increase']:+.2f} % from fp32, over the gate")
        return 'bf16', (f"the int8 file's float parts run bf16 (native on this CPU; its accuracy gate measured "
                        f"{100 * check['mae_increase']:+.2f} % MAE at 80 m from fp32)")

    def _request(self, shape_image, shape_radar):
        key = (tuple(shape_image), tuple(shape_radar))
        if key not in self._compiled:
            model = self.model.clone()
            model.reshape({'image': list(shape_image), 'radar': list(shape_radar)})
            compiled = self.core.compile_model(model, 'CPU', self.config)
            self._compiled[key] = (compiled, compiled.create_infer_request())
        return self._compiled[key][1]

    def infer(self, image: np.ndarray, radar: np.ndarray) -> np.ndarray:
        """(1, 1, h, w) float32 depth of float32 NCHW host arrays (or tensors); no torch needed."""
        image, radar, (h, w) = host_inputs(self.path, self.input_size, self.multiple, image, radar)
        request = self._request(image.shape, radar.shape)
        request.infer({'image': image, 'radar': radar})
        depth = request.get_tensor('depth').data
        return np.array(depth[..., :h, :w], dtype=np.float32, copy=True)

    def __call__(self, image, radar):
        import torch  # tensors in, a tensor out: torch is loaded already
        return torch.from_numpy(self.infer(image, radar))

    def release(self) -> None:
        self._compiled.clear()
        self.model = None


_CORE = None


def shared_core():
    """The process's one openvino.Core (OpenVINO's advice: one per application). A Core per backend,
    destroyed with it while another backend's compiled model of the same file was alive, crashed the
    process later (a segfault in unrelated Python code, reproducible in the test suite)."""
    global _CORE
    if _CORE is None:
        _CORE = require_openvino().Core()
    return _CORE


@functools.cache
def cpu_has_bf16() -> bool:
    """True when OpenVINO's CPU plugin computes bf16 natively here (AVX512-BF16 or AMX); asked once
    (the int8 cache key, the gate and every backend want it, and the CPU does not change)."""
    try:
        return 'BF16' in shared_core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    except RuntimeError:
        return False


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
