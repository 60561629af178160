"""Inference backends: the forward pass of a model's depth path on prepared network inputs.

    torch        TorchBackend (torch_backend.py): PyTorch with the fast paths the latency benchmark
                 measured to help (inference_mode, channels_last, autocast) and opt-in ones
                 (torch.compile, CUDA graphs).
    onnxruntime  OnnxRuntimeBackend (ort_backend.py): an exported ONNX file (export.py) in ONNX
                 Runtime, CPU or CUDA execution provider.

Both are callables ``backend(image, radar) -> depth`` taking the tensors DepthEstimator.prepare
makes and returning a (1, 1, H, W) float32 torch tensor in metres; ``info`` says what runs.
verify.py compares an exported file with the PyTorch model it came from.
"""
from .torch_backend import TorchBackend, TorchOptions

BACKENDS = ('torch', 'onnxruntime')


def onnxruntime_available() -> bool:
    """Both onnxruntime and onnx (export.py writes and reads the files with it) are installed."""
    from importlib.util import find_spec
    return find_spec('onnxruntime') is not None and find_spec('onnx') is not None


__all__ = ['BACKENDS', 'TorchBackend', 'TorchOptions', 'onnxruntime_available']
