"""Bag replay over loopback DDS (/clock, pacing, loop), and replay evaluation offline vs live (the node).

Every DDS participant here lives in a private rclpy context (RosSession) on the test run's domain
(conftest.py: ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; the node subprocess inherits them).
Timing checks are one-sided where the machine's load could bite: a paced message is never early.
"""
from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')

from test_bag import FRAMES, ROOT, copy_bag, make_synthetic_bag, run_command  # noqa: E402

from xd_rcdepth_core.metrics import METRIC_NAMES  # noqa: E402
from xd_rcdepth_ros.bagfile.reader import deserialize, header_stamp_ns, message_class, reading  # noqa: E402
from xd_rcdepth_ros.bagfile.writer import BagWriter
from xd_rcdepth_ros.playback.player import BagPlayer  # noqa: E402
from xd_rcdepth_ros.playback.session import RosSession  # noqa: E402
from xd_rcdepth_ros.replay_eval.run import OUTPUT_BAG, EvalOptions, _LiveRun, _read_outputs, run_live, run_offline
from xd_rcdepth_ros.resources import apply_fastdds_profile  # noqa: E402

# Before any participant of this process exists: Fast DDS reads its profile once.
apply_fastdds_profile()


@pytest.fixture(scope='module')
def synthetic_bag(tmp_path_factory):
    return make_synthetic_bag(tmp_path_factory.mktemp('synthetic'))[1]


class Listener:
    """Raw subscriptions in a context of their own: (topic, stamp ns, arrival time) of everything."""

    def __init__(self, topics: dict):
        from rclpy.qos import QoSProfile
        self.session = RosSession('xd_rcdepth_test_listener')
        self.got = []
        self._lock = threading.Lock()
        for topic, msgtype in topics.items():
            self.session.node.create_subscription(message_class(msgtype), topic,
                                                  lambda raw, t=topic: self._on(t, raw), QoSProfile(depth=200),
                                                  raw=True)

    def _on(self, topic, raw):
        with self._lock:
            self.got.append((topic, header_stamp_ns(raw), time.monotonic()))

    def of(self, topic):
        with self._lock:
            return [g for g in self.got if g[0] == topic]

    def close(self):
        self.session.close()


def _bag_topics(bag) -> tuple:
    with reading(bag) as reader:
        return {c.topic: c.msgtype for c in reader.connections}, {c.topic: c.msgcount for c in reader.connections}


def test_replay_paced_by_bag_time_with_clock(synthetic_bag):
    types, counts = _bag_topics(synthetic_bag)
    data_topics = {t: m for t, m in types.items() if message_class(m) is not None}
    listener = Listener(dict(data_topics, **{'/clock': 'rosgraph_msgs/msg/Clock'}))
    rate = 0.5
    try:
        with RosSession('xd_rcdepth_test_player') as session:
            player = BagPlayer(session.node, synthetic_bag, rate=rate)
            assert sorted(player.topics) == sorted(data_topics)
            if message_class('tf2_msgs/msg/TFMessage') is None:
                assert 'tf2_msgs' in player.stats.skipped['/tf_static']
            player.wait_for_subscribers(player.topics, timeout=30)
            time.sleep(0.3)
            stats = player.play()
            player.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sum(len(listener.of(t)) for t in data_topics) < \
                    sum(counts[t] for t in data_topics):
                time.sleep(0.05)
    finally:
        listener.close()
    with reading(synthetic_bag) as reader:
        start = reader.start_time
    for topic in data_topics:
        got = listener.of(topic)
        assert len(got) == counts[topic] == stats.counts[topic], topic
        assert [g[1] for g in got] == sorted(g[1] for g in got), f'{topic} out of order'
    data = sorted((g for t in data_topics for g in listener.of(t)), key=lambda g: g[2])
    t0, a0 = start, data[0][2]
    for _, stamp, arrived in data:
        # Paced by bag time: never early (one-sided: lateness depends on the machine's load; 0.1 s allows
        # for the listener's executor taking the first message late).
        assert arrived - a0 >= (stamp - t0) * 1e-9 / rate - 0.1
    assert data[-1][2] - a0 >= (data[-1][1] - data[0][1]) * 1e-9 / rate - 0.1, 'not paced: sent in a burst'
    assert stats.wall_s >= stats.bag_s / rate - 0.02
    # Across topics, messages more than 0.1 s of bag time apart arrive in bag order.
    for (_, s1, _), (_, s2, _) in zip(data, data[1:]):
        assert s2 >= s1 - 100_000_000
    clock = [g[1] for g in listener.of('/clock')]
    assert clock == sorted(clock), '/clock went backwards'
    assert clock[0] == start and clock[-1] == max(g[1] for g in data)
    assert len(set(clock)) > len({g[1] for g in data}), '/clock must also advance between messages'


