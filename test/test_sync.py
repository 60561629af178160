"""Radar <-> image pairing by stamp: nearest within tolerance, latest frame wins, resets, sweeps, threads."""
import threading
import types

import numpy as np
import pytest

from xd_rcdepth_ros.sync import REORDER_RESET, Pair, RadarImagePairer, stamp_to_seconds

T0 = 1_533_151_603.5  # a nuScenes-like epoch stamp: float seconds keep sub-microsecond resolution here


def streams(duration=20.0, cam_hz=12.0, radar_hz=13.0, jitter=0.003, seed=0, t0=T0):
    """Camera and radar stamps with jitter, and the arrival order of all messages (stamp + latency)."""
    rng = np.random.default_rng(seed)
    cam = t0 + np.arange(0, duration, 1 / cam_hz)
    cam = cam + rng.uniform(-jitter, jitter, cam.size)
    radar = t0 + 0.021 + np.arange(0, duration, 1 / radar_hz)
    radar = radar + rng.uniform(-jitter, jitter, radar.size)
    events = [(t + rng.uniform(0.015, 0.035), 'image', t) for t in cam]
    events += [(t + rng.uniform(0.005, 0.025), 'radar', t) for t in radar]
    events.sort()
    return cam, radar, events


def expected_nearest(cam, radar, tol):
    """Brute force: image stamp -> nearest radar stamp within tolerance (or None)."""
    out = {}
    for t in cam:
        j = int(np.argmin(np.abs(radar - t)))
        out[t] = radar[j] if abs(radar[j] - t) <= tol else None
    return out


def feed(pairer, events, take=True):
    """Feed events in arrival order; with take=True a fast consumer takes every pair as it is ready."""
    pairs = []
    for _, kind, t in events:
        (pairer.add_image if kind == 'image' else pairer.add_radar)(t, f'{kind}@{t:.6f}')
        if take:
            p = pairer.take_latest()
            if p is not None:
                pairs.append(p)
    pairer.flush()
    if take and (p := pairer.take_latest()) is not None:
        pairs.append(p)
    return pairs


def test_stamp_to_seconds_duck_types():
    t = types.SimpleNamespace(sec=1_533_151_603, nanosec=500_000_001)
    assert stamp_to_seconds(t) == pytest.approx(1_533_151_603.500000001, abs=1e-6)
    assert stamp_to_seconds(types.SimpleNamespace(stamp=t)) == stamp_to_seconds(t)  # a Header
    assert stamp_to_seconds(types.SimpleNamespace(nanoseconds=2_500_000_000)) == 2.5  # rclpy Time
    assert stamp_to_seconds(3) == 3.0
    with pytest.raises(TypeError):
        stamp_to_seconds('12:00')


def test_stamp_to_seconds_on_a_real_header():
    from std_msgs.msg import Header
    h = Header()
    h.stamp.sec, h.stamp.nanosec = 10, 250_000_000
    assert stamp_to_seconds(h) == 10.25 and stamp_to_seconds(h.stamp) == 10.25


def test_12hz_camera_13hz_radar_every_image_gets_its_nearest_radar():
    cam, radar, events = streams()
    tol = 0.05
    pairer = RadarImagePairer(tolerance=tol)
    pairs = feed(pairer, events)
    want = expected_nearest(cam, radar, tol)
    assert all(r is not None for r in want.values())  # 38 ms max gap + jitter < 50 ms
    assert [p.stamp for p in pairs] == list(cam)  # every image, once, in order
    for p in pairs:
        assert p.radar.stamp == want[p.stamp]
        assert abs(p.radar_offset) <= tol and p.radar.msg == f'radar@{p.radar.stamp:.6f}'
        assert p.image.msg == f'image@{p.stamp:.6f}' and p.sweeps == (p.radar,)
    s = pairer.stats
    assert (s.images_in, s.radar_in, s.paired, s.taken) == (cam.size, radar.size, cam.size, cam.size)
    assert (s.unpaired_no_radar, s.dropped_stale, s.time_jumps, s.pending_images) == (0,) * 4
    assert (s.out_of_order_images, s.out_of_order_radar) == (0, 0)


