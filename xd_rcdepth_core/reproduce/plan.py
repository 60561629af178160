"""The paper as a plan: its stages in order, each with its budget, time estimate, state and command.

Stages (``build_plan``):
    synth (tiny only)    the synthetic nuScenes-format set, scenes split train / val / test
    prepare_*            the cache: full = nuScenes v1.0-trainval (train, val) and v1.0-test (test), the
                         references' splits; tiny = the synthetic set's three splits
    teacher              CaFNet, then teacher_single: CaFNet_single (CaFNet fine-tuned with the single-sweep
                         L1, the teacher the paper's numbers belong to; docs/reference.md Part A 4.2);
                         or teacher_import: a given teacher (the authors' file imported, or ours)
    student_*            XD-RCDepth without distillation, with X-KD, with D2-KD, with both
    fusion_*             the fusion ablation's add / concat / attention students (FiLM is student_none)
    lircdepth            the LiRCDepth baseline
    radarnet_*           with ``radarnet``: RadarNet stage 1, then stage 2 (the paper's RadarNet row)
    eval_*, latency_*    every model on the test split at 50 / 70 / 80 m; its time per frame
    report               report.md / report.json / figures beside the paper's numbers

Budgets: ``full`` takes the references' settings from config/train_*.yaml (200 epochs, batch 8, ...);
``tiny`` runs the same stages for a few steps on small images and narrower networks. Time estimates
are steps x seconds per step per kind of run (plus validations, evaluation frames, preparation
samples): measured when this output folder already holds a run of that kind, else the assumption
``ASSUMED`` states (said in the printed plan).
"""
from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..data.cache import CacheIndex
from ..data.nuscenes.adapter import REFERENCE_SAMPLE_COUNTS
from ..models import build_model
from ..training import load_config
from ..training.config import TrainConfig
from .runs import Launch, finished_summary, last_checkpoint, read_run_log, seconds_per_step, torchrun_argv

SCALES = ('tiny', 'full')
NUSCENES_VERSIONS = {'trainval': 'v1.0-trainval', 'test': 'v1.0-test'}


# ----------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    name: str
    title: str
    synth: Optional[dict]            # tiny: the synthetic nuScenes-format set written first
    prepare_options: dict            # nuScenes adapter options of `prepare`
    overrides: tuple                 # every training run
    model_overrides: dict            # model name -> overrides of runs training that model
    steps: Optional[dict]            # stage -> max_steps ('*' for the rest); None = the configs' epochs
    latency: tuple                   # (warm-up, timed) passes per model
    eval_limit: Optional[int] = None
    workers: int = 8                 # preparation workers unless --workers says otherwise


TINY = Scale(
    'tiny', 'the same plan on a small synthetic nuScenes-format set, a few steps per run (CPU, minutes)',
    synth=dict(scenes={'train': 2, 'val': 1, 'test': 1}, samples_per_scene=3, size=(64, 128), keyframe_every=2,
               accumulate=1, seed=0),
    prepare_options={'lidar_sweeps': 1},
    overrides=('data.crop=[64,128]', 'data.batch_size=2', 'data.workers=0', 'log_every=1', 'image_every=1000000',
               'checkpoint_every=1', 'val_every=1000000', 'data.val_limit=2', 'optim.lr=1e-3'),
    model_overrides={
        'cafnet': ('model.config.image_backbone_depth=18', 'model.config.bts_size=32'),
        'xd_rcdepth': ('model.config.decoder_channels=[32,16,16,8,8]', 'model.config.bottleneck_channels=32',
                       'model.config.daspp_growth=16'),
        'lircdepth': ('model.config.image_channels=[8,8,16,16,32]', 'model.config.radar_channels_out=[8,8,16,16,32]',
                      'model.config.decoder_channels=[32,16,16,8,8]'),
        'radarnet': ('model.config.stage1_image_channels=[8,8,8,8,8]', 'model.config.stage1_point_neurons=[8,8]',
                     'model.config.stage1_decoder_channels=[8,8,8,8,8]', 'model.config.point_latent_grid=[2,1]',
                     'model.config.stage2_image_channels=[8,8,8,8,8,8]',
                     'model.config.stage2_depth_channels=[4,4,4,4,4,4]',
                     'model.config.stage2_decoder_channels=[8,8,8,8,8,8]', 'model.config.max_points=80',
                     'model.config.point_chunk=16'),
    },
    steps={'teacher': 1, 'teacher_single': 1, '*': 2},
    latency=(1, 3), workers=1)

