"""nuScenes adapter: real-sample GT against the devkit, a hand-made toy scene, the file checks, bad inputs.

The toy scene (``write_toy``) is written with the project's nuScenes-format writer and read back by the
official devkit: a wall 65 m ahead, a ground grid, and one annotated car crossing in front of the ego
between the ego and the wall; the ego drives at 8 m/s with a slow yaw. Sensors read the world's points
at their own times (no occlusion model; enough for geometry).
"""
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA  # noqa: E402

from xd_rcdepth_core.config import (
    NUSCENES_CAM_FRONT,
    NUSCENES_LIDAR_TOP_ROTATION,
    NUSCENES_LIDAR_TOP_TRANSLATION,
    NUSCENES_RADAR_FRONT_ROTATION,
    NUSCENES_RADAR_FRONT_TRANSLATION,
)
from xd_rcdepth_core.data.errors import CorruptFileError, DatasetError, DataWarning, SampleError
from xd_rcdepth_core.data.images import read_image_file
from xd_rcdepth_core.data.nuscenes.adapter import (
    NuScenesAdapter,
    NuScenesConfig,
    compare_sample_counts,
    open_nuscenes,
    scene_splits,
)
from xd_rcdepth_core.data.nuscenes.files import (
    ALL_RADAR_STATES,
    NUSCENES_TABLES,
    RADAR_PCD_DTYPE,
    check_lidar_bin,
    check_radar_pcd,
    read_radar_pcd,
    write_lidar_bin,
    write_radar_pcd,
)
from xd_rcdepth_core.data.nuscenes.movers import MoverBoxes, is_mover
from xd_rcdepth_core.data.nuscenes.tables import NuScenesTableWriter
from xd_rcdepth_core.data.nuscenes.writer import write_nuscenes
from xd_rcdepth_core.data.prepare import format_summary, prepare
from xd_rcdepth_core.frame import NUSCENES_RADAR_FIELDS
from xd_rcdepth_core.geometry import (
    invert_transform,
    make_transform,
    project_points,
    sparse_depth_map,
    transform_from_pose,
    transform_points,
)
from xd_rcdepth_core.synthetic import CAMERA, GroundTruthSettings, LidarSpec, World, WorldSettings, make_frame

REAL_SAMPLE = 'ca9a282c9e77460f8360f564131a8af5'

# --------------------------------------------------------------------------------------------------
# the toy scene
H, W = 90, 160
K = NUSCENES_CAM_FRONT.intrinsics(H, W)
T_EGO_CAM = transform_from_pose(NUSCENES_CAM_FRONT.translation, NUSCENES_CAM_FRONT.rotation)
T_EGO_LIDAR = transform_from_pose(NUSCENES_LIDAR_TOP_TRANSLATION, NUSCENES_LIDAR_TOP_ROTATION)
T_EGO_RADAR = transform_from_pose(NUSCENES_RADAR_FRONT_TRANSLATION, NUSCENES_RADAR_FRONT_ROTATION)
T_EGO_RADAR_LEFT = transform_from_pose((2.4, 0.8, 0.5), (np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)))  # yaw 90 deg
ORIGIN = np.array([400.0, 1100.0, 0.0])      # global coordinates as large as nuScenes'
CAR_LWH = (4.4, 1.8, 1.5)
TARGET_VELOCITY = np.array([3.0, -2.0, 0.0])  # world-frame velocity written into every radar point


def T_world_ego(t):
    yaw = 0.02 * t
    R = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    return make_transform(R, ORIGIN + [8.0 * t, 0.0, 0.0])


def car_center(t):
    return ORIGIN + [28.0, 9.0 - 6.0 * t, 0.75]


def static_points(t):
    """A wall 65 m ahead and the ground, sampled at positions that shift from sweep to sweep (like a
    moving lidar's scan pattern), so accumulating sweeps densifies the map."""
    phase = (t * 7.3) % 1.0
    ys, zs = np.meshgrid(np.linspace(-25, 25, 50) + phase, np.linspace(0.2, 8, 12) + 0.5 * phase)
    wall = np.stack([np.full(ys.size, 65.0), ys.ravel(), zs.ravel()], 1)
    xs, ys = np.meshgrid(np.linspace(6, 60, 25) + 2 * phase, np.linspace(-12, 12, 15) + phase)
    ground = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    return np.concatenate([wall, ground]) + ORIGIN


def car_points(t):
    """Points on the car's four sides and roof at time t (world), just inside the annotated box."""
    L, Wd, Hh = CAR_LWH
    u, v = np.meshgrid(np.linspace(-0.5, 0.5, 10), np.linspace(-0.5, 0.5, 6))
    u, v = u.ravel(), v.ravel()
    faces = [np.stack([np.full(u.size, s * L / 2), u * Wd, v * Hh], 1) for s in (-1, 1)] + \
            [np.stack([u * L, np.full(u.size, s * Wd / 2), v * Hh], 1) for s in (-1, 1)] + \
            [np.stack([u * L, v * Wd, np.full(u.size, Hh / 2)], 1)]
    return np.concatenate(faces) * 0.98 + car_center(t)


