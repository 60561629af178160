"""The PyTorch forward pass of the depth path, with the fast paths worth having.

Measured on the 2-core CPU (benchmarks/latency.py, idle machine, README table): channels_last inputs
ran within 1 % of NCHW for the student (215 vs 216 ms at 448x800) and up to 11 % faster for the
teacher, so they stay on by default on the CPU (an earlier run on a loaded machine had shown
them halving the student's time; the idle run did not confirm that). Only the inputs are made
channels_last: a channels_last input makes every convolution after it run NHWC, converting the
weights as well measured no faster, and the model - perhaps one being trained - is left as it was.
bf16 autocast on the CPU is opt-in (precision='bf16'): 17 % faster for the student at 448x800, no
faster at 896x1600, 0.002 m of difference. On the CPU, ONNX Runtime (backends/ort_backend.py) is
2-5x faster than any torch path. inference_mode is used throughout (no autograd bookkeeping).
On CUDA channels_last is on with fp16 only (tensor-core convolutions want NHWC) until a GPU run of
the benchmark says otherwise. Opt-in: torch.compile (minutes of compile time on a small CPU; reported
in ``info['compile_s']``) and CUDA graphs (for a fixed input size; a new size captures a new graph).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..devices import check_precision

AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


@dataclass(frozen=True)
class TorchOptions:
    channels_last: bool | None = None   # None: on where measured to help (CPU; CUDA with fp16)
    compile: bool = False               # torch.compile the depth path (first call compiles)
    cuda_graphs: bool = False           # capture the depth path in a CUDA graph (fixed input size)

    def resolve_channels_last(self, device: torch.device, precision: str) -> bool:
        if self.channels_last is not None:
            return bool(self.channels_last)
        return device.type == 'cpu' or precision == 'fp16'


def autocast(device: torch.device, precision: str, cache: bool = True):
    """fp16 / bf16 autocast on the device; a no-op context for fp32. CUDA graph capture needs
    cache=False (a cached weight cast made outside the graph would be replayed stale)."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision], cache_enabled=cache)


class TorchBackend:
    """``backend(image, radar) -> depth`` with the model on ``device``; ``full(...)`` gives the whole
    output dict with autograd on (Grad-CAM) and the same layout and precision, never compiled."""

    name = 'torch'

    def __init__(self, model: nn.Module, device: torch.device, precision: str = 'fp32',
                 options: TorchOptions = TorchOptions()):
        check_precision(device, precision)
        if options.cuda_graphs and device.type != 'cuda':
            raise ValueError('cuda_graphs needs a CUDA device')
        if options.cuda_graphs and options.compile:
            raise ValueError('choose one of compile and cuda_graphs (compile with mode '
                             '"reduce-overhead" already uses CUDA graphs)')
        self.device, self.precision, self.options = device, precision, options
        self.channels_last = options.resolve_channels_last(device, precision)
        self.model = model.to(device).eval()
        self._depth_fn = self._eager_depth
        self._compiled_shapes = set()
        self.compile_s = None
        if options.compile:
            self._depth_fn = torch.compile(self._eager_depth, dynamic=False)
        self._graph = None          # (input shapes, CUDAGraph, static inputs, static output)

    @property
    def info(self) -> dict:
        return {'backend': self.name, 'device': str(self.device), 'precision': self.precision,
                'channels_last': self.channels_last, 'compile': self.options.compile,
                'compile_s': self.compile_s, 'cuda_graphs': self.options.cuda_graphs,
                'threads': torch.get_num_threads()}

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def _eager_depth(self, image, radar):
        with autocast(self.device, self.precision, cache=not self.options.cuda_graphs):
            return self.model(image, radar)['depth']

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        image, radar = self._layout(image.to(self.device)), self._layout(radar.to(self.device))
        with torch.inference_mode():
            if self.options.cuda_graphs:
                return self._graphed(image, radar)
            if self.options.compile and image.shape not in self._compiled_shapes:
                return self._compile_call(image, radar)
            return self._depth_fn(image, radar).float()

    def full(self, image: torch.Tensor, radar: torch.Tensor) -> dict:
        """The model's output dict, autograd on (inputs as given: set requires_grad for Grad-CAM)."""
        with torch.enable_grad(), autocast(self.device, self.precision):
            return self.model(self._layout(image), self._layout(radar))

    def _compile_call(self, image, radar):
        """The first call at a shape compiles; its wall time is reported as compile_s."""
        start = time.perf_counter()
        depth = self._depth_fn(image, radar).float()
        self._sync()
        self.compile_s = time.perf_counter() - start
        self._compiled_shapes.add(image.shape)
        return depth

    def _graphed(self, image, radar):
        key = (tuple(image.shape), tuple(radar.shape))
        if self._graph is None or self._graph[0] != key:
            self._graph = self._capture(key, image, radar)
        _, graph, (static_image, static_radar), static_depth = self._graph
        static_image.copy_(image)
        static_radar.copy_(radar)
        graph.replay()
        return static_depth.clone()   # the next replay overwrites static_depth

    def _capture(self, key, image, radar):
        static_image, static_radar = image.clone(), radar.clone()
        # Warm up on a side stream first (cuDNN autotuning and allocations must not be captured).
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager_depth(static_image, static_radar)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_depth = self._eager_depth(static_image, static_radar).float()
        return key, graph, (static_image, static_radar), static_depth

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        self._graph = None
        self.model.to('cpu')
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()