FULL = Scale(
    'full', "the paper's: nuScenes, the references' budgets (config/train_*.yaml)",
    synth=None, prepare_options={}, overrides=(), model_overrides={}, steps=None, latency=(10, 50))

SCALE_BY_NAME = {'tiny': TINY, 'full': FULL}


# ----------------------------------------------------------------------------- the models


@dataclass(frozen=True)
class TrainedModel:
    stage: str
    label: str
    recipe: str
    config: str                  # file in the config folder
    model_name: str
    overrides: tuple = ()        # '{teacher}', '{distill_teacher}', '{radarnet_stage1}': earlier stages' checkpoints
    speed: str = 'student'       # kind of run for the speed table
    paper: tuple = ()            # (table, key) of the paper's numbers this model is compared with
    evaluated: bool = True       # evaluated and timed (not an intermediate such as RadarNet's stage 1)


TEACHERS = (
    TrainedModel('teacher', 'CaFNet', 'teacher', 'train_teacher.yaml', 'cafnet', (), 'teacher'),
    TrainedModel('teacher_single', 'CaFNet_single (the teacher)', 'teacher', 'train_teacher.yaml', 'cafnet',
                 ('model.init={teacher}', 'loss.w_single=1.0'), 'teacher', (('results', 'cafnet'),)),
)
STUDENTS = (
    TrainedModel('student_none', 'XD-RCDepth, no distillation (FiLM)', 'student', 'train_student.yaml', 'xd_rcdepth',
                 (), 'student', (('results', 'xd_rcdepth_none'), ('fusion', 'film'), ('distillation', 'none'))),
    TrainedModel('student_xkd', 'XD-RCDepth, X-KD', 'distill', 'train_distill.yaml', 'xd_rcdepth',
                 ('distill.kd=xkd', 'distill.teacher={distill_teacher}'), 'distill_xkd', (('distillation', 'xkd'),)),
    TrainedModel('student_d2kd', 'XD-RCDepth, D2-KD', 'distill', 'train_distill.yaml', 'xd_rcdepth',
                 ('distill.kd=d2kd', 'distill.teacher={distill_teacher}'), 'distill_d2kd', (('distillation', 'd2kd'),)),
    TrainedModel('student_both', 'XD-RCDepth, X-KD + D2-KD', 'distill', 'train_distill.yaml', 'xd_rcdepth',
                 ('distill.kd=both', 'distill.teacher={distill_teacher}'), 'distill_both',
                 (('results', 'xd_rcdepth_both'), ('distillation', 'both'))),
    TrainedModel('fusion_add', 'XD-RCDepth, addition fusion', 'student', 'train_student.yaml', 'xd_rcdepth',
                 ('model.config.fusion=add',), 'student', (('fusion', 'add'),)),
    TrainedModel('fusion_concat', 'XD-RCDepth, concatenation fusion', 'student', 'train_student.yaml', 'xd_rcdepth',
                 ('model.config.fusion=concat',), 'student', (('fusion', 'concat'),)),
    TrainedModel('fusion_attention', 'XD-RCDepth, attention fusion', 'student', 'train_student.yaml', 'xd_rcdepth',
                 ('model.config.fusion=attention',), 'student', (('fusion', 'attention'),)),
    # The project has no LiRCDepth feature distillation: the baseline trains with the student recipe.
    TrainedModel('lircdepth', 'LiRCDepth (without its own distillation)', 'student', 'train_student.yaml', 'lircdepth',
                 ('model.name=lircdepth', 'model.config.fusion=add'), 'lircdepth', (('results', 'lircdepth'),)),
)
# RadarNet by its two reference recipes (docs/reference.md Part A 4.4): optional (--radarnet), its budgets
# (stage 2: 450 epochs of full frames) cost more than the rest of the plan.
RADARNET = (
    TrainedModel('radarnet_stage1', 'RadarNet stage 1 (correspondences)', 'radarnet-stage1',
                 'train_radarnet_stage1.yaml', 'radarnet', (), 'radarnet_stage1', (), evaluated=False),
    TrainedModel('radarnet', 'RadarNet', 'radarnet-stage2', 'train_radarnet_stage2.yaml', 'radarnet',
                 ('model.init={radarnet_stage1}',), 'radarnet_stage2', (('results', 'radarnet'),)),
)
IMPORTED_TEACHER = TrainedModel('teacher_import', 'CaFNet (given teacher)', 'teacher', '', 'cafnet', (), 'teacher',
                                (('results', 'cafnet'),))