def lidar_file_points(t):
    world = np.concatenate([static_points(t), car_points(t)])
    pts = transform_points(invert_transform(T_world_ego(t) @ T_EGO_LIDAR), world)
    return np.concatenate([pts, np.full((len(pts), 1), 7.0), np.zeros((len(pts), 1))], 1)


RADAR_WORLD_STATIC = ORIGIN + np.array([[65.0, -10, 1], [65.0, 0, 1], [65.0, 10, 1]])


def radar_file_points(t, T_ego_radar, rng):
    """18-field points in the radar frame: 3 static wall points and the car centre."""
    world = np.concatenate([RADAR_WORLD_STATIC, car_center(t)[None]])
    T_world_radar = T_world_ego(t) @ T_ego_radar
    pts = np.zeros((len(world), 18))
    pts[:, :3] = transform_points(invert_transform(T_world_radar), world)
    pts[:, 3] = [1, 1, 1, 0]                       # dyn_prop
    pts[:, 4] = np.arange(len(world))
    pts[:, 5] = rng.uniform(-5, 20, len(world))    # rcs
    v = (T_world_radar[:3, :3].T @ TARGET_VELOCITY)[:2]
    pts[:, 6:8] = v
    pts[:, 8:10] = v
    pts[:, 11] = [3, 3, 1, 3]                      # one ambiguous: the devkit default filters would drop it
    pts[:, 14] = [0, 0, 0, 5]                      # one invalid_state 5: dropped by default filters too
    return pts, world


@dataclass
class Toy:
    root: Path
    times: list
    tokens: list
    radar_world: dict


def write_toy(root, n_samples=4, annotate=True, version='v1.0-mini', split='train'):
    """Keyframes every 0.5 s (lidar time), camera 12 ms later, radar 31 ms earlier; lidar sweeps at 20 Hz
    from 0.5 s before the first to 0.5 s after the last keyframe; two radar sweeps before each keyframe."""
    rng = np.random.default_rng(0)
    w = NuScenesTableWriter(root, version=version, log_name='toy-log')
    w.sensor('CAM_FRONT', 'camera', T_EGO_CAM, K=K, width=W, height=H)
    w.sensor('LIDAR_TOP', 'lidar', T_EGO_LIDAR)
    w.sensor('RADAR_FRONT', 'radar', T_EGO_RADAR)
    w.sensor('RADAR_FRONT_LEFT', 'radar', T_EGO_RADAR_LEFT)
    scene = w.scene('toy-0001', split=split)
    times = [1.0 + 0.5 * i for i in range(n_samples)]
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = np.linspace(0, 250, W)[None].astype(np.uint8)
    image[..., 2] = np.linspace(0, 250, H)[:, None].astype(np.uint8)
    toy = Toy(Path(root), times, [], {})
    us = lambda t: int(round(t * 1e6))  # noqa: E731
    for t in times:
        s = scene.sample(us(t))
        toy.tokens.append(s)
        scene.sample_data('CAM_FRONT', us(t + 0.012), T_world_ego(t + 0.012), image, key_sample=s)
        scene.sample_data('LIDAR_TOP', us(t), T_world_ego(t), lidar_file_points(t), key_sample=s)
        for ch, mount, dt in (('RADAR_FRONT', T_EGO_RADAR, 0.031), ('RADAR_FRONT_LEFT', T_EGO_RADAR_LEFT, 0.02)):
            pts, world = radar_file_points(t - dt, mount, rng)
            scene.sample_data(ch, us(t - dt), T_world_ego(t - dt), pts, key_sample=s)
            toy.radar_world[(s, ch)] = world
            for j in (1, 2):
                tr = t - dt - j / 13
                scene.sample_data(ch, us(tr), T_world_ego(tr), radar_file_points(tr, mount, rng)[0])
        if annotate:
            scene.annotation(s, 'car', 'vehicle.car', car_center(t), (CAR_LWH[1], CAR_LWH[0], CAR_LWH[2]),
                             (1.0, 0.0, 0.0, 0.0), ['vehicle.moving'])
    for t in np.arange(times[0] - 0.5, times[-1] + 0.5, 0.05):
        if min(abs(t - k) for k in times) > 1e-6:
            scene.sample_data('LIDAR_TOP', us(t), T_world_ego(t), lidar_file_points(t))
    w.close()
    return toy


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp('toy'))


def toy_adapter(root, **config):
    config.setdefault('lidar_sweeps', 10)
    return NuScenesAdapter(root, 'v1.0-mini', NuScenesConfig(**config))


