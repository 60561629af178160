"""int8: static quantisation of an fp32 ONNX export, calibrated on the synthetic world, behind an accuracy gate.

How (ONNX Runtime's quantize_static): QDQ format, weights int8 per output channel (7-bit,
``reduce_range``: ONNX Runtime's advice for x86 CPUs without VNNI, where u8 x s8 products can
saturate), activations uint8 with MinMax ranges from ``calibration_frames`` camera frames of
``calibration_scenes`` synthetic worlds (rendered camera images with simulated radar, the world
xd_rcdepth_core.synthetic.generate_sequence draws, fed through the pipeline's own input preparation,
at the size the gate measures). Every supported op is quantised (convolutions, and the clips, adds,
concats and resizes between them, so ONNX Runtime chains int8 kernels instead of converting at each
op; convolutions alone ran *slower* than fp32), except the layers ``keep_fp32`` names.

What stays fp32, and why (measured on the shipped student at 448x800, 32 calibration frames, MAE at
80 m on 24 + 24 held-out frames of 14 other worlds, fp32 6.55 / 6.67 m; benchmarks/README.md):
    Each group quantised alone, everything else fp32: image encoder +1.8 %, DASPP 0.0 %, bottlenecks
    0.0 %, decoder up8 +0.1 %, up4 +1.2 %, depth head -0.2 %, FiLM at 1/8 and 1/32 +0.1 / 0.0 %.
    Sensitive: the radar encoder's high-resolution part (stem +4.9 %; on top of the rest quantised,
    blocks 1 and 2 +12 % each: the radar image is ~0.5 % non-zero, so its early features are sparse
    peaks that 8 bits per tensor flatten; its blocks 3-18, at 1/8 resolution and below, cost 0.0-0.3 %
    each), FiLM at 1/2 resolution (+10.6 %: it multiplies the image features by those radar
    features), and the decoder's two highest-resolution blocks up2 / up1 (+3.7 / +3.9 %).
    Everything quantised: +21 % / +15 %. The default (radar_high_res, film, decoder_high_res in fp32):
    -0.15 % / -0.51 %, at 1.9x ONNX Runtime fp32's speed in OpenVINO and 1.2x in ONNX Runtime
    (whose int8 kernels gain less on this AVX2 CPU without VNNI). FiLM stays fp32 at every level: a
    quantised scalar in its (1 + gamma) add stops OpenVINO from compiling the file, and it is 2 % of
    the time. Calibration: MinMax; percentile (99.999) clips the radar peaks and was worse in a
    colleague's earlier try (+7 % against +1.5 %); 32 frames from 8 worlds rather than 8 from one.

The gate: the paper's protocol (xd_rcdepth_core.evaluate: single-sweep lidar ground truth, per-image
MAE at 80 m averaged over images, frames cropped to a multiple of 32) on ``test_frames`` held-out
frames of other synthetic worlds than the calibration's, fp32 ONNX and int8 ONNX run on the same
frames. The int8 file passes when its MAE is at most ``max_mae_increase`` (3 %) worse than the fp32
file's; otherwise Int8GateError says by how much, and export.py leaves no file. Where OpenVINO is
installed and the CPU computes bf16 natively, the gate also measures the int8 file in OpenVINO with its
float parts in bf16 and records it (``openvino_bf16``): OpenVinoBackend runs them in bf16 only when
that passed the same bound (else f32; the file stands either way).

The synthetic worlds (seeds 1501 / 1502 by default) are neither the shipped checkpoint's training
worlds (seed 2026) nor its test worlds (seed 7). The fp32 groups are named by the student's module
names; for another model they match nothing, everything is quantised, and the gate decides.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..conventions import InputConventions
from ..evaluate import EvalOptions, crop_for_eval, evaluate
from ..inputs import finish_depth, prepare_inputs
from ..radar import RadarEncodingConfig
from ..synthetic.sequence import GroundTruthSettings, make_frame
from ..synthetic.world import CAMERA, World
from .openvino_backend import OpenVinoBackend, cpu_has_bf16, openvino_available
from .ort_backend import OnnxRuntimeBackend

GATE_RANGE = 80.0
# Op types ONNX Runtime's QDQ quantiser handles in these graphs (for counting and keep_fp32 matching).
QUANTISABLE = ('Conv', 'Clip', 'Relu', 'Add', 'Mul', 'Concat', 'Resize', 'Sigmoid', 'Slice', 'Gather', 'Unsqueeze')
FRAME_STEP = 18            # camera frames (12 Hz) between two frames taken from one world: 1.5 s


class Int8GateError(ValueError):
    """The int8 model is more than the allowed share worse than fp32 (MAE at 80 m)."""


@dataclass(frozen=True)
class Int8Settings:
    """What an int8 export is made with; every field is part of the on-the-fly cache key."""
    height: int = 448                      # calibration and gate frames (the student's 448x800 deployment size)
    width: int = 800
    calibration_frames: int = 32
    calibration_scenes: int = 8            # frames spread evenly over this many synthetic worlds
    calibration_seed: int = 1501
    test_frames: int = 24
    test_scenes: int = 6
    test_seed: int = 1502
    method: str = 'minmax'                 # minmax | percentile | entropy
    percentile: float = 99.999             # method percentile only
    per_channel: bool = True
    reduce_range: bool = True              # 7-bit weights (x86 without VNNI: no u8 x s8 saturation)
    op_types: tuple = ()                   # what is quantised; () = every op ONNX Runtime can quantise
    keep_fp32: tuple = ('radar_high_res', 'film', 'decoder_high_res')   # groups (KEEP_FP32_GROUPS) or prefixes
    max_mae_increase: float = 0.03         # the gate: int8 MAE at 80 m <= (1 + this) x fp32's

    def __post_init__(self):
        if self.method not in ('minmax', 'percentile', 'entropy'):
            raise ValueError(f"int8 calibration method '{self.method}': use minmax, percentile or entropy")
        if self.calibration_frames < 1 or self.test_frames < 1:
            raise ValueError('int8 export needs at least one calibration and one test frame')
        if self.calibration_scenes < 1 or self.test_scenes < 1:
            raise ValueError('int8 export needs at least one calibration and one test scene')
        if self.height < 32 or self.width < 32:
            raise ValueError(f'int8 calibration size must be at least 32x32, got {self.height}x{self.width}')

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# Node-name prefixes of the student's export (export.py names nodes after the modules) that a
# keep_fp32 entry may name by group.
KEEP_FP32_GROUPS = {
    'radar_high_res': ('/model/radar_encoder/stem/', '/model/radar_encoder/encoder/features.0/',
                       '/model/radar_encoder/encoder/features.1/', '/model/radar_encoder/encoder/features.2/'),
    'film': ('/model/fusion.',),
    'decoder_high_res': ('/model/decoder/up2/', '/model/decoder/up1/'),
    'radar_encoder': ('/model/radar_encoder/',),
    'first_conv': ('/model/image_encoder/features.0/', '/model/radar_encoder/encoder/features.0/'),
    'radar_stem': ('/model/radar_encoder/stem',),
    'image_encoder': ('/model/image_encoder/',),
    'daspp': ('/model/decoder/daspp/',),
    'depth_head': ('/model/decoder/head/',),
}


def expand_keep(keep: tuple) -> tuple:
    """Group names (KEEP_FP32_GROUPS) replaced by their node-name prefixes; other entries kept as given."""
    out = []
    for entry in keep:
        out.extend(KEEP_FP32_GROUPS.get(entry, (entry,)))
    return tuple(out)


# ----------------------------------------------------------------------------- frames

def synthetic_frames(seed: int, scenes: int, frames: int, height: int, width: int):
    """``frames`` camera frames spread over ``scenes`` synthetic worlds (seeds (seed, i), as
    synthetic.generate_sequence makes them), a world's frames 1.5 s apart so they differ; single-sweep
    lidar ground truth only; cropped to a multiple of 32 as the evaluation protocol does."""
    per = [frames // scenes + (1 if i < frames % scenes else 0) for i in range(scenes)]
    gt = GroundTruthSettings(accumulate=0)     # depth_sparse is all the gate reads
    for i, n in enumerate(per):
        if n == 0:
            continue
        world = World((seed, i))
        for k in range(n):
            index = FRAME_STEP * k
            frame = make_frame(world, world.sensor_time(CAMERA, index), height, width,
                               f'int8-{seed}-{i:02d}_frame-{index:04d}', gt)
            yield crop_for_eval(frame, 32)


def network_inputs(frame, conventions: InputConventions) -> dict:
    radar_config = RadarEncodingConfig(feature_columns=conventions.feature_columns)
    # At the frame's own size (a multiple of 32): calibration and gate run the network at the size they
    # are made at; the checkpoint's normalisation and radar channels still apply.
    image, radar, _ = prepare_inputs(frame, (frame.height, frame.width), torch.device('cpu'), radar_config,
                                     conventions)
    return {'image': np.ascontiguousarray(image.numpy()), 'radar': np.ascontiguousarray(radar.numpy())}


class _CalibrationReader:
    """onnxruntime.quantization.CalibrationDataReader over prepared synthetic frames, made lazily and
    handed over in strides (``set_range``), so the histogram calibrators hold a few frames' activations
    at a time rather than all of them."""

    def __init__(self, frames, total: int, conventions: InputConventions):
        self._frames = iter(frames)
        self.total, self.conventions = total, conventions
        self.count, self._stop = 0, total

    def get_next(self):
        if self.count >= self._stop:
            return None
        frame = next(self._frames, None)
        if frame is None:
            return None
        self.count += 1
        return network_inputs(frame, self.conventions)

    def __len__(self):
        return self.total

    def set_range(self, start_index: int, end_index: int):
        self._stop = end_index


def _stride(total: int, most: int = 4) -> int:
    return next(d for d in range(min(most, total), 0, -1) if total % d == 0)


class _FilePredictor:
    """``predict(frame).depth`` of a backend running an ONNX file, the way DepthEstimator runs it with
    input_size the frame's size (the synthetic camera at 448x800 has the shipped checkpoint's training
    focal length, so that is also the size its conventions ask for)."""

    def __init__(self, backend, conventions: InputConventions, max_depth: float):
        self.backend = backend
        self.conventions, self.max_depth = conventions, max_depth
        self.radar_config = RadarEncodingConfig(feature_columns=conventions.feature_columns)

    def predict(self, frame):
        image, radar, _ = prepare_inputs(frame, (frame.height, frame.width), torch.device('cpu'),
                                         self.radar_config, self.conventions)
        depth = finish_depth(self.backend(image, radar), frame.height, frame.width, self.max_depth)
        return SimpleNamespace(depth=depth)


# ----------------------------------------------------------------------------- quantise and gate

def quantize(fp32_path, out_path, settings: Int8Settings, conventions: InputConventions | None = None,
             ranges_cache=None) -> dict:
    """Write the int8 QDQ model of ``fp32_path`` to ``out_path``; returns what was done (for the metadata).
    ``ranges_cache``: a JSON file of calibrated ranges (ONNX Runtime's calibration cache): read when it
    exists (no calibration run), else written."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    conventions = conventions or InputConventions()
    proto = onnx.load(str(fp32_path))
    prefixes = expand_keep(settings.keep_fp32)
    quantised = [n for n in proto.graph.node if n.op_type in (settings.op_types or QUANTISABLE)]
    excluded = [n.name for n in quantised if n.name.startswith(prefixes)] if prefixes else []
    method = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
              'entropy': CalibrationMethod.Entropy}[settings.method]
    # Frames go in strides of up to 4 (ranges / histograms merged between strides): bounded memory.
    extra = {'CalibStridedMinMax': _stride(settings.calibration_frames)}
    if settings.method == 'percentile':
        extra['CalibPercentile'] = settings.percentile
    reader = _CalibrationReader(synthetic_frames(settings.calibration_seed, settings.calibration_scenes,
                                                 settings.calibration_frames, settings.height, settings.width),
                                settings.calibration_frames, conventions)
    if ranges_cache is not None and Path(ranges_cache).is_file():
        reader = None
    quantize_static(str(fp32_path), str(out_path), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(settings.op_types) or None, per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded, calibrate_method=method,
                    extra_options=extra, calibration_cache_path=ranges_cache)
    convs = [n for n in quantised if n.op_type == 'Conv']
    return {'calibration_frames_used': reader.count if reader else settings.calibration_frames,
            'quantised_convolutions': len([n for n in convs if n.name not in set(excluded)]),
            'fp32_convolutions': len([n for n in convs if n.name in set(excluded)]), 'fp32_nodes_kept': excluded}