# ----------------------------------------------------------------------------- assumptions

# Seconds per optimizer step by kind of run, used until this folder's own runs have measured them.
# full / cuda: guesses for one L40-class GPU at the configs' 352 x 704 crops, batch 8, fp16 autocast (no
# GPU has measured them here yet). full / cpu: the distillation benchmark's 1-thread costs at 96 x 192,
# batch 4 (benchmarks/distillation.py header; X-KD without cached teacher outputs + 30 %) scaled by
# pixels x batch. tiny / cpu: measured with one thread on a 2-core CPU (a teacher step includes saving its
# 465 MB checkpoint).
ASSUMED = {
    ('full', 'cuda'): dict(teacher=0.30, student=0.08, distill_d2kd=0.16, distill_xkd=0.40, distill_both=0.42,
                           lircdepth=0.10, radarnet_stage1=0.50, radarnet_stage2=0.60),
    ('full', 'cpu'): dict(teacher=135.0, student=21.6, distill_d2kd=30.0, distill_xkd=95.0, distill_both=97.0,
                          lircdepth=30.0, radarnet_stage1=150.0, radarnet_stage2=180.0),
    ('tiny', 'cuda'): dict(teacher=0.10, student=0.05, distill_d2kd=0.06, distill_xkd=0.10, distill_both=0.10,
                           lircdepth=0.05, radarnet_stage1=0.10, radarnet_stage2=0.10),
    ('tiny', 'cpu'): dict(teacher=10.0, student=1.5, distill_d2kd=1.5, distill_xkd=3.0, distill_both=3.0,
                          lircdepth=2.0, radarnet_stage1=1.5, radarnet_stage2=1.5),
}
# Seconds per evaluated frame (reading the sample, the forward pass, the metrics) by model family.
ASSUMED_FRAME_S = {
    ('full', 'cuda'): dict(cafnet=0.20, xd_rcdepth=0.07, lircdepth=0.12, radarnet=0.45),
    ('full', 'cpu'): dict(cafnet=12.0, xd_rcdepth=2.5, lircdepth=6.5, radarnet=30.0),   # README latency, torch eager
    ('tiny', 'cuda'): dict(cafnet=0.05, xd_rcdepth=0.03, lircdepth=0.03, radarnet=0.05),
    ('tiny', 'cpu'): dict(cafnet=1.0, xd_rcdepth=0.3, lircdepth=0.3, radarnet=0.5),
}
# Fixed cost of one stage (building models, loading the teacher, writing checkpoints), seconds.
ASSUMED_STAGE_S = {'full': 120.0, 'tiny': 4.0}
# Preparation: CPU seconds per sample and worker (benchmarks/README.md "Preparation": 3.7 CPU s per sample
# of a synthetic nuScenes-format set at 1600 x 900 with +-80 sweeps); tiny: measured.
ASSUMED_PREPARE_S = {'full': 3.7, 'tiny': 0.5}
ASSUMED_SYNTH_S_PER_SAMPLE = 0.5
# Disk per cached nuScenes sample: the CAM_FRONT JPEG (~0.2-0.4 MB) and three uint16 depth maps, the
# interpolated one dense (measured on synthetic 1600 x 900 samples with +-80 sweeps: 1.7-1.8 MB).
ASSUMED_SAMPLE_BYTES = {'full': 1.8e6, 'tiny': 4e4}


