"""benchmarks/latency.py on a tiny input: the rows it reports, not the times (never asserted)."""
import json
import sys

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / 'benchmarks'))
import latency  # noqa: E402


@pytest.mark.parametrize('n', [1, 7, 40])
def test_radar_with_points_has_exactly_n(n):
    radar = torch.zeros(1, 4, 32, 48)
    radar[0, :, 20, 5:15] = torch.tensor([12.0, 3.0, 0.5, -0.5])[:, None]   # 10 points
    out = latency.radar_with_points(radar, n, seed=1)
    occupied = out[0, 0] > 0
    assert int(occupied.sum()) == n
    assert torch.equal(latency.radar_with_points(radar, n, seed=1), out)       # seeded
    # Each point carries the channels of one of the frame's own points; none outside their rows.
    assert set(torch.nonzero(occupied)[:, 0].tolist()) == {20}
    assert torch.all(out[0, :, occupied] == torch.tensor([12.0, 3.0, 0.5, -0.5])[:, None])


def test_radar_with_points_refuses_an_empty_frame():
    with pytest.raises(ValueError, match='no radar points'):
        latency.radar_with_points(torch.zeros(1, 4, 8, 8), 3)


def test_radarnet_rows_at_30_60_and_120_points(tmp_path):
    out = tmp_path / 'lat'
    assert latency.main(['--models', 'radarnet', '--sizes', '64x96', '--repeats', '1', '--warmup', '1',
                         '--paths', 'torch eager fp32', '--goal-rounds', '0', '--out', str(out)]) == 0
    report = json.loads((out / 'latency.json').read_text())
    rows = [r for r in report['results'] if r['path'] == 'torch eager fp32']
    assert [r['radar_points'] for r in rows] == list(latency.RADARNET_POINTS)
    gmacs = [r['gmacs'] for r in rows]
    assert gmacs[0] < gmacs[1] < gmacs[2]                     # stage 1 runs once per point
    assert '| radarnet (120 radar points) | 64x96 | torch eager fp32 |' in (out / 'latency.md').read_text()
