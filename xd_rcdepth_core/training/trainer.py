"""One Trainer for the recipes (teacher, student, distill, radarnet-stage1/2), single process or under torchrun.

    trainer = Trainer(load_config('config/train_student.yaml', 'student', ['data.cache=cache/nuscenes']))
    summary = trainer.fit()

Run folder: config.yaml (the resolved config), checkpoints/last.pt (every checkpoint_every steps
and at the end) and checkpoints/best.pt (lowest val select_metric at select_range), tb/ (TensorBoard),
log.jsonl, summary.json. ``resume`` continues a killed run exactly: same step, LR, data order,
augmentation and RNG state. Validation runs the val split through DepthEstimator (the one inference
path) at full resolution, sharded over the processes.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..conventions import InputConventions
from ..data.cache import CacheIndex, read_sample
from ..data.dataset import AugmentConfig, RadarDepthDataset
from ..devices import device_type
from ..distill.teacher_targets import TeacherTargets
from ..evaluate import EvalOptions, evaluate
from ..metrics import HIGHER_IS_BETTER, range_key
from ..models import build_model, load_model, read_checkpoint
from ..pipeline import DepthEstimator
from .config import TEACHER_MODELS, TrainConfig, dump_yaml, to_dict
from .data import ResumableSampler, cache_datasets, make_loader, training_camera
from .distributed import DistContext, device_for
from .objectives import make_objective
from .optim import PolySchedule, build_optimizer, freeze_encoder_stem_and_bn
from .reporting import RunLog
from .state import check_resumable, read_training_state, save_training_state, set_rng_state


def set_determinism(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')   # deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)     # warn where CUDA has no such kernel
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        # Training crops have one size: cuDNN times its algorithms once and keeps the fastest
        # (the deterministic ones can be several times slower on a GPU).
        torch.backends.cudnn.benchmark = True


def _to_device(value, device):
    if torch.is_tensor(value):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def amp_enabled(asked: bool, device, model, log=print) -> bool:
    """fp16 autocast + GradScaler: when asked for, on CUDA, unless the model says it cannot train so
    (its FP16_TRAINING attribute; the teacher's LPG overflows fp16), which is logged."""
    if not asked or device_type(device) != 'cuda':
        return False
    if not getattr(model, 'FP16_TRAINING', True):
        log(f'amp: off for {type(model).__name__} (its gradients overflow fp16; training in fp32)')
        return False
    return True


class Trainer:
    """train_dataset / val_frames replace the cache's (val_frames(rank, world) -> iterable of Frames)."""

    def __init__(self, config: TrainConfig, resume=None, train_dataset=None, val_frames=None,
                 log=print, progress: bool = True):
        self.config, self.log = config, log
        self.device = device_for(config.device)
        self.dist = DistContext.from_env(self.device.type)
        self.run_dir = Path(config.run_dir)
        self.ckpt_dir = self.run_dir / 'checkpoints'
        self.progress = progress and self.dist.is_main
        set_determinism(config.seed, config.deterministic)

        if train_dataset is None:
            train_dataset, val_frames = cache_datasets(config)
        self.train_dataset, self.val_frames = train_dataset, val_frames
        bs = config.data.batch_size
        self.sampler = ResumableSampler(train_dataset, bs, config.seed, self.dist.world_size, self.dist.rank)
        if self.sampler.batches_per_epoch < 1:
            raise ValueError(f'the training split has {len(train_dataset)} samples: too few for one batch of '
                             f'{bs} per process on {self.dist.world_size} process(es)')
        self.total_steps = config.max_steps or config.epochs * self.sampler.batches_per_epoch

        torch.manual_seed(config.seed)           # the same initial weights in every process and run
        self.model = self._build_model().to(self.device)
        self.teacher = self._load_teacher() if config.recipe == 'distill' else None
        self.teacher_targets = self._teacher_targets() if self.teacher is not None else None
        self.conventions = self._conventions()
        if config.optim.freeze_encoder_stem_and_bn:
            self.log(f'froze {freeze_encoder_stem_and_bn(self.model)} encoder stem / BN tensors (CaFNet set_misc)')
        self.optimizer = build_optimizer(self.model, config.optim)
        self.schedule = PolySchedule(config.optim.lr, self.total_steps, config.optim.end_lr_ratio, config.optim.power)
        self.amp = amp_enabled(config.amp, self.device, self.model, self.log)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.objective = make_objective(config, self.teacher, self.autocast)
        self.step, self.best, self.last_val = 0, {}, None
        self._unchecked = None      # (step, finite?, loss, terms) of the last step, not yet read (train_step)
        self._shown_loss = None     # the loss of the last checked step, for the progress bar
        self._fit_started = None    # perf_counter() at fit()'s start, for max_minutes
        # early stopping: {'value', 'step'} of the last improvement > min_delta, 'stale' validations since
        self.plateau = {}
        if resume:
            self._resume(self.ckpt_dir / 'last.pt' if resume == 'auto' else resume)
        self.net = self.model
        if self.dist.enabled:
            # X-KD's double backward returns some depthwise-conv weight grads in another memory layout
            # than DDP's bucket views; DDP copies them (correct, a little slower) and warns once per rank.
            warnings.filterwarnings('ignore', message='Grad strides do not match bucket view strides')
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    # -- set-up --------------------------------------------------------------------------------
    def autocast(self):
        return torch.autocast('cuda', dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def _build_model(self):
        spec = self.config.model
        model = build_model(spec.name, **spec.config)
        if spec.init:
            ckpt = read_checkpoint(spec.init)
            if ckpt['model_name'] != spec.name:
                raise ValueError(f'model.init {spec.init} holds a {ckpt["model_name"]!r} model, this run trains '
                                 f'{spec.name!r}')
            try:
                model.load_state_dict(ckpt['state_dict'])
            except RuntimeError as exc:
                raise ValueError(f'model.init {spec.init} does not fit the configured {spec.name} '
                                 f'({str(exc).splitlines()[0]})') from None
            self.log(f'initialised {spec.name} from {spec.init}')
        return model

    def _load_teacher(self):
        path = self.config.distill.teacher
        teacher, ckpt = load_model(path, map_location='cpu')
        if ckpt['model_name'] not in TEACHER_MODELS:
            raise ValueError(f'distill.teacher {path} holds a {ckpt["model_name"]!r} model; the distill recipe '
                             f'needs a CaFNet teacher ({", ".join(TEACHER_MODELS)})')
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher.to(self.device).eval()

    def _conventions(self) -> dict | None:
        """The training camera (focal length, image size) checkpoints record (data.training_camera)."""
        return training_camera(self.config)

    def _teacher_targets(self):
        """The teacher's cached outputs (distill.teacher_targets), or None to run it every step."""
        cfg = self.config
        if not cfg.distill.teacher_targets:
            return None
        d = cfg.data
        index = CacheIndex(d.cache)
        frame = read_sample(index.path(d.train_split, 0))
        if tuple(d.crop) != (frame.height, frame.width):
            raise ValueError(f'distill.teacher_targets needs full-frame training crops: data.crop={list(d.crop)} '
                             f'but the frames are {frame.height} x {frame.width}')
        datasets = [RadarDepthDataset(d.cache, d.train_split, train=True, augment=AugmentConfig(
            crop=tuple(d.crop), flip_p=float(flip), color_p=0.0,
            flip_negates_lateral_velocity=d.flip_negates_lateral_velocity)) for flip in (0, 1)]
        dist = cfg.distill
        layers = dist.xkd_layers if dist.kd in ('xkd', 'both') else None
        with torch.random.fork_rng(devices=[]):   # the datasets draw from torch's RNG: leave the run's alone
            return TeacherTargets.build(dist.teacher_targets, self.teacher, datasets, d.train_split, layers,
                                        dist.xkd_target, cfg.loss.min_depth, d.batch_size, log=self.log,
                                        progress=self.progress)

    def _resume(self, path):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'nothing to resume: {path} does not exist')
        ckpt = read_training_state(path)
        changed = check_resumable(ckpt, to_dict(self.config), path)
        if changed:
            self.log(f'resuming with changed settings: {", ".join(changed)}')
        self.model.load_state_dict(ckpt['state_dict'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        if self.amp and 'scaler' in ckpt:
            self.scaler.load_state_dict(ckpt['scaler'])
        self.step, self.best, self.last_val = int(ckpt['step']), dict(ckpt.get('best') or {}), ckpt.get('val')
        self.plateau = dict(ckpt.get('plateau') or {})
        set_rng_state(ckpt['rng'])
        self.log(f'resumed {path} at step {self.step} of {self.total_steps}')

    @property
    def stopped_early(self) -> bool:
        return bool(self.plateau.get('stopped'))

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, batch: dict):
        # The previous step's loss is checked now, one step late: reading a GPU value waits for the GPU,
        # and a check in the same step would keep the host from queuing this step's kernels while the
        # GPU still runs that one's (a small network is host-bound). _after_step checks at once
        # before anything is logged, validated or saved, so a checkpoint never holds a non-finite step.
        self.raise_if_not_finite()
        self.objective.step = self.step
        prepare = getattr(self.objective, 'prepare_batch', None)   # targets built on the CPU batch
        if prepare is not None:
            batch = prepare(batch)
        if self.teacher_targets is not None:
            batch.update(self.teacher_targets.lookup(batch['name'], batch['flipped']))
        batch = _to_device(batch, self.device)
        lr = self.schedule.apply(self.optimizer, self.step)
        self.net.train()
        with self.autocast():
            out = self.net(batch['image'], batch['radar'])
        loss, terms = self.objective(self.net, out, batch)
        self._unchecked = (self.step, torch.isfinite(loss.detach()), loss.detach(), terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.config.optim.grad_clip_norm
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), terms, lr, out, batch

    def raise_if_not_finite(self) -> None:
        """FloatingPointError when the last trained step's loss was NaN or infinite (see train_step)."""
        unchecked, self._unchecked = self._unchecked, None
        if unchecked is None:
            return
        step, finite, loss, terms = unchecked
        if not bool(finite):
            raise FloatingPointError(f'loss is {float(loss)} at step {step} '
                                     f'(terms {({k: float(v) for k, v in terms.items()})}); lower optim.lr?')

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict:
        """Train to total_steps (or stop after step `stop_after`, like a killed run); returns the summary."""
        cfg, main = self.config, self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / 'config.yaml').write_text(dump_yaml(cfg))
        report = RunLog(self.run_dir, main, self.total_steps, self.step, progress=self.progress)
        bpe, started, start_step = self.sampler.batches_per_epoch, time.perf_counter(), self.step
        self._fit_started = started
        self._last_log = (started, self.step)
        try:
            while self.step < self.total_steps and not self.stopped_early:
                epoch, done = divmod(self.step, bpe)
                self.sampler.set_position(epoch, done)
                loader = make_loader(self.train_dataset, self.sampler, cfg.data.workers, self.device.type == 'cuda')
                for batch in loader:
                    loss, terms, lr, out, batch = self.train_step(batch)
                    self.step += 1
                    self._after_step(report, loss, terms, lr, out, batch, end_of_epoch=self.step % bpe == 0)
                    if (self.step >= self.total_steps or self.stopped_early
                            or (stop_after is not None and self.step >= stop_after)):
                        break
                if stop_after is not None and self.step >= stop_after:
                    break
        finally:
            report.close()
        self.raise_if_not_finite()
        return self._finish(time.perf_counter() - started, self.step - start_step)

    def _after_step(self, report, loss, terms, lr, out, batch, end_of_epoch: bool) -> None:
        cfg, step = self.config, self.step
        last = step >= self.total_steps
        log, image = step % cfg.log_every == 0 or last, step % cfg.image_every == 0
        validate = (cfg.val_every and step % cfg.val_every == 0) or (cfg.val_every is None and end_of_epoch) or last
        checkpoint = step % cfg.checkpoint_every == 0 or last
        if log or image or validate or checkpoint:
            self.raise_if_not_finite()
            self._shown_loss = float(loss)
        if log:
            now = time.perf_counter()
            since, self._last_log = self._last_log, (now, step)
            speed = (step - since[1]) * cfg.data.batch_size * self.dist.world_size / max(now - since[0], 1e-9)
            report.scalars(step, {'loss/total': float(loss), **{f'loss/{k}': float(v) for k, v in terms.items()},
                                  'lr': lr, 'epoch': step / self.sampler.batches_per_epoch, 'samples_per_s': speed,
                                  # GradScaler's scale: one that keeps falling means overflowing, skipped steps
                                  **({'amp/scale': self.scaler.get_scale()} if self.amp else {})})
        report.progress(step, self._shown_loss, lr)
        if image:
            report.images(step, out, batch, getattr(self.objective, 'last_maps', None))
        if validate:
            self.validate(report)     # may stop early: then the state is saved now
        if checkpoint or self.stopped_early:
            self.save('last.pt')

    def save(self, name: str) -> None:
        self.dist.broadcast_buffers(self.model)
        if self.dist.is_main:
            save_training_state(self.ckpt_dir / name, self.model, self.optimizer, self.scaler, self.schedule,
                                self.step, self.best, to_dict(self.config), self.last_val, self.plateau,
                                inputs=self.conventions)
        self.dist.barrier()

    def validate(self, report=None) -> dict | None:
        """Val metrics through DepthEstimator; saves best.pt when select_metric improves."""
        if self.val_frames is None:
            return None
        cfg = self.config
        self.dist.broadcast_buffers(self.model)
        # Validate as the checkpoint will run: at the training camera's focal length when frames were resized
        # to one (data.canonical_focal), else as they come. backend torch: the weights change every time.
        conventions = InputConventions.from_dict(self.conventions) \
            if self.config.data.canonical_focal is not None else None
        estimator = DepthEstimator(self.model, device=str(self.device), precision='fp16' if self.amp else 'fp32',
                                   backend='torch', conventions=conventions)
        gather = self.dist.gather_objects if self.dist.enabled else None
        try:
            result = evaluate(estimator, self.val_frames(self.dist.rank, self.dist.world_size),
                              EvalOptions(progress=False, multiple=getattr(self.val_frames, 'eval_multiple',
                                                                             EvalOptions.multiple)),
                              gather=gather, meta={'step': self.step})
        finally:
            self.model.train()
        self.last_val = result
        entry = result['by_range'].get(range_key(cfg.select_range))
        value = None if entry is None else entry.get(cfg.select_metric)
        if report is not None:
            report.val(self.step, result)
        if value is not None:
            sign = -1.0 if cfg.select_metric in HIGHER_IS_BETTER else 1.0
            if not self.best or sign * value < sign * self.best['value']:
                self.best = {'metric': cfg.select_metric, 'range': cfg.select_range, 'value': value, 'step': self.step}
                self.save('best.pt')
            self._track_plateau(value, sign)
        self._check_time_budget()
        return result

    def _check_time_budget(self) -> None:
        """max_minutes: stop at this validation once the budget of this fit() is spent."""
        cfg, started = self.config, self._fit_started
        if cfg.max_minutes is None or started is None or self.stopped_early:
            return
        minutes = (time.perf_counter() - started) / 60
        if minutes >= cfg.max_minutes:
            self.plateau = {**self.plateau, 'stopped': True, 'reason': 'time'}
            self.log(f'stop at step {self.step}: the time budget of {cfg.max_minutes:g} min is spent '
                     f'({minutes:.1f} min); best val {cfg.select_metric} {self.best.get("value")} at step '
                     f'{self.best.get("step")}')

    def _track_plateau(self, value: float, sign: float) -> None:
        """Early stopping: count validations since the last improvement by more than min_delta (relative)."""
        cfg = self.config
        if not cfg.early_stop_patience:
            return
        ref = self.plateau.get('value')
        if ref is None or sign * (ref - value) > cfg.early_stop_min_delta * abs(ref):
            self.plateau = {'value': value, 'step': self.step, 'stale': 0, 'stopped': False}
            return
        self.plateau['stale'] += 1
        if self.plateau['stale'] >= cfg.early_stop_patience:
            self.plateau['stopped'] = True
            self.log(f'early stop at step {self.step}: val {cfg.select_metric} has not improved by more than '
                     f'{100 * cfg.early_stop_min_delta:g} % since step {self.plateau["step"]} '
                     f'({cfg.early_stop_patience} validations)')

    def _finish(self, seconds: float, steps: int) -> dict:
        digests = self.dist.replica_checksums(self.model) if self.dist.enabled else None
        summary = {'recipe': self.config.recipe, 'step': self.step, 'total_steps': self.total_steps,
                   'finished': self.step >= self.total_steps or self.stopped_early,
                   'stopped_early': self.stopped_early,
                   'stop_reason': (self.plateau.get('reason', 'plateau') if self.stopped_early
                                   else 'steps' if self.step >= self.total_steps else None),
                   'seconds': round(seconds, 3),
                   'samples_per_s': steps * self.config.data.batch_size * self.dist.world_size / max(seconds, 1e-9),
                   'world_size': self.dist.world_size, 'best': self.best, 'val': self.last_val,
                   'replica_digests': digests}
        if digests is not None and len(set(digests)) != 1:
            self.log('WARNING: the replicas disagree on the weights: ' + ', '.join(d[:12] for d in digests))
        if self.dist.is_main:
            (self.run_dir / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
        return summary

    def close(self) -> None:
        self.dist.close()