# ----------------------------------------------------------------------------- options and stages


@dataclass(frozen=True)
class Options:
    out: Path
    scale: Scale = FULL
    dataset: str = 'nuscenes'
    root: Optional[Path] = None
    teacher: Optional[Path] = None
    teacher_format: Optional[str] = None   # None: the given teacher is our checkpoint; else import it
    launch: Launch = Launch()
    radarnet: bool = False                 # also RadarNet (stage 1, stage 2)
    follower: bool = False
    device: str = 'auto'
    workers: int = 8
    configs: Path = Path('config')
    python: str = sys.executable

    def settings(self) -> dict:
        """What makes a plan's results what they are (a second invocation must agree)."""
        return {'dataset': self.dataset, 'scale': self.scale.name,
                'root': str(self.root.resolve()) if self.root else None,
                'teacher': str(self.teacher.resolve()) if self.teacher else None,
                'teacher_format': self.teacher_format, 'radarnet': self.radarnet}


@dataclass
class Stage:
    name: str
    kind: str                          # synth | prepare | import | train | eval | latency | report
    title: str
    model: Optional[str] = None        # the model row (stage name of the trained / imported model)
    depends: tuple = ()
    spec: dict = field(default_factory=dict)
    budget: str = ''
    estimate_s: float = 0.0
    basis: str = 'assumed'             # assumed | measured | -
    state: str = 'to do'               # done | started ... | to do
    command: str = ''

    @property
    def done(self) -> bool:
        return self.state == 'done'


@dataclass
class Plan:
    options: Options
    stages: list
    models: list                        # TrainedModel rows, teachers first
    notes: list = field(default_factory=list)
    disk: dict = field(default_factory=dict)
    device: str = 'cpu'

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def remaining_s(self) -> float:
        return sum(s.estimate_s for s in self.stages if not s.done)


def paths(out: Path) -> dict:
    out = Path(out)
    return {'out': out, 'data': out / 'data' / 'nuscenes', 'cache': out / 'cache', 'runs': out / 'runs',
            'eval': out / 'eval', 'latency': out / 'latency', 'stages': out / 'stages',
            'import': out / 'teacher_import' / 'cafnet.pt', 'figures': out / 'figures',
            'report_md': out / 'report.md', 'report_json': out / 'report.json', 'plan_json': out / 'plan.json'}


def checkpoint_of(model: str, options: Options) -> Path:
    p = paths(options.out)
    if model == 'teacher_import':
        return p['import'] if options.teacher_format else Path(options.teacher)
    return p['runs'] / model / 'checkpoints' / 'best.pt'


