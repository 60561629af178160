"""ONNX and TorchScript files of a model's depth path, with the settings recorded inside the file.

The exported graph is the depth path only (no X-KD taps, no saliency):
    inputs   image (1, 3, H, W) float32, ImageNet-normalised RGB (what DepthEstimator.prepare makes)
             radar (1, C, H, W) float32, the radar image (depth, RCS, vx, vy; 0 = no return)
    output   depth (1, 1, H, W) float32 metres in [min_depth, max_depth]
Inputs and output stay float32 with ``fp16`` too: the casts to and from half live inside the graph,
so callers never change.

Shapes. A static export takes exactly H x W; when H or W is not a multiple of 32 the bottom/right
padding to the network stride is part of the graph (constant amounts; see DepthOnly). A
dynamic export accepts any H and W that are multiples of 32 (metadata ``input_multiple``): the tracer
freezes the model's pad-or-not decision, so the caller pads (backends/ort_backend.py does).

Exporter. torch.onnx's dynamo exporter needs onnxscript, which we do not install; the
TorchScript-based exporter (``dynamo=False``, deprecated but present in torch 2.14) writes plain
graphs at the opset asked for, with BatchNorm folded into the convolutions.

Weights. ``weights_sha256`` in the metadata is model_fingerprint of the exported model (name, config,
every tensor): DepthEstimator refuses an ONNX file whose fingerprint is not its own model's, since
depth would then come from one set of weights and saliency from another.

TensorRT. Every op of the student, LiRCDepth and CaFNet graphs is in TensorRT's ONNX operator
matrix (onnx-tensorrt docs/operators.md, TensorRT 8.4 onwards, opset <= 17), and the Resize modes
are ones it supports; ``tensorrt_report`` checks each export and the file's metadata records the
result. This was checked against the operator matrix, not with a TensorRT build (no GPU here).
TorchScript is deprecated upstream (torch.jit warns); it is kept for libtorch C++ deployments.

int8 (``export_int8``, ``cached_int8_export``): the fp32 ONNX export, verified, then statically
quantised (backends/int8.py: QDQ, per-channel, calibrated on synthetic frames) and held to an accuracy
gate instead of the per-pixel check: MAE at 80 m on held-out synthetic frames at most 3 % worse than
the fp32 file's. The file's metadata says precision int8 and records the settings and the gate's
numbers; a file that fails the gate is never written.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .backends.int8 import Int8Settings, accuracy_gate, quantize
from .backends.openvino_backend import cpu_has_bf16, openvino_available
from .backends.verify import verify_export
from .conventions import InputConventions
from .exported import DEFAULT_OPSET, FORMATS, INPUT_NAMES, METADATA_FILE, OUTPUT_NAMES, default_cache_dir, metadata
from .models.blocks import NETWORK_STRIDE
from .models.fingerprint import model_fingerprint

# ONNX ops TensorRT's parser supports (onnx-tensorrt docs/operators.md, 'Y' rows of TensorRT 8.4;
# later versions only add). Restrictions that matter to us are checked in tensorrt_report.
TENSORRT_OPS = frozenset('''
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU
HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log
LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg Not Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize Round
ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Unsqueeze Upsample Where Xor'''.split())
TENSORRT_RESIZE_MODES = {'half_pixel', 'pytorch_half_pixel', 'tf_half_pixel_for_nn', 'asymmetric',
                         'align_corners'}


@dataclass(frozen=True)
class ExportSpec:
    """What to export. height/width: the trace size (static: the only size accepted)."""
    format: str = 'onnx'
    height: int = 352
    width: int = 704
    dynamic: bool = False
    fp16: bool = False
    opset: int = DEFAULT_OPSET

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format '{self.format}' is not supported: use {' or '.join(FORMATS)}")
        if self.height < NETWORK_STRIDE or self.width < NETWORK_STRIDE:
            raise ValueError(f'export size must be at least {NETWORK_STRIDE}x{NETWORK_STRIDE}, '
                             f'got {self.height}x{self.width}')
        if self.dynamic and (self.height % NETWORK_STRIDE or self.width % NETWORK_STRIDE):
            raise ValueError(f'a dynamic export is traced at a size that is a multiple of {NETWORK_STRIDE} '
                             f'(the graph then takes any such size); got {self.height}x{self.width}')
        if not 9 <= self.opset <= 20:
            raise ValueError(f'opset must be in 9..20 (TensorRT 10 parses 9..20), got {self.opset}')


class DepthOnly(nn.Module):
    """model(image, radar)['depth'] with float32 I/O; casts to the weights' dtype inside (fp16).

    ``pad`` (static exports whose size is not a multiple of 32): pad here by constant amounts, as
    the model would (image: edge, radar: zeros), using Slice/Expand/Concat - the model's own
    replicate pad traces to Pad 'edge' plus a Mod, which TensorRT's parser rejects - and crop back.
    """

    def __init__(self, model: nn.Module, pad: tuple = (0, 0)):
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype
        self.pad = tuple(int(p) for p in pad)

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if any(self.pad):
            image, radar = _pad_constant(image, radar, *self.pad)
        depth = self.model(image.to(self.dtype), radar.to(self.dtype))['depth'].float()
        return depth[..., :height, :width] if any(self.pad) else depth


def _pad_constant(image, radar, pad_h: int, pad_w: int):
    """Bottom/right padding by fixed amounts: image rows/columns repeat the edge, radar gets zeros."""
    if pad_h:
        image = torch.cat([image, image[..., -1:, :].expand(-1, -1, pad_h, -1)], dim=2)
        radar = torch.cat([radar, radar.new_zeros(radar.shape[0], radar.shape[1], pad_h, radar.shape[3])], dim=2)
    if pad_w:
        image = torch.cat([image, image[..., -1:].expand(-1, -1, -1, pad_w)], dim=3)
        radar = torch.cat([radar, radar.new_zeros(radar.shape[0], radar.shape[1], radar.shape[2], pad_w)], dim=3)
    return image, radar


def example_inputs(model: nn.Module, height: int, width: int, seed: int = 0):
    """Random (image, radar) of the model's input shapes; ~3 % radar pixels set, like a radar image."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, height, width, generator=g)
    hit = torch.rand(1, 1, height, width, generator=g) < 0.03
    radar = torch.rand(1, model.config.radar_channels, height, width, generator=g) * 50 * hit
    return image, radar


