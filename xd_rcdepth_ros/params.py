"""Every parameter of the xd_rcdepth node: declared with a descriptor, read and validated in one place.

`PARAMETERS` is the single table: name, default, description, range/choices, read_only. The node
declares them all in its constructor and `read_settings` validates them at configure; an invalid value
fails configure with a message naming the parameter. `config/xd_rcdepth.param.yaml` lists every one
(a test checks the YAML against this table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False
    range: tuple | None = None          # (low, high) inclusive, numbers
    choices: tuple | None = None        # allowed strings


PARAMETERS = (
    Param('checkpoint', '', 'Path of an xd_rcdepth checkpoint (.pt) to run. Required.', read_only=True),
    Param('device', 'auto', 'Compute device: auto (CUDA if available, else CPU), cpu, cuda or cuda:N.',
          read_only=True),
    Param('precision', 'fp32', 'fp32; fp16 (CUDA only: autocast, or an fp16 ONNX export); bf16 (torch backend: '
          'bf16 autocast, for CPUs with AVX512-BF16/AMX).', read_only=True, choices=('fp32', 'fp16', 'bf16')),
    Param('backend', 'torch', 'Inference backend: torch, or onnxruntime (the checkpoint exported to ONNX on '
          'the fly, cached in $XD_RCDEPTH_CACHE or ~/.cache/xd_rcdepth; CPU, or CUDA with onnxruntime-gpu). '
          'Saliency always runs on the torch model, only while ~/debug/saliency_overlay has subscribers.',
          read_only=True, choices=('torch', 'onnxruntime')),
    Param('torch_threads', 0, 'CPU threads for intra-op work (torch, and the ONNX Runtime session); '
          '0 keeps the libraries\' defaults.',
          read_only=True, range=(0, 256)),
    Param('max_depth', 100.0, 'Depths above this (metres) are published as NaN.', range=(1.0, 1000.0)),
    Param('input_height', 0, 'Network input height (0 = image height). The image is resized, K scaled.',
          read_only=True, range=(0, 4096)),
    Param('input_width', 0, 'Network input width (0 = image width).', read_only=True, range=(0, 8192)),
    Param('compressed_image', False, 'Subscribe to sensor_msgs/CompressedImage on ~/input/image/compressed '
          'instead of sensor_msgs/Image on ~/input/image.', read_only=True),
    Param('sync_tolerance', 0.08, 'Largest |image stamp - radar stamp| (s) for a radar sweep to pair with an '
          'image. Radar (~13 Hz) and camera (~12 Hz) are not triggered together.', range=(0.0, 1.0)),
    Param('radar_sweeps', 1, 'Radar sweeps accumulated per image (ego motion is not compensated in the '
          'node: keep small).', range=(1, 10)),
    Param('radar_fields.rcs', 'rcs', 'PointCloud2 field holding radar cross-section (missing = zeros).'),
    Param('radar_fields.vx', 'vx', 'PointCloud2 field of the x velocity fed to the model (nuScenes raw vx; '
          'the reference models were trained on raw, not ego-compensated, velocities).'),
    Param('radar_fields.vy', 'vy', 'PointCloud2 field of the y velocity fed to the model.'),
    Param('use_tf', False, 'Look up radar->camera in TF (needs tf2_ros) instead of the static transform.',
          read_only=True),
    Param('tf_timeout', 0.05, 'TF lookup timeout (s).', range=(0.0, 5.0)),
    Param('T_camera_radar.translation', [0.0, 0.0, 0.0],
          'Static radar->camera translation (m), in the camera optical frame.'),
    Param('T_camera_radar.rotation', [1.0, 0.0, 0.0, 0.0],
          'Static radar->camera rotation quaternion (w, x, y, z).'),
    Param('depth_colored.min', 0.0, 'Depth (m) at the low end of the colour scale.', range=(0.0, 1000.0)),
    Param('depth_colored.max', 80.0, 'Depth (m) at the high end of the colour scale.', range=(0.1, 1000.0)),
    Param('saliency.layer', 'decoder', 'Grad-CAM layer of ~/debug/saliency_overlay.',
          choices=('image', 'radar', 'decoder')),
    Param('saliency.max_rate', 2.0, 'Most saliency overlays per second (Grad-CAM costs a backward pass).',
          range=(0.0, 100.0)),
    Param('points.enabled', False, 'Publish ~/output/points, the dense depth as a PointCloud2 (RViz 3-D).'),
    Param('points.stride', 4, 'Pixel stride of ~/output/points.', range=(1, 64)),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.', range=(0.1, 60.0)),
    Param('autostart', True, 'Configure and activate at start-up (no lifecycle manager needed).', read_only=True),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)


def declare_all(node) -> None:
    """Declare every parameter on a (lifecycle) node with a descriptor."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    for p in PARAMETERS:
        desc = ParameterDescriptor(description=p.description + (f' One of: {", ".join(p.choices)}.' if p.choices else ''),
                                   read_only=p.read_only)
        if p.range is not None and not isinstance(p.default, bool):
            if isinstance(p.default, int):
                desc.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
            elif isinstance(p.default, float):
                desc.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                                to_value=float(p.range[1]), step=0.0)]
        node.declare_parameter(p.name, p.default, desc)


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
    radar_sweeps: int
    radar_field_map: dict          # model feature name -> PointCloud2 field name
    use_tf: bool
    tf_timeout: float
    T_camera_radar: np.ndarray
    depth_color_range: tuple
    saliency_layer: str
    saliency_max_rate: float
    points_enabled: bool
    points_stride: int
    diagnostics_period: float
    autostart: bool


