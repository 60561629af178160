"""Your own recordings as training data: `prepare --dataset rosbag` on real rosbag2 files (written by
to-bag from synthetic scenes of a town the shipped model has not seen), its ground truth against the
synthetic world's exact depth, splits, ego-motion sources, refusals and bad bags; then fine-tuning
the shipped checkpoint on it lowers the held-out MAE."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')

from test_bag import copy_bag, run_command  # noqa: E402

from xd_rcdepth_core.commands import synth  # noqa: E402
from xd_rcdepth_core.data.cache import CacheIndex  # noqa: E402
from xd_rcdepth_core.evaluate import EvalOptions, evaluate, frames_from_cache  # noqa: E402
from xd_rcdepth_core.pipeline import DepthEstimator  # noqa: E402
from xd_rcdepth_core.synthetic import read_sequence  # noqa: E402
from xd_rcdepth_core.training import Trainer, load_config  # noqa: E402
from xd_rcdepth_ros.bag_dataset import RosbagAdapter, RosbagConfig  # noqa: E402
from xd_rcdepth_ros.bagfile import schema  # noqa: E402
from xd_rcdepth_ros.bagfile.reader import reading  # noqa: E402
from xd_rcdepth_ros.bagfile.writer import BagWriter  # noqa: E402
from xd_rcdepth_ros.replay_eval.bag_frames import BagFrames  # noqa: E402
from xd_rcdepth_ros.replay_eval.bag_topics import resolve_layout  # noqa: E402
from xd_rcdepth_ros.resources import shipped_model  # noqa: E402
from xd_rcdepth_ros.to_frame import parse_field_map  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')
ROOT = Path(__file__).resolve().parents[1]
H, W, FRAMES = 96, 192, 12
EPOCH_S = schema.SYNTHETIC_EPOCH_NS * 1e-9


@pytest.fixture(scope='module')
def town(tmp_path_factory):
    """(synthetic root, [bag of scene 1, bag of scene 2]): seed 11, a town no shipped run trained on."""
    folder = tmp_path_factory.mktemp('town')
    root = folder / 'synthetic'
    synth.run(argparse.Namespace(out=str(root), scenes=2, frames=FRAMES, size=f'{H}x{W}', seed=11, accumulate=1,
                                 visualise=0, png=False, overwrite=False, quiet=True, format='native'))
    bags = []
    for scene in ('scene-0001', 'scene-0002'):
        code, err = run_command('xd_rcdepth_ros.commands.to_bag', [
            '--dataset', 'synthetic', '--root', root, '--scene', scene, '--out', folder / scene, '--quiet'])
        assert code == 0, err
        bags.append(folder / scene)
    return root, bags


def prepare(argv) -> int:
    code, err = run_command('xd_rcdepth_ros.commands.prepare',
                            ['--dataset', 'rosbag', '--no-progress', *map(str, argv)])
    prepare.last_error = err
    return code


def _exact_depth(root, frame):
    """The synthetic world's exact depth at the bag frame's time (bag stamps are offset by an epoch)."""
    scene = 'scene-0001' if frame.name.startswith('scene-0001') else 'scene-0002'
    native = min(read_sequence(root, scene), key=lambda n: abs(n.timestamp - (frame.timestamp - EPOCH_S)))
    assert abs(native.timestamp - (frame.timestamp - EPOCH_S)) < 1e-3
    return native.depth_dense


def _median_rel(a, exact):
    m = (a > 0) & (exact > 0)
    return float(np.median(np.abs(a[m] - exact[m]) / exact[m])), int(m.sum())


def test_prepare_rosbag_ground_truth_splits_and_one_reader(town, tmp_path):
    root, bags = town
    cache = tmp_path / 'cache'
    assert prepare(['--root', *bags, '--out', cache, '--val-bags', 'scene-0002', '--lidar-sweeps', '2']) == 0
    index = CacheIndex(cache)
    train, val = index.names('train'), index.names('val')
    assert train and val and all(n.startswith('scene-0001/') for n in train) and all(n.startswith('scene-0002/')
                                                                                   for n in val)
    frame = index.frame('train', len(train) // 2)
    exact = _exact_depth(root, frame)
    for name in ('depth_sparse', 'depth_accumulated', 'depth_interp'):
        err, count = _median_rel(getattr(frame, name), exact)
        assert count > 200 and err < 0.02, (name, err, count)     # measured: 0.5-0.8 %
    assert np.count_nonzero(frame.depth_accumulated) > 1.5 * np.count_nonzero(frame.depth_sparse)
    # The very frame replay-eval scores: same image, radar and single-sweep ground truth.
    with reading(bags[0]) as reader:
        layout = resolve_layout(reader, bags[0])
    full = {ef.stamp_ns: ef.frame for ef in BagFrames(bags[0], layout, parse_field_map(None))}
    stamp = int(train[len(train) // 2].split('/')[1])
    assert np.array_equal(full[stamp].image, frame.image) and np.array_equal(full[stamp].radar, frame.radar)
    assert np.abs(full[stamp].depth_sparse - frame.depth_sparse).max() <= 1 / 256 + 1e-6   # the cache: uint16 x 256
    # A second run resumes; other ground-truth settings are refused (one line) before any work.
    assert prepare(['--root', *bags, '--out', cache, '--val-bags', 'scene-0002', '--lidar-sweeps', '2']) == 0
    assert json.loads((cache / 'index.json').read_text())
    assert prepare(['--root', *bags, '--out', cache, '--val-bags', 'scene-0002', '--lidar-sweeps', '1']) == 2
    assert 'other settings' in prepare.last_error and 'lidar_sweeps' in prepare.last_error


def test_time_block_split_never_interleaves(town):
    _, bags = town
    adapter = RosbagAdapter([str(bags[0])], RosbagConfig(val_fraction=0.25, guard_s=0.2))
    splits = adapter.splits()
    t_train = [int(k.split('/')[1]) for k in splits['train']]
    t_val = [int(k.split('/')[1]) for k in splits['val']]
    assert len(t_val) == 3 and max(t_train) < min(t_val) - 0.2e9      # one block, after a 0.2 s guard
    assert len(t_train) + len(t_val) < FRAMES                       # the guard's frames are left out


def _without_poses(src, dst, keep_tf: bool):
    return copy_bag(src, dst, drop_topics=('/ego_pose',) if keep_tf else ('/ego_pose', '/tf'))


def _odometry_bag(src, dst):
    """src with its /ego_pose PoseStamped turned into nav_msgs/Odometry on /odom, /tf dropped."""
    store = schema.typestore()
    with reading(src) as reader, BagWriter(dst, 'mcap') as out:
        for conn in reader.connections:
            if conn.topic not in ('/ego_pose', '/tf'):
                out.add_topic(conn.topic, conn.msgtype, qos=conn.ext.offered_qos_profiles)
        out.add_topic('/odom', 'nav_msgs/msg/Odometry')
        Odometry = store.types['nav_msgs/msg/Odometry']
        PoseWithCovariance = store.types['geometry_msgs/msg/PoseWithCovariance']
        TwistWithCovariance = store.types['geometry_msgs/msg/TwistWithCovariance']
        Twist, Vector3 = store.types['geometry_msgs/msg/Twist'], store.types['geometry_msgs/msg/Vector3']
        for conn, t, raw in reader.messages():
            if conn.topic == '/ego_pose':
                pose = store.deserialize_cdr(raw, conn.msgtype)
                odom = Odometry(header=pose.header, child_frame_id='base_link',
                                pose=PoseWithCovariance(pose=pose.pose, covariance=np.zeros(36)),
                                twist=TwistWithCovariance(twist=Twist(linear=Vector3(x=0.0, y=0.0, z=0.0),
                                                                      angular=Vector3(x=0.0, y=0.0, z=0.0)),
                                                          covariance=np.zeros(36)))
                out.write('/odom', 'nav_msgs/msg/Odometry', t, store.serialize_cdr(odom, 'nav_msgs/msg/Odometry'))
            elif conn.topic != '/tf':
                out.write(conn.topic, conn.msgtype, t, raw, qos=conn.ext.offered_qos_profiles)
    shutil.copy(Path(src) / 'extrinsics.yaml', Path(dst) / 'extrinsics.yaml')
    return dst


def test_ego_motion_from_tf_or_odometry_and_refused_without(town, tmp_path):
    root, bags = town
    reference = RosbagAdapter([str(bags[0])], RosbagConfig(lidar_sweeps=2))
    key = reference.splits()['train'][5]
    expected = reference.frame(key).depth_accumulated
    for name, bag, source in (('tf', _without_poses(bags[0], tmp_path / 'tf' / bags[0].name, True), '/tf'),
                              ('odom', _odometry_bag(bags[0], tmp_path / 'odom' / bags[0].name), '/odom')):
        adapter = RosbagAdapter([str(bag)], RosbagConfig(lidar_sweeps=2))
        assert adapter.content_settings()['bags'][bags[0].name]['ego_motion'].startswith(source), name
        got = adapter.frame(key).depth_accumulated
        m = (got > 0) & (expected > 0)
        assert m.sum() > 200 and np.median(np.abs(got[m] - expected[m]) / expected[m]) < 1e-3, name
    still = _without_poses(bags[0], tmp_path / 'none' / bags[0].name, False)
    assert prepare(['--root', still, '--out', tmp_path / 'c0', '--lidar-sweeps', '2']) == 2
    assert 'cannot accumulate' in prepare.last_error and 'ego motion' in prepare.last_error
    assert not (tmp_path / 'c0').exists()
    assert prepare(['--root', still, '--out', tmp_path / 'c1', '--lidar-sweeps', '0']) == 0   # single sweep: fine


def test_a_bad_bag_is_reported_and_skipped(town, tmp_path):
    _, bags = town
    bad = tmp_path / 'broken'
    shutil.copytree(bags[1], bad)
    mcap = next(bad.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:len(mcap.read_bytes()) // 3])      # a recording cut short
    code = prepare(['--root', bags[0], bad, '--out', tmp_path / 'cache'])
    assert code == 1                                                         # the good bag is prepared
    index = CacheIndex(tmp_path / 'cache')
    assert index.names('train') and all(n.startswith('scene-0001/') for n in index.names('train'))


def test_fine_tuning_on_your_bags_lowers_held_out_mae(town, tmp_path):
    """record -> prepare -> fine-tune from the shipped checkpoint -> evaluate on the held-out bag."""
    _, bags = town
    cache = tmp_path / 'cache'
    assert prepare(['--root', *bags, '--out', cache, '--val-bags', 'scene-0002']) == 0
    config = load_config(ROOT / 'config' / 'train_student.yaml', 'student', [
        f'data.cache={cache}', f'run_dir={tmp_path / "run"}', f'model.init={shipped_model()}',
        'max_steps=30', 'data.crop=[96,192]', 'data.batch_size=2', 'data.workers=0', 'val_every=15',
        'checkpoint_every=15', 'optim.lr=2e-4', 'optim.eps=1e-6', 'log_every=15', 'image_every=100000'])
    Trainer(config, progress=False).fit()

    def mae80(checkpoint):
        est = DepthEstimator.from_checkpoint(checkpoint, device='cpu')
        return evaluate(est, frames_from_cache(cache, 'val'), EvalOptions(progress=False))['by_range']['80']['mae']
    before, after = mae80(shipped_model()), mae80(tmp_path / 'run' / 'checkpoints' / 'best.pt')
    assert after < 0.9 * before, (before, after)