def test_tight_tolerance_counts_unpaired_images():
    cam, radar, events = streams(seed=3)
    tol = 0.01
    pairer = RadarImagePairer(tolerance=tol)
    pairs = feed(pairer, events)
    want = expected_nearest(cam, radar, tol)
    n_expected = sum(r is not None for r in want.values())
    assert 0 < n_expected < cam.size
    assert all(p.radar.stamp == want[p.stamp] for p in pairs)
    s = pairer.stats
    assert s.paired == n_expected and s.unpaired_no_radar == cam.size - n_expected
    # Two images between the same two radar sweeps become ready in one call: the older pair is
    # superseded before anyone could take it (latest frame wins) and is counted, not lost silently.
    assert len(pairs) + s.dropped_stale == s.paired


def test_an_image_waits_for_the_next_radar_unless_told_not_to():
    pairer = RadarImagePairer(tolerance=0.05)
    pairer.add_radar(10.00, 'r0')
    assert pairer.add_image(10.03, 'img') is None  # r0 is 30 ms away, a nearer radar may still come
    pair = pairer.add_radar(10.04, 'r1')  # at/after the image: the choice is now final
    assert pair.radar.msg == 'r1' and pairer.take_latest() is pair
    eager = RadarImagePairer(tolerance=0.05, wait_for_next_radar=False)
    eager.add_radar(10.00, 'r0')
    assert eager.add_image(10.03, 'img').radar.msg == 'r0'


def test_latest_frame_wins_and_counts_drops():
    cam, radar, events = streams(duration=5.0)
    pairer = RadarImagePairer(tolerance=0.05)
    feed(pairer, events, take=False)  # a consumer that never keeps up
    s = pairer.stats
    assert s.paired == cam.size and s.dropped_stale == cam.size - 1
    last = pairer.take_latest()
    assert last.stamp == cam[-1] and pairer.take_latest() is None
    assert pairer.stats.taken == 1


def test_wait_for_pair_blocks_until_a_pair_is_ready():
    pairer = RadarImagePairer(tolerance=0.05)
    assert pairer.wait_for_pair(timeout=0.01) is None
    pairer.add_radar(1.0, 'r')
    timer = threading.Timer(0.05, lambda: pairer.add_image(1.0, 'img'))
    timer.start()
    pair = pairer.wait_for_pair(timeout=5.0)
    timer.join()
    assert isinstance(pair, Pair) and pair.image.msg == 'img'


def test_bag_loop_time_jump_resets_once_and_pairs_on_the_new_timeline():
    cam, radar, events = streams(duration=3.0)
    pairer = RadarImagePairer(tolerance=0.05)
    first = feed(pairer, events)
    again = feed(pairer, events)  # the bag restarts: stamps jump back 3 s
    s = pairer.stats
    assert s.time_jumps == 1 and s.paired == 2 * cam.size
    assert len(first) == len(again) == cam.size
    want = expected_nearest(cam, radar, 0.05)
    assert all(p.radar.stamp == want[p.stamp] for p in again)


def test_small_reordering_is_not_a_jump():
    pairer = RadarImagePairer(tolerance=0.05)
    pairer.add_radar(5.00, 'r0')
    pairer.add_radar(5.08, 'r2')
    pairer.add_radar(5.04, 'r1')  # late radar: inserted in order
    assert pairer.add_image(5.041, 'img').radar.msg == 'r1'
    assert pairer.add_image(5.02, 'older') is None  # an image older than the last one is ignored
    s = pairer.stats
    assert (s.out_of_order_radar, s.out_of_order_images, s.time_jumps) == (1, 1, 0)


def test_multi_sweep_window_is_anchored_at_the_nearest_radar():
    pairer = RadarImagePairer(tolerance=0.05, radar_sweeps=3)
    for i, t in enumerate((0.0, 0.077, 0.154, 0.231, 0.308)):
        pairer.add_radar(100 + t, f'r{i}')
    pair = pairer.add_image(100.2, 'img')  # nearest: r3 (31 ms); r4 is after it
    assert pair.radar.msg == 'r3'
    assert [s.msg for s in pair.sweeps] == ['r1', 'r2', 'r3']  # oldest first, ending at the nearest
    fresh = RadarImagePairer(tolerance=0.05, radar_sweeps=3)
    fresh.add_radar(100.0, 'r0')
    fresh.add_radar(100.077, 'r1')
    assert [s.msg for s in fresh.add_image(100.07, 'img').sweeps] == ['r0', 'r1']  # fewer when fewer exist


