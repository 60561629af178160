"""Backend 'auto': the fastest inference path that is installed and exact enough, with the reason.

auto picks the backend, never the precision: the precision (fp32, fp16, bf16, int8) changes the
numbers, so it stays the user's choice, and auto picks the fastest backend that runs it.

CPU (measured, benchmarks/latency.py on the 2-core x86_64 machine, the student at 448x800; tables in
benchmarks/README.md):
    fp32   onnxruntime: 2.2x torch eager fp32 on an idle machine, the same depth within 1e-4 m.
           OpenVINO fp32 (optional package) was 0.4x to 1.15x ONNX Runtime fp32 across runs there:
           not a candidate.
    int8   (only when precision int8 is asked: int8 changes the depth, within the export's accuracy
           gate) the int8 file of backends/int8.py in OpenVINO when that optional package is
           installed (1.9x ONNX Runtime fp32 on an AVX2 CPU, against 1.2x for the same file in ONNX
           Runtime, whose int8 kernels gain less without VNNI; 2.7x on an AVX512-BF16 CPU, where
           OpenVINO runs the file's float layers in bf16 when its gate passed that), else in ONNX
           Runtime.
    bf16   torch (bf16 autocast is a torch path).
    Without onnxruntime: torch, saying so.
CUDA (one run so far, benchmarks/latency.py on an NVIDIA H200 with torch 2.11 and no GPU build of
ONNX Runtime: torch + CUDA graphs at fp16 ran the student at 448x800 in 4.0 ms against 11.3 ms for
torch eager fp32, and at 896x1600 in 14.7 against 17.7 ms (fp32 with CUDA graphs, what auto runs at
fp32, was not timed in that run; benchmarks/latency.py now has that row). TensorRT and ONNX Runtime CUDA were not
installed there, so their place in the order below is still a prior from how these runtimes usually
rank on small convolutional nets; the benchmark's goal check reports whether auto agrees):
    1. tensorrt      ONNX Runtime's TensorRT execution provider (fused kernels; needs onnxruntime-gpu
                     built with TensorRT, and TensorRT itself)
    2. torch + CUDA graphs   the whole depth path replayed as one graph (the student is ~150 small
                     kernels: launch overhead dominates at 448x800); always available with CUDA torch
    3. onnxruntime   CUDA execution provider (copies I/O through the host each call)
    A path that fails to start (TensorRT libraries missing, say) is skipped and the reason kept, so
    the fallback is torch on CUDA, which needs nothing beyond torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..devices import device_type
from .openvino_backend import openvino_available
from .ort_backend import available_providers

CPU_FP32_NOTE = ('measured 2.2x torch eager for the student on an idle 2-core CPU, same depth within 1e-4 m; '
                 'OpenVINO fp32 was not reliably faster')
CPU_INT8_NOTE = ('the int8 file in OpenVINO ran 1.9x ONNX Runtime fp32 (2.7x with its float layers in bf16 '
                 'on a CPU with native bf16), in ONNX Runtime 1.2x (benchmarks/README.md)')
CUDA_ORDER = ('tensorrt', 'torch-cuda-graphs', 'onnxruntime')
CUDA_NOTE = ('CUDA order: fp16 + CUDA graphs measured 2.8x torch eager fp32 on an H200 at 448x800 (fp32 + graphs '
             'not timed yet); tensorrt and onnxruntime CUDA not measured, their rank a prior')


@dataclass
class Candidate:
    backend: str                      # torch | onnxruntime | tensorrt | openvino
    why: str
    torch_options: object = None      # backends.TorchOptions of a torch candidate (None: the defaults)


@dataclass
class AutoChoice:
    """The candidates in order; DepthEstimator starts the first that works and records the others' failures."""
    candidates: list
    skipped: list = field(default_factory=list)    # 'path: why not' of candidates not even tried

    def reason(self, chosen: Candidate, failures: list) -> str:
        parts = [chosen.why]
        parts += [f'{f} (skipped)' for f in failures]
        parts += [f'{s} (not available)' for s in self.skipped]
        return 'auto: ' + '; '.join(parts)


