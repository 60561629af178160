"""Dataset -> rosbag2 (to-bag), reading bags back for evaluation, and bad bags / bad input.

Real pieces throughout: the synthetic world written to disk by `xd-rcdepth synth`, a nuScenes-format
set written by data.nuscenes.writer and read by the devkit, rosbags writing and reading mcap and
sqlite3 bags, the `mcap` + `mcap_ros2` readers as an independent check of the bytes.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
pytest.importorskip('rosbags')

from xd_rcdepth_core.commands import synth as command  # noqa: E402
from xd_rcdepth_core.data.nuscenes.adapter import NuScenesAdapter, NuScenesConfig
from xd_rcdepth_core.data.nuscenes.writer import write_nuscenes
from xd_rcdepth_core.errors import UserError  # noqa: E402
from xd_rcdepth_core.synthetic import World, read_sequence  # noqa: E402
from xd_rcdepth_ros import convert
from xd_rcdepth_ros.bagfile import schema
from xd_rcdepth_ros.bagfile.reader import BagError, deserialize, reading  # noqa: E402
from xd_rcdepth_ros.bagfile.sidecar import read_sidecar  # noqa: E402
from xd_rcdepth_ros.bagfile.writer import BagWriter  # noqa: E402
from xd_rcdepth_ros.replay_eval.bag_frames import BagFrames, plan_frames  # noqa: E402
from xd_rcdepth_ros.replay_eval.bag_topics import resolve_layout  # noqa: E402
from xd_rcdepth_ros.to_frame import parse_field_map  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
H, W = 90, 160
FRAMES = 4


def run_command(module: str, argv: list) -> tuple:
    """(exit code, error text) of an xd-rcdepth subcommand module, with cli.main's error handling."""
    mod = importlib.import_module(module)
    parser = argparse.ArgumentParser()
    mod.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    try:
        return int(mod.run(args) or 0), ''
    except (UserError, FileNotFoundError, ValueError) as exc:
        return 2, str(exc)


def make_synthetic_bag(folder: Path) -> tuple:
    """(dataset root, bag) of a tiny synthetic scene: `xd-rcdepth synth`, then `to-bag`."""
    root, bag = folder / 'data', folder / 'scene-0001'
    command.run(argparse.Namespace(out=str(root), scenes=1, frames=FRAMES, size=f'{H}x{W}', seed=3, accumulate=1,
                                   visualise=0, png=False, overwrite=False, quiet=True))
    code, err = run_command('xd_rcdepth_ros.commands.to_bag', ['--dataset', 'synthetic', '--root', root,
                                                               '--scene', 'scene-0001', '--out', bag, '--quiet'])
    assert code == 0, err
    return root, bag


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    return make_synthetic_bag(tmp_path_factory.mktemp('synthetic'))


@pytest.fixture(scope='module')
def synthetic_root(synthetic):
    return synthetic[0]


@pytest.fixture(scope='module')
def synthetic_bag(synthetic):
    return synthetic[1]


def _messages(bag, topic):
    with reading(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conns)]


def copy_bag(src, dst, drop_topics=(), storage='mcap', keep=None):
    """A new bag with every message of `src` except `drop_topics` (raw bytes), plus its sidecar.
    `keep(topic, t_ns)`: False drops that message; the topic stays in the bag even if it ends up empty."""
    with reading(src) as reader, BagWriter(dst, storage) as out:
        for conn in reader.connections:
            if conn.topic not in drop_topics:
                out.add_topic(conn.topic, conn.msgtype, qos=conn.ext.offered_qos_profiles)
        for conn, t, raw in reader.messages():
            if conn.topic not in drop_topics and (keep is None or keep(conn.topic, t)):
                out.write(conn.topic, conn.msgtype, t, raw, qos=conn.ext.offered_qos_profiles)
    if (Path(src) / 'extrinsics.yaml').is_file():
        shutil.copy(Path(src) / 'extrinsics.yaml', Path(dst) / 'extrinsics.yaml')
    return dst


# ------------------------------------------------------------------------------------------------ to-bag