def file_identity(path) -> Optional[dict]:
    """Size and modification time of a file (what eval / latency results record of their checkpoint)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return {'size': st.st_size, 'mtime_ns': st.st_mtime_ns}


def read_marker(path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ----------------------------------------------------------------------------- building


def _quote(argv) -> str:
    return ' '.join(shlex.quote(str(a)) for a in argv)


def _device_type(options: Options) -> str:
    if options.device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return 'cuda' if options.device.startswith('cuda') else 'cpu'


def split_counts(options: Options) -> tuple[dict, str]:
    """{split: samples} from the prepared cache when it exists, else what the plan will make."""
    cache = paths(options.out)['cache']
    if (cache / 'index.json').is_file():
        try:
            index = CacheIndex(cache)
            return {s: len(index.names(s)) for s in ('train', 'val', 'test') if s in index.splits}, 'the cache'
        except (OSError, KeyError, ValueError):
            pass
    synth = options.scale.synth
    if synth:
        per = synth['samples_per_scene'] - 1        # the last keyframe of a scene is skipped (as the references)
        return {s: n * per for s, n in synth['scenes'].items()}, 'the synthetic set'
    return dict(REFERENCE_SAMPLE_COUNTS), "the references' counts"


def train_overrides(model: TrainedModel, options: Options, refs: dict) -> list:
    p = paths(options.out)
    scale = options.scale
    out = [f'data.cache={p["cache"]}', f'run_dir={p["runs"] / model.stage}', *scale.overrides,
           *scale.model_overrides.get(model.model_name, ())]
    if options.device != 'auto':
        out.append(f'device={options.device}')
    out += [o.format(**refs) for o in model.overrides]
    if scale.steps is not None:
        out.append(f'max_steps={scale.steps.get(model.stage, scale.steps["*"])}')
    return out


def _train_budget(config: TrainConfig, counts: dict, world: int) -> tuple[int, int, int]:
    """(total steps, validations, frames per validation) of a run."""
    per_process = counts.get('train', 0) // world
    per_epoch = max(per_process // config.data.batch_size, 1)
    steps = config.max_steps or config.epochs * per_epoch
    if config.data.val_split is None:
        return steps, 0, 0
    val = counts.get('val', 0) if config.data.val_limit is None else min(config.data.val_limit, counts.get('val', 0))
    every = config.val_every or per_epoch
    return steps, steps // every + (steps % every != 0), val


def _fmt_count(n) -> str:
    return f'{int(n):,}'


def build_plan(options: Options) -> Plan:
    """The stages of ``options``' plan, with their state in ``options.out`` and their time estimates.
    Reads the folder; writes nothing."""
    p = paths(options.out)
    scale = options.scale
    device = _device_type(options)
    assumed = ASSUMED[(scale.name, device)]
    frame_s = ASSUMED_FRAME_S[(scale.name, device)]
    counts, counts_from = split_counts(options)
    world = options.launch.world_size
    stages: list = []
    notes = [f'sample counts from {counts_from}: ' + ', '.join(f'{s} {_fmt_count(n)}' for s, n in counts.items())]

    # -- data
    if scale.synth:
        s = scale.synth
        n = sum(s['scenes'].values()) * s['samples_per_scene']
        stages.append(Stage('synth', 'synth', 'synthetic nuScenes-format set (scenes train / val / test)',
                            spec=dict(s), budget=f"{sum(s['scenes'].values())} scenes x {s['samples_per_scene']} "
                                                 f"keyframes at {s['size'][0]}x{s['size'][1]}",
                            estimate_s=n * ASSUMED_SYNTH_S_PER_SAMPLE,
                            command=_quote(['xd-rcdepth', 'synth', '--format', 'nuscenes', '--out', p['data'],
                                            '--scenes', sum(s['scenes'].values()), '--frames', s['samples_per_scene'],
                                            '--size', f"{s['size'][0]}x{s['size'][1]}", '--accumulate',
                                            s['accumulate']]) + '  (+ keyframe_every 2, splits.json train/val/test)'))
        prepares = [('prepare', 'v1.0-mini', ('train', 'val', 'test'), p['data'], ('synth',))]
    else:
        prepares = [('prepare_trainval', NUSCENES_VERSIONS['trainval'], ('train', 'val'), options.root, ()),
                    ('prepare_test', NUSCENES_VERSIONS['test'], ('test',), options.root, ())]
    for name, version, splits, root, depends in prepares:
        n = sum(counts.get(sp, 0) for sp in splits)
        workers = max(options.workers, 1)
        argv = ['xd-rcdepth', 'prepare', '--dataset', 'nuscenes', '--root', root, '--version', version, '--out',
                p['cache'], '--splits', *splits, '--workers', workers]
        if scale.prepare_options.get('lidar_sweeps') is not None:
            argv += ['--lidar-sweeps', scale.prepare_options['lidar_sweeps']]
        stages.append(Stage(name, 'prepare', f'nuScenes {version} {" + ".join(splits)} -> cache', depends=depends,
                            spec=dict(version=version, splits=splits, root=str(Path(root).resolve()), workers=workers,
                                      options=dict(scale.prepare_options)),
                            budget=f'{_fmt_count(n)} samples, {workers} worker(s)',
                            estimate_s=n * ASSUMED_PREPARE_S[scale.name] / workers, command=_quote(argv)))
    data_stages = tuple(s.name for s in stages if s.kind == 'prepare')

    # -- teachers
    extra = list(RADARNET) if options.radarnet else []
    refs = {'radarnet_stage1': checkpoint_of('radarnet_stage1', options)}
    ref_stages = {'radarnet_stage1': 'radarnet_stage1', 'teacher': 'teacher'}
    if options.teacher is not None:
        models = [IMPORTED_TEACHER, *STUDENTS, *extra]
        refs['distill_teacher'] = checkpoint_of('teacher_import', options)
        ref_stages['distill_teacher'] = 'teacher_import'
        if options.teacher_format:
            title, command = f"the authors' teacher ({options.teacher_format}) -> our checkpoint", _quote(
                ['xd-rcdepth', 'import-weights', '--format', options.teacher_format, options.teacher, '--out',
                 p['import']])
        else:
            title, command = 'the given teacher (our checkpoint), used as it is', '(nothing to run)'
        stages.append(Stage('teacher_import', 'import', title, model='teacher_import',
                            spec=dict(source=str(options.teacher), format=options.teacher_format),
                            budget='one file', estimate_s=30.0 if options.teacher_format else 1.0, command=command))
    else:
        models = [*TEACHERS, *STUDENTS, *extra]
        refs.update(teacher=checkpoint_of('teacher', options), distill_teacher=checkpoint_of('teacher_single', options))
        ref_stages['distill_teacher'] = 'teacher_single'

    # -- training runs
    measured = _measured_speeds(options, models)
    for m in models:
        if m.stage == 'teacher_import':
            continue
        overrides = train_overrides(m, options, refs)
        config_file = Path(options.configs) / m.config
        config = load_config(config_file, m.recipe, overrides)
        steps, validations, val_frames = _train_budget(config, counts, world)
        run_dir = Path(config.run_dir)
        rate, basis = measured.get(m.speed), 'measured'
        if rate is None:
            rate, basis = assumed[m.speed], 'assumed'
        done_steps, state = _train_state(run_dir, steps)
        val_s = validations * val_frames * frame_s[m.model_name] / max(world, 1)
        estimate = (steps - done_steps) * rate + val_s * (1 - done_steps / max(steps, 1)) + ASSUMED_STAGE_S[scale.name]
        depends = data_stages + tuple(ref_stages[k] for k in ref_stages if '{%s}' % k in ''.join(m.overrides))
        resume = last_checkpoint(run_dir) is not None
        if options.launch.distributed:
            command = _quote(torchrun_argv(options.launch, m.recipe, config_file, overrides, resume, m.stage,
                                           'python'))
        else:
            command = _quote(['xd-rcdepth', 'train', '--recipe', m.recipe, *(['--resume'] if resume else []),
                              '--config', config_file, *overrides])
        budget = f'{_fmt_count(steps)} step{"s" if steps != 1 else ""}'
        if validations:
            budget += f' + {validations} val x {_fmt_count(val_frames)}'
        stages.append(Stage(m.stage, 'train', m.label, model=m.stage, depends=depends,
                            spec=dict(recipe=m.recipe, config_file=str(config_file), overrides=overrides,
                                      run_dir=str(run_dir), steps=steps, speed=m.speed, model_name=m.model_name),
                            budget=budget, estimate_s=0.0 if state == 'done' else estimate, basis=basis,
                            state=state, command=command))

    # -- evaluation and latency of every model
    test = counts.get('test', 0)
    warm, timed = scale.latency
    measured_models = [m for m in models if m.evaluated]
    for m in measured_models:
        ckpt = checkpoint_of(m.stage, options)
        frames = test if scale.eval_limit is None else min(test, scale.eval_limit)
        stages.append(Stage(f'eval_{m.stage}', 'eval', f'{m.label}: test split at 50 / 70 / 80 m', model=m.stage,
                            depends=(m.stage,), spec=dict(checkpoint=str(ckpt), out=str(p['eval'] / m.stage)),
                            budget=f'{_fmt_count(frames)} frames',
                            estimate_s=frames * frame_s[m.model_name] + ASSUMED_STAGE_S[scale.name] / 2,
                            command=_quote(['xd-rcdepth', 'eval', '--checkpoint', ckpt, '--cache', p['cache'],
                                            '--split', 'test', '--backend', 'torch', '--out', p['eval'] / m.stage])))
    for m in measured_models:
        ckpt = checkpoint_of(m.stage, options)
        stages.append(Stage(f'latency_{m.stage}', 'latency', f'{m.label}: time per test frame', model=m.stage,
                            depends=(m.stage,), spec=dict(checkpoint=str(ckpt), warmup=warm, repeats=timed,
                                                          out=str(p['latency'] / f'{m.stage}.json')),
                            budget=f'{warm} + {timed} passes',
                            estimate_s=(warm + timed) * frame_s[m.model_name] + ASSUMED_STAGE_S[scale.name] / 2,
                            command=f'DepthEstimator(torch, fp32).predict timing: {warm} warm-up + {timed} timed '
                                    'passes of one test frame'))
    stages.append(Stage('report', 'report', 'report.md, report.json, figures/*.png beside the paper',
                        depends=tuple(s.name for s in stages), budget='-', estimate_s=10.0, basis='-',
                        command=f'written to {p["report_md"]}'))
    for s in stages:
        if s.kind not in ('train', 'report'):
            s.state = 'done' if stage_is_done(s, options) else 'to do'
            if s.done:
                s.estimate_s = 0.0
    plan = Plan(options, stages, models, notes, device=device)
    plan.disk = _disk(plan, counts)
    return plan


def _train_state(run_dir: Path, steps: int) -> tuple[int, str]:
    if finished_summary(run_dir):
        return steps, 'done'
    if last_checkpoint(run_dir) is not None:
        train, _ = read_run_log(run_dir)
        at = max(train, default=0)
        return min(at, steps), f'started (step {at:,} of {steps:,}; resumes)'
    return 0, 'to do'


def _measured_speeds(options: Options, models) -> dict:
    """{speed kind: s/step} of this folder's runs that have trained (the first run of each kind)."""
    out = {}
    for m in models:
        if m.stage == 'teacher_import' or m.speed in out:
            continue
        rate = seconds_per_step(paths(options.out)['runs'] / m.stage)
        if rate is not None:
            out[m.speed] = rate
    return out


