"""Input faults with the real node (in-process, real rclpy on loopback DDS): the radar stops and comes back,
the camera driver restarts, time jumps backwards, a burst of images. The node never dies, resumes depth
within one second of the inputs returning, and /diagnostics says what is going on.

"Within one second" is measured on the inputs' own timeline (header stamps, which follow wall time as a
live sensor's do): the first depth after the inputs return is for an image stamped at most 1 s after
they returned. How fast this machine then computes it is not asserted (a loaded CI host).
"""
from __future__ import annotations

import itertools

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by make test (ROS 2 Jazzy wheels)')
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_helpers import Harness, Streams, depth_stamps, spin_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from xd_rcdepth_core.models import build_model  # noqa: E402
from xd_rcdepth_core.models.checkpoint import save_checkpoint  # noqa: E402
from xd_rcdepth_core.synthetic import generate_sequence  # noqa: E402

H, W = 96, 160
RESUME_S = 1.0
_names = itertools.count()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import torch
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'student.pt'
    save_checkpoint(path, build_model('xd_rcdepth'))
    return path


@pytest.fixture(scope='module')
def frames():
    return list(generate_sequence(seed=7, n_frames=3, height=H, width=W))


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def harness(ros, checkpoint, frames, request):
    params = dict(getattr(request, 'param', {}))
    h = Harness(checkpoint, frames[0].T_camera_radar, name=f'xd_rcdepth_fault_{next(_names)}',
                diagnostics_period=0.25, torch_threads=1, **params)
    try:
        h.start()
        yield h
    finally:
        h.close()


def levels(h, since: int = 0) -> list:
    return [(s.level, s.message) for s in h.diagnostics[since:]]


def resumes(h, streams: Streams, t_return: float, timeout: float = 20.0) -> float:
    """Keep streaming until the depth of an image sent from now on arrives; how long after t_return (in
    stamps) that image was. (Only these images count: depth of older ones may still be in flight, and
    before a backwards jump they carry later stamps.)"""
    first = len(streams.sent_images)

    def served():
        new = streams.sent_images[first:]
        got = [t for t in depth_stamps(h) if any(abs(t - u) < 1e-6 for u in new)]
        return min(got) if got else None

    assert streams.run(timeout, until=lambda: served() is not None), \
        f'no depth after the inputs returned (pairer {h.node.pairer.stats})'
    return served() - t_return


def test_radar_stops_for_3_s_and_comes_back(harness, frames):
    h = harness
    s = Streams(h, frames, t0=1000.0)
    assert s.run(20.0, until=lambda: len(h.depth) >= 3), 'no depth before the fault'
    assert s.run(10.0, until=lambda: h.diagnostics and h.diagnostics[-1].level == DiagnosticStatus.OK), levels(h)
    before, n_diag = len(h.depth), len(h.diagnostics)
    s.run(3.0, radar=False)                                  # the radar publisher stops
    outage = levels(h, n_diag)
    assert any(level == DiagnosticStatus.WARN and 'no radar for' in msg for level, msg in outage), outage
    assert all(level != DiagnosticStatus.ERROR for level, _ in outage), outage
    assert len(h.depth) <= before + 2                        # (frames already in flight at the stop)
    assert h.node.pairer.stats.unpaired_no_radar > 0
    t_return, n_diag = s.now(), len(h.diagnostics)
    assert resumes(h, s, t_return) <= RESUME_S
    assert s.run(15.0, until=lambda: h.diagnostics[-1].level == DiagnosticStatus.OK), levels(h, n_diag)
    counts = {kv.key: kv.value for kv in h.diagnostics[-1].values}
    assert int(counts['unpaired_no_radar']) > 0 and float(counts['radar_age_s']) < 1.0