def mae_at(path, frames, conventions: InputConventions, max_depth: float, threads: int | None,
           backend=None) -> dict:
    """The paper's metrics of an ONNX file on ``frames`` (already cropped), run in ONNX Runtime (or in
    ``backend``, already made for that file): evaluate()'s result."""
    backend = backend or OnnxRuntimeBackend(path, torch.device('cpu'), threads)
    predictor = _FilePredictor(backend, conventions, max_depth)
    return evaluate(predictor, frames, EvalOptions(ranges=(GATE_RANGE,), multiple=0, progress=False))


def openvino_bf16_check(int8_path, frames, conventions: InputConventions, max_depth: float, threads: int | None,
                        mae_fp32: float, allowed: float) -> dict:
    """MAE at 80 m of the int8 file in OpenVINO with its float parts in bf16, against the fp32 file's
    ``mae_fp32``: what OpenVinoBackend runs on a CPU with native bf16 when this says passed. Measured
    only where it can run (OpenVINO installed, bf16 native here, the file compiles in OpenVINO);
    {'measured': False, 'why'} otherwise."""
    if not openvino_available():
        return {'measured': False, 'why': 'openvino not installed where the file was made'}
    if not cpu_has_bf16():
        return {'measured': False, 'why': 'no native bf16 on the CPU the file was made on'}
    try:
        backend = OpenVinoBackend(int8_path, 'cpu', threads, float_precision='bf16')
    except ValueError as exc:        # OpenVINO cannot compile some quantisations (a quantised FiLM scalar)
        return {'measured': False, 'why': str(exc)}
    got = mae_at(int8_path, frames, conventions, max_depth, threads, backend)['by_range'][f'{GATE_RANGE:g}']
    increase = got['mae'] / mae_fp32 - 1.0
    return {'measured': True, 'openvino': backend.version, 'mae_m': got['mae'], 'mae_increase': increase,
            'passed': bool(np.isfinite(got['mae']) and increase <= allowed)}