def _prepared(model: nn.Module, spec: ExportSpec) -> DepthOnly:
    """An eval-mode CPU copy (fp16: half weights); the caller's model is never touched."""
    model = copy.deepcopy(model).to('cpu').eval()
    if spec.fp16:
        model = model.half()
    pad = (0, 0) if spec.dynamic else ((-spec.height) % NETWORK_STRIDE, (-spec.width) % NETWORK_STRIDE)
    return DepthOnly(model, pad).eval()


def _temporary_path(path: Path) -> Path:
    """A unique sibling name to write to before the atomic rename (the exporters open the file
    themselves, so it gets the usual permissions, not mkstemp's 0600)."""
    return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path('.')
    if path.is_dir():
        raise ValueError(f'output {path} is a directory: give a file name')
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f'cannot write {path}: {blocker} is a file, not a folder')
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f'cannot create the output folder {parent}: {exc.strerror}') from None
    if not os.access(parent, os.W_OK):
        raise ValueError(f'output folder {parent} is not writable')


def export_model(model: nn.Module, path, spec: ExportSpec, extra_metadata: dict | None = None) -> Path:
    """Write the depth path of ``model`` to ``path`` (atomically) as ONNX or TorchScript."""
    path = Path(path)
    check_writable(path)
    static_only = getattr(model, 'STATIC_EXPORT_ONLY', None)   # a model whose graph is shape-specific (RadarNet)
    if spec.dynamic and static_only:
        raise ValueError(f'{model.model_name} cannot be exported with dynamic shapes: {static_only}')
    meta = metadata(model, spec, extra_metadata)
    wrapper = _prepared(model, spec)
    inputs = example_inputs(model, spec.height, spec.width)
    tmp = _temporary_path(path)
    try:
        # The tracer warns about every Python-level shape check in the models (check_inputs,
        # pad_to_stride): expected, and covered by verify() at a second size for dynamic exports.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            if spec.format == 'onnx':
                _write_onnx(wrapper, inputs, tmp, spec, meta)
            else:
                _write_torchscript(wrapper, inputs, tmp, meta)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (ValueError, OSError)):
            raise
        hint = (' (fp16 export needs a model that runs end to end in half precision; export fp32 and let '
                'TensorRT or ONNX Runtime convert)') if spec.fp16 else ''
        raise ValueError(f'{spec.format} export of {model.model_name} failed: {type(exc).__name__}: '
                         f'{(str(exc).strip().splitlines() or [""])[0]}{hint}') from exc
    return path


