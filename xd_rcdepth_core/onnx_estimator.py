"""OnnxEstimator: DepthEstimator's Frame -> depth path on an exported ONNX file, without torch.

The same steps as pipeline.DepthEstimator (inputs.py: resize to the network size, radar encoding,
normalisation; the backend's forward; depth back at the image's pixels, NaN outside (0, max_depth]),
with numpy arrays instead of tensors, so a node serving depth on the CPU never imports torch
(serving.py says why and how the file is chosen). Depth agrees with DepthEstimator on the same file
to float32 rounding.

Saliency (Grad-CAM) needs gradients, hence torch and the PyTorch model: the first predict that asks
for it imports torch and loads the checkpoint (a few seconds, once; ``on_torch_load`` hears about it),
and the process holds torch from then on. Depth still comes from the ONNX file.
"""
from __future__ import annotations

import threading
import time

from .backends.openvino_backend import OpenVinoBackend
from .backends.ort_backend import OnnxRuntimeBackend
from .conventions import InputConventions
from .inputs import DepthResult, checked_run_options, finish_depth, prepare_host_inputs, stage_timings
from .radar import RadarEncodingConfig
from .serving import ServingPlan


class OnnxEstimator:
    """Frame -> depth with an exported file, per a serving.ServingPlan.

    max_depth:     depths above this are NaN (default: the model's output range, from the plan).
    input_size:    (height, width) the network runs at; None: scaled to the training camera's focal
                   length, as DepthEstimator.
    threads:       intra-op threads of the ONNX Runtime / OpenVINO session (and of torch, once saliency
                   loads it); None keeps the libraries' defaults.
    on_torch_load: called with one line of text when saliency first loads torch.
    """

    device = 'cpu'

    def __init__(self, plan: ServingPlan, max_depth: float | None = None, input_size: tuple | None = None,
                 threads: int | None = None, on_torch_load=None):
        if plan.backend not in ('onnxruntime', 'openvino') or not plan.onnx:
            raise ValueError(f'serving plan for {plan.checkpoint} runs backend {plan.backend}, not an ONNX file: '
                             'use DepthEstimator')
        self.plan = plan
        self.precision = plan.precision
        self.max_depth, self.input_size = checked_run_options(
            float(plan.max_depth if max_depth is None else max_depth), input_size, threads)
        self.threads = threads
        self.conventions = InputConventions.from_dict(plan.conventions)
        self.radar_config = RadarEncodingConfig(feature_columns=self.conventions.feature_columns)
        self.model_name = plan.model_name
        if plan.backend == 'openvino':
            self.backend = OpenVinoBackend(plan.onnx, 'cpu', threads)
        else:
            self.backend = OnnxRuntimeBackend(plan.onnx, 'cpu', threads)
        meta = self.backend.meta
        if meta.get('model_name') != plan.model_name or meta.get('precision', 'fp32') != plan.precision:
            raise ValueError(f'{plan.onnx} holds {meta.get("model_name")} ({meta.get("precision")}), not the '
                             f'{plan.model_name} ({plan.precision}) its serving plan names: delete the plan')
        self.on_torch_load = on_torch_load
        self._saliency_estimator = None
        self._saliency_lock = threading.Lock()

    @property
    def backend_info(self) -> dict:
        """DepthEstimator's backend_info ('chosen_by' and 'reason' when backend auto chose), and
        whether torch is loaded."""
        choice = {'chosen_by': 'auto', 'reason': self.plan.reason} if self.plan.asked == 'auto' else {}
        return {**self.backend.info, **choice, 'torch': 'loaded (saliency)' if self.torch_loaded else 'not loaded'}

    @property
    def torch_loaded(self) -> bool:
        return self._saliency_estimator is not None

    def _saliency_model(self):
        """The PyTorch DepthEstimator that runs Grad-CAM, loaded on first use."""
        with self._saliency_lock:
            if self._saliency_estimator is None:
                t0 = time.perf_counter()
                from .pipeline import DepthEstimator  # imports torch
                self._saliency_estimator = DepthEstimator.from_checkpoint(
                    self.plan.checkpoint, device='cpu', precision='fp32', backend='torch', threads=self.threads,
                    conventions=self.conventions)
                if self.on_torch_load:
                    self.on_torch_load(f'saliency asked for: loaded torch and the {self.model_name} model for '
                                       f'Grad-CAM in {time.perf_counter() - t0:.1f} s (depth still runs in '
                                       f'{self.backend.name}; the process holds torch from now on)')
            return self._saliency_estimator

    def predict(self, frame, saliency_layers=()) -> DepthResult:
        """Depth of one Frame; with ``saliency_layers`` (subset of image, radar, decoder) also Grad-CAM maps."""
        t0 = time.perf_counter()
        image, radar, stats = prepare_host_inputs(frame, self.input_size, self.radar_config, self.conventions)
        t1 = time.perf_counter()
        depth = self.backend.infer(image, radar)
        t2 = time.perf_counter()
        saliency = None
        if saliency_layers:
            import torch
            est = self._saliency_model()
            saliency = est._saliency(torch.from_numpy(image), torch.from_numpy(radar), saliency_layers,
                                     (frame.height, frame.width))
        t3 = time.perf_counter()
        depth = finish_depth(depth, frame.height, frame.width, self.max_depth)
        t4 = time.perf_counter()
        return DepthResult(depth=depth, radar_stats=stats, saliency=saliency,
                           timings_ms=stage_timings(t0, t1, t2, t3, t4, bool(saliency_layers)))

    def release(self) -> None:
        """Close the session (and drop the saliency model): the node's deactivate."""
        self.backend.release()
        if self._saliency_estimator is not None:
            self._saliency_estimator.release()
            self._saliency_estimator = None