# --------------------------------------------------------------------------------------------------
# the real sample
def assemble_real_sample(root: Path) -> Path:
    """docs/reference.md Part B section 7: shared data -> a devkit dataroot (symlinks to the sensor files)."""
    for f in (SHARED_DATA / 'mmdetection3d-demo-nuscenes').iterdir():
        if '__' in f.name:
            channel = f.name.split('__')[1]
            (root / 'samples' / channel).mkdir(parents=True, exist_ok=True)
            (root / 'samples' / channel / f.name).symlink_to(f)
    tables = root / 'v1.0-mini'
    tables.mkdir(parents=True)
    for f in (SHARED_DATA / 'ros2_bevfusion_demo-nuscenes-tables' / 'v1.0-test').glob('*.json'):
        records = json.loads(f.read_text())
        for r in records:
            if f.stem in ('sample', 'sample_data'):
                r.setdefault('prev', '')
                r.setdefault('next', '')
            if f.stem == 'scene':
                r['first_sample_token'] = r['last_sample_token'] = REAL_SAMPLE
        (tables / f.name).write_text(json.dumps(records))
    log = json.loads((tables / 'scene.json').read_text())[0]['log_token']
    (tables / 'log.json').write_text(json.dumps([{
        'token': log, 'logfile': 'n015-2018-07-24-11-22-45+0800', 'vehicle': 'n015', 'date_captured': '2018-07-24',
        'location': 'singapore-onenorth'}]))
    (root / 'maps').mkdir()
    (root / 'maps' / 'placeholder.png').write_bytes(b'')
    (tables / 'map.json').write_text(json.dumps([{'token': 'map0', 'log_tokens': [log], 'category': 'semantic_prior',
                                                  'filename': 'maps/placeholder.png'}]))
    for name in ('instance', 'sample_annotation'):
        (tables / f'{name}.json').write_text('[]')
    return root


@pytest.mark.skipif(not (SHARED_DATA / 'mmdetection3d-demo-nuscenes').is_dir(),
                    reason='the real nuScenes sample (../shared/data) is absent: set XD_RCDEPTH_SHARED_DATA')
def test_real_sample_single_sweep_gt_matches_devkit(tmp_path):
    from nuscenes.utils.data_classes import RadarPointCloud
    root = assemble_real_sample(tmp_path)
    adapter = NuScenesAdapter(root, 'v1.0-mini', NuScenesConfig(skip_last_keyframe=False))
    assert adapter.splits() == {'train': [REAL_SAMPLE]}      # scene-0061 is in the official mini_train list
    with pytest.warns(DataWarning, match='no RADAR_FRONT record'):
        frame = adapter.frame(REAL_SAMPLE)
    assert frame.radar.shape == (0, 18) and frame.radar_fields == NUSCENES_RADAR_FIELDS
    assert RadarPointCloud.invalid_states == [0]              # the devkit's global filter state is untouched

    sample = adapter.nusc.get('sample', REAL_SAMPLE)
    points, depth, _ = adapter.nusc.explorer.map_pointcloud_to_image(sample['data']['LIDAR_TOP'],
                                                                     sample['data']['CAM_FRONT'])
    assert points.shape[1] == 3053
    expected = np.zeros((900, 1600), np.float32)
    order = np.argsort(-depth)                                # nearest written last: nearest wins
    expected[np.rint(points[1, order]).astype(int), np.rint(points[0, order]).astype(int)] = depth[order]
    np.testing.assert_array_equal(frame.depth_sparse > 0, expected > 0)
    np.testing.assert_allclose(frame.depth_sparse, expected, rtol=0, atol=1e-5)
    assert np.count_nonzero(frame.depth_sparse) == 3052       # 3053 points, one pixel collision
    # The references let the last point in the devkit's order win; at this sample's one collision that
    # is also the nearer point, so their map is ours (the data.nuscenes.lidar docstring quotes this).
    u, v = np.rint(points[0]).astype(int), np.rint(points[1]).astype(int)
    last_wins = np.zeros((900, 1600), np.float32)
    last_wins[v, u] = depth
    np.testing.assert_allclose(frame.depth_sparse, last_wins, rtol=0, atol=1e-5)
    pixel = v * 1600 + u
    both = np.flatnonzero(pixel == np.flatnonzero(np.bincount(pixel) > 1)[0])
    np.testing.assert_allclose(depth[both], [29.2356, 10.1112], atol=1e-3)     # far first, near last
    assert 4.5 < frame.depth_sparse[frame.depth_sparse > 0].min() < frame.depth_sparse.max() < 98.2

    # Frame.lidar + T_camera_lidar reproduce the map (float64 chain: a few pixels round differently).
    assert frame.lidar.shape == (34688, 4)
    ours = sparse_depth_map(project_points(transform_points(frame.T_camera_lidar, frame.lidar[:, :3]), frame.K,
                                           900, 1600), 900, 1600)
    assert np.count_nonzero((ours > 0) != (expected > 0)) < 0.02 * 3052
    # One keyframe and no sweeps: the accumulated map is the single sweep; the interpolation fills its hull.
    np.testing.assert_array_equal(frame.depth_accumulated, frame.depth_sparse)
    assert 0.5 < np.mean(frame.depth_interp > 0) < 1.0
    assert adapter.image_file(REAL_SAMPLE).name.endswith('__CAM_FRONT__1532402927612460.jpg')


# --------------------------------------------------------------------------------------------------
# file formats
def _random_radar(n, rng):
    pts = np.zeros((n, 18))
    for j, name in enumerate(NUSCENES_RADAR_FIELDS):
        if RADAR_PCD_DTYPE[name].kind == 'f':
            pts[:, j] = rng.normal(0, 20, n).astype(np.float32)
        else:
            pts[:, j] = rng.integers(0, 18 if name == 'invalid_state' else 8, n)
    return pts