def test_camera_driver_restarts_with_a_new_publisher(harness, frames):
    h = harness
    s = Streams(h, frames, t0=2000.0)
    assert s.run(20.0, until=lambda: len(h.depth) >= 3), 'no depth before the fault'
    assert s.run(10.0, until=lambda: h.diagnostics and h.diagnostics[-1].level == DiagnosticStatus.OK), levels(h)
    h.peer.destroy_publisher(h.pub_image)                    # the driver dies: its publishers go
    h.peer.destroy_publisher(h.pub_info)
    n_diag = len(h.diagnostics)
    s.run(2.0, camera=False)                                 # radar goes on
    gap = levels(h, n_diag)
    assert any(level == DiagnosticStatus.WARN and 'no image for' in msg for level, msg in gap), gap
    h.pub_info = h.peer.create_publisher(CameraInfo, f'{h.base}/input/camera_info', qos_profile_sensor_data)
    h.pub_image = h.peer.create_publisher(Image, h.image_topic, qos_profile_sensor_data)
    # (discovery of the new publishers is the middleware's; the node's part starts once they are matched)
    assert spin_until(h.executor, lambda: h.pub_image.get_subscription_count() == 1
                      and h.pub_info.get_subscription_count() == 1, timeout=20)
    t_return, n_diag = s.now(), len(h.diagnostics)
    assert resumes(h, s, t_return) <= RESUME_S
    assert s.run(15.0, until=lambda: h.diagnostics[-1].level == DiagnosticStatus.OK), levels(h, n_diag)
    p = h.node.pairer.stats
    assert p.out_of_order_images == 0 and p.time_jumps == 0


@pytest.mark.parametrize('harness', [{'use_sim_time': True}], indirect=True)
def test_time_jumps_backwards_with_use_sim_time(harness, frames):
    # A looping bag replayed with /clock: header stamps and the ROS clock both restart at the bag start.
    h = harness
    s = Streams(h, frames, t0=3000.0, clock=True)
    assert s.run(20.0, until=lambda: len(h.depth) >= 3), \
        f'no depth before the jump: {h.node.pairer.stats} {h.node.stats.counts} {h.node.stats.bad}'
    s.run(2.0)                                               # a bag of 2 s and more
    n_diag = len(h.diagnostics)
    s.jump(to=3000.0)
    t_return = s.now()
    assert resumes(h, s, t_return) <= RESUME_S
    assert h.node.pairer.stats.time_jumps >= 1
    # /diagnostics runs on the ROS clock, which went back: it keeps coming, and says OK.
    assert s.run(15.0, until=lambda: len(h.diagnostics) > n_diag + 2
                 and h.diagnostics[-1].level == DiagnosticStatus.OK), levels(h, n_diag)
    stamp = h.diagnostics[-1]
    assert {kv.key: kv.value for kv in stamp.values}['time_jumps'] != '0'
    # A second loop: the same again.
    s.jump(to=3000.0)
    t_return = s.now()
    assert resumes(h, s, t_return) <= RESUME_S


def test_a_burst_of_100_images_in_one_second(harness, frames):
    h = harness
    s = Streams(h, frames, t0=4000.0)
    assert s.run(20.0, until=lambda: len(h.depth) >= 3), 'no depth before the burst'
    n0 = len(s.sent_images)
    s.run(1.0, image_hz=100.0)                               # 100 images (and CameraInfos) in one second
    burst = len(s.sent_images) - n0
    t_return = s.now()
    assert resumes(h, s, t_return) <= RESUME_S
    s.run(1.0)
    assert spin_until(h.executor, lambda: h.node.pairer.stats.pending_images == 0, timeout=10)
    spin_until(h.executor, lambda: False, timeout=1.0)       # the last frame through inference
    # Every image the node received is accounted for; none vanished without a reason.
    p, counts, bad = h.node.pairer.stats, h.node.stats.counts, h.node.stats.bad
    assert burst >= 90
    assert p.images_in == counts['image_in']
    assert p.images_in == (p.paired + p.unpaired_no_radar + p.unpaired_no_camera_info + p.out_of_order_images
                           + p.pending_images)
    in_slot = 1 if h.node.pairer.take_latest() is not None else 0
    assert p.paired == p.taken + p.dropped_stale + in_slot
    assert p.taken == counts['published'] + sum(bad.values()) + counts['dropped_inactive']
    assert p.dropped_stale > 0                               # the burst was faster than inference
    assert h.node.estimator is not None and h.node.pairer is not None   # alive and active
