"""The training run's configuration: one dataclass tree, every paper / reference number with its source.

A run is configured by a YAML file (``config/train_*.yaml``) plus ``key=value`` overrides with dotted
keys (``optim.lr=5e-5``, ``distill.kd=xkd``, ``model.config.fusion=add``). Unknown keys are an error
naming the known ones. ``model.config`` is the model's own config (validated by models.make_config).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..config import PAPER
from ..metrics import METRIC_NAMES

RECIPES = ('teacher', 'student', 'distill', 'radarnet-stage1', 'radarnet-stage2')
# RadarNet trains by its own two recipes (docs/reference.md Part A 4.4), each the stage of that number.
RADARNET_RECIPES = {'radarnet-stage1': 1, 'radarnet-stage2': 2}
KD_MODES = ('none', 'xkd', 'd2kd', 'both')
TEACHER_MODELS = ('cafnet',)   # the recipes that need confidence / coarse outputs or a CaFNet teacher


@dataclass
class ModelSection:
    name: str = 'xd_rcdepth'
    config: dict = field(default_factory=dict)   # keyword config of build_model(name, ...)
    # Checkpoint whose weights initialise the model (fresh optimizer, step 0): how CaFNet_single
    # was made from the CaFNet checkpoint (docs/reference.md 4.2).
    init: Optional[str] = None


@dataclass
class DataSection:
    cache: Optional[str] = None                  # a prepared cache folder (`xd-rcdepth prepare`)
    train_split: str = 'train'
    # Model selection on val (ours: test is only reported); LiRCDepth selected on test (docs/reference.md 1.1).
    # null = no validation (and no best.pt).
    val_split: Optional[str] = 'val'
    crop: tuple = (352, 704)                     # --input_height 352 --input_width 704 (docs/reference.md 1.2)
    batch_size: int = 8                          # per process; paper: batch 8 on one L40 (docs/paper.md Setup)
    workers: int = 4
    val_limit: Optional[int] = None              # evaluate at most this many val frames (None = all)
    flip_negates_lateral_velocity: bool = False  # references: vy not negated on flip (docs/reference.md 1.7)
    color_jitter_p: float = 0.5                  # photometric jitter probability (docs/reference.md 1.7)
    # Ours: radar extrinsics perturbed per training item by up to [degrees yaw/pitch, metres per axis];
    # [0, 0] = off. Robustness to a mis-calibrated mount (benchmarks/distillation.py measures it).
    extrinsic_jitter: tuple = (0.0, 0.0)
    # Ours (issue 14, transfer to real cameras; data/dataset.py AugmentConfig): contrast and saturation
    # ranges inside the color_jitter_p jitter ([1, 1] = off), Gaussian blur (sigma px) and sensor noise
    # (std in [0, 1] image units) each with its own probability (0 = off).
    contrast: tuple = (1.0, 1.0)
    saturation: tuple = (1.0, 1.0)
    blur_p: float = 0.0
    blur_sigma: tuple = (0.0, 0.0)
    noise_p: float = 0.0
    noise_std: tuple = (0.0, 0.0)
    # Ours (issue 14): every frame resized to this fx (px) before cropping, so frames of cameras with
    # other focal lengths show one camera, the one the checkpoint records; null = native size.
    canonical_focal: Optional[float] = None


@dataclass
class OptimSection:
    lr: float = 1e-4                  # CaFNet --learning_rate 1e-4; LiRCDepth student 5e-5 (docs/reference.md 4.1/4.3)
    eps: float = 1e-2                 # AdamW --adam_eps 1e-2 (docs/reference.md 4.1)
    weight_decay: float = 1e-4        # encoders (and CaFNet's radar decoder) (docs/reference.md 4.1)
    decoder_weight_decay: float = 0.0  # the `decoder` module: no weight decay (docs/reference.md 4.1/4.3)
    end_lr_ratio: float = 0.1         # poly decay to lr_end = 0.1 lr (docs/reference.md 4.1)
    power: float = 0.9                # (1 - step/total)^0.9 (docs/reference.md 4.1)
    # Ours: the references do not clip. A guard against the spikes second-order X-KD gradients can
    # give early on. Fresh students start with gradient norms in the hundreds (depth term ~450 at
    # init_depth 12, batch 4), so it acts on every early step of every variant: with Adam that
    # rescales the step's gradient, it does not change its direction. 0 = off.
    grad_clip_norm: float = 10.0
    # CaFNet set_misc: in modules named *encoder*, the backbone's first conv and all BN parameters are
    # frozen (BN statistics still update). Only sensible with ImageNet-initialised backbones.
    freeze_encoder_stem_and_bn: bool = False


@dataclass
class LossSection:
    min_depth: float = PAPER.depth.min_depth_train   # train mask GT > 0.01 m (docs/reference.md 4.1)
    w_depth: float = 1.0              # L1(final, GT_interp) (docs/reference.md 4.1)
    w_single: float = 0.0             # L1(final, single-sweep GT): 1.0 for CaFNet_single (docs/reference.md 4.2)
    w_smooth: float = 0.001           # edge-aware smoothness (docs/reference.md 4.1, 4.3)
    w_confidence: float = 1.0         # teacher: BCE(confidence, radar_gt) (docs/reference.md 4.1)
    w_coarse: float = 0.5             # teacher: L1(coarse, GT_interp) (docs/reference.md 4.1)
    confidence_threshold: float = 0.4  # |GT_interp - d| < 0.4 m (--max_dist_correspondence, docs/reference.md 1.5)
    confidence_window: tuple = (50, 150)  # +-rows, +-cols around a radar point (--patch_size, docs/reference.md 1.5)


@dataclass
class DistillSection:
    teacher: Optional[str] = None     # checkpoint of the frozen teacher (a CaFNet)
    kd: str = 'both'                  # none | xkd | d2kd | both (docs/paper.md ablation)
    lambda_depth: float = 1.0         # lambda1 (docs/paper.md Total loss)
    lambda_xkd: float = 0.5           # lambda2 (docs/paper.md Total loss)
    lambda_d2kd: float = 0.5          # lambda3 (docs/paper.md Total loss)
    xkd_layers: tuple = ('image', 'radar', 'decoder')   # the 1/16-scale taps (docs/paper.md Distillation 1)
    # Grad-CAM target phi: 'mean' = image-level mean predicted depth (the paper's example);
    # 'valid_mean' = mean over valid-GT pixels (docs/reference.md 7). Open question 2: not given.
    xkd_target: str = 'mean'
    # D2-KD bins, range, temperature are not given (docs/paper.md, docs/reference.md 9 q3): our choice,
    # measured in benchmarks/distillation.py. Range = the network's output range so every prediction
    # falls inside it; 1 m bins; tau = 1 m makes the KL behave like a Huber loss of width ~1 m.
    d2kd_bins: int = 100
    d2kd_min_depth: float = 0.0
    d2kd_max_depth: float = PAPER.depth.max_depth
    d2kd_tau: float = 1.0
    # all | valid (valid = GT_interp > min_depth). Ours: valid. benchmarks/distillation.py, 400 student
    # steps, 2 seeds: all -7.5 +- 4.8 % MAE vs no KD, valid +0.4 +- 4.6 % (README).
    d2kd_pixels: str = 'valid'
    # Ours (the paper distils from step 0): the KD terms start at kd_start_step and their weights grow
    # linearly to lambda2 / lambda3 over kd_ramp_steps, so the student first learns depth on its own.
    kd_start_step: int = 0
    kd_ramp_steps: int = 0
    # Ours, for CPU budgets: a folder where the frozen teacher's D2-KD depth and X-KD maps are computed
    # once per training sample and reused by every run (distill/teacher_targets.py). Exact, so only
    # allowed where an item is a function of (sample, flip): full-frame crops, color_jitter_p 0.
    teacher_targets: Optional[str] = None


@dataclass
class RadarNetSection:
    """RadarNet's two recipes (docs/reference.md Part A 4.4); the rest of a run's settings are the shared ones."""
    # stage 1: weighted BCE of the correspondence maps, label |GT_interp - d| < 0.4 m
    w_positive: float = 2.0               # --w_positive_class 2.0
    correspondence_threshold: float = 0.4  # --max_distance_correspondence 0.4
    # stage 1: with this probability per image the radar points are replaced by noisy lidar points
    lidar_points_p: float = 0.1           # --sample_probability_lidar 0.10
    lidar_u_noise_px: float = 25.0        # column noise N(0, 25 px) at 1600 px wide (scaled with the width)
    lidar_depth_noise: float = 0.4        # depth + U[0, 0.4] m
    # stage 2: L1 on GT_interp where the accumulated map is empty + w_accumulated L1 on the accumulated map
    w_accumulated: float = 2.0            # --w_lidar_loss 2.0


@dataclass
class TrainConfig:
    recipe: str = 'student'
    run_dir: str = 'runs/run'
    seed: int = 0
    deterministic: bool = True        # torch deterministic algorithms (warn only), cuDNN deterministic
    device: str = 'auto'              # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    amp: bool = True                  # fp16 autocast + GradScaler, CUDA only
    epochs: int = 200                 # --num_epochs 200 (docs/reference.md 4.1, 4.3)
    max_steps: Optional[int] = None   # total optimizer steps; overrides epochs (and sets the LR schedule)
    log_every: int = 50
    image_every: int = 1000
    checkpoint_every: int = 1000
    val_every: Optional[int] = None   # steps between validations; None = once per epoch
    select_metric: str = 'mae'        # best checkpoint: lowest val MAE at 80 m (references select by MAE)
    select_range: float = 80.0
    # Ours (the references train a fixed 200 epochs): stop when select_metric has not improved by more
    # than early_stop_min_delta (relative, 0.01 = 1 %) for this many validations; null = never.
    early_stop_patience: Optional[int] = None
    early_stop_min_delta: float = 0.0
    # A time budget (a lent GPU, a shared machine): stop at the first validation after this many
    # minutes of training in this process; the run counts as finished (summary.json: stop_reason
    # 'time'). null = no budget.
    max_minutes: Optional[float] = None
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    distill: DistillSection = field(default_factory=DistillSection)
    radarnet: RadarNetSection = field(default_factory=RadarNetSection)

    def validate(self) -> 'TrainConfig':
        if self.recipe not in RECIPES:
            raise ValueError(f'unknown recipe {self.recipe!r}; choose one of {", ".join(RECIPES)}')
        if self.distill.kd not in KD_MODES:
            raise ValueError(f'distill.kd must be one of {", ".join(KD_MODES)}, got {self.distill.kd!r}')
        if self.distill.xkd_target not in ('mean', 'valid_mean'):
            raise ValueError(f"distill.xkd_target must be 'mean' or 'valid_mean', got {self.distill.xkd_target!r}")
        if self.distill.d2kd_pixels not in ('all', 'valid'):
            raise ValueError(f"distill.d2kd_pixels must be 'all' or 'valid', got {self.distill.d2kd_pixels!r}")
        unknown_layers = set(self.distill.xkd_layers) - {'image', 'radar', 'decoder'}
        if unknown_layers or not self.distill.xkd_layers:
            raise ValueError(f'distill.xkd_layers must be a non-empty subset of image, radar, decoder, '
                             f'got {list(self.distill.xkd_layers)}')
        if self.recipe == 'teacher' and self.model.name not in TEACHER_MODELS:
            raise ValueError(f'the teacher recipe trains a CaFNet (model.name cafnet), got model.name '
                             f'{self.model.name!r}; use --recipe student for other models')
        if self.recipe == 'distill' and not self.distill.teacher:
            raise ValueError('the distill recipe needs a teacher checkpoint: set distill.teacher=PATH')
        self._validate_radarnet()
        for name in ('batch_size', 'epochs', 'log_every', 'image_every', 'checkpoint_every'):
            section = self.data if name == 'batch_size' else self
            if getattr(section, name) < 1:
                raise ValueError(f'{name} must be at least 1, got {getattr(section, name)}')
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f'max_steps must be at least 1, got {self.max_steps}')
        if self.early_stop_patience is not None and (self.early_stop_patience < 1 or self.data.val_split is None):
            raise ValueError(f'early_stop_patience must be at least 1 and needs a val split, got '
                             f'{self.early_stop_patience} with data.val_split={self.data.val_split}')
        if self.max_minutes is not None and (self.max_minutes <= 0 or self.data.val_split is None):
            raise ValueError(f'max_minutes must be above 0 and needs a val split (the run stops at a validation), '
                             f'got {self.max_minutes} with data.val_split={self.data.val_split}')
        if self.early_stop_min_delta < 0:
            raise ValueError(f'early_stop_min_delta must be >= 0, got {self.early_stop_min_delta}')
        if self.val_every is not None and self.val_every < 1:
            raise ValueError(f'val_every must be at least 1 (or null = once per epoch), got {self.val_every}')
        if self.select_metric not in METRIC_NAMES:
            raise ValueError(f'select_metric must be one of {", ".join(METRIC_NAMES)}, got {self.select_metric!r}')
        if len(self.data.extrinsic_jitter) != 2 or min(self.data.extrinsic_jitter) < 0:
            raise ValueError(f'data.extrinsic_jitter must be [degrees, metres], both >= 0, got '
                             f'{list(self.data.extrinsic_jitter)}')
        if not 0 <= self.data.color_jitter_p <= 1:
            raise ValueError(f'data.color_jitter_p must be in [0, 1], got {self.data.color_jitter_p}')
        if self.distill.kd_start_step < 0 or self.distill.kd_ramp_steps < 0:
            raise ValueError('distill.kd_start_step and distill.kd_ramp_steps must be >= 0')
        if self.distill.teacher_targets and any(self.data.extrinsic_jitter):
            raise ValueError('distill.teacher_targets needs data.extrinsic_jitter=[0,0]: the cached teacher outputs '
                             'are of the unperturbed radar')
        if self.distill.teacher_targets and self.data.color_jitter_p:
            raise ValueError('distill.teacher_targets needs data.color_jitter_p=0: the cached teacher outputs '
                             'are of the un-jittered images')
        if len(self.data.crop) != 2 or min(self.data.crop) < 32:
            raise ValueError(f'data.crop must be [height, width], each at least 32, got {list(self.data.crop)}')
        if self.optim.lr <= 0 or not 0 <= self.optim.end_lr_ratio <= 1:
            raise ValueError('optim.lr must be positive and optim.end_lr_ratio in [0, 1]')
        return self

    def _validate_radarnet(self) -> None:
        """RadarNet and its recipes go together; the recipe sets model.config.stage (1 or 2)."""
        stage = RADARNET_RECIPES.get(self.recipe)
        if (stage is None) != (self.model.name != 'radarnet'):
            raise ValueError('RadarNet trains by --recipe radarnet-stage1, then --recipe radarnet-stage2 (model.name '
                             f'radarnet); got recipe {self.recipe!r} with model.name {self.model.name!r}')
        if stage is None:
            return
        given = self.model.config.setdefault('stage', stage)
        if given != stage:
            raise ValueError(f'recipe {self.recipe} trains stage {stage}, but model.config.stage is {given!r}')
        if stage == 2 and not self.model.init:
            raise ValueError('radarnet-stage2 trains stage 2 on a trained stage 1: set model.init to the '
                             'radarnet-stage1 checkpoint (e.g. runs/radarnet_stage1/checkpoints/best.pt)')
        r = self.radarnet
        if not 0 <= r.lidar_points_p <= 1 or min(r.w_positive, r.lidar_u_noise_px, r.lidar_depth_noise,
                                                 r.correspondence_threshold, r.w_accumulated) < 0:
            raise ValueError('radarnet: lidar_points_p must be in [0, 1] and the other settings >= 0')


# ----------------------------------------------------------------------------- YAML and overrides


def to_dict(config) -> dict:
    """Plain nested dict (tuples as lists): what config.yaml and checkpoints hold."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
    return plain(dataclasses.asdict(config))