def test_radar_pcd_round_trip_through_devkit(tmp_path):
    from nuscenes.utils.data_classes import RadarPointCloud
    pts = _random_radar(37, np.random.default_rng(1))
    write_radar_pcd(tmp_path / 'a.pcd', pts)
    assert check_radar_pcd(tmp_path / 'a.pcd') == 37
    np.testing.assert_array_equal(read_radar_pcd(tmp_path / 'a.pcd'), pts.astype(np.float32))
    # The devkit's defaults would drop most of these random states: we keep all, without touching them.
    assert RadarPointCloud.from_file(str(tmp_path / 'a.pcd')).points.shape[1] < 37
    assert RadarPointCloud.ambig_states == [3]
    write_radar_pcd(tmp_path / 'empty.pcd', np.zeros((0, 18)))
    assert read_radar_pcd(tmp_path / 'empty.pcd').shape == (0, 18)
    header = (tmp_path / 'a.pcd').read_bytes().split(b'DATA binary\n')[0]
    assert len((tmp_path / 'a.pcd').read_bytes()) == len(header) + 12 + 37 * 43 + 1


def test_radar_pcd_first_record_with_nan_is_moved_back(tmp_path):
    """The devkit reads a NaN in the first record as "empty cloud": the writer puts a clean record first."""
    from nuscenes.utils.data_classes import RadarPointCloud
    pts = _random_radar(5, np.random.default_rng(4))
    pts[0, 6] = pts[1, 9] = np.nan                     # vx of the first point, vy_comp of the second
    write_radar_pcd(tmp_path / 'nan.pcd', pts)
    with warnings.catch_warnings():
        warnings.simplefilter('error')                 # the file we wrote must not trigger the warning
        assert check_radar_pcd(tmp_path / 'nan.pcd') == 5
    read = RadarPointCloud.from_file(str(tmp_path / 'nan.pcd'), **ALL_RADAR_STATES).points.T
    expected = pts[[2, 0, 1, 3, 4]].astype(np.float32)  # the first clean record first, the rest in order
    np.testing.assert_array_equal(read.astype(np.float32), expected)
    # A file in the exact format but with the NaN record first (another writer's): 0 points, and a warning.
    header = (tmp_path / 'nan.pcd').read_bytes().split(b'DATA binary\n')[0] + b'DATA binary\n'
    rec = np.zeros(5, RADAR_PCD_DTYPE)
    for j, name in enumerate(NUSCENES_RADAR_FIELDS):
        rec[name] = pts[:, j]
    (tmp_path / 'theirs.pcd').write_bytes(header + rec.tobytes() + b'\n')
    assert RadarPointCloud.from_file(str(tmp_path / 'theirs.pcd')).points.shape == (18, 0)
    with pytest.warns(DataWarning, match=r'theirs.pcd: the first of 5 radar records has a NaN.*all 5 points'):
        assert read_radar_pcd(tmp_path / 'theirs.pcd').shape == (0, 18)
    with pytest.raises(ValueError, match='every one of the 2 radar points has a NaN'):
        write_radar_pcd(tmp_path / 'bad.pcd', pts[[0, 1]])
    bad = pts[2:3].copy()
    bad[0, 3] = np.nan                                 # dyn_prop is an int8 field
    with pytest.raises(ValueError, match='integer radar field'):
        write_radar_pcd(tmp_path / 'bad.pcd', bad)


def test_radar_pcd_bad_files_are_named(tmp_path):
    from nuscenes.utils.data_classes import RadarPointCloud
    pts = _random_radar(20, np.random.default_rng(2))
    write_radar_pcd(tmp_path / 'good.pcd', pts)
    data = (tmp_path / 'good.pcd').read_bytes()
    (tmp_path / 'truncated.pcd').write_bytes(data[:-100])
    with pytest.raises(CorruptFileError, match=r'truncated.pcd: truncated'):
        check_radar_pcd(tmp_path / 'truncated.pcd')
    (tmp_path / 'no_trailing.pcd').write_bytes(data[:-1])
    with pytest.raises(CorruptFileError, match='no byte after the last record'):
        check_radar_pcd(tmp_path / 'no_trailing.pcd')
    # The common converter bug: all 18 fields as float32 under the packed header.
    header = data.split(b'DATA binary\n')[0] + b'DATA binary\n'
    (tmp_path / 'f32.pcd').write_bytes(header + pts.astype('<f4').tobytes() + b'\n')
    RadarPointCloud.from_file(str(tmp_path / 'f32.pcd'))     # the devkit does not complain ...
    with pytest.raises(CorruptFileError, match=r'f32.pcd: .*20 x 72 bytes.*float32'):
        check_radar_pcd(tmp_path / 'f32.pcd')                # ... we do
    with pytest.raises(SampleError, match='missing file .*nothere.pcd'):
        read_radar_pcd(tmp_path / 'nothere.pcd')
    (tmp_path / 'lfs.pcd').write_bytes(b'version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 1\n')
    with pytest.raises(CorruptFileError, match='Git LFS pointer'):
        check_radar_pcd(tmp_path / 'lfs.pcd')


def test_lidar_bin_checks(tmp_path):
    write_lidar_bin(tmp_path / 'a.pcd.bin', np.ones((10, 5)))
    assert check_lidar_bin(tmp_path / 'a.pcd.bin') == 10
    (tmp_path / 'b.pcd.bin').write_bytes(np.ones((11, 4), np.float32).tobytes())
    with pytest.raises(CorruptFileError, match=r'b.pcd.bin: 176 bytes .*float32 x 4'):
        check_lidar_bin(tmp_path / 'b.pcd.bin')
    with pytest.raises(SampleError, match='missing file'):
        check_lidar_bin(tmp_path / 'c.pcd.bin')