def test_replay_loop_and_clock_restart(synthetic_bag):
    listener = Listener({'/CAM_FRONT/image_raw': 'sensor_msgs/msg/Image', '/clock': 'rosgraph_msgs/msg/Clock'})
    stop = threading.Event()
    try:
        with RosSession('xd_rcdepth_test_loop') as session:
            player = BagPlayer(session.node, synthetic_bag, topics=['/CAM_FRONT/image_raw'], rate=4.0, loop=True)
            player.wait_for_subscribers(player.topics, timeout=30)
            time.sleep(0.3)
            thread = threading.Thread(target=player.play, args=(stop,))
            thread.start()
            deadline = time.monotonic() + 20
            while len(listener.of('/CAM_FRONT/image_raw')) < 2 * FRAMES + 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            thread.join(10)
            player.close()
    finally:
        listener.close()
    assert player.stats.loops >= 2
    stamps = [g[1] for g in listener.of('/CAM_FRONT/image_raw')]
    assert stamps[FRAMES:2 * FRAMES] == stamps[:FRAMES], 'a loop replays the same messages'
    clock = [g[1] for g in listener.of('/clock')]
    assert any(b < a for a, b in zip(clock, clock[1:])), 'a loop restarts /clock at the bag start'


def test_replay_command(synthetic_bag):
    listener = Listener({'/CAM_FRONT/image_raw': 'sensor_msgs/msg/Image'})
    try:
        code, err = run_command('xd_rcdepth_ros.commands.replay', [synthetic_bag, '--rate', '2', '--start-delay', '1',
                                                                   '--topics', '/CAM_FRONT/image_raw'])
        time.sleep(0.3)
    finally:
        listener.close()
    assert code == 0, err
    assert len(listener.of('/CAM_FRONT/image_raw')) == FRAMES
    code, err = run_command('xd_rcdepth_ros.commands.replay', [synthetic_bag, '--topics', '/nothing'])
    assert code == 2 and '/nothing not in bag' in err


# ---------------------------------------------------------------------------------------- replay-eval

@pytest.fixture(scope='module')
def checkpoint():
    """The shipped trained student: its depth varies across the image, unlike an untrained net's, so
    agreement of offline and live means agreement on real structure."""
    path = ROOT / 'models' / 'xd_rcdepth_synthetic.pt'
    assert path.is_file(), 'the shipped checkpoint is part of the repository'
    return path


def _depths(out):
    return _read_outputs(out / OUTPUT_BAG, '/xd_rcdepth/output/depth')


