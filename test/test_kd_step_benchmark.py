"""benchmarks/kd_step.py runs every objective on a small input and writes its table and JSON."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
import kd_step  # noqa: E402


def test_kd_step_times_every_objective_and_restores_the_fast_path(tmp_path):
    from xd_rcdepth_core.distill.grouped_conv import fast_path_enabled
    assert kd_step.main(['--device', 'cpu', '--size', '32x64', '--batch', '2', '--steps', '1', '--threads', '1',
                         '--out', str(tmp_path)]) == 0
    rows = json.loads((tmp_path / 'kd_step.json').read_text())['rows']
    assert [r['objective'] for r in rows] == [label for _, label, _ in kd_step.ROWS]
    assert all(r['median_ms'] > 0 for r in rows)
    assert fast_path_enabled()      # the per-group row put training's path back
    assert '| X-KD, per-group double backward |' in (tmp_path / 'kd_step.md').read_text()