def test_history_bounds_the_radar_buffer():
    pairer = RadarImagePairer(tolerance=0.05, radar_sweeps=20, history=0.5)
    for i in range(100):
        pairer.add_radar(i / 13, i)
    pair = pairer.add_image(99 / 13, 'img')
    assert pair.radar.msg == 99
    assert len(pair.sweeps) == 7 and pair.sweeps[0].stamp >= 99 / 13 - 0.5


def test_camera_info_latest_or_matched():
    pairer = RadarImagePairer(tolerance=0.05)
    assert pairer.add_radar(1.0, 'r') is None
    pairer.add_camera_info(0.2, 'old_info')
    assert pairer.add_image(1.0, 'img').camera_info.msg == 'old_info'  # latest, whatever its stamp
    strict = RadarImagePairer(tolerance=0.05, match_camera_info=True)
    strict.add_radar(1.0, 'r')
    strict.add_radar(1.077, 'r2')
    assert strict.add_image(1.0, 'img') is None  # waits for its camera_info
    assert strict.add_camera_info(1.0, 'info').camera_info.msg == 'info'
    assert strict.add_image(1.12, 'img2') is None   # 43 ms after r2, more than half a radar period
    strict.add_camera_info(1.5, 'far_info')  # stamped past image + tolerance: no match will come
    assert strict.stats.pending_images == 1  # ... but the radar choice is not final yet
    assert strict.add_radar(1.154, 'r3') is None
    s = strict.stats
    assert (s.paired, s.unpaired_no_camera_info) == (1, 1)


def test_dead_radar_counts_unpaired_and_can_still_emit():
    pairer = RadarImagePairer(tolerance=0.05, max_pending_images=3)
    for i in range(10):
        assert pairer.add_image(i / 12, i) is None
    s = pairer.stats
    assert s.unpaired_no_radar == 7 and s.pending_images == 3
    pairer.expire(now=9 / 12)  # images older than now - tolerance give up
    assert pairer.stats.unpaired_no_radar == 9
    degraded = RadarImagePairer(tolerance=0.05, emit_without_radar=True)
    degraded.add_image(1.0, 'img')
    pair = degraded.flush()
    assert pair.radar is None and pair.sweeps == () and pair.radar_offset is None
    assert degraded.stats.unpaired_no_radar == 1 and degraded.stats.paired == 0


def test_bad_parameters_are_refused():
    for kwargs, word in [({'tolerance': 0}, 'tolerance'), ({'radar_sweeps': 0}, 'radar_sweeps'),
                         ({'history': 0.01}, 'history'), ({'max_radar': 2, 'radar_sweeps': 2}, 'max_radar'),
                         ({'time_jump': 0.01}, 'time_jump'), ({'max_pending_images': 0}, 'pending')]:
        with pytest.raises(ValueError, match=word):
            RadarImagePairer(**kwargs)
    with pytest.raises(ValueError, match='finite'):
        RadarImagePairer().add_radar(float('nan'), 'r')


@pytest.mark.parametrize('policy', ['newest', 'match'])
def test_two_feeding_threads_and_a_consumer(policy):
    cam, radar, _ = streams(duration=60.0, seed=5)
    pairer = RadarImagePairer(tolerance=0.05, camera_info=policy)
    taken, stop = [], threading.Event()

    def produce(add, stamps, kind):
        for i, t in enumerate(stamps):
            add(t, f'{kind}{i}')

    def consume():
        while not stop.is_set() or pairer.stats.pending_images:
            p = pairer.wait_for_pair(timeout=0.01)
            if p is not None:
                taken.append(p)

    threads = [threading.Thread(target=produce, args=(pairer.add_image, cam, 'i')),
               threading.Thread(target=produce, args=(pairer.add_radar, radar, 'r')),
               threading.Thread(target=produce, args=(pairer.add_camera_info, cam, 'c')),
               threading.Thread(target=consume)]
    for th in threads:
        th.start()
    for th in threads[:3]:
        th.join()
    pairer.flush()
    stop.set()
    threads[3].join()
    if (p := pairer.take_latest()) is not None:
        taken.append(p)
    s = pairer.stats
    assert (s.images_in, s.radar_in) == (cam.size, radar.size)
    # Every image is accounted for exactly once, and pairs come out in stamp order.
    assert s.paired + s.unpaired_no_radar + s.out_of_order_images + s.pending_images == cam.size
    assert s.paired == s.taken + s.dropped_stale == len(taken) + s.dropped_stale
    assert all(a.stamp < b.stamp for a, b in zip(taken, taken[1:]))
    assert all(abs(p.radar_offset) <= 0.05 for p in taken)