def stage_is_done(stage: Stage, options: Options) -> bool:
    """Whether a non-training stage finished (its marker or result file, made from today's inputs)."""
    p = paths(options.out)
    if stage.kind in ('synth', 'prepare', 'import'):
        marker = read_marker(p['stages'] / f'{stage.name}.json')
        if not marker or _settings(marker.get('spec')) != _settings(json.loads(json.dumps(stage.spec, default=str))):
            return False
        return stage.kind != 'import' or Path(checkpoint_of('teacher_import', options)).is_file()
    if stage.kind == 'eval':
        result = read_marker(Path(stage.spec['out']) / 'metrics.json')
        return bool(result) and result.get('checkpoint_identity') == file_identity(stage.spec['checkpoint'])
    if stage.kind == 'latency':
        result = read_marker(stage.spec['out'])
        return bool(result) and result.get('checkpoint_identity') == file_identity(stage.spec['checkpoint'])
    return False


def _settings(spec) -> dict:
    """What decides a stage's result (the number of workers does not)."""
    return {k: v for k, v in (spec or {}).items() if k != 'workers'}


def _params(model_name: str, config: dict) -> int:
    with torch.device('meta'):
        model = build_model(model_name, **{**config, 'pretrained_backbone': None, 'pretrained_radar_backbone': None})
    return sum(t.numel() for t in model.parameters())