def test_dataroot_errors_name_the_problem(tmp_path):
    write_toy(tmp_path, n_samples=2)
    with pytest.raises(DatasetError, match=r"version folder .*v1.0-trainval not found.*\['v1.0-mini'\]"):
        open_nuscenes(tmp_path, 'v1.0-trainval')
    (tmp_path / 'v1.0-mini' / 'instance.json').unlink()
    (tmp_path / 'v1.0-mini' / 'log.json').unlink()
    with pytest.raises(DatasetError, match=r'tables missing .*instance.json, log.json'):
        open_nuscenes(tmp_path, 'v1.0-mini')
    (tmp_path / 'v1.0-mini' / 'log.json').write_text('[]')
    (tmp_path / 'v1.0-mini' / 'instance.json').write_text('[]')
    with pytest.raises(DatasetError, match='devkit cannot load'):          # annotations name unknown instances
        open_nuscenes(tmp_path, 'v1.0-mini')
    with pytest.raises(DatasetError, match='does not exist'):
        open_nuscenes(tmp_path / 'nothere', 'v1.0-mini')
    assert len(NUSCENES_TABLES) == 13


# --------------------------------------------------------------------------------------------------
# the toy scene through the adapter
def test_toy_splits_and_last_keyframe_skipped(toy):
    adapter = toy_adapter(toy.root)
    assert adapter.splits() == {'train': toy.tokens[:-1]}
    assert toy_adapter(toy.root, skip_last_keyframe=False).splits() == {'train': toy.tokens}
    split_file = toy.root / 'v1.0-mini' / 'splits.json'
    saved = split_file.read_text()
    try:
        split_file.unlink()                  # no custom split and not an official scene name
        assert scene_splits(adapter.nusc) == {'unlisted': ['toy-0001']}
    finally:
        split_file.write_text(saved)


def test_toy_radar_ego_motion_compensated_and_unfiltered(toy):
    from nuscenes.utils.data_classes import RadarPointCloud
    adapter = toy_adapter(toy.root, accumulate=False)
    for s in toy.tokens[:2]:
        frame = adapter.frame(s)
        assert frame.radar.shape == (4, 18)                  # invalid / ambiguous points kept
        cam_sd = adapter.nusc.get('sample_data', adapter.nusc.get('sample', s)['data']['CAM_FRONT'])
        T_camera_world = invert_transform(T_world_ego(cam_sd['timestamp'] * 1e-6) @ T_EGO_CAM)
        expected = transform_points(T_camera_world, toy.radar_world[(s, 'RADAR_FRONT')])
        np.testing.assert_allclose(frame.radar_in_camera(), expected, atol=1e-4)
        # Velocities are the file's, in the radar's own axes (references: raw, not rotated).
        radar_sd = adapter.nusc.get('sample_data', adapter.nusc.get('sample', s)['data']['RADAR_FRONT'])
        R = (T_world_ego(radar_sd['timestamp'] * 1e-6) @ T_EGO_RADAR)[:3, :3]
        np.testing.assert_allclose(frame.radar[:, 6:8], np.tile((R.T @ TARGET_VELOCITY)[:2], (4, 1)), atol=1e-5)
    assert RadarPointCloud.invalid_states == [0] and list(RadarPointCloud.dynprop_states) == list(range(7))


def test_toy_multi_sweep_and_multi_radar(toy):
    s = toy.tokens[1]
    sweeps = toy_adapter(toy.root, accumulate=False, radar_sweeps=3).frame(s)
    assert sweeps.radar.shape == (12, 19) and sweeps.radar_fields[-1] == 'dt'
    np.testing.assert_allclose(sorted(set(np.round(sweeps.radar[:, -1], 4))), [0, 0.0769, 0.1538])
    static = sweeps.radar_in_camera()[sweeps.radar[:, 4] < 3]  # ids 0-2: the static wall points
    np.testing.assert_allclose(static.reshape(3, 3, 3), np.broadcast_to(static[:3], (3, 3, 3)), atol=1e-4)

    adapter = toy_adapter(toy.root, accumulate=False, radars=('RADAR_FRONT', 'RADAR_FRONT_LEFT'))
    both = adapter.frame(s)
    assert both.radar.shape == (8, 18)
    cam_sd = adapter.nusc.get('sample_data', adapter.nusc.get('sample', s)['data']['CAM_FRONT'])
    T_camera_world = invert_transform(T_world_ego(cam_sd['timestamp'] * 1e-6) @ T_EGO_CAM)
    for i, ch in enumerate(('RADAR_FRONT', 'RADAR_FRONT_LEFT')):
        expected = transform_points(T_camera_world, toy.radar_world[(s, ch)])
        np.testing.assert_allclose(both.radar_in_camera()[4 * i:4 * i + 4], expected, atol=1e-4)
    # The side radar (mounted at 90 deg) has its velocities rotated into the front radar's axes.
    np.testing.assert_allclose(both.radar[4:, 6:8], both.radar[:4, 6:8], atol=1e-3)
    with pytest.warns(DataWarning, match='no RADAR_BACK_LEFT record'):
        toy_adapter(toy.root, accumulate=False, radars=('RADAR_FRONT', 'RADAR_BACK_LEFT')).frame(s)