def test_images_pending_at_a_time_jump_are_settled_not_lost():
    pairer = RadarImagePairer(tolerance=0.05)
    pairer.add_radar(10.0, 'r_old')
    assert pairer.add_image(10.03, 'img_old') is None  # pending: waits for a radar after it
    pairer.add_radar(0.0, 'r_new')  # the bag restarts
    s = pairer.stats
    assert (s.time_jumps, s.paired, s.pending_images) == (1, 1, 0)
    assert pairer.take_latest().radar.msg == 'r_old'
    assert pairer.add_image(0.01, 'img_new') is None  # the image stream's own jump: no second reset
    assert pairer.flush().radar.msg == 'r_new' and pairer.stats.time_jumps == 1


def test_an_image_near_the_newest_sweep_pairs_at_once_when_no_later_sweep_can_be_nearer():
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairer.add_radar(10.000, 'r0')
    pairer.add_radar(10.077, 'r1')                          # 13 Hz: the next sweep is ~10.154
    pairer.add_camera_info(10.090, 'info_near')
    pair = pairer.add_image(10.090, 'near')                  # 13 ms after r1: 10.154 cannot be nearer
    assert pair is not None and pair.radar.msg == 'r1' and pair.camera_info.msg == 'info_near'
    assert pairer.add_image(10.120, 'far') is None           # 43 ms after r1: 10.154 may be nearer
    assert pairer.add_camera_info(10.120, 'info_far') is None
    assert pairer.add_radar(10.154, 'r2').radar.msg == 'r2'
    # The image's own camera_info may land after it (another topic): an early pair waits for it.
    assert pairer.add_image(10.170, 'late_info') is None     # 16 ms after r2, but its info is not in
    pair = pairer.add_camera_info(10.170, 'info_late')
    assert pair.radar.msg == 'r2' and pair.camera_info.msg == 'info_late'
    single = RadarImagePairer(tolerance=0.08)                # one sweep: the radar period is unknown
    single.add_radar(10.0, 'r0')
    assert single.add_image(10.001, 'img') is None


def test_waiting_for_the_nearest_radar_costs_at_most_half_a_radar_period():
    cam, radar, events = streams(duration=20.0, seed=4)
    rng = np.random.default_rng(5)   # each image's camera_info lands within 2 ms of it, before or after
    events = sorted(events + [(a + rng.uniform(-0.002, 0.002), 'info', t) for a, k, t in events if k == 'image'])
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    on_arrival, waits, pending = 0, [], {}
    for arrival, kind, t in events:
        if kind == 'image':
            pending[t] = arrival
            if pairer.add_image(t, t) is not None:
                on_arrival += 1
        elif kind == 'info':
            pairer.add_camera_info(t, t)
        else:
            pairer.add_radar(t, t)
        pair = pairer.take_latest()
        if pair is not None:
            waits.append(arrival - pending.pop(pair.stamp))
    want = expected_nearest(cam, radar, 0.08)
    prompt = sum(w <= 0.0025 for w in waits)                 # paired on arrival, or with their info
    assert prompt >= 0.35 * cam.size, prompt                  # about half need not wait for radar at all
    # The others wait for the next sweep: at most half a period (38 ms) + its transport (<= 25 ms).
    assert max(waits) < 0.5 / 13 + 0.025 + 0.004 and np.median(waits) < 0.02
    assert len(waits) == cam.size and pairer.stats.paired == cam.size
    assert all(r is not None for r in want.values())
    assert on_arrival < cam.size                              # some images did get their info late


