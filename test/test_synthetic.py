"""The synthetic world: determinism, Frame contract, geometric truth of depth, lidar and radar
realism, lossless storage, the `synth` command and the picture helpers. Tiny images (90 x 160)."""
import argparse
import json

import cv2
import numpy as np
import pytest

from xd_rcdepth_core.commands import synth as command
from xd_rcdepth_core.frame import NUSCENES_RADAR_FIELDS, Frame
from xd_rcdepth_core.geometry import invert_transform, is_rigid, project_points, transform_points
from xd_rcdepth_core.synthetic import (
    CAMERA,
    CLUTTER,
    GHOST,
    LIDAR,
    RADAR,
    TARGET,
    DomainRandomisation,
    SyntheticStore,
    World,
    WorldSettings,
    generate_sequence,
    make_frame,
    read_sequence,
    scene_domain,
    settings_from_meta,
    write_frame,
    write_meta,
)
from xd_rcdepth_core.synthetic.sequence import GroundTruthSettings
from xd_rcdepth_core.viz import colorize_depth, frame_panel, overlay_points, save_png

H, W = 90, 160
SEED = 7
COL = {name: i for i, name in enumerate(NUSCENES_RADAR_FIELDS)}


@pytest.fixture(scope='module')
def frames():
    return list(generate_sequence(SEED, 3, H, W))


@pytest.fixture(scope='module')
def world():
    return World(SEED)


def _assert_frames_equal(a: Frame, b: Frame):
    for name in ('image', 'K', 'radar', 'T_camera_radar', 'depth_sparse', 'depth_accumulated', 'depth_interp',
                 'depth_dense', 'lidar', 'T_camera_lidar', 'T_world_camera'):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name
    assert a.radar_fields == b.radar_fields and a.timestamp == b.timestamp and a.name == b.name


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_same_frames(frames):
    again = list(generate_sequence(SEED, 3, H, W))
    for a, b in zip(frames, again):
        _assert_frames_equal(a, b)


def test_different_seed_different_frames(frames):
    other = next(generate_sequence(SEED + 1, 1, H, W))
    assert not np.array_equal(frames[0].image, other.image)
    assert not np.array_equal(frames[0].depth_dense, other.depth_dense)
    assert frames[0].radar.shape != other.radar.shape or not np.array_equal(frames[0].radar, other.radar)


def test_sensor_readings_do_not_depend_on_query_order(world):
    t = world.sensor_time(LIDAR, 5)
    fresh = World(SEED)
    fresh.radar_sweep(world.sensor_time(RADAR, 2))       # a different history of queries
    a, b = world.lidar_sweep(t), fresh.lidar_sweep(t)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(world.radar_sweep(0.3).points, fresh.radar_sweep(0.3).points)


# --- the Frame contract --------------------------------------------------------------------------

def test_frame_fields_present_and_valid(frames, world):
    for i, f in enumerate(frames):
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        np.testing.assert_allclose(f.K, world.settings.camera.intrinsics(H, W))
        assert f.radar_fields == NUSCENES_RADAR_FIELDS and f.radar.dtype == np.float32
        assert f.radar.shape[1] == 18
        for name in ('depth_sparse', 'depth_accumulated', 'depth_interp', 'depth_dense'):
            d = getattr(f, name)
            assert d.shape == (H, W) and d.dtype == np.float32 and np.all(np.isfinite(d)) and d.min() >= 0
            assert np.count_nonzero(d) > 0, name
        assert f.lidar.ndim == 2 and f.lidar.shape[1] == 4 and f.lidar.dtype == np.float32
        assert 20000 < f.lidar.shape[0] <= 32 * 1084
        for T in (f.T_camera_radar, f.T_camera_lidar, f.T_world_camera):
            assert is_rigid(T)
        assert f.name == f'scene-0001_frame-{i:04d}'
        assert f.timestamp == pytest.approx(i / 12.0)
        # the image shows a street: sky above (blue-ish, no depth), ground below
        assert f.depth_dense[0].min() == 0 and np.all(f.depth_dense[-1] > 0)
        assert f.image.std() > 10


