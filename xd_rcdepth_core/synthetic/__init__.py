"""The synthetic world: procedurally generated driving sequences with camera, radar, lidar and exact
depth, deterministic by seed. It is SYNTHETIC data (box-built streets, simulated sensors), the
embedded default for tests, the demo, training smoke runs and CPU benchmarks; it stands in for, and
does not reproduce, nuScenes.

    world.py      World: poses, camera renders, lidar and radar sweeps, annotated objects at any time
    sequence.py   generate_sequence / make_frame: camera keyframes as Frames with every GT map
    storage.py    the disk format (write_frame, read_sequence, SyntheticStore)
    command.py    `xd-rcdepth synth`

Names are imported lazily (PEP 562), so `import xd_rcdepth_core.synthetic.command` for the CLI's
argument parser does not load the renderer.
"""
from importlib import import_module

_EXPORTS = {
    'World': 'world', 'WorldSettings': 'world', 'CAMERA': 'world', 'LIDAR': 'world', 'RADAR': 'world',
    'generate_sequence': 'sequence', 'make_frame': 'sequence', 'GroundTruthSettings': 'sequence',
    'frame_name': 'sequence', 'scene_name': 'sequence', 'scene_seed': 'sequence',
    'SyntheticStore': 'storage', 'read_sequence': 'storage', 'read_frame': 'storage', 'read_meta': 'storage',
    'write_frame': 'storage', 'write_meta': 'storage',
    'CameraRender': 'render', 'LidarSweep': 'lidar', 'LidarSpec': 'lidar',
    'RadarSweep': 'radar_sim', 'RadarSpec': 'radar_sim', 'TARGET': 'radar_sim', 'GHOST': 'radar_sim',
    'CLUTTER': 'radar_sim',
    'Scene': 'scene', 'SceneObject': 'scene', 'ObjectState': 'scene', 'BoxSet': 'scene',
    'LayoutSettings': 'layout', 'make_scene': 'layout',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