def test_tolerance_at_either_end_of_the_node_range_is_valid():
    for tol in (0.001, 1.0):   # the node's sync_tolerance range: history and time_jump follow it
        pairer = RadarImagePairer(tolerance=tol)
        assert pairer.time_jump > tol and pairer.history >= tol
        pairer.add_radar(5.0, 'r')
        assert pairer.add_image(5.0, 'img').radar.msg == 'r'


def test_retune_applies_to_pending_images_and_refuses_bad_values():
    pairer = RadarImagePairer(tolerance=0.05)
    pairer.add_radar(1.0, 'r0')
    assert pairer.add_image(1.03, 'img') is None              # waiting for a possibly nearer sweep
    pair = pairer.retune(wait_for_next_radar=False)            # no waiting now: settled at once
    assert pair is not None and pair.radar.msg == 'r0'
    pairer.retune(tolerance=0.2, radar_sweeps=2)
    assert (pairer.tolerance, pairer.radar_sweeps, pairer.wait_for_next_radar) == (0.2, 2, False)
    with pytest.raises(ValueError, match='tolerance'):
        pairer.retune(tolerance=0.0)
    assert pairer.tolerance == 0.2                              # unchanged after a refused retune


# ------------------------------------------------------------------ CameraInfo matched by stamp ('match')

def with_infos(events, offset=0.0, lag=(-0.002, 0.002), seed=7, every=1, size=None):
    """events plus one CameraInfo per `every` images, stamped image + offset, landing `lag` s around it."""
    rng = np.random.default_rng(seed)
    images = [(a, t) for a, k, t in events if k == 'image']
    infos = [(a + rng.uniform(*lag), 'info', t + offset) for a, t in images[::every]]
    return sorted(events + infos)


def feed_all(pairer, events, size_at=None):
    """Feed image / radar / info events; a fast consumer takes each pair. Returns (pairs, image arrival by
    stamp, pair release time by stamp)."""
    pairs, arrived, released = [], {}, {}
    for arrival, kind, t in events:
        if kind == 'image':
            arrived[t] = arrival
            pairer.add_image(t, ('image', t, size_at(t) if size_at else None))
        elif kind == 'info':
            pairer.add_camera_info(t, ('info', t, size_at(t) if size_at else None))
        else:
            pairer.add_radar(t, ('radar', t))
        if (p := pairer.take_latest()) is not None:
            pairs.append(p)
            released[p.stamp] = arrival
    pairer.flush()
    if (p := pairer.take_latest()) is not None:
        pairs.append(p)
        released[p.stamp] = events[-1][0]
    return pairs, arrived, released


def test_match_gives_every_image_its_own_camera_info_whichever_topic_lands_first():
    cam, radar, events = streams(duration=20.0, seed=11)
    # Each CameraInfo (same stamp as its image) lands up to 5 ms before or after the image.
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairs, _, _ = feed_all(pairer, with_infos(events, lag=(-0.005, 0.005)))
    assert [p.stamp for p in pairs] == list(cam)             # every image, once: none lost to the slot
    assert all(p.camera_info.stamp == p.stamp and not p.camera_info_fallback for p in pairs)
    want = expected_nearest(cam, radar, 0.08)
    assert all(p.radar.stamp == want[p.stamp] for p in pairs)
    s = pairer.stats
    assert (s.dropped_stale, s.camera_info_fallback, s.unpaired_no_radar) == (0, 0, 0)
    # 'newest' (the old behaviour) attaches the previous image's CameraInfo whenever the image wins the race.
    newest = RadarImagePairer(tolerance=0.08)
    old, _, _ = feed_all(newest, with_infos(events, lag=(-0.005, 0.005)))
    assert any(p.camera_info is None or p.camera_info.stamp != p.stamp for p in old)