def test_gt_maps_are_nested(frames):
    f = frames[1]
    sparse, acc, interp = f.depth_sparse > 0, f.depth_accumulated > 0, f.depth_interp > 0
    assert acc.sum() > sparse.sum()                 # more sweeps, more pixels
    assert interp.sum() > 1.3 * acc.sum()           # densified (at 90 x 160 the accumulation is already dense)
    assert np.all(interp[acc])                      # every accumulated pixel keeps a value
    np.testing.assert_array_equal(f.depth_interp[acc], f.depth_accumulated[acc])


# --- geometry of the dense depth ------------------------------------------------------------------

def test_ground_pixels_match_ray_plane_intersection(world):
    t = world.sensor_time(CAMERA, 4)
    cam = world.render_camera(t, None, H, W)
    K = world.settings.camera.intrinsics(H, W)
    v, u = np.nonzero(cam.surface == 1)
    assert u.size > 1000
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.size)], axis=1)
    R, origin = cam.T_world_camera[:3, :3], cam.T_world_camera[:3, 3]
    dz = rays @ R[2]                                # world z of each ray (camera z component is 1)
    analytic = -origin[2] / dz                      # the ray's z (= depth) where it meets z = 0
    np.testing.assert_allclose(cam.depth[v, u], analytic, rtol=1e-5)


def test_box_pixels_lie_on_their_face(world):
    t = world.sensor_time(CAMERA, 4)
    cam = world.render_camera(t, None, H, W)
    K = world.settings.camera.intrinsics(H, W)
    v, u = np.nonzero(cam.surface >= 2)
    box, face = (cam.surface[v, u] - 2) // 6, (cam.surface[v, u] - 2) % 6
    z = cam.depth[v, u].astype(np.float64)
    pts = transform_points(cam.T_world_camera, np.stack([(u - K[0, 2]) / K[0, 0] * z,
                                                         (v - K[1, 2]) / K[1, 1] * z, z], axis=1))
    b = cam.boxes
    d = pts - b.center[box]
    c, s = np.cos(b.yaw[box]), np.sin(b.yaw[box])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
    on_plane = local[np.arange(axis.size), axis] - sign * b.half[box, axis]
    assert np.median(np.abs(on_plane)) < 1e-3
    # pixel centres just outside a face's silhouette are allowed (clamped depth), not many of them
    assert np.mean(np.abs(on_plane) < 0.01 * np.maximum(z, 1)) > 0.97


# --- lidar ----------------------------------------------------------------------------------------

def test_sparse_lidar_gt_agrees_with_dense_depth(frames):
    for f in frames:
        m = f.depth_sparse > 0
        err = np.abs(f.depth_sparse[m] - f.depth_dense[m])
        # at 90 x 160 a pixel is large, so more points straddle depth edges than at full size
        assert np.mean(err < 0.1 + 0.02 * f.depth_sparse[m]) > 0.8
        assert f.depth_sparse[m].min() > 1.0       # project_points' 1 m minimum


def test_lidar_sweep_physics(world):
    sweep = world.lidar_sweep(world.sensor_time(LIDAR, 3))
    r = np.linalg.norm(sweep.points[:, :3], axis=1)
    assert r.max() <= world.settings.lidar.max_range + 0.1
    assert set(np.unique(sweep.ring)) == set(range(32))
    assert 0 <= sweep.points[:, 3].min() and sweep.points[:, 3].max() <= 255
    ground = sweep.owner < 0
    world_pts = transform_points(sweep.T_world_lidar, sweep.points[ground, :3])
    assert np.std(world_pts[:, 2]) < 0.05            # ground returns lie on z = 0 within the noise
    paint = sweep.points[ground, 3] > 80
    assert paint.any()                               # lane paint is retro-reflective


def test_accumulated_gt_removes_movers_from_other_sweeps(world):
    moving = world.scene.moving
    t = world.sensor_time(CAMERA, 6)
    cam = world.render_camera(t, None, 180, 320)
    obj = cam.object_index()
    on_mover = (obj >= 0) & moving[np.maximum(obj, 0)]
    counts = {}
    for keep in (True, False):
        f = make_frame(world, t, 180, 320, gt=GroundTruthSettings(keep_reference_movers=keep))
        acc = f.depth_accumulated
        counts[keep] = int(np.sum((acc > 0) & on_mover & (np.abs(acc - cam.depth) < 0.3)))
    assert on_mover.sum() > 50, 'the test scene should show a moving object'
    assert counts[True] > 10                         # the reference sweep's returns on movers kept
    assert counts[False] <= 0.02 * on_mover.sum()    # and none when movers are masked everywhere


