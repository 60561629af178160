"""An exported depth-path ONNX file (export.py) run in ONNX Runtime.

Execution provider: the CPU, or CUDA where the installed onnxruntime has it (the onnxruntime-gpu
wheel; requirements.txt pins the CPU wheel), or TensorRT (``tensorrt=True``: ONNX Runtime's TensorRT
execution provider, in onnxruntime-gpu builds with TensorRT installed; fp16 kernels with precision
fp16, the file's own QDQ int8 with an int8 file; engines cached beside the ONNX cache, so only the
first run at a size builds one, which takes minutes). I/O is float32 numpy on the host: with the CUDA
provider ORT copies in and out each call (a few ms at 896x1600; IO binding would save them).
The TensorRT path has not run here (no GPU on this project's machines): it is written from ONNX
Runtime's documentation, and DepthEstimator's backend 'auto' falls back to the next path when it
cannot start.

A dynamic export takes sizes that are multiples of 32 (its metadata says so): inputs of other sizes
are padded here exactly as the models pad themselves (image: edge, radar: zeros, bottom/right) and
the depth is cropped back, so ONNX and PyTorch agree at every size. A static export takes its own
size only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..devices import device_index, device_type
from ..exported import read_metadata

CUDA_PROVIDER = 'CUDAExecutionProvider'
CPU_PROVIDER = 'CPUExecutionProvider'
TENSORRT_PROVIDER = 'TensorrtExecutionProvider'


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

    def __init__(self, onnx_path, device, threads: int | None = None, tensorrt: bool = False,
                 engine_cache=None):
        import onnxruntime as ort
        self.path = Path(onnx_path)
        self.meta = read_metadata(self.path)
        self.device = device
        self.precision = self.meta.get('precision', 'fp32')
        providers = [CPU_PROVIDER]
        if tensorrt:
            self.name = 'tensorrt'
            providers = self._tensorrt_providers(device, engine_cache)
        elif device_type(device) == 'cuda':
            if CUDA_PROVIDER not in available_providers():
                raise ValueError(f'backend onnxruntime on {device} needs the {CUDA_PROVIDER} (the onnxruntime-gpu '
                                 f'package); this onnxruntime has {", ".join(available_providers())}: '
                                 'use device cpu or backend torch')
            providers = [(CUDA_PROVIDER, {'device_id': device_index(device) or 0}), CPU_PROVIDER]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3    # errors only: a quantised graph's unused-initializer notes are noise
        if threads:
            options.intra_op_num_threads = int(threads)
        self.threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.providers = self.session.get_providers()
        if tensorrt and TENSORRT_PROVIDER not in self.providers:
            raise ValueError(f'backend tensorrt: ONNX Runtime did not start its {TENSORRT_PROVIDER} (TensorRT '
                             f'libraries missing?); the session has {", ".join(self.providers)}')
        self.input_size = tuple(self.meta['input_size']) if self.meta.get('input_size') else None
        self.multiple = int(self.meta.get('input_multiple', 1))

    def _tensorrt_providers(self, device, engine_cache) -> list:
        have = available_providers()
        if device_type(device) != 'cuda':
            raise ValueError(f'backend tensorrt runs on a CUDA device, not {device}')
        if TENSORRT_PROVIDER not in have:
            raise ValueError(f'backend tensorrt needs the {TENSORRT_PROVIDER} (onnxruntime-gpu with TensorRT '
                             f'installed); this onnxruntime has {", ".join(have)}')
        trt = {'device_id': device_index(device) or 0, 'trt_fp16_enable': self.precision == 'fp16',
               'trt_int8_enable': self.precision == 'int8'}
        if engine_cache is not None:
            Path(engine_cache).mkdir(parents=True, exist_ok=True)
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache))
        cuda = [(CUDA_PROVIDER, {'device_id': device_index(device) or 0})] if CUDA_PROVIDER in have else []
        return [(TENSORRT_PROVIDER, trt), *cuda, CPU_PROVIDER]

    @property
    def info(self) -> dict:
        return {'backend': self.name, 'device': str(self.device), 'precision': self.precision,
                'providers': self.providers, 'onnx': str(self.path), 'dynamic': self.input_size is None,
                'threads': self.threads or 'onnxruntime default'}

    def infer(self, image: np.ndarray, radar: np.ndarray) -> np.ndarray:
        """(1, 1, h, w) float32 depth of float32 NCHW host arrays (or tensors); no torch needed."""
        image, radar, (h, w) = host_inputs(self.path, self.input_size, self.multiple, image, radar)
        depth = self.session.run(['depth'], {'image': image, 'radar': radar})[0]
        return np.ascontiguousarray(depth[..., :h, :w])

    def __call__(self, image, radar):
        import torch  # tensors in, a tensor out: torch is loaded already
        return torch.from_numpy(self.infer(image, radar))

    def release(self) -> None:
        self.session = None


def host_inputs(path: Path, input_size, multiple: int, image, radar) -> tuple:
    """(image, radar, (h, w)): contiguous float32 host arrays for an exported file, padded to its
    multiple; (h, w) is the size to crop the depth back to. A static file takes its own size only."""
    image, radar = _host_float32(image), _host_float32(radar)
    h, w = image.shape[-2:]
    if input_size is not None and (h, w) != input_size:
        raise ValueError(f'{path.name} is a static export for {input_size[0]}x{input_size[1]} '
                         f'but got {h}x{w}: export with --dynamic or set input_size to its size')
    if multiple > 1:
        image, radar = pad_to_multiple(image, radar, multiple)
    return image, radar, (h, w)


def _host_float32(t) -> np.ndarray:
    """A C-contiguous float32 numpy array of a numpy array or a torch tensor (ORT wants NCHW;
    DepthEstimator.prepare hands over permuted, NHWC-strided, views)."""
    if not isinstance(t, np.ndarray):
        t = t.detach().float().cpu().numpy()
    return np.ascontiguousarray(t, dtype=np.float32)