def _coerce(value, hint, key: str):
    """A YAML value as the field's type (YAML reads 1e-4 as a string; lists become tuples)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ('null', 'none', '~')):
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ('true', 'false', 'yes', 'no', '1', '0'):
                return value.lower() in ('true', 'yes', '1')
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if hint is tuple:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return tuple(value)
        if hint is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError):
        raise ValueError(f'{key}: cannot use {value!r} as {getattr(hint, "__name__", hint)}') from None
    return value


def _build(cls, values: dict, prefix: str = ''):
    if not isinstance(values, dict):
        raise ValueError(f'{prefix.rstrip(".") or "config"} must be a mapping, got {values!r}')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'unknown config key{"s" if len(unknown) > 1 else ""} '
                         f'{", ".join(prefix + k for k in unknown)}; known under '
                         f'{prefix.rstrip(".") or "the top level"}: {", ".join(sorted(known))}')
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f'{prefix}{name}.')
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _set_dotted(tree: dict, key: str, value) -> None:
    parts = key.split('.')
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f'override {key}: {part} is not a section')
    node[parts[-1]] = value


def parse_overrides(items) -> dict:
    """['optim.lr=5e-5', 'distill.kd=xkd'] -> nested dict (values parsed as YAML scalars)."""
    tree: dict = {}
    for item in items or ():
        key, sep, text = item.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'override {item!r} must look like key=value (e.g. optim.lr=5e-5)')
        _set_dotted(tree, key.strip(), yaml.safe_load(text) if text.strip() else '')
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        # model.config is an opaque mapping handed to the model: merged key by key as well.
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path=None, recipe: str | None = None, overrides=(), base: dict | None = None) -> TrainConfig:
    """TrainConfig from a YAML file (optional), a recipe and key=value overrides, validated."""
    values = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'config file not found: {path}')
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f'config file {path} is not valid YAML: {str(exc).splitlines()[0]}') from None
        if not isinstance(loaded, dict):
            raise ValueError(f'config file {path} must hold a mapping of settings')
        values = _merge(values, loaded)
    if recipe is not None:
        if 'recipe' in values and values['recipe'] != recipe:
            raise ValueError(f'config file {path} is for recipe {values["recipe"]!r}, not {recipe!r}')
        values['recipe'] = recipe
    values = _merge(values, parse_overrides(overrides) if not isinstance(overrides, dict) else overrides)
    return _build(TrainConfig, values).validate()


def dump_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