# --- radar ----------------------------------------------------------------------------------------

def test_radar_points_look_like_a_radar(frames, world):
    kinds = []
    for i in range(12):
        sweep = world.radar_sweep(world.sensor_time(RADAR, i))
        p = sweep.points
        assert 20 <= p.shape[0] <= 150                            # tens of points
        assert np.all(p[:, COL['z']] == 0)                        # no elevation
        np.testing.assert_array_equal(p[:, COL['id']], np.arange(p.shape[0]))
        assert np.all(p[:, COL['is_quality_valid']] == 1) and np.all(p[:, COL['ambig_state']] == 3)
        assert np.all(p[:, COL['invalid_state']] == 0)
        for name in ('dyn_prop', 'x_rms', 'y_rms', 'pdh0', 'vx_rms', 'vy_rms'):
            col = p[:, COL[name]]
            assert np.all(col == np.round(col)) and col.min() >= 0 and col.max() <= 31, name
        assert np.all(np.abs(np.degrees(np.arctan2(p[:, 1], p[:, 0]))) < 62)
        kinds.append(sweep.kind)
    kinds = np.concatenate(kinds)
    assert np.sum(kinds == GHOST) >= 3 and np.sum(kinds == CLUTTER) >= 10 and np.mean(kinds == TARGET) > 0.6


def test_radar_velocities_follow_ego_motion(world):
    """Static targets: compensated radial speed ~0, raw radial speed = -(ego velocity along the line of sight)."""
    raw, comp, expected = [], [], []
    for i in range(8):
        t = world.sensor_time(RADAR, i)
        sweep = world.radar_sweep(t)
        p = sweep.points
        static = (sweep.kind == TARGET) & ~world.scene.moving[np.maximum(sweep.owner, 0)] & (sweep.owner >= 0)
        az = np.arctan2(p[static, 1], p[static, 0])
        los = np.stack([np.cos(az), np.sin(az)], axis=1)
        raw.append(np.sum(p[static][:, [COL['vx'], COL['vy']]] * los, axis=1))
        comp.append(np.sum(p[static][:, [COL['vx_comp'], COL['vy_comp']]] * los, axis=1))
        v_ego = world.ego_pose(t)[:3, :3].T @ world.scene.ego.velocity(t)   # ego frame ~ radar frame
        expected.append(-(los @ v_ego[:2]))
    raw, comp, expected = map(np.concatenate, (raw, comp, expected))
    assert raw.size > 20
    assert np.median(np.abs(comp)) < 0.3
    assert np.median(np.abs(raw - expected)) < 0.5
    assert np.median(np.abs(raw)) > 2.0                       # the ego moves at 5-15 m/s


def test_radar_on_vehicles_matches_dense_depth():
    good, total = 0, 0
    for seed in (1, 3):
        world = World(seed)
        t = world.sensor_time(CAMERA, 2)
        cam = world.render_camera(t, None, 180, 320)
        sweep = world.radar_sweep(world.sensor_time(RADAR, world.sensor_index(RADAR, t)))
        T = invert_transform(cam.T_world_camera) @ sweep.T_world_radar
        K = world.settings.camera.intrinsics(180, 320)
        proj = project_points(transform_points(T, sweep.points[:, :3]), K, 180, 320)
        cats = np.array(world.scene.categories)
        owner = sweep.owner[proj.index]
        vehicle = (sweep.kind[proj.index] == TARGET) & (owner >= 0) & \
            np.char.startswith(cats[np.maximum(owner, 0)], 'vehicle')
        err = np.abs(cam.depth[proj.v, proj.u] - proj.depth)[vehicle]
        good += int(np.sum(err < 2.5))
        total += int(vehicle.sum())
    assert total >= 15
    assert good / total > 0.65


def test_radar_transform_includes_ego_motion(frames, world):
    f = frames[1]
    static = world.sensor_pose(CAMERA, f.timestamp)
    mount_only = invert_transform(static) @ world.sensor_pose(RADAR, f.timestamp)
    t_radar = world.sensor_time(RADAR, world.sensor_index(RADAR, f.timestamp))
    assert t_radar != f.timestamp
    shift = np.linalg.norm(f.T_camera_radar[:3, 3] - mount_only[:3, 3])
    expected = np.linalg.norm(world.scene.ego.velocity(f.timestamp)) * abs(t_radar - f.timestamp)
    assert shift == pytest.approx(expected, rel=0.05, abs=1e-3)