@pytest.mark.slow
def test_offline_and_live_agree(synthetic_bag, checkpoint, tmp_path):
    off = run_offline(EvalOptions(bag=str(synthetic_bag), checkpoint=str(checkpoint), out=str(tmp_path / 'off'),
                                  figures=1))
    live = run_live(EvalOptions(bag=str(synthetic_bag), checkpoint=str(checkpoint), out=str(tmp_path / 'live'),
                                live=True, figures=0, node_timeout=90))
    assert off['valid'] and live['valid'], (off['invalid_reason'], live['invalid_reason'])
    assert off['dropped_frames'] == live['dropped_frames'] == [], (live['dropped_frames'], live['gate'])
    assert off['images'] == live['images'] == FRAMES
    assert [f['stamp_ns'] for f in off['frames']] == [f['stamp_ns'] for f in live['frames']]
    for key, entry in off['by_range'].items():
        assert entry['images'] == live['by_range'][key]['images'] == FRAMES
        for m in METRIC_NAMES:
            assert live['by_range'][key][m] == pytest.approx(entry[m], rel=1e-4, abs=1e-6), (key, m)
    # Same pixels in, same model: equal to float32 rounding. Not bitwise: oneDNN may pick other kernels
    # (or summation orders) in another process on AVX-512 hosts (CI saw 1.9e-4 m at 15.7 m, 1.2e-5
    # relative); a real difference in the pipeline (a resize, a pixel shift, a channel order) is metres.
    a, b = _depths(tmp_path / 'off'), _depths(tmp_path / 'live')
    assert sorted(a) == sorted(b) == [f['stamp_ns'] for f in off['frames']]
    for stamp in a:
        assert np.array_equal(np.isnan(a[stamp]), np.isnan(b[stamp]))
        np.testing.assert_allclose(a[stamp], b[stamp], rtol=1e-4, atol=1e-5, equal_nan=True)
    # What each mode writes.
    saved = json.loads((tmp_path / 'off' / 'metrics.json').read_text())
    assert set(saved['by_range']) == {'50', '70', '80'} and saved['images'] == FRAMES
    assert saved['latency_ms']['count'] == FRAMES and live['latency_ms']['count'] == FRAMES
    assert '| 80 m | 4 |' in (tmp_path / 'off' / 'metrics.md').read_text()
    assert len(off['figures']) == 1
    import cv2
    assert cv2.imread(off['figures'][0]) is not None
    assert live['unexpected_outputs'] == [] and live['planned_frames'] == FRAMES
    assert (tmp_path / 'live' / 'node.log').is_file()
    # The node's own split, from the report it makes after the last frame (the clock is run on for it).
    node = live['node_diagnostics']
    assert int(node['published']) == FRAMES, node
    assert float(node['added_latency_p50_ms']) >= float(node['work_latency_p50_ms']) >= 0
    assert 'in the node: pairing' in (tmp_path / 'live' / 'metrics.md').read_text()
    with reading(tmp_path / 'live' / 'output_bag') as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {
            '/xd_rcdepth/output/depth': FRAMES, '/xd_rcdepth/output/depth/camera_info': FRAMES}


def test_live_gate_waits_once_per_unanswered_frame(synthetic_bag):
    """The replay gate (before each image: wait for the depth of the earlier planned images) gives up
    on a frame once: a node that answers nothing costs one output_timeout per frame, not one per frame
    for every later image (a 240-image scene took over an hour)."""
    with reading(synthetic_bag) as reader:
        conns = [c for c in reader.connections if c.topic == '/CAM_FRONT/image_raw']
        raws = [bytes(raw) for _, _, raw in reader.messages(connections=conns)]
    stamps = [header_stamp_ns(raw) for raw in raws]
    run = _LiveRun(stamps, '/CAM_FRONT/image_raw', '/xd_rcdepth/output/depth', output_timeout=0.05)
    run.node = SimpleNamespace(alive=lambda: True)                  # the node process, running
    run.on_recorded(run.depth_topic, raws[0], time.monotonic())     # it answers the first image only
    for raw in raws[1:]:
        run.gate('/CAM_FRONT/image_raw', raw)
    assert run.given_up == set(stamps[1:-1])
    assert run.waited == FRAMES - 2, 'each unanswered frame is waited for once'