def test_match_takes_the_nearest_camera_info_within_tolerance():
    # A driver stamping CameraInfo 12 ms after its image: the nearest one within tolerance is used.
    cam, _, events = streams(duration=5.0, seed=12)
    pairer = RadarImagePairer(tolerance=0.05, camera_info='match')
    pairs, _, _ = feed_all(pairer, with_infos(events, offset=0.012))
    assert [p.stamp for p in pairs] == list(cam)
    assert all(p.camera_info.stamp == pytest.approx(p.stamp + 0.012) for p in pairs)
    assert pairer.stats.camera_info_fallback == 0
    # Nearest, not newest: with two candidates within tolerance the closer one wins.
    two = RadarImagePairer(tolerance=0.05, camera_info='match')
    two.add_radar(1.0, 'r0')
    two.add_radar(1.077, 'r1')
    two.add_camera_info(0.99, 'near')
    two.add_camera_info(1.03, 'far')
    assert two.add_image(1.0, 'img').camera_info.msg == 'near'


def test_a_camera_info_that_lands_after_its_image_is_waited_for_and_the_slot_kept():
    pairer = RadarImagePairer(tolerance=0.05, camera_info='match')
    pairer.add_radar(1.000, 'r0')
    pairer.add_radar(1.077, 'r1')
    # The very first image, before any CameraInfo (the first-frame race): it waits, radar already final.
    assert pairer.add_image(1.0, 'img0') is None
    pair = pairer.add_camera_info(1.0, 'info0')
    assert pair.image.msg == 'img0' and pair.camera_info.msg == 'info0' and not pair.camera_info_fallback
    assert pairer.take_latest() is pair
    pairer.add_radar(1.154, 'r2')
    pairer.add_radar(1.231, 'r3')
    # img1's CameraInfo is so late that img2 arrives first: img1 keeps waiting (not settled by img2's
    # arrival), is released alone when its CameraInfo comes, and is not superseded by img2.
    assert pairer.add_image(1.0833, 'img1') is None
    assert pairer.add_image(1.1667, 'img2') is None
    assert pairer.add_camera_info(1.0833, 'info1').image.msg == 'img1'
    assert pairer.take_latest().camera_info.msg == 'info1'
    assert pairer.add_camera_info(1.1667, 'info2').camera_info.msg == 'info2'
    assert pairer.take_latest().image.msg == 'img2'
    s = pairer.stats
    assert (s.paired, s.dropped_stale, s.camera_info_fallback, s.pending_images) == (3, 0, 0, 0)


def test_a_latched_camera_info_never_stalls_and_is_counted():
    cam, radar, events = streams(duration=10.0, seed=13)
    # Published once, before the images, with a stamp of its own (a latching driver).
    latched = [(events[0][0] - 1.0, 'info', cam[0] - 3.0)] + events
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairs, arrived, released = feed_all(pairer, latched)
    s = pairer.stats
    # At start an image cannot tell a latched CameraInfo from a late one: the first images wait until two
    # more images arrived with no CameraInfo, then the newest of them wins the slot (latest wins). From
    # then on nobody waits for a CameraInfo: every image is served with the latched one.
    assert len(pairs) >= cam.size - 2 and s.dropped_stale <= 2
    assert all(p.camera_info.stamp == cam[0] - 3.0 and p.camera_info_fallback for p in pairs)
    assert s.camera_info_fallback == s.paired == cam.size
    waits = [released[p.stamp] - arrived[p.stamp] for p in pairs[1:]]
    assert max(waits) < 0.5 / 13 + 0.025 + 0.004                # no longer than a wait for radar
    # Latched with its first image's stamp: that image is matched, the rest fall back, nothing stalls.
    once = [(events[0][0] - 0.01, 'info', cam[0])] + events
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairs, arrived, released = feed_all(pairer, once)
    assert len(pairs) >= cam.size - 2 and pairs[0].camera_info_fallback is False
    assert pairer.stats.camera_info_fallback >= cam.size - 3
    assert max(released[p.stamp] - arrived[p.stamp] for p in pairs[1:]) < 0.5 / 13 + 0.025 + 0.004