def test_to_bag_synthetic_topics_stamps_and_sidecar(synthetic_root, synthetic_bag):
    with reading(synthetic_bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert counts['/CAM_FRONT/image_raw'] == counts['/CAM_FRONT/camera_info'] == FRAMES
    assert types['/CAM_FRONT/image_raw'] == schema.IMAGE and types['/tf_static'] == schema.TF_MESSAGE
    assert types['/RADAR_FRONT'] == types['/LIDAR_TOP'] == schema.POINTCLOUD2
    assert qos['/tf_static'][0].durability.name == 'TRANSIENT_LOCAL'
    # Native rates over the ~0.45 s span: lidar 20 Hz, radar 13 Hz, so more sweeps than images for lidar.
    assert counts['/LIDAR_TOP'] > counts['/RADAR_FRONT'] >= FRAMES
    # Every sensor at its own time: radar stamps are the World's radar sweep times, not image times.
    world = World((3, 0))
    offset = schema.SYNTHETIC_EPOCH_NS
    images = [t for t, _ in _messages(synthetic_bag, '/CAM_FRONT/image_raw')]
    radar = _messages(synthetic_bag, '/RADAR_FRONT')
    for t, msg in radar:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert stamp == t, 'log time must equal the header stamp'
        k = world.sensor_index('RADAR_FRONT', (t - offset) * 1e-9)
        assert abs((t - offset) * 1e-9 - world.sensor_time('RADAR_FRONT', k)) < 1e-6
        assert msg.header.frame_id == 'RADAR_FRONT'
        assert [f.name for f in msg.fields] == list(read_sidecar(synthetic_bag).radar_fields)
        assert len(msg.fields) == 18
    assert not set(images) & {t for t, _ in radar}
    side = read_sidecar(synthetic_bag)
    np.testing.assert_allclose(side.T_camera_radar,
                               np.linalg.inv(world.T_ego_sensor['CAM_FRONT']) @ world.T_ego_sensor['RADAR_FRONT'])
    assert side.topics['image'] == '/CAM_FRONT/image_raw' and side.frames['lidar'] == 'LIDAR_TOP'
    assert side.time_offset_s == offset / 1e9
    assert yaml.safe_load((synthetic_bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']['version'] == 9


def read_with_mcap(bag) -> dict:
    """topic -> decoded messages of a bag read with the `mcap` + `mcap_ros2` readers (not rosbags), after
    checking the counts agree with the bag's metadata. mcap-ros2-support is in requirements.txt: a
    missing reader fails rather than skips."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    got = {}
    with open(next(Path(bag).glob('*.mcap')), 'rb') as f:
        for schema_, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            assert channel.message_encoding == 'cdr' and schema_.encoding == 'ros2msg'
            got.setdefault(channel.topic, []).append(msg)
    with reading(bag) as reader:
        assert {t: len(m) for t, m in got.items()} == {c.topic: c.msgcount for c in reader.connections}
    return got


def test_bag_readable_with_the_mcap_reader(synthetic_bag):
    got = read_with_mcap(synthetic_bag)
    assert {(m.width, m.height, m.encoding) for m in got['/CAM_FRONT/image_raw']} == {(W, H, 'rgb8')}
    for msg in got['/tf_static']:
        assert {t.child_frame_id for t in msg.transforms} == {'CAM_FRONT', 'RADAR_FRONT', 'LIDAR_TOP'}


def test_bag_frames_reproduce_the_dataset(synthetic_root, synthetic_bag):
    """Images, K and radar come back bit for bit; the ego-compensated single-sweep GT equals the Frame's."""
    with reading(synthetic_bag) as reader:
        layout = resolve_layout(reader, synthetic_bag)
    assert layout.ego_pose_topic == '/ego_pose' and layout.lidar_topic == '/LIDAR_TOP'
    frames = list(BagFrames(synthetic_bag, layout, parse_field_map(None)))
    stored = list(read_sequence(synthetic_root))
    assert len(frames) == len(stored) == FRAMES
    assert plan_frames(synthetic_bag, layout, parse_field_map(None)) == ([ef.stamp_ns for ef in frames], [])
    for ef, f in zip(frames, stored):
        assert np.array_equal(ef.frame.image, f.image)
        np.testing.assert_allclose(ef.frame.K, f.K)
        assert np.array_equal(ef.frame.radar[:, :3], f.radar[:, :3])           # the same sweep
        assert np.array_equal(ef.frame.radar[:, 3], f.radar_column('rcs'))
        assert ef.ego_motion and abs(ef.radar_offset_s) < 1 / 13
        assert np.array_equal(ef.frame.depth_sparse, f.depth_sparse)
    assert frames[0].frame.name == f'{frames[0].stamp_ns / 1e9:.6f}'


def test_to_bag_sqlite3_compressed(synthetic_root, tmp_path):
    bag = tmp_path / 'compressed'
    code, err = run_command('xd_rcdepth_ros.commands.to_bag', ['--dataset', 'synthetic', '--root', synthetic_root,
                                                               '--all', '--out', bag, '--storage', 'sqlite3',
                                                               '--compressed-image', '--quiet'])
    assert code == 0, err
    scene = bag / 'scene-0001'
    assert list(scene.glob('*.db3'))
    msgs = _messages(scene, '/CAM_FRONT/image_raw/compressed')
    assert len(msgs) == FRAMES and msgs[0][1].format.startswith('rgb8; jpeg')
    rgb = convert.compressed_to_rgb(msgs[0][1])
    stored = next(iter(read_sequence(synthetic_root)))
    assert rgb.shape == stored.image.shape and np.abs(rgb.astype(int) - stored.image).mean() < 6
    with reading(scene) as reader:
        layout = resolve_layout(reader, scene)
    assert layout.image_type == schema.COMPRESSED_IMAGE


def test_to_bag_nuscenes_devkit(tmp_path):
    pytest.importorskip('nuscenes', reason='nuscenes-devkit is in requirements.txt')
    write_nuscenes(tmp_path / 'nus', seed=1, n_scenes=1, samples_per_scene=2, height=H, width=W, accumulate=2,
                   keyframe_every=3)
    bag = tmp_path / 'nbag'
    code, err = run_command('xd_rcdepth_ros.commands.to_bag', ['--dataset', 'nuscenes', '--root', tmp_path / 'nus',
                                                               '--scene', 'scene-0001', '--out', bag, '--quiet',
                                                               '--compressed-image'])
    assert code == 0, err
    radar = _messages(bag, '/RADAR_FRONT')
    assert [f.name for f in radar[0][1].fields] == ['x', 'y', 'z', 'dyn_prop', 'id', 'rcs', 'vx', 'vy', 'vx_comp',
                                                     'vy_comp', 'is_quality_valid', 'ambig_state', 'x_rms', 'y_rms',
                                                     'invalid_state', 'pdh0', 'vx_rms', 'vy_rms']
    jpeg = _messages(bag, '/CAM_FRONT/image_raw/compressed')[0][1]
    files = sorted((tmp_path / 'nus' / 'samples' / 'CAM_FRONT').glob('*.jpg'))
    assert bytes(jpeg.data) == files[0].read_bytes(), 'the original JPEG bytes must be kept'
    # An independent reader decodes the same bag: every radar field, the JPEG bytes, the lidar.
    mcap = read_with_mcap(bag)
    assert [f.name for f in mcap['/RADAR_FRONT'][0].fields] == [f.name for f in radar[0][1].fields]
    assert bytes(mcap['/CAM_FRONT/image_raw/compressed'][0].data) == files[0].read_bytes()
    assert mcap['/LIDAR_TOP'][0].header.frame_id == 'LIDAR_TOP' and mcap['/LIDAR_TOP'][0].width > 0
    with reading(bag) as reader:
        layout = resolve_layout(reader, bag)
    frames = list(BagFrames(bag, layout, parse_field_map(None)))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        adapter = NuScenesAdapter(tmp_path / 'nus', 'v1.0-mini', NuScenesConfig(accumulate=False,
                                                                                  skip_last_keyframe=False))
        tokens = [t for v in adapter.splits().values() for t in v]
        expected = [adapter.frame(t) for t in tokens]
    # The bag carries every camera image (keyframes and sweeps); the devkit's frames are the keyframes.
    assert len(frames) == len(mcap['/CAM_FRONT/image_raw/compressed']) > len(expected) == 2
    by_stamp = {ef.stamp_ns: ef for ef in frames}
    for f in expected:
        ef = by_stamp[round(f.timestamp * 1e9)]
        both = (ef.frame.depth_sparse > 0) & (f.depth_sparse > 0)
        assert np.mean((ef.frame.depth_sparse > 0) == (f.depth_sparse > 0)) > 0.999
        assert np.abs(ef.frame.depth_sparse - f.depth_sparse)[both].max() < 1e-3


def test_to_bag_bad_input(synthetic_root, synthetic_bag, tmp_path):
    cmd = 'xd_rcdepth_ros.commands.to_bag'
    base = ['--dataset', 'synthetic', '--root', synthetic_root, '--quiet']
    code, err = run_command(cmd, base + ['--scene', 'scene-0001', '--out', tmp_path / 'b', '--storage', 'rosbag1'])
    assert code == 2 and "'rosbag1' is not a storage plugin" in err
    code, err = run_command(cmd, base + ['--scene', 'scene-0042', '--out', tmp_path / 'b'])
    assert code == 2 and "no scene 'scene-0042'" in err and 'scene-0001' in err
    code, err = run_command(cmd, ['--dataset', 'synthetic', '--root', tmp_path / 'nowhere', '--all', '--out', tmp_path])
    assert code == 2 and 'does not exist' in err
    code, err = run_command(cmd, base + ['--scene', 'scene-0001', '--out', synthetic_bag])
    assert code == 2 and '--overwrite' in err
    (tmp_path / 'precious').mkdir()
    code, err = run_command(cmd, base + ['--scene', 'scene-0001', '--out', tmp_path / 'precious', '--overwrite'])
    assert code == 2 and 'not a rosbag2 folder' in err
    with pytest.raises(ValueError, match='unknown storage plugin'):
        schema.storage_plugin('foo')


# ------------------------------------------------------------------------------------------------ bad bags

def _layout(bag, **options):
    with reading(bag) as reader:
        return resolve_layout(reader, bag, **options)


def test_bag_without_camera_topic(synthetic_bag, tmp_path):
    bag = copy_bag(synthetic_bag, tmp_path / 'nocam', drop_topics=('/CAM_FRONT/image_raw',))
    with pytest.raises(BagError, match=r'has no camera topic.*/CAM_FRONT/image_raw'):
        _layout(bag)


def test_topics_with_unexpected_types(synthetic_bag):
    with pytest.raises(BagError, match=r'camera topic /RADAR_FRONT has type sensor_msgs/msg/PointCloud2'):
        _layout(synthetic_bag, image_topic='/RADAR_FRONT')
    with pytest.raises(BagError, match=r'lidar topic /CAM_FRONT/camera_info has type sensor_msgs/msg/CameraInfo'):
        _layout(synthetic_bag, lidar_topic='/CAM_FRONT/camera_info')
    with pytest.raises(BagError, match=r'radar topic /RADAR_BACK is not in the bag.*/RADAR_FRONT'):
        _layout(synthetic_bag, radar_topic='/RADAR_BACK')


def test_extrinsics_from_tf_static_without_sidecar(synthetic_bag, tmp_path):
    bag = copy_bag(synthetic_bag, tmp_path / 'noside')
    (bag / 'extrinsics.yaml').unlink()
    layout = _layout(bag)
    side = read_sidecar(synthetic_bag)
    assert layout.extrinsics_source == 'radar: /tf_static; lidar: /tf_static'
    np.testing.assert_allclose(layout.T_camera_radar, side.T_camera_radar, atol=1e-9)
    np.testing.assert_allclose(layout.T_camera_lidar, side.T_camera_lidar, atol=1e-9)
    assert layout.ego_pose_topic == '/ego_pose'
    bare = copy_bag(synthetic_bag, tmp_path / 'bare', drop_topics=('/tf_static',))
    (bare / 'extrinsics.yaml').unlink()
    with pytest.raises(BagError, match='no radar extrinsics.*--T-camera-radar'):
        _layout(bare)
    given = _layout(bare, T_camera_radar=np.eye(4), T_camera_lidar=np.eye(4))
    assert given.extrinsics_source.startswith('radar: option')


def test_unknown_storage_plugin(synthetic_bag, tmp_path):
    bag = tmp_path / 'foreign'
    shutil.copytree(synthetic_bag, bag)
    meta = bag / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('storage_identifier: mcap', 'storage_identifier: rosbag_v2'))
    with pytest.raises(BagError, match=r"Storage plugin 'rosbag_v2' not supported.*mcap and sqlite3"):
        _layout(bag)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_truncated_bag(synthetic_bag, tmp_path, storage):
    bag = copy_bag(synthetic_bag, tmp_path / f'cut-{storage}', storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))
    with open(data, 'r+b') as f:
        f.truncate(data.stat().st_size // 2)
    with pytest.raises(BagError, match=f'{bag}.*truncated or corrupt'):
        _layout(bag)


def _middle_message_record(mcap_file: Path) -> int:
    """File offset of the middle message record of the middle chunk (MCAP spec: Chunk = opcode, u64
    length, start/end time, u64 uncompressed size, u32 crc, compression string, u64 records length)."""
    import struct

    from mcap.reader import make_reader
    with open(mcap_file, 'rb') as f:
        chunks = make_reader(f).get_summary().chunk_indexes
        chunk = chunks[len(chunks) // 2]
        assert chunk.compression == '', 'the offsets below assume uncompressed chunks (what rosbags writes)'
        f.seek(chunk.chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4)
        f.seek(struct.unpack('<I', f.read(4))[0], 1)
        pos = f.tell() + 8
        end = pos + struct.unpack('<Q', f.read(8))[0]
        messages = []
        while pos < end:
            opcode, length = struct.unpack('<BQ', f.read(9))
            if opcode == 0x05:
                messages.append(pos)
            pos += 9 + length
            f.seek(pos)
    return messages[len(messages) // 2]


def corrupt_bag(src, dst, storage: str) -> Path:
    """A copy of `src` with 4 KB overwritten in the middle: of the .db3 file, or of an MCAP chunk at a
    message record (rosbags writes MCAP chunks without checksums, so 4 KB landing in pixel data could
    not be noticed by any reader; a record's framing can)."""
    bag = copy_bag(src, dst, storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))
    offset = data.stat().st_size // 2 if storage == 'sqlite3' else _middle_message_record(data) + 1
    with open(data, 'r+b') as f:
        f.seek(offset)
        f.write(b'\xff' * 4096)
    return bag


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_corrupt_bag_is_one_clear_error_for_replay_eval_and_replay(synthetic_bag, tmp_path, storage):
    """apsw.CorruptError (sqlite3) and rosbags' MCAP parser errors become one BagError naming the bag,
    in the evaluation and in the replay (which reads outside `reading()`), and no half result is left."""
    bag = corrupt_bag(synthetic_bag, tmp_path / f'corrupt-{storage}', storage)
    out = tmp_path / 'eval'
    code, err = run_command('xd_rcdepth_ros.commands.replay_eval',
                            [bag, '--checkpoint', ROOT / 'models' / 'xd_rcdepth_synthetic.pt', '--out', out,
                             '--figures', '1'])
    assert code == 2 and f'bag {bag}' in err and 'truncated or corrupt' in err, err
    assert not out.exists(), 'a failed evaluation left outputs behind'
    code, err = run_command('xd_rcdepth_ros.commands.replay', [bag, '--start-delay', '0', '--rate', '50'])
    assert code == 2 and f'error reading bag {bag}' in err and 'truncated or corrupt' in err, err


def _lidar_case_bag(src, dst, keep_stamps) -> Path:
    return copy_bag(src, dst, keep=lambda topic, t: topic != '/LIDAR_TOP' or keep_stamps(t))


def test_lidar_that_ends_early_does_not_hold_frames(synthetic_bag, tmp_path):
    """A lidar topic that is empty or stops early: each frame is settled as soon as no sweep can still
    come, rather than every decoded frame being held to the end of the bag."""
    with reading(synthetic_bag) as reader:
        lidar = [t for c, t, _ in reader.messages() if c.topic == '/LIDAR_TOP']
        images = [t for c, t, _ in reader.messages() if c.topic == '/CAM_FRONT/image_raw']
    cut = images[0] + 20_000_000            # keep the sweeps up to just after the first image
    for name, keep in (('empty', lambda t: False), ('early', lambda t: t <= cut)):
        bag = _lidar_case_bag(synthetic_bag, tmp_path / name, keep)
        frames = BagFrames(bag, _layout(bag), parse_field_map(None))
        got = list(frames)
        assert len(got) == FRAMES and frames.stats.max_pending == 1, (name, frames.stats.max_pending)
        with_gt = [ef.stamp_ns for ef in got if ef.frame.depth_sparse is not None]
        near = [s for s in images if min(abs(s - t) for t in lidar if keep(t)) <= 50_000_000] if name == 'early' else []
        assert with_gt == near, name
        assert all('no lidar sweep within' in ef.gt_note for ef in got if ef.stamp_ns not in with_gt)


def test_lidar_gap_bounds_the_frames_held(synthetic_bag, tmp_path):
    """A gap in the lidar (sweeps resume only at the end): a frame waits for a sweep at most until images
    `lidar_wait` s newer than it are read, and still gets the nearest sweep before the gap."""
    with reading(synthetic_bag) as reader:
        lidar = [t for c, t, _ in reader.messages() if c.topic == '/LIDAR_TOP']
    bag = _lidar_case_bag(synthetic_bag, tmp_path / 'gap', lambda t: t < lidar[2] or t == lidar[-1])
    layout = _layout(bag)
    held = BagFrames(bag, layout, parse_field_map(None))          # default lidar_wait: longer than the bag
    full = list(held)
    assert held.stats.max_pending == FRAMES
    frames = BagFrames(bag, layout, parse_field_map(None), lidar_wait=0.0)
    got = list(frames)
    assert frames.stats.max_pending <= 2
    assert [ef.stamp_ns for ef in got] == [ef.stamp_ns for ef in full]
    for a, b in zip(got, full):     # the same ground truth either way
        assert a.gt_note == b.gt_note and a.lidar_offset_s == b.lidar_offset_s
    assert got[0].frame.depth_sparse is not None, 'the first image has a sweep 10 ms before it'


def test_not_a_bag(tmp_path, synthetic_bag):
    with pytest.raises(BagError, match='does not exist'):
        _layout(tmp_path / 'missing')
    with pytest.raises(BagError, match='no metadata.yaml'):
        _layout(tmp_path)
    with pytest.raises(BagError, match='is a file.*bare .mcap'):
        _layout(next(synthetic_bag.glob('*.mcap')))


def test_cli_imports_only_the_chosen_command():
    """`xd-rcdepth --help` loads no subcommand module (nor torch, rclpy, rosbags); `info` loads no ROS."""
    heavy = 'sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosbags", "torch") or ".commands." in m)'
    code = ('import sys, contextlib, io\n'
            'from xd_rcdepth_ros import cli\n'
            'with contextlib.redirect_stdout(io.StringIO()): cli.main([])\n'
            f'print(",".join({heavy}))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ''
    code = ('import sys\n'
            'from xd_rcdepth_ros import cli\n'
            'from xd_rcdepth_core.cli import build_parser\n'
            'build_parser(cli.COMMANDS, ["info"])\n'
            f'print(",".join({heavy}))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.strip().split(','))
    assert {m for m in loaded if '.commands.' in m} == {'xd_rcdepth_core.commands.info'}
    assert not {m for m in loaded if m.split('.')[0] in ('rclpy', 'rosbags')}