# --- world API ------------------------------------------------------------------------------------

def test_world_schedules_and_objects(world):
    cams = world.sensor_times(CAMERA, 0.0, 1.0)
    lidars = world.sensor_times(LIDAR, 0.0, 1.0)
    radars = world.sensor_times(RADAR, 0.0, 1.0)
    assert len(cams) == 13 and 19 <= len(lidars) <= 21 and 12 <= len(radars) <= 14
    np.testing.assert_allclose(np.diff(lidars), 0.05)
    assert is_rigid(world.ego_pose(1.3))
    objs = world.objects(1.0)
    cats = {o.category for o in objs}
    assert {'vehicle.car', 'human.pedestrian.adult'} <= cats
    assert any(o.moving for o in objs) and any(not o.moving for o in objs)
    assert all(o.annotated for o in objs)
    everything = world.objects(1.0, annotated_only=False)
    assert {'static.building', 'static.pole'} <= {o.category for o in everything}
    a, b = world.objects(0.0), world.objects(1.0)
    for o0, o1 in zip(a, b):
        np.testing.assert_allclose(o1.center - o0.center, o0.velocity, atol=1e-9)


# --- storage and the command ----------------------------------------------------------------------

def test_storage_round_trip_is_lossless(frames, tmp_path):
    write_meta(tmp_path, dict(scenes=[dict(name='scene-0001', frames=len(frames))], complete=True))
    for i, f in enumerate(frames):
        write_frame(tmp_path, 'scene-0001', i, f)
    back = list(read_sequence(tmp_path))
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        _assert_frames_equal(a, b)
    store = SyntheticStore(tmp_path)
    assert len(store) == 3 and store.scenes == ['scene-0001']
    _assert_frames_equal(store[2], frames[2])
    assert not list(tmp_path.rglob('*.tmp'))


