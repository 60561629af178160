"""The synthetic world: procedurally generated driving sequences with camera, radar, lidar and exact
depth, deterministic by seed. It is SYNTHETIC data (box-built streets, simulated sensors), the
embedded default for tests, the demo, training smoke runs and CPU benchmarks; it stands in for, and
does not reproduce, nuScenes.

    world.py      World: poses, camera renders, lidar and radar sweeps, annotated objects at any time
    sequence.py   generate_sequence / make_frame: camera keyframes as Frames with every GT map
    storage.py    the disk format (write_frame, read_sequence, SyntheticStore)
    scene.py, layout.py, objects.py, trajectory.py   what the world holds and where
    render.py, shading.py, textures.py, materials.py, raster.py, raycast.py   the camera
    lidar.py, radar_sim.py   the range sensors
    randomise.py  per-scene domain randomisation (light, weather, textures, camera, radar), off by default
"""
from .layout import LayoutSettings, make_scene
from .lidar import LidarSpec, LidarSweep
from .radar_sim import CLUTTER, GHOST, TARGET, RadarSpec, RadarSweep
from .randomise import DomainRandomisation, SceneDomain, draw_domain
from .render import CameraRender
from .scene import BoxSet, ObjectState, Scene, SceneObject
from .sequence import GroundTruthSettings, frame_name, generate_sequence, make_frame, scene_name, scene_seed
from .storage import SyntheticStore, read_frame, read_meta, read_sequence, write_frame, write_meta
from .world import CAMERA, LIDAR, RADAR, World, WorldSettings, scene_domain, settings_from_meta

__all__ = ['World', 'WorldSettings', 'CAMERA', 'LIDAR', 'RADAR', 'generate_sequence', 'make_frame',
           'GroundTruthSettings', 'frame_name', 'scene_name', 'scene_seed', 'SyntheticStore', 'read_sequence',
           'read_frame', 'read_meta', 'write_frame', 'write_meta', 'CameraRender', 'LidarSweep', 'LidarSpec',
           'RadarSweep', 'RadarSpec', 'TARGET', 'GHOST', 'CLUTTER', 'Scene', 'SceneObject', 'ObjectState', 'BoxSet',
           'LayoutSettings', 'make_scene', 'DomainRandomisation', 'SceneDomain', 'draw_domain', 'scene_domain',
           'settings_from_meta']