def _disk(plan: Plan, counts: dict) -> dict:
    """Bytes the plan leaves on disk: cache, synthetic set, checkpoints (last.pt + best.pt: weights and
    AdamW's two moments), evaluation outputs."""
    scale = plan.options.scale
    samples = sum(counts.values())
    checkpoints, sizes = 0, {}
    for s in plan.stages:
        if s.kind != 'train':
            continue
        config = load_config(s.spec['config_file'], s.spec['recipe'], s.spec['overrides'])
        key = (config.model.name, json.dumps(config.model.config, sort_keys=True))
        if key not in sizes:
            sizes[key] = _params(config.model.name, dict(config.model.config))
        checkpoints += 2 * 3 * 4 * sizes[key]
    out = {'cache': samples * ASSUMED_SAMPLE_BYTES[scale.name], 'checkpoints': checkpoints}
    if scale.synth:
        out['synthetic_set'] = samples * 1.5 * ASSUMED_SAMPLE_BYTES[scale.name]
    return out


# ----------------------------------------------------------------------------- printing


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f'{seconds:.0f} s'
    if seconds < 5400:
        return f'{seconds / 60:.0f} min'
    if seconds < 72 * 3600:
        return f'{seconds / 3600:.1f} h'
    return f'{seconds / 86400:.1f} d'


