"""`xd-rcdepth reproduce`: the tiny plan end to end (synthetic nuScenes-format set -> cache -> teacher,
CaFNet_single, the four students, the fusion ablation, LiRCDepth, RadarNet's two stages -> evaluation and
timing of every model -> report beside the paper's numbers), interrupted inside a training stage and
finished by a second invocation that redoes nothing finished; the plan of --dry-run (tiny and full,
torchrun commands) without touching the disk; bad inputs as one error line."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from xd_rcdepth_core import cli as cli_module
from xd_rcdepth_core.commands import reproduce as reproduce_cmd
from xd_rcdepth_core.data.nuscenes.files import NUSCENES_TABLES
from xd_rcdepth_core.models import build_model, save_checkpoint
from xd_rcdepth_core.reproduce import Interrupted
from xd_rcdepth_core.reproduce import paper as P
from xd_rcdepth_core.reproduce.report import FIGURES
from xd_rcdepth_core.reproduce.runs import Launch, torchrun_argv

TRAINED = ('teacher', 'teacher_single', 'student_none', 'student_xkd', 'student_d2kd', 'student_both', 'fusion_add',
           'fusion_concat', 'fusion_attention', 'lircdepth')


@pytest.fixture(autouse=True)
def _one_thread_and_flags_restored():
    """One torch thread (the plan trains ten small runs in this process: no spinning second thread on a
    busy 2-core machine); the Trainer's process-wide deterministic mode is put back afterwards."""
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])


