"""DepthEstimator: the one inference path from a Frame to depth (and, on request, saliency).

The ROS node, offline evaluation, bag replay evaluation, the benchmarks and the demo all call this
object, so the same Frame gives the same depth whichever way it arrives.

Steps: optional resize of the image to the network input size (K scaled with it, radar projected
with the scaled K so no radar point is lost to resampling), radar encoding (depth, RCS, vx, vy image;
nearest wins), ImageNet normalisation, the forward pass on a backend (backends/: PyTorch on CPU or
CUDA in fp32, fp16 or bf16 autocast; an ONNX export in ONNX Runtime (CPU, CUDA or TensorRT), fp32,
fp16 or int8; or in OpenVINO; the model pads to its stride itself), resize back to the image size,
and depths outside (0, max_depth] marked NaN (REP 118: NaN = no valid measurement).

Backend 'auto' (backends/auto.py) starts the fastest path installed for the device and precision
and says which and why in ``backend_info`` ('chosen_by', 'reason'): on a CPU ONNX Runtime (int8
only when precision int8 is asked for), on CUDA TensorRT, else torch with CUDA graphs.

Saliency (Grad-CAM) needs gradients, so it always runs on the PyTorch model, whatever the backend;
the depth of a frame comes from the backend either way, so asking for saliency never changes it.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .backends import BACKENDS, TorchBackend, TorchOptions, onnxruntime_available
from .backends.auto import candidates
from .backends.int8 import Int8Settings
from .backends.openvino_backend import OpenVinoBackend, require_openvino
from .backends.ort_backend import CUDA_PROVIDER, OnnxRuntimeBackend, available_providers
from .backends.settings import check_settings
from .conventions import InputConventions
from .devices import resolve_device
from .distill.saliency import TAP_LAYERS, grad_cam, normalise_map, saliency_target
from .export import ExportSpec, cached_export, cached_int8_export, default_cache_dir
from .exported import read_metadata
from .inputs import DepthResult, checked_run_options, finish_depth, prepare_host_inputs, prepare_inputs, stage_timings
from .models.checkpoint import load_model
from .models.fingerprint import model_fingerprint
from .radar import RadarEncodingConfig

# The size an on-the-fly ONNX export is traced at: small (fast to export and verify) and a multiple
# of 32, so the dynamic graph takes any size (backends/ort_backend.py pads the rest).
ONNX_TRACE_SIZE = (64, 96)


def _backend_device(resolved: torch.device, asked: str, backend: str) -> torch.device:
    """With device 'auto' and a backend that cannot use the GPU here (onnxruntime without CUDA, the
    pinned CPU wheel; openvino, a CPU runtime), run everything on the CPU rather than fail: 'auto'
    promised a working device, not a GPU."""
    if asked != 'auto' or resolved.type != 'cuda' or backend not in ('onnxruntime', 'openvino'):
        return resolved
    if backend == 'onnxruntime' and CUDA_PROVIDER in available_providers():
        return resolved
    why = (f'this onnxruntime has no {CUDA_PROVIDER} (install onnxruntime-gpu)' if backend == 'onnxruntime'
           else 'OpenVINO runs on the CPU')
    warnings.warn(f'device auto with backend {backend}: {why}, so inference runs on the CPU')
    return torch.device('cpu')


# ----------------------------------------------------------------------------- the estimator

class DepthEstimator:
    """Frame -> depth with a loaded model.

    model:         an nn.Module following the models' forward contract (image, radar) -> {'depth', 'taps'}.
    device:        'auto' | 'cpu' | 'cuda' | 'cuda:N'.
    precision:     'fp32'; 'fp16' (CUDA only: autocast, or an fp16 ONNX export); 'bf16' (torch backend:
                   bf16 autocast, fast on CPUs with AVX512-BF16/AMX; ~1e-2 relative error); 'int8' (an
                   ONNX backend: the int8 model of backends/int8.py, statically quantised and held to an
                   accuracy gate: MAE at 80 m at most 3 % worse than fp32 on held-out synthetic frames).
    max_depth:     depths above this are reported as NaN (defaults to the model's own output range).
    input_size:    (height, width) to run the network at; None (default): the image's size scaled so
                   its focal length becomes the training camera's (``conventions``), which is what the
                   network learned depth at, or the image's own size when that camera is unknown.
    conventions:   conventions.InputConventions of the model: its training camera, image normalisation,
                   radar channels (from_checkpoint reads them from the checkpoint; default: unknown
                   camera, ImageNet normalisation, depth/RCS/vx/vy).
    backend:       'torch' (default: a model in memory may be one being trained, and an export of it
                   would be stale at the next step); 'auto' (the fastest path for the device and
                   precision, backends/auto.py; what the node, eval, replay-eval and the demo use);
                   'onnxruntime'; 'tensorrt' (ONNX Runtime's TensorRT execution provider, CUDA);
                   'openvino' (optional package, CPU). ``backend_info`` says what runs, and for 'auto'
                   what was chosen and why.
    onnx_path:     the ONNX file for an ONNX backend; it must be an export of this model's weights
                   (its metadata's weights_sha256; saliency runs the torch model, so other weights would
                   mix two networks) at this precision. None exports the model on the fly into ``cache_dir``
                   (export.default_cache_dir(): $XD_RCDEPTH_CACHE or ~/.cache/xd_rcdepth), verified
                   against PyTorch once (int8: quantised and gated once, a minute or more on a small
                   CPU), reused while the weights and settings are unchanged.
    int8:          backends.int8.Int8Settings of an on-the-fly int8 export (calibration, gate).
    threads:       intra-op CPU threads (torch.set_num_threads, process-wide; the ONNX Runtime and
                   OpenVINO sessions); None keeps the libraries' defaults.
    torch_options: backends.TorchOptions (channels_last, compile, cuda_graphs).
    checkpoint:    the file the model was loaded from (from_checkpoint sets it), named in errors.
    """

    def __init__(self, model: torch.nn.Module, device: str = 'auto', precision: str = 'fp32',
                 max_depth: float | None = None, input_size: tuple | None = None,
                 radar_config: RadarEncodingConfig = RadarEncodingConfig(), backend: str = 'torch',
                 onnx_path=None, threads: int | None = None, torch_options: TorchOptions | None = None,
                 cache_dir=None, checkpoint=None, conventions: InputConventions | None = None,
                 int8: Int8Settings | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend '{backend}' is not supported: use {', '.join(BACKENDS)}")
        self.device = _backend_device(resolve_device(device), device, backend)
        check_settings(self.device, precision, backend)
        self.precision = precision
        model_max = float(getattr(getattr(model, 'config', None), 'max_depth', 100.0))
        self.max_depth, input_size = checked_run_options(
            model_max if max_depth is None else float(max_depth), input_size, threads)
        if threads:
            torch.set_num_threads(int(threads))
        self.input_size = input_size
        self.conventions = conventions or InputConventions()
        if radar_config == RadarEncodingConfig():   # the default: take the channels the model was trained with
            radar_config = RadarEncodingConfig(feature_columns=self.conventions.feature_columns)
        self.radar_config = radar_config
        self.checkpoint = checkpoint
        self.threads, self.cache_dir, self.int8 = threads, cache_dir, int8 or Int8Settings()
        self.choice = None            # backend 'auto': {'chosen_by': 'auto', 'reason': ...}
        # The torch backend always exists: it runs depth for backend torch and saliency for all
        # (int8 files come from the fp32 model, which saliency runs).
        torch_precision = 'fp32' if precision == 'int8' else precision
        if backend == 'auto':
            self.backend = self._auto(model, torch_precision, onnx_path, torch_options)
        else:
            self.torch = TorchBackend(model, self.device, torch_precision, torch_options or TorchOptions())
            self.model = self.torch.model
            self.backend = self.torch if backend == 'torch' else self._exported(backend, onnx_path)

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> 'DepthEstimator':
        model, ckpt = load_model(path, map_location='cpu')
        kwargs.setdefault('checkpoint', str(path))
        kwargs.setdefault('conventions', InputConventions.from_dict(ckpt.get('inputs')))
        return cls(model, **kwargs)

    def _auto(self, model, torch_precision: str, onnx_path, torch_options):
        """Start the first candidate of backends.auto that works; record the choice and why."""
        choice = candidates(self.device, self.precision, onnxruntime_available())
        failures = []
        for cand in choice.candidates:
            options = torch_options or cand.torch_options or TorchOptions()
            try:
                self.torch = TorchBackend(model, self.device, torch_precision, options)
                self.model = self.torch.model
                backend = self.torch if cand.backend == 'torch' else self._exported(cand.backend, onnx_path)
            except (ValueError, RuntimeError, ImportError, OSError) as exc:
                if cand is choice.candidates[-1] or isinstance(exc, FileNotFoundError):
                    raise
                failures.append(f'{cand.backend}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}')
                continue
            self.choice = {'chosen_by': 'auto', 'reason': choice.reason(cand, failures)}
            return backend
        raise ValueError('backend auto: no candidate backend started')   # unreachable: the last one raises

    def _exported(self, backend: str, onnx_path):
        """The ONNX-file backend ``backend`` (onnxruntime, tensorrt, openvino) on this model's export."""
        if backend == 'openvino':
            require_openvino()
        if not onnxruntime_available():
            raise ValueError(f'backend {backend} needs the onnx and onnxruntime packages (the export and its '
                             'check use them): pip install -r requirements.txt -c constraints.txt')
        given = onnx_path is not None
        if not given:
            spec = ExportSpec('onnx', *ONNX_TRACE_SIZE, dynamic=True, fp16=self.precision == 'fp16')
            if self.precision == 'int8':   # named by the weights' fingerprint and every setting
                onnx_path = cached_int8_export(self.model, spec, self.int8, self.cache_dir, self.conventions)
            else:
                onnx_path = cached_export(self.model, spec, self.cache_dir)
        meta = read_metadata(onnx_path)
        if meta['model_name'] != self.model.model_name:
            raise ValueError(f'{onnx_path} holds {meta["model_name"]} but the checkpoint is {self.model.model_name}')
        if meta.get('precision', 'fp32') != self.precision:
            raise ValueError(f'{onnx_path} is a {meta.get("precision")} export but precision is {self.precision}')
        size = meta.get('input_size')
        if size and tuple(size) != self.input_size:
            raise ValueError(f'{onnx_path} is a static {size[0]}x{size[1]} export: set input_size to that size '
                             'or export with --dynamic')
        if given:
            self._check_weights(onnx_path, meta)
        if backend == 'openvino':
            return OpenVinoBackend(onnx_path, self.device, self.threads)
        engines = Path(self.cache_dir or default_cache_dir()) / 'tensorrt' if backend == 'tensorrt' else None
        return OnnxRuntimeBackend(onnx_path, self.device, self.threads, tensorrt=backend == 'tensorrt',
                                  engine_cache=engines)

    def _check_weights(self, onnx_path, meta: dict) -> None:
        """The file must hold this model's weights: same name and size are not enough (depth would come
        from the file, saliency from the torch model)."""
        ours = self.checkpoint or f'the {self.model.model_name} model given'
        theirs = meta.get('weights_sha256')
        redo = f'export it again: xd-rcdepth export --checkpoint {self.checkpoint or "CKPT"} --format onnx ...'
        if theirs is None:
            raise ValueError(f'{onnx_path} records no weights fingerprint (an export older than that check), so '
                             f'it cannot be matched with {ours}; {redo}')
        mine = model_fingerprint(self.model)
        if theirs != mine:
            source = f' ({meta["checkpoint"]})' if meta.get('checkpoint') else ''
            raise ValueError(f'{onnx_path} was exported from other weights{source} than {ours}: its weights '
                             f'fingerprint {theirs[:12]} is not {mine[:12]}; {redo}')

    @property
    def model_name(self) -> str:
        return self.model.model_name

    @property
    def backend_info(self) -> dict:
        """What runs the depth (backend, device, precision, ...); with backend 'auto' also
        'chosen_by': 'auto' and 'reason': why this backend."""
        return {**self.backend.info, **(self.choice or {})}

    # -- steps -------------------------------------------------------------------------------
    def prepare(self, frame):
        """Network inputs of a Frame: (image tensor 1x3xhxw normalised, radar tensor 1x4xhxw, stats)."""
        if self.backend is not self.torch and self.device.type == 'cpu':
            # An ONNX file on the CPU takes contiguous NCHW host arrays: make them so directly (as
            # OnnxEstimator, which the node serves with) rather than as channels_last tensors it would copy.
            image, radar, stats = prepare_host_inputs(frame, self.input_size, self.radar_config, self.conventions)
            return torch.from_numpy(image), torch.from_numpy(radar), stats
        return prepare_inputs(frame, self.input_size, self.device, self.radar_config, self.conventions)

    def _finish(self, depth_t: torch.Tensor, height: int, width: int) -> np.ndarray:
        return finish_depth(depth_t, height, width, self.max_depth)

    def _saliency(self, img_t, radar_t, layers, size) -> dict:
        unknown = set(layers) - set(TAP_LAYERS)
        if unknown:
            raise ValueError(f'unknown saliency layer(s) {sorted(unknown)}: choose from {TAP_LAYERS}')
        # Gradients flow from the input, so Grad-CAM works even on frozen weights.
        out = self.torch.full(img_t.clone().requires_grad_(True), radar_t.clone().requires_grad_(True))
        maps = grad_cam(out['taps'], saliency_target(out['depth'].float()), layers=tuple(layers))
        return {k: normalise_map(v.detach().float(), size=size)[0, 0].cpu().numpy() for k, v in maps.items()}

    # -- public ------------------------------------------------------------------------------
    def predict(self, frame, saliency_layers=()) -> DepthResult:
        """Depth of one Frame; with `saliency_layers` (subset of image, radar, decoder) also Grad-CAM maps."""
        t0 = time.perf_counter()
        img_t, radar_t, stats = self.prepare(frame)
        t1 = time.perf_counter()
        depth_t = self.backend(img_t, radar_t)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter()
        saliency = None
        if saliency_layers:
            saliency = self._saliency(img_t, radar_t, saliency_layers, (frame.height, frame.width))
        t3 = time.perf_counter()
        depth = self._finish(depth_t, frame.height, frame.width)
        t4 = time.perf_counter()
        return DepthResult(depth=depth, radar_stats=stats, saliency=saliency,
                           timings_ms=stage_timings(t0, t1, t2, t3, t4, bool(saliency_layers)))

    def release(self) -> None:
        """Drop the model from the GPU and close the ONNX Runtime session (the node's deactivate)."""
        if self.backend is not self.torch:
            self.backend.release()
        self.torch.release()