def format_bytes(n: float) -> str:
    for unit, size in (('TB', 1e12), ('GB', 1e9), ('MB', 1e6)):
        if n >= size:
            return f'{n / size:.1f} {unit}'
    return f'{n / 1e3:.0f} kB'


def describe_launch(plan: Plan) -> str:
    launch = plan.options.launch
    if launch.distributed:
        machines = f' x {launch.nnodes} machines (rendezvous {launch.rdzv_endpoint})' if launch.nnodes > 1 else ''
        return f'training under torchrun: {launch.nproc_per_node} process(es) per machine{machines}'
    return f'training in one process on {plan.device}'


def format_plan(plan: Plan, commands: bool = False) -> str:
    o = plan.options
    source = f'nuScenes at {o.root}' if o.root else 'a synthetic nuScenes-format set'
    lines = [f'reproduce: scale {o.scale.name} ({o.scale.title})',
             f'  data: {source}; output: {o.out}; {describe_launch(plan)}', '']
    width = max(len(s.name) for s in plan.stages)
    title_w = min(max(len(s.title) for s in plan.stages), 64)
    lines.append(f"  {'#':>2}  {'stage':<{width}}  {'what':<{title_w}}  {'budget':<34}  {'estimate':>9}  state")
    for i, s in enumerate(plan.stages, 1):
        title = s.title if len(s.title) <= title_w else s.title[:title_w - 3] + '...'
        est = '-' if s.done else format_duration(s.estimate_s) + ('*' if s.basis == 'assumed' else '')
        lines.append(f'  {i:>2}  {s.name:<{width}}  {title:<{title_w}}  {s.budget:<34}  {est:>9}  {s.state}')
    todo = [s for s in plan.stages if not s.done]
    train_s = sum(s.estimate_s for s in todo if s.kind == 'train')
    lines += ['', f'  to do: {len(todo)} of {len(plan.stages)} stages, about {format_duration(plan.remaining_s)} '
                  f'(training {format_duration(train_s)}' +
              (f' = {train_s / 3600 * o.launch.world_size:,.0f} GPU-hours' if plan.device == 'cuda' else '') + ')'
              '; * = from an assumed speed, the rest measured in this folder']
    disk = plan.disk
    lines.append('  disk: ' + ', '.join(f'{k.replace("_", " ")} ~{format_bytes(v)}' for k, v in disk.items())
                 + f' (cache at an assumed {format_bytes(ASSUMED_SAMPLE_BYTES[o.scale.name])} per sample)')
    assumed = ASSUMED[(o.scale.name, plan.device)]
    lines.append(f'  assumed s/step ({o.scale.name}, {plan.device}): '
                 + ', '.join(f'{k} {v:g}' for k, v in assumed.items())
                 + '; eval s/frame: ' + ', '.join(f'{k} {v:g}' for k, v in
                                                  ASSUMED_FRAME_S[(o.scale.name, plan.device)].items()))
    lines.append(f'  (where they come from: {__name__}.ASSUMED)')
    lines += [f'  {n}' for n in plan.notes]
    if commands:
        lines += ['', '  commands (what each stage runs):']
        lines += [f'  {s.name}: {s.command}' for s in plan.stages]
    return '\n'.join(lines)


__all__ = ['SCALES', 'SCALE_BY_NAME', 'TINY', 'FULL', 'Scale', 'TrainedModel', 'TEACHERS', 'STUDENTS',
           'IMPORTED_TEACHER', 'RADARNET', 'ASSUMED', 'Options', 'Stage', 'Plan', 'paths', 'checkpoint_of',
           'file_identity', 'build_plan', 'stage_is_done', 'format_plan', 'format_duration']