def run_cli(argv, capsys):
    rc = cli_module.main(['reproduce', *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def stage_names(text: str) -> list:
    """The stage column of a printed plan."""
    return re.findall(r'^\s+\d+\s+(\S+)\s', text, flags=re.M)


def fake_nuscenes_root(folder: Path) -> Path:
    """Table files (empty) of v1.0-trainval and v1.0-test: enough for --root's check and a dry run."""
    for version in ('v1.0-trainval', 'v1.0-test'):
        (folder / version).mkdir(parents=True)
        for table in NUSCENES_TABLES:
            (folder / version / f'{table}.json').write_text('[]')
    return folder


def test_bad_inputs_are_one_error_line(tmp_path, capsys):
    out = tmp_path / 'out'
    cases = [
        ([], '--root is required with --scale full'),
        (['--scale', 'huge'], "--scale must be one of tiny, full, got 'huge'"),
        (['--root', tmp_path / 'nowhere'], 'does not exist'),
        (['--scale', 'tiny', '--root', tmp_path], '--root is for --scale full'),
        (['--scale', 'tiny', '--teacher', tmp_path / 'missing.pt'], 'no such file'),
        (['--scale', 'tiny', '--nnodes', '2'], '--rdzv-endpoint'),
    ]
    for extra, message in cases:
        rc, _, err = run_cli(['--out', out, *extra], capsys)
        assert rc == 2 and message in err, (extra, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith('xd-rcdepth reproduce: error:')
    student = save_checkpoint(tmp_path / 'student.pt', build_model('xd_rcdepth', decoder_channels=[32, 16, 16, 8, 8],
                                                                   bottleneck_channels=32, daspp_growth=16))
    rc, _, err = run_cli(['--out', out, '--scale', 'tiny', '--teacher', student], capsys)
    assert rc == 2 and "holds a 'xd_rcdepth' model; the teacher is a CaFNet" in err
    assert not out.exists()


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / 'paper'
    rc, text, _ = run_cli(['--scale', 'tiny', '--out', out, '--dry-run'], capsys)
    assert rc == 0 and not out.exists()
    assert stage_names(text) == ['synth', 'prepare', *TRAINED, *(f'eval_{s}' for s in TRAINED),
                                 *(f'latency_{s}' for s in TRAINED), 'report']
    assert 'to do: 33 of 33 stages' in text and 'assumed s/step (tiny, cpu)' in text
    assert 'xd-rcdepth train --recipe distill' in text           # the commands each stage runs

    # The full plan on (empty) nuScenes tables, as four GPUs would run it: the references' budgets,
    # torchrun commands, GPU-hours, disk.
    root = fake_nuscenes_root(tmp_path / 'nuscenes')
    rc, text, _ = run_cli(['--root', root, '--out', out, '--dry-run', '--device', 'cuda', '--gpus', '4'], capsys)
    assert rc == 0 and not out.exists()
    assert 'prepare_trainval' in text and 'prepare_test' in text and '--version v1.0-test' in text
    assert '685,600 steps' not in text and '171,400 steps' in text     # 200 epochs of 27,430 / (8 x 4)
    assert '--nproc_per_node=4 --standalone -m xd_rcdepth_core.commands.train --recipe teacher' in text
    assert 'GPU-hours' in text and 'cache ~' in text and 'checkpoints ~' in text

    # An authors' file as the teacher (not our checkpoint: it is imported first); no teacher training.
    authors = tmp_path / 'model-120000-best_mae_1.76278'
    authors.write_bytes(b'not one of our checkpoints')
    rc, text, _ = run_cli(['--root', root, '--out', out, '--dry-run', '--teacher', authors], capsys)
    assert rc == 0 and 'import-weights --format cafnet-official' in text
    names = stage_names(text)
    assert 'teacher_import' in names and 'teacher' not in names and 'teacher_single' not in names
    assert not out.exists()


def test_torchrun_command_of_one_and_several_machines():
    one = torchrun_argv(Launch(nproc_per_node=2), 'distill', 'config/train_distill.yaml', ['distill.kd=xkd'],
                        resume=True, run_name='student_xkd', python='python')
    assert one == ['python', '-m', 'torch.distributed.run', '--nproc_per_node=2', '--standalone', '-m',
                   'xd_rcdepth_core.commands.train', '--recipe', 'distill', '--quiet', '--resume', '--config',
                   'config/train_distill.yaml', 'distill.kd=xkd']
    many = torchrun_argv(Launch(8, nnodes=2, rdzv_endpoint='host:29400', rdzv_id='paper'), 'teacher', 'c.yaml', [],
                         resume=False, run_name='teacher', python='python')
    assert '--nnodes=2' in many and '--rdzv_endpoint=host:29400' in many and '--rdzv_id=paper-teacher' in many
    assert '--standalone' not in many and '--resume' not in many


def _mtimes(out: Path, stages) -> dict:
    files = [out / 'stages' / 'synth.json', out / 'stages' / 'prepare.json', out / 'cache' / 'index.json']
    for s in stages:
        files += [out / 'runs' / s / 'summary.json', out / 'runs' / s / 'checkpoints' / 'best.pt']
    return {str(f): f.stat().st_mtime_ns for f in files}


def test_tiny_plan_end_to_end_and_resumed_after_an_interruption(tmp_path, capsys):
    out = tmp_path / 'paper'
    try:
        _tiny_plan(out, tmp_path, capsys)
    finally:      # the runs' checkpoints take 2.7 GB (four of a 39 M-parameter CaFNet with its AdamW state)
        for ckpt in out.glob('runs/*/checkpoints/*.pt'):
            ckpt.unlink()


def _tiny_plan(out, tmp_path, capsys):
    argv = ['reproduce', '--scale', 'tiny', '--out', str(out), '--radarnet']
    args = cli_module.build_parser(argv=argv).parse_args(argv)

    # 1. Killed inside the X-KD student, after its first step (its checkpoint of that step is on disk).
    with pytest.raises(Interrupted, match='student_xkd stopped at step 1 of 2'):
        reproduce_cmd.run(args, stop_after={'student_xkd': 1})
    capsys.readouterr()
    finished = ('teacher', 'teacher_single', 'student_none')
    for s in finished:
        assert json.loads((out / 'runs' / s / 'summary.json').read_text())['finished']
    killed = out / 'runs' / 'student_xkd'
    assert (killed / 'checkpoints' / 'last.pt').is_file()
    assert not json.loads((killed / 'summary.json').read_text())['finished']
    before = _mtimes(out, finished)

    # 2. The same command again: what finished is skipped, the killed run resumes, the rest runs.
    rc, text, _ = run_cli(['--scale', 'tiny', '--out', out, '--radarnet'], capsys)
    assert rc == 0
    for s in ('synth', 'prepare', *finished):
        assert f'] {s}: finished earlier; skipped' in text, s
    assert 'student_xkd: XD-RCDepth, X-KD (resuming from its last checkpoint)' in text
    assert 'resumed' in text and 'at step 1 of 2' in text
    assert _mtimes(out, finished) == before                      # nothing finished was redone
    steps = [json.loads(line)['step'] for line in (killed / 'log.jsonl').read_text().splitlines()
             if 'loss/total' in line]
    assert steps == [1, 2]                                        # each step trained once

    # 3. The report: every paper number with ours beside it and the difference.
    report = json.loads((out / 'report.json').read_text())
    rows = report['comparisons']
    assert all(r['ours'] is not None and r['diff'] is not None for r in rows), [r for r in rows if r['ours'] is None]
    assert {r['row'] for r in rows if r['table'] == 'results'} == set(P.RESULTS)
    assert {r['row'] for r in rows if r['table'] == 'fusion'} == set(P.FUSION)
    assert {r['row'] for r in rows if r['table'] == 'distillation'} == set(P.DISTILLATION_MAE_80) | {'reduction'}
    both = next(r for r in rows if r['table'] == 'results' and r['row'] == 'xd_rcdepth_both' and r['quantity'] == 'mae')
    assert both['paper'] == 2.054 and both['diff'] == pytest.approx(both['ours'] - 2.054)
    assert report['models']['radarnet_stage1']['training']['finished']     # trained, not evaluated: an intermediate
    for stage in (*TRAINED, 'radarnet'):
        model = report['models'][stage]
        assert set(model['metrics']) == {'50', '70', '80'} and model['latency']['forward_ms']['median'] > 0
        assert model['training']['finished'] and model['curves']['step']
    md = (out / 'report.md').read_text()
    for needle in ('## Main results', '## Fusion ablation', '## Distillation ablation', '## Latency', '## Training',
                   'XD-RCDepth, X-KD + D2-KD', '| 2.054 |', '| 1.763 |', '| 2.248 |', '| 7.97 |', '| 2.179 |',
                   'Scale tiny'):
        assert needle in md, needle
    for name in FIGURES:
        assert (out / 'figures' / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    # 4. Everything is now done: the plan says so and estimates nothing left.
    rc, text, _ = run_cli(['--scale', 'tiny', '--out', out, '--radarnet', '--dry-run'], capsys)
    assert rc == 0 and 'to do: 1 of 37 stages' in text          # the report is always rewritten
    assert text.count('  done') == 36

    # 5. Another scale into the same folder is refused instead of mixing results.
    root = fake_nuscenes_root(tmp_path / 'nuscenes')
    rc, _, err = run_cli(['--root', root, '--out', out, '--radarnet', '--device', 'cpu'], capsys)
    assert rc == 2 and 'holds a plan made with other settings' in err and "scale 'tiny' -> 'full'" in err