def test_live_reports_frames_the_node_drops(synthetic_bag, checkpoint, tmp_path):
    """Two images whose CameraInfo has the wrong width: the node drops them (camera_info_size); the live
    evaluation knows it from the plan, never waits for them, and reports them with the node's reason."""
    from rclpy.serialization import serialize_message
    with reading(synthetic_bag) as reader:
        info = [t for c, t, _ in reader.messages() if c.topic == '/CAM_FRONT/camera_info']
    bad = set(info[1:3])
    bag = tmp_path / 'bad_info'
    with reading(synthetic_bag) as reader, BagWriter(bag) as out:
        for conn, t, raw in reader.messages():
            if conn.topic == '/CAM_FRONT/camera_info' and t in bad:
                msg = deserialize(raw, conn.msgtype)
                msg.width += 2
                raw = serialize_message(msg)
            out.write(conn.topic, conn.msgtype, t, raw, qos=conn.ext.offered_qos_profiles)
    (bag / 'extrinsics.yaml').write_bytes((synthetic_bag / 'extrinsics.yaml').read_bytes())
    result = run_live(EvalOptions(bag=str(bag), checkpoint=str(checkpoint), out=str(tmp_path / 'live'), live=True,
                                  figures=0, node_timeout=90, output_timeout=10.0))
    saved = json.loads((tmp_path / 'live' / 'metrics.json').read_text())
    assert [(d['stamp_ns'], d['reason']) for d in saved['dropped_frames']] == [(s, 'camera_info_size') for s in
                                                                               sorted(bad)]
    assert all('CameraInfo is 162x90' in d['message'] for d in saved['dropped_frames'])
    assert saved['planned_frames'] == saved['frames_processed'] == FRAMES - 2 and result['valid']
    assert saved['gate']['given_up'] == [] and saved['gate']['frames_waited'] <= FRAMES - 2
    assert saved['outputs_recorded'] == FRAMES - 2 and saved['unexpected_outputs'] == []


def test_no_lidar_gives_depth_but_no_metrics(synthetic_bag, checkpoint, tmp_path):
    bag = copy_bag(synthetic_bag, tmp_path / 'nolidar', drop_topics=('/LIDAR_TOP',))
    out = tmp_path / 'eval'
    code, err = run_command('xd_rcdepth_ros.commands.replay_eval', [bag, '--checkpoint', checkpoint, '--out', out,
                                                                    '--figures', '1'])
    assert code == 1, err
    result = json.loads((out / 'metrics.json').read_text())
    assert result['valid'] is False and 'no lidar topic' in result['invalid_reason']
    assert result['images'] == 0 and result['frames_processed'] == FRAMES
    assert all(v is None for entry in result['by_range'].values() for k, v in entry.items()
               if k in METRIC_NAMES), 'metrics of zero frames must be null, not numbers'
    assert 'No metrics' in (out / 'metrics.md').read_text()
    assert len(_depths(out)) == FRAMES, 'depth is still produced'
    code, err = run_command('xd_rcdepth_ros.commands.replay_eval', [bag, '--checkpoint', checkpoint, '--out', out])
    assert code == 2 and '--overwrite' in err


def test_replay_eval_bad_input(synthetic_bag, checkpoint, tmp_path):
    cmd = 'xd_rcdepth_ros.commands.replay_eval'
    code, err = run_command(cmd, [synthetic_bag, '--checkpoint', checkpoint, '--out', tmp_path / 'a',
                                  '--camera-topic', '/LIDAR_TOP'])
    assert code == 2 and 'camera topic /LIDAR_TOP has type sensor_msgs/msg/PointCloud2' in err
    code, err = run_command(cmd, [synthetic_bag, '--checkpoint', tmp_path / 'none.pt', '--out', tmp_path / 'b'])
    assert code == 2 and 'does not exist' in err
    code, err = run_command(cmd, [synthetic_bag, '--checkpoint', checkpoint, '--out', tmp_path / 'c',
                                  '--radar-fields', 'rcs,vx'])
    assert code == 2 and '--radar-fields' in err
    code, err = run_command(cmd, [synthetic_bag, '--checkpoint', checkpoint, '--out', tmp_path / 'd',
                                  '--T-camera-radar', '1,2,3'])
    assert code == 2 and 'tx,ty,tz,qw,qx,qy,qz' in err
