"""Does an exported file compute what the PyTorch model computes? Run both on a synthetic frame.

The frame comes from the synthetic world (real radar projection and encoding through the pipeline's
own prepare step), so the check covers the inputs the file will see, not just random tensors. A
dynamic export is also checked at a second size: the tracer can freeze a shape into the graph, and
only a different size shows it.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

# Metres. fp32 exports agree with PyTorch to ~1e-5 m (summation order); fp16 weights and activations
# cost ~1e-3 m on our models, more on a trained net with large activations.
DEFAULT_TOLERANCE_M = {'fp32': 1e-2, 'fp16': 0.5}


def synthetic_inputs(model: nn.Module, height: int, width: int, seed: int = 0):
    """(image, radar) network inputs of one synthetic frame at height x width, on the CPU."""
    from ..pipeline import prepare_inputs
    from ..synthetic import generate_sequence
    frame = next(iter(generate_sequence(seed=seed, n_frames=1, height=height, width=width)))
    image, radar, _ = prepare_inputs(frame, None, torch.device('cpu'))
    if radar.shape[1] != model.config.radar_channels:
        raise ValueError(f'the radar encoding gives {radar.shape[1]} channels, {model.model_name} takes '
                         f'{model.config.radar_channels}')
    return image, radar


def reference_depth(model: nn.Module, image, radar) -> torch.Tensor:
    """fp32 PyTorch depth on the model's device, leaving the model's train/eval mode as it was."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return model(image.to(device), radar.to(device))['depth'].float().cpu()
    finally:
        model.train(was_training)


def run_exported(path, meta: dict, image, radar) -> torch.Tensor:
    """Depth from the exported file on the CPU (ONNX Runtime or the TorchScript interpreter)."""
    if meta.get('opset') is not None:
        from .ort_backend import OnnxRuntimeBackend
        # As many threads as torch uses, so one setting governs the whole check.
        return OnnxRuntimeBackend(path, torch.device('cpu'), threads=torch.get_num_threads())(image, radar)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)   # torch.jit is deprecated upstream; still loads
        module = torch.jit.load(str(path), map_location='cpu')
    # optimized_execution(False): the JIT's profiling runs and fusion passes cost seconds and are
    # irrelevant to one comparison run.
    with torch.inference_mode(), torch.jit.optimized_execution(False):
        return module(image.contiguous(), radar.contiguous()).float()


def verification_sizes(meta: dict) -> list:
    h, w = meta['trace_size']
    if meta.get('dynamic'):
        step = meta.get('input_multiple', 32)
        return [(h, w), (h + step, w + 2 * step)]
    return [(h, w)]


def verify_export(path, model: nn.Module, spec=None, tolerance: float | None = None) -> dict:
    """Max |depth_exported - depth_torch| (metres) per checked size; ValueError above ``tolerance``."""
    from ..export import read_metadata
    meta = read_metadata(path)
    if meta['model_name'] != model.model_name:
        raise ValueError(f'{path} holds {meta["model_name"]}, not {model.model_name}')
    tol = DEFAULT_TOLERANCE_M[meta.get('precision', 'fp32')] if tolerance is None else float(tolerance)
    errors = {}
    for h, w in verification_sizes(meta):
        image, radar = synthetic_inputs(model, h, w)
        ref = reference_depth(model, image, radar)
        got = run_exported(path, meta, image, radar)
        if got.shape != ref.shape:
            raise ValueError(f'export verification failed at {h}x{w}: depth shape {tuple(got.shape)}, '
                             f'PyTorch gives {tuple(ref.shape)}')
        errors[f'{h}x{w}'] = float((got - ref).abs().max())
    worst = max(errors.values())
    result = {'max_abs_error_m': worst, 'per_size': errors, 'tolerance_m': tol}
    if not worst <= tol:   # also catches NaN
        raise ValueError(f'export verification failed: max abs depth error {worst:.3g} m > tolerance {tol:g} m '
                         f'({", ".join(f"{k}: {v:.3g}" for k, v in errors.items())})')
    return result