def read_settings(get) -> NodeSettings:
    """Validated settings from `get(name) -> value`; ValueError names the offending parameter."""
    from xd_rcdepth_core.geometry import transform_from_pose
    v = {p.name: get(p.name) for p in PARAMETERS}
    for p in PARAMETERS:
        if p.choices and v[p.name] not in p.choices:
            raise ValueError(f"parameter '{p.name}' = {v[p.name]!r} is not one of {list(p.choices)}")
        if p.range and not (p.range[0] <= v[p.name] <= p.range[1]):
            raise ValueError(f"parameter '{p.name}' = {v[p.name]} is outside [{p.range[0]}, {p.range[1]}]")
    if not v['checkpoint']:
        raise ValueError("parameter 'checkpoint' is empty: set it to an xd_rcdepth checkpoint file "
                         "(--ros-args -p checkpoint:=/path/to/model.pt)")
    dev = v['device']
    if not (dev in ('auto', 'cpu', 'cuda') or (dev.startswith('cuda:') and dev[5:].isdigit())):
        raise ValueError(f"parameter 'device' = {dev!r}: use auto, cpu, cuda or cuda:N")
    h, w = v['input_height'], v['input_width']
    if (h == 0) != (w == 0):
        raise ValueError("parameters 'input_height' and 'input_width' must both be 0 (image size) or both set")
    if v['depth_colored.min'] >= v['depth_colored.max']:
        raise ValueError("parameter 'depth_colored.min' must be below 'depth_colored.max'")
    t = list(v['T_camera_radar.translation'])
    q = list(v['T_camera_radar.rotation'])
    if len(t) != 3 or not np.all(np.isfinite(t)):
        raise ValueError(f"parameter 'T_camera_radar.translation' must be 3 finite numbers, got {t}")
    if len(q) != 4 or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-6:
        raise ValueError(f"parameter 'T_camera_radar.rotation' must be a non-zero quaternion (w, x, y, z), got {q}")
    return NodeSettings(
        checkpoint=v['checkpoint'], device=dev, precision=v['precision'], backend=v['backend'],
        torch_threads=v['torch_threads'],
        max_depth=float(v['max_depth']), input_size=(h, w) if h else None,
        compressed_image=bool(v['compressed_image']), sync_tolerance=float(v['sync_tolerance']),
        radar_sweeps=int(v['radar_sweeps']),
        radar_field_map={'rcs': v['radar_fields.rcs'], 'vx': v['radar_fields.vx'], 'vy': v['radar_fields.vy']},
        use_tf=bool(v['use_tf']), tf_timeout=float(v['tf_timeout']),
        T_camera_radar=transform_from_pose(t, q),
        depth_color_range=(float(v['depth_colored.min']), float(v['depth_colored.max'])),
        saliency_layer=v['saliency.layer'], saliency_max_rate=float(v['saliency.max_rate']),
        points_enabled=bool(v['points.enabled']), points_stride=int(v['points.stride']),
        diagnostics_period=float(v['diagnostics_period']), autostart=bool(v['autostart']))
