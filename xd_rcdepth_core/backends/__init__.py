"""Inference backends: the forward pass of a model's depth path on prepared network inputs.

    torch        TorchBackend (torch_backend.py): PyTorch with the fast paths the latency benchmark
                 measured to help (inference_mode, channels_last, autocast) and opt-in ones
                 (torch.compile, CUDA graphs).
    onnxruntime  OnnxRuntimeBackend (ort_backend.py): an exported ONNX file (export.py) in ONNX
                 Runtime, CPU or CUDA execution provider; fp32, fp16 or int8 (int8.py).
    tensorrt     OnnxRuntimeBackend with ONNX Runtime's TensorRT execution provider (CUDA).
    openvino     OpenVinoBackend (openvino_backend.py): the same ONNX file in OpenVINO on the CPU
                 (optional package: pip install openvino).
    auto         not a backend of its own: auto.py picks one of the above for the device and precision.

Each is a callable ``backend(image, radar) -> depth`` taking the tensors DepthEstimator.prepare
makes and returning a (1, 1, H, W) float32 torch tensor in metres; ``info`` says what runs. The ONNX
backends also take numpy arrays (``infer``) and import no torch: serving.py runs them without it.
verify.py compares an exported file with the PyTorch model it came from; int8.py quantises an fp32
export and holds it to an accuracy gate.
"""
BACKENDS = ('auto', 'torch', 'onnxruntime', 'tensorrt', 'openvino')


def onnxruntime_available() -> bool:
    """Both onnxruntime and onnx (export.py writes and reads the files with it) are installed."""
    from importlib.util import find_spec
    return find_spec('onnxruntime') is not None and find_spec('onnx') is not None


def __getattr__(name):
    # TorchBackend / TorchOptions on first use: importing the ONNX backends must not import torch.
    if name in ('TorchBackend', 'TorchOptions'):
        from . import torch_backend
        return getattr(torch_backend, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['BACKENDS', 'TorchBackend', 'TorchOptions', 'onnxruntime_available']
