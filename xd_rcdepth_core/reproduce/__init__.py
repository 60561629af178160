"""The whole paper as one resumable plan (`xd-rcdepth reproduce`).

    paper.py     the paper's numbers (docs/paper.md): main results, fusion and distillation ablations
    plan.py      the stages, their budgets (scales tiny / full), states and time estimates
    runs.py      training runs as resumable units: finished-run detection, run locks, torchrun
    execute.py   running the plan: skip what finished, resume what started, markers, the report last
    report.py    report.md / report.json / figures: every measured number beside the paper's

    from xd_rcdepth_core.reproduce import Options, TINY, build_plan, execute
    plan = build_plan(Options(out=Path('runs/tiny'), scale=TINY, configs=Path('config')))
    execute(plan)
"""
from .execute import Interrupted, execute
from .plan import FULL, SCALE_BY_NAME, SCALES, TINY, Options, build_plan, format_plan
from .report import write_report

__all__ = ['Options', 'TINY', 'FULL', 'SCALES', 'SCALE_BY_NAME', 'build_plan', 'format_plan', 'execute',
           'Interrupted', 'write_report']