def _ghost_pixels(adapter, s, frame):
    """Pixels and depths where the car's points of the other sweeps would land if treated as static."""
    nusc = adapter.nusc
    lidar_sd = nusc.get('sample_data', nusc.get('sample', s)['data']['LIDAR_TOP'])
    t_key = lidar_sd['timestamp'] * 1e-6
    T_camera_world = invert_transform(frame.T_world_camera)
    out = []
    for k in range(-10, 11):
        if k == 0:
            continue
        t = t_key + 0.05 * k
        ghost = transform_points(T_camera_world @ T_world_ego(t), transform_points(
            invert_transform(T_world_ego(t)), car_points(t)))
        p = project_points(ghost, frame.K, H, W)
        out.append((p.v, p.u, p.depth))
    return [np.concatenate(x) for x in zip(*out)]


def test_toy_accumulated_gt_removes_movers(toy, tmp_path):
    s = toy.tokens[1]
    adapter = toy_adapter(toy.root)
    frame = adapter.frame(s)
    stats = adapter.last_accumulation
    assert stats.sweeps_used == 21 and stats.removed_in_boxes > 0
    sparse, acc = frame.depth_sparse, frame.depth_accumulated
    assert np.all(acc[sparse > 0] > 0) and np.all(acc[sparse > 0] <= sparse[sparse > 0])
    assert np.count_nonzero(acc) > 1.3 * np.count_nonzero(sparse)
    v, u, d = _ghost_pixels(adapter, s, frame)
    off_car = sparse[v, u] == 0            # where the keyframe itself has no point
    for mask_behind in (True, False):      # removal inside the boxes alone leaves no ghost
        acc = toy_adapter(toy.root, mask_behind_movers=mask_behind).frame(s).depth_accumulated
        assert np.count_nonzero((np.abs(acc[v, u] - d) < 0.005) & off_car) == 0
    # Without annotations the same ghosts are there (so the check above can fail).
    bare = write_toy(tmp_path / 'bare', annotate=False)
    frame_bare = toy_adapter(bare.root).frame(s)
    assert np.count_nonzero((np.abs(frame_bare.depth_accumulated[v, u] - d) < 0.005) & off_car) > 100
    assert frame.depth_interp.shape == (H, W) and np.mean(frame.depth_interp > 0) > 0.5


def test_toy_accumulated_gt_hides_background_behind_keyframe_movers(toy):
    s = toy.tokens[1]
    on, off = (toy_adapter(toy.root, mask_behind_movers=m) for m in (True, False))
    f_on, f_off = on.frame(s), off.frame(s)
    assert on.last_accumulation.removed_hidden > 0 and off.last_accumulation.removed_hidden == 0
    # The car's image rectangle at the keyframe: there, only keyframe points may be nearer than the wall.
    t_key = on.nusc.get('sample', s)['timestamp'] * 1e-6
    car_cam = transform_points(invert_transform(f_on.T_world_camera), car_points(t_key))
    p = project_points(car_cam, K, H, W)
    rows, cols = slice(p.v.min() + 1, p.v.max()), slice(p.u.min() + 1, p.u.max())
    inside_on, inside_off = f_on.depth_accumulated[rows, cols], f_off.depth_accumulated[rows, cols]
    key = f_on.depth_sparse[rows, cols]
    behind = lambda m: np.count_nonzero((m > 40) & (key == 0))   # noqa: E731  wall seen through the car
    assert behind(inside_off) > 0 and behind(inside_on) == 0


def test_toy_missing_sweep_warns_and_keyframe_file_errors(tmp_path):
    toy = write_toy(tmp_path, n_samples=3)
    adapter = toy_adapter(toy.root)
    s = toy.tokens[1]
    nusc = adapter.nusc
    lidar_sd = nusc.get('sample_data', nusc.get('sample', s)['data']['LIDAR_TOP'])
    victim = toy.root / nusc.get('sample_data', lidar_sd['prev'])['filename']
    victim.unlink()
    with pytest.warns(DataWarning, match=f'missing file .*{victim.name}'):
        frame = adapter.frame(s)
    assert adapter.last_accumulation.sweeps_missing == 1 and frame.depth_accumulated is not None
    camera = toy.root / nusc.get('sample_data', nusc.get('sample', s)['data']['CAM_FRONT'])['filename']
    camera.unlink()
    with pytest.raises(SampleError, match=f'missing file .*{camera.name}'):
        adapter.frame(s)
    radar = toy.root / nusc.get('sample_data', nusc.get('sample', toy.tokens[0])['data']['RADAR_FRONT'])['filename']
    radar.write_bytes(radar.read_bytes()[:400])
    with pytest.raises(CorruptFileError, match=f'{radar.name}: truncated'):
        adapter.frame(toy.tokens[0])