def _write_onnx(wrapper, inputs, tmp: Path, spec: ExportSpec, meta: dict) -> None:
    import onnx
    dynamic_axes = ({name: {2: 'height', 3: 'width'} for name in INPUT_NAMES + OUTPUT_NAMES}
                    if spec.dynamic else None)
    with torch.no_grad():
        torch.onnx.export(wrapper, inputs, str(tmp), dynamo=False, opset_version=spec.opset,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    proto = onnx.load(str(tmp))
    meta = _store_metadata(proto, meta)
    proto.doc_string = (f"xd_rcdepth {meta['model_name']} depth path: image (1,3,H,W) ImageNet-normalised, "
                        f"radar (1,{meta['radar_channels']},H,W) -> depth (1,1,H,W) metres")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))


def _set_onnx_metadata(path: Path, meta: dict) -> None:
    """Replace the metadata of an ONNX file in place (json values, as _write_onnx stores them)."""
    import onnx
    proto = onnx.load(str(path))
    _store_metadata(proto, meta)
    onnx.save(proto, str(path))


def _store_metadata(proto, meta: dict) -> dict:
    """Set ``meta`` plus the graph's op report (TensorRT support) as the proto's metadata, each value
    json-encoded (exported.read_metadata reads them back); returns what was stored."""
    report = tensorrt_report(proto)
    meta = {**meta, 'ops': report['ops'], 'tensorrt_unsupported': report['unsupported'],
            'tensorrt_notes': report['notes']}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.producer_name = 'xd_rcdepth'
    return meta


def _write_torchscript(wrapper, inputs, tmp: Path, meta: dict) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, inputs, check_trace=False)
    torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta)})


def tensorrt_report(proto) -> dict:
    """{'ops': sorted op types, 'unsupported': ops outside TensorRT's matrix, 'notes': caveats}."""
    ops = sorted({n.op_type for n in proto.graph.node})
    notes = []
    for node in proto.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == 'Pad' and 'mode' in attrs and attrs['mode'].s.decode() != 'constant':
            notes.append(f"Pad mode '{attrs['mode'].s.decode()}' (static size not a multiple of 32): "
                         'TensorRT before 8.6 parses constant Pad only')
        if node.op_type == 'Resize' and 'coordinate_transformation_mode' in attrs:
            mode = attrs['coordinate_transformation_mode'].s.decode()
            if mode not in TENSORRT_RESIZE_MODES:
                notes.append(f'Resize coordinate_transformation_mode {mode!r} is not supported by TensorRT')
    return {'ops': ops, 'unsupported': sorted(set(ops) - TENSORRT_OPS), 'notes': sorted(set(notes))}


# ----------------------------------------------------------------------------- on-the-fly cache

def export_verified(model: nn.Module, path, spec: ExportSpec, tolerance: float | None = None,
                    verify: bool = True, extra_metadata: dict | None = None, rel_tolerance: float | None = None):
    """Export to a temporary sibling, verify it against PyTorch (backends/verify.py; ``tolerance`` and
    ``rel_tolerance`` replace the parts of the precision's default), then rename: a file at ``path``
    has always passed. Returns (path, verification dict or None)."""
    path = Path(path)
    check_writable(path)
    tmp = export_model(model, _temporary_path(path).with_suffix(path.suffix or '.tmp'), spec, extra_metadata)
    try:
        result = verify_export(tmp, model, spec, tolerance, rel_tolerance) if verify else None
        os.replace(tmp, path)   # atomic: a second process never reads a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    return path, result