def _run(argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_synth_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / 'data'
    assert _run(['--out', str(out), '--scenes', '2', '--frames', '2', '--size', '48x64', '--seed', '3',
                 '--visualise', '1', '--quiet']) == 0
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['complete'] and meta['format'] == 'xd_rcdepth.synthetic' and meta['size'] == [48, 64]
    assert sorted(p.name for p in (out / 'scene-0002').iterdir()) == \
        ['frame-0000.npz', 'frame-0000.png', 'frame-0001.npz', 'frame-0001.png']
    assert len(list((out / 'panels').glob('*.png'))) == 2
    frames = list(read_sequence(out, 'scene-0002'))
    assert len(frames) == 2 and frames[0].image.shape == (48, 64, 3)
    # the written scene is the generator's scene with seed (3, 1)
    _assert_frames_equal(frames[1], list(generate_sequence((3, 1), 2, 48, 64, scene_name='scene-0002'))[1])
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith('wrote 4 frames')
    # an existing dataset is replaced only with --overwrite
    with pytest.raises(command.UserError, match='--overwrite'):
        _run(['--out', str(out), '--frames', '1', '--size', '48x64', '--quiet'])
    assert _run(['--out', str(out), '--frames', '1', '--size', '48x64', '--quiet', '--overwrite']) == 0
    assert not (out / 'scene-0002').exists() and not (out / 'panels').exists()


@pytest.mark.parametrize('argv, message', [
    (['--size', '48by64'], '--size must be HEIGHTxWIDTH'),
    (['--size', '4x64'], 'out of range'),
    (['--frames', '0'], '--frames must be a positive integer'),
    (['--scenes', '-2'], '--scenes must be a positive integer'),
    (['--seed', '-1'], '--seed'),
])
def test_synth_command_refuses_bad_arguments(tmp_path, argv, message):
    with pytest.raises(command.UserError, match=message):
        _run(['--out', str(tmp_path / 'x'), '--quiet'] + argv)
    assert not (tmp_path / 'x').exists()


def test_synth_command_will_not_delete_foreign_folders(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(command.UserError, match='refusing'):
        _run(['--out', str(tmp_path), '--frames', '1', '--size', '48x64', '--quiet', '--overwrite'])
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


# --- pictures -------------------------------------------------------------------------------------

def test_colorize_depth():
    d = np.array([[0.0, 1.0, 40.0], [80.0, 200.0, np.nan]], np.float32)
    rgb = colorize_depth(d, 80.0)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert np.all(rgb[0, 0] == 0) and np.all(rgb[1, 2] == 0)          # invalid -> black
    assert not np.array_equal(rgb[0, 1], rgb[1, 0])                   # near and far differ
    np.testing.assert_array_equal(rgb[1, 0], rgb[1, 1])               # saturates beyond max_depth
    assert rgb[0, 1, 0] > rgb[0, 1, 2] and rgb[1, 0, 2] > rgb[1, 0, 0]   # near red, far blue
    np.testing.assert_array_equal(colorize_depth(d, 80.0, invalid=(255, 0, 255))[0, 0], [255, 0, 255])


def test_overlay_points_and_panel(frames, tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    out = overlay_points(image, [5, 10], [4, 8], [3.0, 60.0], vmax=80.0, radius=1)
    assert out.shape == image.shape and out.dtype == np.uint8 and not image.any()
    assert out[4, 5].any() and out[3, 4].any() and out[8, 10].any() and not out[15, 20].any()
    big = overlay_points(image, [15], [10], [10.0], radius=4)
    assert big[10, 15].any() and big[10, 18].any()
    panel = frame_panel(frames[0])
    assert panel.shape == (2 * H, 2 * W, 3) and panel.dtype == np.uint8
    path = save_png(tmp_path / 'p' / 'panel.png', panel)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, panel)
    no_gt = Frame(image=frames[0].image, K=frames[0].K)
    assert frame_panel(no_gt).shape == (2 * H, 2 * W, 3)


def test_seed_forms_agree():
    a, b = World(5), World((5, 0))
    assert a.entropy == b.entropy == (5,)
    np.testing.assert_array_equal(a.radar_sweep(0.1).points, b.radar_sweep(0.1).points)
    with pytest.raises(ValueError, match='non-negative'):
        World(-1)


# --- domain randomisation (issue 14) ------------------------------------------------------------------

RANDOM = WorldSettings(randomise=DomainRandomisation())
GT0 = GroundTruthSettings(accumulate=0)


def test_randomisation_is_off_by_default_and_keeps_the_street():
    assert WorldSettings().randomise is None and World(SEED).domain is None
    plain, rand = World(SEED), World(SEED, RANDOM)
    # the same street (layout, ego path, sensor phases): only its look, the camera and the radar differ
    assert plain.scene.ego == rand.scene.ego and plain.phase == rand.phase
    assert len(plain.scene.objects) == len(rand.scene.objects)
    np.testing.assert_array_equal(plain.scene.boxes_at(1.0).center, rand.scene.boxes_at(1.0).center)
    assert plain.scene.appearance != rand.scene.appearance
    assert rand.settings.camera != plain.settings.camera and rand.requested is RANDOM
    np.testing.assert_array_equal(plain.lidar_sweep(0.5).points, rand.lidar_sweep(0.5).points)   # GT untouched
    # with_settings starts from the settings asked for, so it does not randomise twice
    assert rand.with_settings(far=150.0).settings.camera == rand.settings.camera


def test_randomised_scenes_are_deterministic_and_differ():
    draws = [scene_domain((SEED, i), RANDOM).values for i in range(12)]
    assert draws[3] == World((SEED, 3), RANDOM).domain.values == scene_domain((SEED, 3), RANDOM).values
    for key in ('sun_elevation_deg', 'fog_distance_m', 'exposure', 'contrast', 'focal_scale', 'camera_pitch_deg',
                'camera_height_offset_m', 'radar_density', 'radar_clutter_mean', 'texture_frequency'):
        values = [d[key] for d in draws]
        assert len(set(values)) == len(values), key
    scales = [d['focal_scale'] for d in draws]
    assert 0.8 <= min(scales) and max(scales) <= 1.2 and max(scales) - min(scales) > 0.1
    assert any(d['overcast'] for d in draws) and not all(d['overcast'] for d in draws)
    assert any(d['radar_z_noise'] > 0 for d in draws) and any(d['radar_z_noise'] == 0 for d in draws)
    a = make_frame(World((SEED, 1), RANDOM), 0.5, 48, 80, gt=GT0)
    b = make_frame(World((SEED, 1), RANDOM), 0.5, 48, 80, gt=GT0)
    _assert_frames_equal(a, b)
    c = make_frame(World((SEED, 1)), 0.5, 48, 80, gt=GT0)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.K, c.K)


def test_randomised_camera_k_rendering_and_gt_agree():
    """The drawn focal length, principal point, height and pitch are the frame's K and pose: the ground
    plane in the dense depth is where the drawn camera sees it, and the lidar GT lands on the surfaces."""
    for i in (0, 1):
        world = World((SEED, i), RANDOM)
        cam_model = world.settings.camera
        assert cam_model.fx != World(SEED).settings.camera.fx
        K = cam_model.intrinsics(H, W)
        f = make_frame(world, world.sensor_time(CAMERA, 3), H, W, gt=GT0)
        np.testing.assert_allclose(f.K, K)
        cam = world.render_camera(f.timestamp, K, H, W)
        np.testing.assert_array_equal(cam.depth, f.depth_dense)
        assert cam.T_world_camera[2, 3] == pytest.approx(cam_model.translation[2], abs=1e-9)   # flat road, z = height
        v, u = np.nonzero(cam.surface == 1)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.size)], axis=1)
        R, origin = cam.T_world_camera[:3, :3], cam.T_world_camera[:3, 3]
        np.testing.assert_allclose(cam.depth[v, u], -origin[2] / (rays @ R[2]), rtol=1e-5)
        m = f.depth_sparse > 0
        err = np.abs(f.depth_sparse[m] - f.depth_dense[m])
        assert np.mean(err < 0.1 + 0.02 * f.depth_sparse[m]) > 0.8


