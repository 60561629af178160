"""Every parameter of the xd_rcdepth node: declared with a descriptor, read and validated in one place.

`PARAMETERS` is the single table: name, default, description, range/choices, read_only, live. The node
declares them all in its constructor and `read_settings` validates them at configure; an invalid value
fails configure with a message naming the parameter. `config/xd_rcdepth.param.yaml` lists every one
(a test checks the YAML against this table).

Three kinds of parameter:
- read_only: fixed for the life of the process (model, device, topics' types): rclpy refuses a set.
- live: a set while configured is validated with the others and applied at once (colour scale,
  saliency, pairing tolerance, extrinsics ...).
- the rest are read at configure: a set is accepted while unconfigured and refused, with the reason,
  while configured (deactivate + cleanup, set, configure again).

Floating-point parameters accept integers (`-p max_depth:=80`, YAML `[0, 0, 0]`): they are declared with
dynamic typing, coerced to float right after declaration and on every set (a pre-set callback), and
their type is checked here, so a wrong type is one clear line instead of rclpy's traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xd_rcdepth_core.backends.settings import check_settings
from xd_rcdepth_core.devices import host_device, resolve_device
from xd_rcdepth_core.geometry import transform_from_pose

MIN_INPUT_SIZE = 32   # the networks downsample by 32: smaller inputs have no deepest feature map


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False
    range: tuple | None = None          # (low, high) inclusive, numbers
    choices: tuple | None = None        # allowed strings
    live: bool = False                  # applied at once when set while configured

    @property
    def is_float(self) -> bool:
        d = self.default
        return isinstance(d, float) or (isinstance(d, list) and all(isinstance(v, float) for v in d))


PARAMETERS = (
    Param('checkpoint', '', 'Path of an xd_rcdepth checkpoint (.pt) to run. Required.', read_only=True),
    Param('device', 'auto', 'Compute device: auto (CUDA if available, else CPU), cpu, cuda or cuda:N.',
          read_only=True),
    Param('precision', 'fp32', 'fp32; fp16 (CUDA only: autocast, or an fp16 ONNX export); bf16 (torch backend: '
          'bf16 autocast, for CPUs with AVX512-BF16/AMX); int8 (CPU, backend auto, onnxruntime or openvino: '
          'the checkpoint statically quantised on synthetic frames and accepted only if its MAE at 80 m is '
          'at most 3 % worse than fp32; made once, a minute or more, and cached; in OpenVINO its float layers '
          'run bf16 where the CPU has native bf16 and the gate passed that; the setting for depth at a 12 Hz '
          "camera's rate on a small CPU).", read_only=True,
          choices=('fp32', 'fp16', 'bf16', 'int8')),
    Param('backend', 'auto', 'Inference backend: auto (the fastest installed for device and precision: on a CPU '
          'onnxruntime, for int8 openvino when installed; on CUDA TensorRT, else torch with CUDA graphs; the '
          'choice and its reason are logged at activate), torch, onnxruntime (the checkpoint exported to ONNX on '
          'the fly, cached in $XD_RCDEPTH_CACHE or ~/.cache/xd_rcdepth; CPU, or CUDA with onnxruntime-gpu), '
          "tensorrt (ONNX Runtime's TensorRT execution provider, CUDA) or openvino (optional package, CPU). "
          'Saliency always runs on the torch model, only while ~/debug/saliency_overlay has subscribers.',
          read_only=True, choices=('auto', 'torch', 'onnxruntime', 'tensorrt', 'openvino')),
    Param('torch_threads', 0, 'CPU threads for intra-op work (torch, and the ONNX Runtime session); '
          '0 keeps the libraries\' defaults.',
          read_only=True, range=(0, 256)),
    Param('max_depth', 100.0, 'Depths above this (metres) are published as NaN. Live.', range=(1.0, 1000.0),
          live=True),
    Param('input_height', 0, 'Network input height. 0 (default): the image is resized so its focal length '
          "becomes the checkpoint's training camera's (depth is learned at that scale; checkpoints that do not "
          f'record it run at the image size). Else at least {MIN_INPUT_SIZE}: that size, K scaled, depth resized back, '
          'and one warm-up inference at it before the node subscribes (the first frame does not wait for it).',
          read_only=True, range=(0, 4096)),
    Param('input_width', 0, f'Network input width (0: as input_height; else at least {MIN_INPUT_SIZE}).',
          read_only=True, range=(0, 8192)),
    Param('compressed_image', False, 'Subscribe to sensor_msgs/CompressedImage on ~/input/image/compressed '
          'instead of sensor_msgs/Image on ~/input/image.', read_only=True),
    Param('sync_tolerance', 0.08, 'Largest |image stamp - radar stamp| (s) for a radar sweep to pair with an '
          'image. Radar (~13 Hz) and camera (~12 Hz) are not triggered together. Live.', range=(0.001, 1.0),
          live=True),
    Param('wait_for_next_radar', True, 'true: pair each image with the radar sweep nearest in time; when the '
          'next sweep could still be nearer the image waits for it (at most about half a radar period; '
          'released at once when the last sweep is certainly the nearest). Same pairing as replay-eval. '
          'false: pair at once with the newest sweep within sync_tolerance (lowest latency, radar up to one '
          'period older; on a CPU slower than the camera also a few % more depth, as the worker never '
          'idles for a sweep). Live.', live=True),
    Param('radar_sweeps', 1, 'Radar sweeps accumulated per image (ego motion is not compensated in the '
          'node: keep small). Live.', range=(1, 10), live=True),
    Param('radar_fields.rcs', 'rcs', 'PointCloud2 field holding radar cross-section (missing = zeros). Live.',
          live=True),
    Param('radar_fields.vx', 'vx', 'PointCloud2 field of the x velocity fed to the model (nuScenes raw vx; '
          'the reference models were trained on raw, not ego-compensated, velocities). Live.', live=True),
    Param('radar_fields.vy', 'vy', 'PointCloud2 field of the y velocity fed to the model. Live.', live=True),
    Param('use_tf', False, 'Look up radar->camera in TF (needs tf2_ros) instead of the static transform.',
          read_only=True),
    Param('tf_timeout', 0.05, 'TF lookup timeout (s). Read at configure.', range=(0.0, 5.0)),
    Param('T_camera_radar.translation', [0.0, 0.0, 0.0],
          'Static radar->camera translation (m), in the camera optical frame. Live.', live=True),
    Param('T_camera_radar.rotation', [1.0, 0.0, 0.0, 0.0],
          'Static radar->camera rotation quaternion (w, x, y, z). Live.', live=True),
    Param('publish_static_tf', True, 'With use_tf false: publish T_camera_radar on /tf_static (parent = the '
          'images\' frame, child = the radar\'s frame, as the messages name them) so RViz can place the radar '
          'cloud. Turn off when something else (robot_state_publisher) already publishes those frames. Needs '
          'tf2_msgs (a full ROS install); skipped with a logged note otherwise. Read at configure.'),
    Param('depth_colored.min', 0.0, 'Depth (m) at the low end of the colour scale. Live.', range=(0.0, 1000.0),
          live=True),
    Param('depth_colored.max', 80.0, 'Depth (m) at the high end of the colour scale. Live.',
          range=(0.1, 1000.0), live=True),
    Param('saliency.layer', 'decoder', 'Grad-CAM layer of ~/debug/saliency_overlay. Live.',
          choices=('image', 'radar', 'decoder'), live=True),
    Param('saliency.max_rate', 2.0, 'Most saliency overlays per second (Grad-CAM costs a backward pass; '
          '0 = never). Live.', range=(0.0, 100.0), live=True),
    Param('points.enabled', False, 'Publish ~/output/points, the dense depth as a PointCloud2 (RViz 3-D). '
          'Read at configure.'),
    Param('points.stride', 4, 'Pixel stride of ~/output/points. Live.', range=(1, 64), live=True),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages. Read at configure.',
          range=(0.1, 60.0)),
    Param('autostart', True, 'Configure and activate at start-up (no lifecycle manager needed).', read_only=True),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
BY_NAME = {p.name: p for p in PARAMETERS}


def declare_all(node) -> None:
    """Declare every parameter on a (lifecycle) node with a descriptor; ParameterError names a bad override."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
    from rclpy.parameter import Parameter
    for p in PARAMETERS:
        choices = f' One of: {", ".join(p.choices)}.' if p.choices else ''
        desc = ParameterDescriptor(description=p.description + choices,
                                   read_only=p.read_only, dynamic_typing=p.is_float)
        if p.range is not None and not isinstance(p.default, bool):
            if isinstance(p.default, int):
                desc.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
            elif isinstance(p.default, float):
                desc.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                                to_value=float(p.range[1]), step=0.0)]
        try:
            node.declare_parameter(p.name, p.default, desc)
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            # The value given (an override: -p, --params-file); rclpy keeps them in this dict.
            given = getattr(node, '_parameter_overrides', {}).get(p.name)
            got = f', got {given.value!r}' if given is not None else ''
            what = (f'must be {_type_name(p.default)}' if isinstance(exc, InvalidParameterTypeException)
                    else _range_text(p))
            raise ParameterError(f"parameter '{p.name}' {what}{got}") from None
        if p.is_float:
            value = node.get_parameter(p.name).value
            problem = float_problem(p, value)
            if problem:
                raise ParameterError(problem)
            if _needs_coercion(value):
                # Stored as a double from now on, and the descriptor's float range applies.
                result = node.set_parameters([_as_float_parameter(Parameter, p.name, value)])[0]
                if not result.successful:
                    raise ParameterError(f"parameter '{p.name}' {_range_text(p)}, got {value!r}")