@pytest.mark.parametrize('category, attributes, rule, expected', [
    ('vehicle.car', ['vehicle.parked'], 'category', True),
    ('vehicle.car', ['vehicle.parked'], 'moving', False),
    ('vehicle.car', ['vehicle.stopped'], 'moving', True),
    ('vehicle.bicycle', ['cycle.without_rider'], 'moving', False),
    ('vehicle.bicycle', ['cycle.with_rider'], 'moving', True),
    ('human.pedestrian.adult', ['pedestrian.standing'], 'category', True),
    ('human.pedestrian.adult', ['pedestrian.standing'], 'moving', False),
    ('human.pedestrian.adult', ['pedestrian.moving'], 'moving', True),
    ('animal', [], 'moving', True),
    ('movable_object.barrier', [], 'category', False),
    ('movable_object.pushable_pullable', [], 'moving', False),
    ('static_object.bicycle_rack', [], 'category', False),
])
def test_mover_rule(category, attributes, rule, expected):
    assert is_mover(category, attributes, rule) is expected


def test_sample_counts_compared_with_the_references():
    same = compare_sample_counts('v1.0-trainval', {'train': 27430, 'val': 5869, 'unlisted': 3})
    assert same == "v1.0-trainval sample counts vs the references' lists: train 27,430 (same), val 5,869 (same)"
    short = compare_sample_counts('v1.0-trainval', {'train': 27000, 'val': 5869})
    assert 'train 27,000 (-430: references 27,430)' in short and 'incomplete download' in short
    assert compare_sample_counts('v1.0-test', {'test': 5858}).endswith('test 5,858 (same)')
    assert compare_sample_counts('v1.0-trainval', {'train': 27430}).endswith('train 27,430 (same)')   # --splits train
    assert compare_sample_counts('v1.0-mini', {'train': 323, 'val': 81}) is None
    assert compare_sample_counts('v1.0-test', {'train': 1}) is None


def test_sample_count_line_only_for_official_full_splits(tmp_path):
    toy = write_toy(tmp_path / 'nus', n_samples=2, version='v1.0-test', split='test')
    lines = []
    summary = prepare('nuscenes', toy.root, 'v1.0-test', tmp_path / 'cache', progress=False,
                      options={'accumulate': False}, log=lines.append)
    assert summary['reference_counts'] is None            # the toy's own splits.json: not the official lists
    (toy.root / 'v1.0-test' / 'splits.json').unlink()     # now the official v1.0-test list (its scenes: none)
    adapter = NuScenesAdapter(toy.root, 'v1.0-test', NuScenesConfig(accumulate=False))
    assert adapter.reference_count_check({'test': 5858}).endswith('test 5,858 (same)')
    assert NuScenesAdapter(toy.root, 'v1.0-test', NuScenesConfig(skip_last_keyframe=False),
                           nusc=adapter.nusc).reference_count_check({'test': 6008}) is None
    assert 'test 5,858 (same)' in format_summary(dict(summary, reference_counts=compare_sample_counts(
        'v1.0-test', {'test': 5858})))


def test_config_rejects_unknown_radar():
    with pytest.raises(ValueError, match='RADAR_TOP'):
        NuScenesConfig(radars=('RADAR_TOP',))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        NuScenesConfig(radars=('RADAR_FRONT', 'RADAR_BACK_RIGHT'))


# --------------------------------------------------------------------------------------------------
# synthetic world -> nuScenes files -> devkit -> adapter -> Frame
def _mismatch(a, b, tol=1e-3):
    """Fraction of the pixels valid in either map where the two maps disagree."""
    either = (a > 0) | (b > 0)
    return np.count_nonzero(either & (np.abs(a - b) > tol)) / max(np.count_nonzero(either), 1)


@pytest.fixture(scope='module')
def synthetic_set(tmp_path_factory):
    settings = WorldSettings(lidar=LidarSpec(azimuth_steps=542))     # half the nuScenes rays: a faster test
    return write_nuscenes(tmp_path_factory.mktemp('synthetic_nus'), seed=3, n_scenes=2, samples_per_scene=4,
                          height=H, width=W, accumulate=4, val_scenes=1, settings=settings)


def test_synthetic_nuscenes_round_trip(synthetic_set):
    report = synthetic_set
    # The simulator removes movers by its exact per-point object ids; the adapter's 'moving' rule with
    # the attributes the writer gives (vehicle.moving / parked, pedestrian.moving / standing) masks the
    # same objects from their boxes; the simulator has no "hidden behind a mover" step.
    adapter = NuScenesAdapter(report.root, 'v1.0-mini', NuScenesConfig(lidar_sweeps=4, mover_rule='moving',
                                                                        mask_behind_movers=False))
    assert {k: len(v) for k, v in adapter.splits().items()} == {'train': 3, 'val': 3}
    name = 'scene-0001'
    world = World(report.seeds[name], report.settings)
    for token, t in report.scenes[name][1:3]:       # keyframes whose +-4 sweeps are all annotated
        ours = adapter.frame(token)
        truth = make_frame(world, t, H, W, 'x', GroundTruthSettings(accumulate=4))
        assert ours.image.shape == truth.image.shape
        assert np.abs(ours.image.astype(int) - truth.image).mean() < 5      # JPEG quality 95: lossy
        np.testing.assert_array_equal(ours.K, truth.K)
        assert ours.radar_fields == truth.radar_fields
        np.testing.assert_array_equal(ours.radar, truth.radar)              # the 43-byte records are exact
        np.testing.assert_array_equal(ours.lidar, truth.lidar)
        for T in ('T_camera_radar', 'T_camera_lidar', 'T_world_camera'):
            np.testing.assert_allclose(getattr(ours, T), getattr(truth, T), atol=1e-9)
        assert ours.timestamp == pytest.approx(truth.timestamp, abs=1e-6)   # microsecond timestamps
        # single-sweep GT: the devkit's float32 chain may round a rare pixel the other way
        assert _mismatch(ours.depth_sparse, truth.depth_sparse) < 0.002
        both = (ours.depth_sparse > 0) & (truth.depth_sparse > 0)
        assert np.abs(ours.depth_sparse - truth.depth_sparse)[both].max() < 1e-3
        assert np.count_nonzero(ours.depth_accumulated) > 2 * np.count_nonzero(ours.depth_sparse)
        assert _mismatch(ours.depth_accumulated, truth.depth_accumulated) < 0.01
        assert _mismatch(ours.depth_interp, truth.depth_interp) < 0.02
        assert adapter.last_accumulation.sweeps_used == 9 and adapter.last_accumulation.removed_in_boxes > 0