def test_a_slower_camera_info_is_used_without_waiting():
    cam, _, events = streams(duration=10.0, seed=14)
    slow = with_infos(events, every=12, lag=(0.010, 0.030))   # 1 Hz, each landing after its image
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairs, arrived, released = feed_all(pairer, slow)
    # As with a latched one, only the first images wait (see above); then none, and none is lost.
    assert len(pairs) >= cam.size - 2 and pairer.stats.dropped_stale <= 2
    assert pairs[-1].stamp == cam[-1] and [p.stamp for p in pairs[2:]] == list(cam[-(len(pairs) - 2):])
    waits = [released[p.stamp] - arrived[p.stamp] for p in pairs[1:]]
    assert max(waits) < 0.5 / 13 + 0.025 + 0.004
    assert pairer.stats.camera_info_fallback >= cam.size - 2 * 10   # the others had one within tolerance


def test_a_resolution_change_pairs_each_image_with_the_camera_info_of_its_size():
    cam, _, events = streams(duration=4.0, seed=15)
    change = cam[20]

    def size_at(t):
        return (450, 800) if t < change else (900, 1600)

    # Images land before their CameraInfo: the first image at the new size must not take the old one.
    pairer = RadarImagePairer(tolerance=0.08, camera_info='match')
    pairs, _, _ = feed_all(pairer, with_infos(events, lag=(0.002, 0.006)), size_at=size_at)
    assert [p.stamp for p in pairs] == list(cam)
    assert all(p.camera_info.msg[2] == p.image.msg[2] for p in pairs)
    assert any(p.image.msg[2] == (900, 1600) for p in pairs)
    newest = RadarImagePairer(tolerance=0.08)                 # the old behaviour got one of them wrong
    pairs, _, _ = feed_all(newest, with_infos(events, lag=(0.002, 0.006)), size_at=size_at)
    assert any(p.camera_info is not None and p.camera_info.msg[2] != p.image.msg[2] for p in pairs)


def test_camera_info_policy_is_checked():
    with pytest.raises(ValueError, match='camera_info'):
        RadarImagePairer(camera_info='closest')
    with pytest.raises(ValueError, match='contradicts'):
        RadarImagePairer(camera_info='match', match_camera_info=True)
    assert RadarImagePairer(match_camera_info=True).camera_info == 'strict'


# ------------------------------------------------------------------ time going backwards

def test_old_timeline_messages_in_flight_do_not_cause_a_second_reset():
    pairer = RadarImagePairer(tolerance=0.05, camera_info='match')
    cam, radar, events = streams(duration=3.0, seed=16)
    feed_all(pairer, with_infos(events))
    # The bag restarts: the image arrives on the new timeline first, then a radar of the old one lands.
    pairer.add_image(cam[0], 'new0')
    assert pairer.add_radar(radar[-1] + 0.077, 'old radar') is None
    pairs, _, _ = feed_all(pairer, with_infos(events)[1:])
    s = pairer.stats
    assert s.time_jumps == 1 and s.stale_timeline == 1
    assert len(pairs) >= cam.size - 1


def test_a_short_bag_loop_below_time_jump_recovers():
    # A 0.6 s bag looping: the stamps go back by less than time_jump (1 s), so it is no jump, but images
    # that keep coming from the past must not be ignored forever.
    cam, radar, events = streams(duration=0.6, seed=17)
    pairer = RadarImagePairer(tolerance=0.05, camera_info='match')
    first, _, _ = feed_all(pairer, with_infos(events))
    again, _, _ = feed_all(pairer, with_infos(events))
    s = pairer.stats
    assert s.time_jumps == 1 and len(first) == cam.size
    assert len(again) >= cam.size - REORDER_RESET and again[-1].stamp == cam[-1]
    assert s.paired + s.unpaired_no_radar + s.out_of_order_images + s.pending_images == 2 * cam.size


def test_a_latched_camera_info_survives_a_time_jump():
    pairer = RadarImagePairer(tolerance=0.05, camera_info='match')
    pairer.add_camera_info(5.0, 'latched')
    for i in range(5):
        pairer.add_radar(10 + i / 13, 'r')
        pairer.add_image(10 + i / 12, 'img')
    pairer.add_radar(0.0, 'r_new')                             # jump: the CameraInfo will not come again
    pairer.add_radar(0.077, 'r_new2')
    pair = pairer.add_image(0.01, 'img_new')
    assert pair is not None and pair.camera_info.msg == 'latched' and pair.camera_info_fallback
