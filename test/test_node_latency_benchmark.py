"""benchmarks/node_latency.py's bookkeeping: how the stream is cut into parts and each part paired
with the bare blocks beside it (the times themselves are never asserted)."""
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import node_latency  # noqa: E402


def stream(seconds=3.0, rate=12.0, radar_rate=13.0):
    images = [(i / rate, 'image', 1000 + i / rate, None) for i in range(int(seconds * rate))]
    radar = [(0.021 + j / radar_rate, 'radar', 1000.021 + j / radar_rate, None)
             for j in range(int((seconds - 0.021) * radar_rate) + 1)]
    return sorted(images + radar, key=lambda e: e[0])


@pytest.mark.parametrize('rounds', [1, 3, 4])
def test_parts_keep_every_event_in_order_and_split_by_send_time(rounds):
    schedule = stream()
    parts = node_latency.split_schedule(schedule, 3.0, rounds)
    assert len(parts) == rounds
    assert [e for part in parts for e in part] == schedule
    for k, part in enumerate(parts):
        assert all(k * 3.0 / rounds <= e[0] < (k + 1) * 3.0 / rounds for e in part)
        assert any(e[1] == 'image' for e in part)


def test_each_part_is_compared_with_the_bare_blocks_beside_it():
    parts = [([1.0, 2.0, 3.0, 4.0], 10.0, 12.0), ([5.0, 6.0], 20.0, 21.0)]
    received = {1.0: 11.0, 3.0: 11.5, 5.0: 20.5, 6.0: 21.0}
    blocks = [[200.0, 200.0], [300.0, 300.0], [50.0, 50.0]]
    first, second = node_latency.paired_rounds(parts, received, blocks, rate=12.0)
    # part 1 against blocks 0 and 1 (p50 250 ms: 4 Hz), part 2 against blocks 1 and 2 (p50 175 ms)
    assert first['depth_received'] == 2 and first['duration_s'] == 2.0
    assert first['bare_ms_p50'] == pytest.approx(250.0) and first['bare_rate_hz'] == pytest.approx(4.0)
    assert first['fraction'] == pytest.approx(2 / (4.0 * 2.0))
    assert second['bare_ms_p50'] == pytest.approx(175.0)
    assert second['fraction'] == pytest.approx(2 / (1e3 / 175.0 * 1.0))
    # a bare path faster than the camera is capped at the camera rate
    fast = node_latency.paired_rounds(parts[:1], received, [[10.0], [10.0]], rate=12.0)[0]
    assert fast['bare_rate_hz'] == 12.0


def test_latency_split_reads_the_nodes_per_frame_added_latency():
    values = {'pairing_latency_p50_ms': '8.0', 'slot_latency_p50_ms': '0.5', 'inference_latency_p50_ms': '210.8',
              'work_latency_p50_ms': '5.0', 'total_latency_p50_ms': '232.8', 'added_latency_p50_ms': '19.6',
              'added_latency_p95_ms': '140.2', 'slot_latency_p95_ms': ''}
    split = node_latency.latency_split(values, end_to_end_p50=236.0, bare_p50=211.4)
    # added is the node's own per-frame figure, not the sum of the parts' p50s (13.5) nor total - inference (22.0)
    assert split['added'] == pytest.approx(19.6)
    assert split['node_work'] == pytest.approx(5.0) and split['transport'] == pytest.approx(3.2)
    assert split['inference_slowdown'] == pytest.approx(210.8 - 211.4)
    assert node_latency.latency_value(values, 'added', 95) == pytest.approx(140.2)
    assert node_latency.latency_value(values, 'slot', 95) is None       # '' = no frames yet
    assert 'added' not in node_latency.latency_split({}, None, None)