def _type_name(default) -> str:
    if isinstance(default, bool):
        return 'true or false'
    if isinstance(default, int):
        return 'an integer'
    if isinstance(default, str):
        return 'a string'
    return 'a number'


def _range_text(p: Param) -> str:
    return f'must be within [{p.range[0]}, {p.range[1]}]' if p.range else 'invalid value'


def float_problem(p: Param, value) -> str | None:
    """Why `value` is not acceptable for a floating-point parameter (numbers, ints included), else None."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(p.default, list):
        if not (isinstance(value, (list, tuple)) or hasattr(value, 'tolist')) or not all(number(v) for v in value):
            return f"parameter '{p.name}' must be a list of numbers, got {value!r}"
    elif not number(value):
        return f"parameter '{p.name}' must be a number, got {value!r}"
    return None


def _needs_coercion(value) -> bool:
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        return any(not isinstance(v, float) for v in value)
    return not isinstance(value, float)


def _as_float_parameter(Parameter, name: str, value):
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        return Parameter(name, Parameter.Type.DOUBLE_ARRAY, [float(v) for v in value])
    return Parameter(name, Parameter.Type.DOUBLE, float(value))


def coerce_floats(parameters: list) -> list:
    """rclpy pre-set callback: an integer (or integer list) set on a float parameter becomes a float."""
    from rclpy.parameter import Parameter
    out = []
    for param in parameters:
        p = BY_NAME.get(param.name)
        if p is not None and p.is_float and float_problem(p, param.value) is None and _needs_coercion(param.value):
            param = _as_float_parameter(Parameter, param.name, param.value)
        out.append(param)
    return out


@dataclass
class NodeSettings:
    checkpoint: str
    device: str
    precision: str
    backend: str
    torch_threads: int
    max_depth: float
    input_size: tuple | None
    compressed_image: bool
    sync_tolerance: float
    wait_for_next_radar: bool
    radar_sweeps: int
    radar_field_map: dict          # model feature name -> PointCloud2 field name
    use_tf: bool
    tf_timeout: float
    T_camera_radar: np.ndarray
    publish_static_tf: bool
    depth_color_range: tuple
    saliency_layer: str
    saliency_max_rate: float
    points_enabled: bool
    points_stride: int
    diagnostics_period: float
    autostart: bool


def read_settings(get) -> NodeSettings:
    """Validated settings from `get(name) -> value`; ParameterError names the offending parameter."""
    v = {p.name: get(p.name) for p in PARAMETERS}
    for p in PARAMETERS:
        if p.is_float:
            problem = float_problem(p, v[p.name])
            if problem:
                raise ParameterError(problem)
        if p.choices and v[p.name] not in p.choices:
            raise ParameterError(f"parameter '{p.name}' = {v[p.name]!r} is not one of {list(p.choices)}")
        if p.range and not (p.range[0] <= v[p.name] <= p.range[1]):
            raise ParameterError(f"parameter '{p.name}' = {v[p.name]} is outside [{p.range[0]}, {p.range[1]}]")
    if not v['checkpoint']:
        raise ParameterError("parameter 'checkpoint' is empty: set it to an xd_rcdepth checkpoint file "
                             "(--ros-args -p checkpoint:=/path/to/model.pt)")
    dev = v['device']
    if not (dev in ('auto', 'cpu', 'cuda') or (dev.startswith('cuda:') and dev[5:].isdigit())):
        raise ParameterError(f"parameter 'device' = {dev!r}: use auto, cpu, cuda or cuda:N")
    h, w = v['input_height'], v['input_width']
    if (h == 0) != (w == 0):
        raise ParameterError("parameters 'input_height' and 'input_width' must both be 0 (the checkpoint's scale) "
                             'or both set')
    for name in ('input_height', 'input_width'):
        if 0 < v[name] < MIN_INPUT_SIZE:
            raise ParameterError(f"parameter '{name}' = {v[name]} is below {MIN_INPUT_SIZE}: the network "
                                 f'downsamples by 32 (0 = the image size)')
    if v['precision'] == 'bf16' and v['backend'] not in ('auto', 'torch'):
        raise ParameterError(f"parameter 'precision' = 'bf16' needs backend torch or auto ({v['backend']} runs "
                             'fp32, fp16 or int8)')
    if v['precision'] == 'int8' and v['backend'] == 'torch':
        raise ParameterError("parameter 'precision' = 'int8' needs backend auto, onnxruntime or openvino "
                             '(int8 runs a quantised ONNX model)')
    fields = {'radar_fields.rcs': v['radar_fields.rcs'], 'radar_fields.vx': v['radar_fields.vx'],
              'radar_fields.vy': v['radar_fields.vy']}
    seen = {'x': 'x', 'y': 'y', 'z': 'z'}   # field -> who uses it; the position is always x, y, z
    for name, field in fields.items():
        if not isinstance(field, str) or not field.strip():
            raise ParameterError(f"parameter '{name}' must name a PointCloud2 field, got {field!r}")
        if field in seen:
            user = f"parameter '{seen[field]}'" if '.' in seen[field] else 'the radar position'
            raise ParameterError(f"parameter '{name}' = {field!r} is already used by {user}: each model input "
                                 'needs its own PointCloud2 field')
        seen[field] = name
    if v['depth_colored.min'] >= v['depth_colored.max']:
        raise ParameterError("parameter 'depth_colored.min' must be below 'depth_colored.max'")
    t = [float(x) for x in v['T_camera_radar.translation']]
    q = [float(x) for x in v['T_camera_radar.rotation']]
    if len(t) != 3 or not np.all(np.isfinite(t)):
        raise ParameterError(f"parameter 'T_camera_radar.translation' must be 3 finite numbers, got {t}")
    if len(q) != 4 or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6:
        raise ParameterError(f"parameter 'T_camera_radar.rotation' must be a non-zero quaternion (w, x, y, z), "
                             f'got {q}')
    return NodeSettings(
        checkpoint=v['checkpoint'], device=dev, precision=v['precision'], backend=v['backend'],
        torch_threads=v['torch_threads'],
        max_depth=float(v['max_depth']), input_size=(h, w) if h else None,
        compressed_image=bool(v['compressed_image']), sync_tolerance=float(v['sync_tolerance']),
        wait_for_next_radar=bool(v['wait_for_next_radar']), radar_sweeps=int(v['radar_sweeps']),
        radar_field_map={'rcs': v['radar_fields.rcs'], 'vx': v['radar_fields.vx'], 'vy': v['radar_fields.vy']},
        use_tf=bool(v['use_tf']), tf_timeout=float(v['tf_timeout']),
        T_camera_radar=transform_from_pose(t, q), publish_static_tf=bool(v['publish_static_tf']),
        depth_color_range=(float(v['depth_colored.min']), float(v['depth_colored.max'])),
        saliency_layer=v['saliency.layer'], saliency_max_rate=float(v['saliency.max_rate']),
        points_enabled=bool(v['points.enabled']), points_stride=int(v['points.stride']),
        diagnostics_period=float(v['diagnostics_period']), autostart=bool(v['autostart']))


def check_compute(settings: NodeSettings):
    """The device the settings resolve to ('cpu', else a torch.device); ParameterError when it does not
    exist or cannot run them.

    Done at configure (not only when activate loads the model), with the core's own checks, so a
    `cuda:3` on a one-GPU machine or fp16 on the CPU fails configure with the parameter's name. The CPU
    is recognised without torch (devices.host_device): only a GPU lookup imports it.
    """
    try:
        device = host_device(settings.device) or resolve_device(settings.device)
    except ValueError as exc:
        raise ParameterError(f"parameter 'device': {exc}") from None
    try:
        check_settings(device, settings.precision, settings.backend)
    except ValueError as exc:
        raise ParameterError(f"parameter 'precision' = {settings.precision!r} with backend {settings.backend!r} "
                             f'on {device}: {exc}') from None
    return device