def _ort_providers() -> list:
    return available_providers()


def candidates(device, precision: str, onnxruntime: bool, openvino: bool | None = None) -> AutoChoice:
    """Ordered candidates for 'auto' on ``device`` at ``precision`` (``onnxruntime``: onnx + onnxruntime
    importable; ``openvino``: the optional openvino package, looked up when None). ValueError when
    nothing can run that precision there."""
    if device_type(device) == 'cpu':
        if precision == 'int8':
            if not onnxruntime:
                raise ValueError('precision int8 runs a quantised ONNX model: install onnx and onnxruntime '
                                 '(pip install -r requirements.txt -c constraints.txt)')
            ort = Candidate('onnxruntime', 'CPU, int8 asked for: the accuracy-gated int8 model in ONNX Runtime')
            if openvino is None:
                openvino = openvino_available()
            if openvino:
                return AutoChoice([Candidate('openvino', f'CPU, int8 asked for: the accuracy-gated int8 model in '
                                                         f'OpenVINO ({CPU_INT8_NOTE})'), ort])
            return AutoChoice([ort], skipped=[f'openvino: not installed (pip install openvino; {CPU_INT8_NOTE})'])
        if precision == 'bf16':
            return AutoChoice([Candidate('torch', 'CPU, bf16: bf16 autocast is a torch path')])
        if onnxruntime:
            return AutoChoice([Candidate('onnxruntime', f'CPU, fp32: onnxruntime, the fastest exact CPU path '
                                                        f'({CPU_FP32_NOTE})'),
                               Candidate('torch', 'torch fp32 (fallback)')])
        return AutoChoice([Candidate('torch', 'CPU, fp32: torch')],
                          skipped=['onnxruntime: not installed (pip install onnx onnxruntime; about 2x faster)'])
    # CUDA (torch is there anyway: it found the device)
    from .torch_backend import TorchOptions
    providers = _ort_providers() if onnxruntime else []
    out, skipped = [], []
    graphs = TorchOptions(cuda_graphs=True)
    for path in CUDA_ORDER:
        if path == 'tensorrt':
            if 'TensorrtExecutionProvider' in providers and precision in ('fp32', 'fp16', 'int8'):
                out.append(Candidate('tensorrt', f'CUDA, {precision}: TensorRT execution provider ({CUDA_NOTE})'))
            else:
                skipped.append('tensorrt: no TensorrtExecutionProvider in this onnxruntime'
                               if onnxruntime else 'tensorrt: onnxruntime not installed')
        elif path == 'torch-cuda-graphs':
            if precision == 'int8':
                skipped.append('torch: has no int8 path')
                continue
            out.append(Candidate('torch', f'CUDA, {precision}: torch with CUDA graphs ({CUDA_NOTE})', graphs))
        elif path == 'onnxruntime':
            if 'CUDAExecutionProvider' in providers and precision in ('fp32', 'fp16'):
                out.append(Candidate('onnxruntime', f'CUDA, {precision}: ONNX Runtime CUDA execution provider'))
            else:
                skipped.append('onnxruntime CUDA: no CUDAExecutionProvider (install onnxruntime-gpu)'
                               if precision != 'int8' else 'onnxruntime CUDA: no int8 kernels')
    if not out:
        raise ValueError(f'precision {precision} on {device}: no backend here runs it ({"; ".join(skipped)}); '
                         'int8 on a GPU needs the TensorRT execution provider, or use device cpu')
    if precision != 'int8':   # torch without graphs: the fallback that needs nothing beyond torch
        out.append(Candidate('torch', f'CUDA, {precision}: torch eager (fallback)', TorchOptions()))
    return AutoChoice(out, skipped)
