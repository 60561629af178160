"""An exported depth-path ONNX file (export.py) run in ONNX Runtime.

Execution provider: the CPU, or CUDA where the installed onnxruntime has it (the onnxruntime-gpu
wheel; requirements.txt pins the CPU wheel). I/O is float32 numpy on the host: with the CUDA provider
ORT copies in and out each call (a few ms at 896x1600; IO binding would save them).

A dynamic export takes sizes that are multiples of 32 (its metadata says so): inputs of other sizes
are padded here exactly as the models pad themselves (image: edge, radar: zeros, bottom/right) and
the depth is cropped back, so ONNX and PyTorch agree at every size. A static export takes its own
size only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..exported import read_metadata

CUDA_PROVIDER = 'CUDAExecutionProvider'
CPU_PROVIDER = 'CPUExecutionProvider'


def available_providers() -> list:
    import onnxruntime as ort
    return list(ort.get_available_providers())


def pad_to_multiple(image: np.ndarray, radar: np.ndarray, multiple: int):
    """Bottom/right padding to a multiple (image: edge, radar: zeros), as models.blocks.pad_to_stride."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        pad = ((0, 0), (0, 0), (0, ph), (0, pw))
        image = np.pad(image, pad, mode='edge')
        radar = np.pad(radar, pad, mode='constant')
    return image, radar


class OnnxRuntimeBackend:
    name = 'onnxruntime'

    def __init__(self, onnx_path, device: torch.device, threads: int | None = None):
        import onnxruntime as ort
        self.path = Path(onnx_path)
        self.meta = read_metadata(self.path)
        self.device = device
        providers = [CPU_PROVIDER]
        if device.type == 'cuda':
            if CUDA_PROVIDER not in available_providers():
                raise ValueError(f'backend onnxruntime on {device} needs the {CUDA_PROVIDER} (the onnxruntime-gpu '
                                 f'package); this onnxruntime has {", ".join(available_providers())}: '
                                 'use device cpu or backend torch')
            providers = [(CUDA_PROVIDER, {'device_id': device.index or 0}), CPU_PROVIDER]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        self.threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.input_size = tuple(self.meta['input_size']) if self.meta.get('input_size') else None
        self.multiple = int(self.meta.get('input_multiple', 1))
        self.precision = self.meta.get('precision', 'fp32')

    @property
    def info(self) -> dict:
        return {'backend': self.name, 'device': str(self.device), 'precision': self.precision,
                'providers': self.providers, 'onnx': str(self.path), 'dynamic': self.input_size is None,
                'threads': self.threads or 'onnxruntime default'}

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        image = _host_float32(image)
        radar = _host_float32(radar)
        h, w = image.shape[-2:]
        if self.input_size is not None and (h, w) != self.input_size:
            raise ValueError(f'{self.path.name} is a static export for {self.input_size[0]}x{self.input_size[1]} '
                             f'but got {h}x{w}: export with --dynamic or set input_size to its size')
        if self.multiple > 1:
            image, radar = pad_to_multiple(image, radar, self.multiple)
        depth = self.session.run(['depth'], {'image': image, 'radar': radar})[0]
        return torch.from_numpy(np.ascontiguousarray(depth[..., :h, :w]))

    def release(self) -> None:
        self.session = None


def _host_float32(t: torch.Tensor) -> np.ndarray:
    # prepare() hands over permuted (NHWC-strided) views; ORT wants C-contiguous NCHW.
    return np.ascontiguousarray(t.detach().to('cpu', torch.float32).numpy())