def accuracy_gate(fp32_path, int8_path, settings: Int8Settings, conventions: InputConventions | None = None,
                  max_depth: float = 100.0, threads: int | None = None) -> dict:
    """MAE at 80 m of both files on the held-out frames; Int8GateError when int8 is worse than allowed."""
    conventions = conventions or InputConventions()
    frames = list(synthetic_frames(settings.test_seed, settings.test_scenes, settings.test_frames,
                                   settings.height, settings.width))
    key = f'{GATE_RANGE:g}'
    ref = mae_at(fp32_path, frames, conventions, max_depth, threads)['by_range'][key]
    got = mae_at(int8_path, frames, conventions, max_depth, threads)['by_range'][key]
    if not ref['images'] or ref['mae'] is None:
        raise ValueError('int8 accuracy gate: no held-out frame has lidar ground truth within 80 m')
    increase = got['mae'] / ref['mae'] - 1.0
    result = {'frames': ref['images'], 'size': [settings.height, settings.width], 'range_m': GATE_RANGE,
              'mae_fp32_m': ref['mae'], 'mae_int8_m': got['mae'], 'mae_increase': increase,
              'allowed_increase': settings.max_mae_increase, 'rmse_fp32_m': ref['rmse'], 'rmse_int8_m': got['rmse'],
              'd1_fp32': ref['d1'], 'd1_int8': got['d1'], 'test_seed': settings.test_seed}
    if not np.isfinite(got['mae']) or increase > settings.max_mae_increase:
        raise Int8GateError(
            f"int8 export failed its accuracy gate: MAE at 80 m {got['mae']:.3f} m against fp32's {ref['mae']:.3f} m "
            f"on {ref['images']} held-out synthetic frames ({settings.height}x{settings.width}), "
            f"{100 * increase:+.2f} % where at most {100 * settings.max_mae_increase:+.2f} % is allowed "
            f"(over by {100 * (increase - settings.max_mae_increase):.2f} points); no file written")
    # OpenVINO may run the float parts in bf16 (2-core AVX512-BF16 host: 1.4x faster): only if it keeps
    # within the same bound; failing it only keeps them in f32 (openvino_backend.py), the file stands.
    result['openvino_bf16'] = openvino_bf16_check(int8_path, frames, conventions, max_depth, threads, ref['mae'],
                                                  settings.max_mae_increase)
    return result


def describe_gate(gate: dict) -> str:
    text = (f"MAE at 80 m {gate['mae_int8_m']:.3f} m vs fp32 {gate['mae_fp32_m']:.3f} m "
            f"({100 * gate['mae_increase']:+.2f} %, allowed {100 * gate['allowed_increase']:+.2f} %) on "
            f"{gate['frames']} held-out synthetic frames at {gate['size'][0]}x{gate['size'][1]}")
    bf16 = gate.get('openvino_bf16') or {}
    if bf16.get('measured'):
        verdict = 'passed: OpenVINO runs them in bf16' if bf16['passed'] else 'over the bound: they stay f32'
        text += (f"; float parts in bf16 (OpenVINO): {bf16['mae_m']:.3f} m ({100 * bf16['mae_increase']:+.2f} %), "
                 f'{verdict}')
    return text


def default_threads() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


__all__ = ['Int8GateError', 'Int8Settings', 'KEEP_FP32_GROUPS', 'accuracy_gate', 'describe_gate', 'expand_keep',
           'quantize', 'synthetic_frames']