def test_randomised_radar_density_noise_and_elevation():
    counts, z_zero, z_noisy = [], 0, 0
    for i in range(6):
        world = World((SEED, i), RANDOM)
        spec = world.settings.radar
        assert spec.elevations_deg[-1] == pytest.approx(world.domain.values['radar_elevation_spread_deg'])
        sweep = world.radar_sweep(world.sensor_time(RADAR, 2))
        p = sweep.points
        counts.append(p.shape[0])
        if spec.z_noise == 0:
            assert np.all(p[:, COL['z']] == 0)
            z_zero += 1
        else:
            assert np.std(p[:, COL['z']]) > 0.3 * spec.z_noise
            z_noisy += 1
        np.testing.assert_array_equal(p[:, COL['id']], np.arange(p.shape[0]))
    assert z_zero and z_noisy
    assert max(counts) > 1.5 * min(counts)


def test_randomised_appearance_spans_light_and_weather():
    images = [make_frame(World((SEED, i), RANDOM), 0.5, 48, 80, gt=GT0).image for i in range(6)]
    means = [im.mean() for im in images]
    contrasts = [im.std() for im in images]
    assert max(means) - min(means) > 15 and max(contrasts) > 1.3 * min(contrasts)
    assert all(im.std() > 5 for im in images)          # never a blank image


def test_synth_randomise_records_the_domain_and_changes_the_fingerprint(tmp_path):
    from xd_rcdepth_core.data.cache import settings_fingerprint
    from xd_rcdepth_core.data.synthetic import SyntheticAdapter
    prints = {}
    for flag in ([], ['--randomise']):
        out = tmp_path / ('rand' if flag else 'plain')
        assert _run(['--out', str(out), '--scenes', '2', '--frames', '1', '--size', '32x48', '--seed', '3',
                     '--accumulate', '0', '--quiet'] + flag) == 0
        meta = json.loads((out / 'meta.json').read_text())
        prints[bool(flag)] = settings_fingerprint(SyntheticAdapter(out).content_settings())
        assert settings_from_meta(meta).randomise == (DomainRandomisation() if flag else None)
        if flag:
            assert meta['generator']['randomise'] == DomainRandomisation().to_dict()
            assert meta['scenes'][1]['domain'] == scene_domain((3, 1), RANDOM).values
            frame = next(read_sequence(out, 'scene-0002'))
            expected = next(generate_sequence((3, 1), 1, 32, 48, accumulate=0, scene_name='scene-0002',
                                              settings=RANDOM))
            _assert_frames_equal(frame, expected)
        else:
            assert 'randomise' not in meta['generator'] and 'domain' not in meta['scenes'][0]
    assert prints[True] != prints[False]
    with pytest.raises(command.UserError, match='native format'):
        _run(['--out', str(tmp_path / 'nus'), '--format', 'nuscenes', '--randomise', '--quiet'])