def test_synthetic_nuscenes_camera_sweeps(synthetic_set):
    """The camera frames between keyframes are non-keyframe CAM_FRONT sample_data in sweeps/, on one
    prev/next chain with the keyframes, and are the world's images at their times."""
    report = synthetic_set
    adapter = NuScenesAdapter(report.root, 'v1.0-mini', NuScenesConfig(accumulate=False))
    nusc = adapter.nusc
    name = 'scene-0001'
    keys = [nusc.get('sample', tok)['data']['CAM_FRONT'] for tok, _ in report.scenes[name]]
    chain, token = [], keys[0]
    while token != keys[-1]:
        sd = nusc.get('sample_data', token)
        assert sd['next'] and nusc.get('sample_data', sd['next'])['prev'] == token
        chain.append(sd)
        token = sd['next']
    chain.append(nusc.get('sample_data', keys[-1]))
    assert [sd['token'] for sd in chain if sd['is_key_frame']] == keys
    assert len(chain) == 3 * 6 + 1                                  # 5 sweeps between each pair of keyframes
    assert all(a['timestamp'] < b['timestamp'] for a, b in zip(chain, chain[1:]))
    sweeps = [sd for sd in chain if not sd['is_key_frame']]
    assert all(sd['filename'].startswith('sweeps/CAM_FRONT/') and sd['channel'] == 'CAM_FRONT' for sd in sweeps)
    world = World(report.seeds[name], report.settings)
    sd = sweeps[7]
    path, _, K_devkit = nusc.get_sample_data(sd['token'])
    image = read_image_file(path)
    t = sd['timestamp'] * 1e-6
    assert world.sensor_time(CAMERA, world.sensor_index(CAMERA, t)) == pytest.approx(t, abs=1e-6)
    truth = world.render_camera(t, K_devkit, H, W).image
    assert image.shape == truth.shape and np.abs(image.astype(int) - truth).mean() < 5     # JPEG quality 95
    # Each sweep belongs to the next keyframe's sample (the devkit's get_boxes assumes so).
    for sd in sweeps:
        later = [tok for tok, _ in report.scenes[name] if nusc.get('sample', tok)['timestamp'] >= sd['timestamp']]
        assert sd['sample_token'] == later[0]


def test_mover_boxes_match_devkit_get_boxes(synthetic_set):
    """MoverBoxes.at is the devkit's get_boxes interpolation, vectorised: same boxes, same points inside."""
    from nuscenes.utils.geometry_utils import points_in_box
    adapter = NuScenesAdapter(synthetic_set.root, 'v1.0-mini', NuScenesConfig())
    nusc, movers = adapter.nusc, MoverBoxes(adapter.nusc, 'category')
    sample = nusc.get('sample', synthetic_set.scenes['scene-0001'][2][0])
    sd = nusc.get('sample_data', nusc.get('sample_data', sample['data']['LIDAR_TOP'])['prev'])   # between keyframes
    assert not sd['is_key_frame']
    ours = movers.at(sd)
    theirs = [b for b in nusc.get_boxes(sd['token']) if is_mover(b.name)]
    keyframe = np.array([nusc.get('sample_annotation', b.token)['translation'] for b in theirs])
    assert len(ours) == len(theirs) > 0
    assert np.linalg.norm(ours.center - keyframe, axis=1).max() > 0.1      # some boxes really are interpolated
    np.testing.assert_allclose(ours.center, [b.center for b in theirs], atol=1e-9)
    np.testing.assert_allclose(ours.rotation, [b.rotation_matrix for b in theirs], atol=1e-9)
    np.testing.assert_allclose(2 * ours.half, [b.wlh[[1, 0, 2]] for b in theirs], atol=1e-12)
    rng = np.random.default_rng(0)
    points = np.concatenate([b.center + rng.normal(0, 1.5, (200, 3)) for b in theirs])
    expected = np.zeros(len(points), bool)
    for b in theirs:
        expected |= points_in_box(b, points.T, wlh_factor=1.1)
    np.testing.assert_array_equal(ours.contains(points, 1.1), expected)
    assert expected.sum() > 100
