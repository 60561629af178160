"""Which precision runs on which backend and device: the checks made before anything is loaded.

torch-free (devices are torch.device objects or strings such as 'cpu'), so a node can validate its
parameters without importing torch.
"""
from __future__ import annotations

from ..devices import check_precision, device_type
from . import BACKENDS, onnxruntime_available
from .auto import candidates

# Backends that run an exported ONNX file.
ONNX_BACKENDS = ('onnxruntime', 'tensorrt', 'openvino')
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')


def check_settings(device, precision: str, backend: str) -> None:
    """ValueError naming the problem when ``precision`` cannot run on ``backend`` on ``device``
    (backend 'auto': when no candidate runs it there)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend '{backend}' is not supported: use {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not supported: use {', '.join(PRECISIONS)}")
    if backend == 'auto':
        if precision != 'int8':
            check_precision(device, precision)
        candidates(device, precision, onnxruntime_available())
        return
    if precision == 'int8':
        if backend == 'torch':
            raise ValueError('precision int8 runs a quantised ONNX model: use backend auto, onnxruntime or openvino')
        if device_type(device) == 'cuda' and backend in ('onnxruntime', 'openvino'):
            raise ValueError(f'precision int8 with backend {backend} runs on the CPU: use device cpu '
                             '(or backend tensorrt on a GPU)')
        return
    check_precision(device, precision)
    if backend in ONNX_BACKENDS and precision == 'bf16':
        raise ValueError(f'precision bf16 is a torch backend path; use fp32 (CPU) or fp16 (CUDA) with {backend}')
    if backend == 'openvino' and precision == 'fp16':
        raise ValueError('backend openvino runs fp32 or int8 on the CPU, not fp16')
