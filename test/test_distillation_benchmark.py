"""benchmarks/distillation.py: the plan in parallel processes gives the serial plan's numbers, runs that
need no teacher do not wait for it, and the table merges what finished (plan `smoke`: tiny budgets)."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
import distillation  # noqa: E402


def _results(out):
    return json.loads((out / 'smoke' / 'results.json').read_text())


def test_jobs_schedule_runs_and_match_the_serial_plan(tmp_path, capsys):
    par, ser = tmp_path / 'par', tmp_path / 'ser'
    argv = ['--plan', 'smoke', '--only', 'none', 'd2kd', '--threads', '1']
    assert distillation.main([*argv, '--out', str(par), '--jobs', '2']) == 0
    log = capsys.readouterr().out
    # the no-KD student started with the teacher; the distilled one after the teacher targets
    order = [m.group(1) for m in re.finditer(r'\] (started \w+|\w+: finished)', log)]
    assert order.index('started none_s0') < order.index('teacher: finished')
    assert order.index('targets: finished') < order.index('started d2kd_s0')
    for name in ('teacher', 'targets', 'none_s0', 'd2kd_s0'):
        assert (par / 'smoke' / 'logs' / f'{name}.log').is_file()
    table = _results(par)['table']
    assert {'teacher', 'none', 'd2kd'} <= set(table) and table['d2kd']['gain_80']['n'] == 1

    assert distillation.main([*argv, '--out', str(ser)]) == 0
    capsys.readouterr()
    for run in ('teacher', 'none', 'd2kd'):   # CPU training is deterministic: the same numbers
        assert _results(par)['runs'][run]['0']['by_range']['80'] == _results(ser)['runs'][run]['0']['by_range']['80']

    assert distillation.main([*argv, '--out', str(par), '--status']) == 0
    assert '3 of 3 runs finished, 0 remaining' in capsys.readouterr().out


def test_a_failed_teacher_skips_the_distilled_runs(tmp_path, capsys):
    """A run that fails is reported with its log, and what depends on it is not started."""
    out = tmp_path / 'out'
    bad = out / 'smoke' / 'runs' / 'teacher'
    bad.mkdir(parents=True)
    (bad / 'checkpoints').mkdir()
    (bad / 'checkpoints' / 'last.pt').write_bytes(b'not a checkpoint')    # resuming it fails
    assert distillation.main(['--plan', 'smoke', '--only', 'd2kd', '--threads', '1', '--out', str(out),
                              '--jobs', '2']) == 1
    log = capsys.readouterr().out
    assert re.search(r'teacher: FAILED \(exit \d+\)', log) and 'teacher.log' in log
    assert 'targets: not started (teacher failed)' in log and 'd2kd_s0: not started (targets failed)' in log
    assert 'the teacher is not finished yet' in log


def test_a_shorter_student_budget_is_its_own_experiment(tmp_path, capsys):
    assert distillation.main(['--plan', 'smoke', '--student-steps', '2', '--out', str(tmp_path), '--status']) == 0
    assert f'plan smoke in {tmp_path / "smoke-2steps"}:' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        distillation.main(['--plan', 'smoke', '--student-steps', '0', '--out', str(tmp_path)])
    assert exc.value.code == 2
    assert '--student-steps must be at least 1' in capsys.readouterr().err