def export_int8(model: nn.Module, path, spec: ExportSpec, settings: Int8Settings = Int8Settings(),
                conventions: InputConventions | None = None, extra_metadata: dict | None = None,
                fp32_path=None) -> tuple:
    """The int8 model of ``model`` at ``path``: the fp32 ONNX export (``spec``, verified; or
    ``fp32_path``, an export of the same weights already made), quantised with ``settings`` and
    passed through the accuracy gate (backends/int8.py). Returns (path, gate result). Int8GateError
    (a ValueError) when the gate fails; then no file is left."""
    path = Path(path)
    check_writable(path)
    if spec.format != 'onnx' or spec.fp16:
        raise ValueError('int8 is an ONNX export of the fp32 model: use format onnx without fp16')
    if spec.height % NETWORK_STRIDE or spec.width % NETWORK_STRIDE:
        raise ValueError(f'an int8 export is calibrated at its export size, which must be a multiple of '
                         f'{NETWORK_STRIDE} (got {spec.height}x{spec.width})')
    if (settings.height, settings.width) != (spec.height, spec.width) and not spec.dynamic:
        raise ValueError(f'a static int8 export is calibrated at its own size {spec.height}x{spec.width}, '
                         f'not {settings.height}x{settings.width}')
    threads = torch.get_num_threads()
    made = []
    try:
        if fp32_path is None:
            fp32_path, _ = export_verified(model, _temporary_path(path).with_suffix('.fp32.onnx'), spec)
            made.append(fp32_path)
        tmp = _temporary_path(path).with_suffix('.int8.onnx')
        made.append(tmp)
        done = quantize(fp32_path, tmp, settings, conventions)
        gate = accuracy_gate(fp32_path, tmp, settings, conventions, float(model.config.max_depth), threads)
        meta = {**metadata(model, spec, extra_metadata), 'precision': 'int8',
                'int8': {**settings.to_dict(), **done}, 'accuracy_gate': gate}
        _set_onnx_metadata(tmp, meta)
        os.replace(tmp, path)
    finally:
        for f in made:
            Path(f).unlink(missing_ok=True)
    return path, gate


def cache_key(model: nn.Module, *settings) -> str:
    """20 hex digits of sha256 over the weights' fingerprint, the settings (dataclasses, dicts), torch's version."""
    parts = [asdict(s) if hasattr(s, '__dataclass_fields__') else s for s in settings]
    text = json.dumps([*parts, {'torch': torch.__version__}], sort_keys=True, default=str)
    return hashlib.sha256((model_fingerprint(model) + text).encode()).hexdigest()[:20]


def cached_int8_export(model: nn.Module, spec: ExportSpec, settings: Int8Settings = Int8Settings(), cache_dir=None,
                       conventions: InputConventions | None = None) -> Path:
    """Path of ``model``'s int8 file under ``cache_dir``, made (fp32 export from the same cache,
    quantisation, gate) only when not there yet; keyed by the weights' fingerprint, the export and
    int8 settings, the input conventions, the onnxruntime version, and what the gate's OpenVINO bf16
    check can measure here (the openvino version and whether this CPU has native bf16)."""
    import onnxruntime
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    conventions = conventions or InputConventions()
    key = cache_key(model, spec, settings, conventions.to_dict(), {'onnxruntime': onnxruntime.__version__},
                    openvino_bf16_key())
    path = cache_dir / f'{model.model_name}-int8-{key}.onnx'
    if not path.is_file():
        fp32 = cached_export(model, spec, cache_dir)
        export_int8(model, path, spec, settings, conventions, {'cache_key': key}, fp32_path=fp32)
    return path


def openvino_bf16_key() -> dict:
    """What decides whether an int8 gate can measure OpenVINO's bf16 float parts here (cache key part)."""
    if not openvino_available():
        return {'openvino': None}
    import openvino
    return {'openvino': openvino.__version__, 'cpu_bf16': cpu_has_bf16()}


def cached_export(model: nn.Module, spec: ExportSpec, cache_dir=None, verify: bool = True) -> Path:
    """Path of ``model`` exported with ``spec`` under ``cache_dir``; exported (and verified) only if
    that file is not there yet. The name holds the weights' fingerprint and every export setting."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    settings = json.dumps({**asdict(spec), 'torch': torch.__version__}, sort_keys=True)
    key = hashlib.sha256((model_fingerprint(model) + settings).encode()).hexdigest()[:20]
    suffix = '.onnx' if spec.format == 'onnx' else '.ts'
    path = cache_dir / f'{model.model_name}-{key}{suffix}'
    if not path.is_file():
        export_verified(model, path, spec, verify=verify, extra_metadata={'cache_key': key})
    return path
