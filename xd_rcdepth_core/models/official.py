"""The authors' published CaFNet / LiRCDepth nuScenes checkpoints, turned into our checkpoints.

    path, report = import_official('cafnet-official', 'model-120000-best_mae_1.76278', 'cafnet.pt')

Formats (``FORMATS``):
    cafnet-official      harborsarah/CaFNet's ``model-435000-...`` and the CaFNet_single teacher that
                         harborsarah/LiRCDepth publishes (``model-120000-best_mae_1.76278``): one layout,
                         631 tensors -> our ``cafnet`` (625; the three ResNets' unused ImageNet ``fc``
                         heads, 6 tensors, are dropped and listed as dropped).
    lircdepth-official   harborsarah/LiRCDepth's student (``model-1170000-...``) -> our ``lircdepth``:
                         935 tensors, or 948 with their ``--radar_confidence`` module (``rad_conf.*``),
                         detected from the file and reported.

Our architectures are theirs layer for layer (teacher.py, baselines.py), so no tensor is reshaped: a
table of name prefixes (theirs <-> ours, one to one; ``_cafnet_pairs`` / ``_lircdepth_pairs``) renames
every tensor. Every tensor of the file is used exactly once or is one of the listed dropped ones, and
every tensor of our model is filled; otherwise ONE ValueError names every unknown, missing and
mis-shaped tensor (by the file's names), and nothing is written.

Reading is ``torch.load(weights_only=True)``: a file that needs code to unpickle is refused, never run.
The authors' "best" files also hold a numpy int32 array (``best_eval_steps``), so numpy's array and
dtype reconstructors (data only, no code) are allowed for that load. A file may be ``{'model':
state_dict, ...}`` (as their training scripts save it) or a bare state_dict, its keys with or without
DataParallel's ``module.``.

The written checkpoint (checkpoint.save_checkpoint, atomic) records under ``inputs`` the authors'
input conventions (conventions.InputConventions: nuScenes CAM_FRONT, fx 1266.417 at 1600 x 900,
ImageNet normalisation, radar channels depth, RCS, vx, vy; ``source`` = format, file name, sha256) and
under ``imported`` what was done (format, variant, tensors, dropped, the file's global_step, warnings).
The architecture facts behind the tables are in docs/reference.md (Part A 3.1, 3.2); the outputs are
checked against the authors' code under pattern weights by test/test_import_weights.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..config import IMAGENET_MEAN, IMAGENET_STD, NUSCENES_CAM_FRONT, RADAR_CHANNELS
from ..conventions import InputConventions
from ..filehash import file_sha256
from .checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from .registry import build_model

FORMATS = {'cafnet-official': 'cafnet', 'lircdepth-official': 'lircdepth'}
MODEL_TITLES = {'cafnet': 'CaFNet', 'lircdepth': 'LiRCDepth'}

# The three ResNets' ImageNet classifiers: in the authors' state_dict, skipped by their forward.
CAFNET_DROPPED = tuple(f'{enc}.fc.{p}' for enc in ('encoder.base_model', 'encoder_radar1.base_model_radar',
                                                   'encoder_radar2.base_model_radar') for p in ('weight', 'bias'))
# Names only one of the two models has: which model a state_dict holds (the other format named in errors).
SIGNATURES = {'cafnet': ('encoder_radar1.', 'decoder_radar.', 'decoder.daspp_'),
              'lircdepth': ('encoder.conv_image.', 'encoder_radar.conv_radar.', 'decoder.conv_radar.')}
# How many names an error lists per kind of problem (the count is always given).
SHOW = 8


def _numpy_globals() -> list:
    """What unpickling a numpy array needs (array/dtype reconstructors, data only), under the names
    both numpy 1.x and 2.x files use."""
    multiarray = getattr(getattr(np, '_core', None), 'multiarray', None) or np.core.multiarray   # 2.x or 1.x
    out = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        out += [(getattr(multiarray, name), f'{module}.{name}') for module in ('numpy.core.multiarray',
                                                                               'numpy._core.multiarray')]
    dtypes = getattr(np, 'dtypes', None)   # numpy >= 1.25 pickles a dtype by its class
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType') and isinstance(getattr(dtypes, n), type)]
    return out


# ----------------------------------------------------------------------------- the name tables

def _cafnet_pairs(model: nn.Module) -> list:
    """(their prefix, our prefix) for CaFNet, one to one; a prefix ending in a name matches that tensor."""
    pairs = [('encoder.base_model.', 'image_encoder.backbone.'),
             ('encoder_radar1.base_model_radar.', 'radar_encoder1.encoder.backbone.'),
             ('encoder_radar2.conv.0.', 'radar_encoder2.stem.0.'),
             ('encoder_radar2.base_model_radar.', 'radar_encoder2.encoder.backbone.'),
             ('decoder_radar.get_depth.0.', 'radar_decoder.head.'),
             ('decoder.daspp_conv.0.', 'decoder.daspp.project.0.'),
             ('decoder.get_depth.0.', 'decoder.head.')]
    for n in range(1, len(model.radar_encoder1.sparse) + 1):
        theirs, ours = f'encoder_radar1.sparse_conv{n}.', f'radar_encoder1.sparse.{n - 1}.'
        pairs += [(theirs + 'conv.', ours + 'conv.'), (theirs + 'bias', ours + 'bias'),
                  (theirs + 'sparsity.weight', ours + 'sparsity')]
    for n in range(1, 6):   # their decoder_radar counts 5 (1/16) down to 1 (full resolution)
        for part, ours in (('upconv', 'up.'), ('bn', 'bn.'), ('conv', 'conv.')):
            pairs.append((f'decoder_radar.{part}{n}.', f'radar_decoder.stages.{5 - n}.{ours}'))
    for n, scale in zip(range(5, 0, -1), ('1_32', '1_16', '1_8', '1_4', '1_2')):
        pairs += [(f'decoder.weight{n}.0.', f'decoder.gates.{scale}.weight.'),
                  (f'decoder.project{n}.0.', f'decoder.gates.{scale}.project.'),
                  (f'decoder.upconv{n}.', f'decoder.up{n}.'), (f'decoder.conv{n}.', f'decoder.conv{n}.')]
    pairs += [(f'decoder.{bn}.', f'decoder.{bn}.') for bn in ('bn5', 'bn4', 'bn4_2', 'bn3', 'bn2')]
    # dense ASPP: their aconv_sequence = ReLU(0) Conv1x1(1) BN(2) ReLU(3) Conv3x3(4), with a separate
    # first_bn in front for rates after the first; ours puts that BN at index 0 of the same Sequential.
    for b, rate in enumerate(model.config.daspp_rates):
        shift = 0 if b == 0 else 1
        theirs = f'decoder.daspp_{rate}.atrous_conv.'
        if b:
            pairs.append((theirs + 'first_bn.', f'decoder.daspp.branches.{b}.0.'))
        pairs += [(f'{theirs}aconv_sequence.{i}.', f'decoder.daspp.branches.{b}.{i + shift}.') for i in (1, 2, 4)]
    # plane reductions: their reduc.inter_{in}_{out} convs (ELU after each), then plane_params / final
    for scale, name in (('8x8', 'reduc8'), ('4x4', 'reduc4'), ('2x2', 'reduc2'), ('1x1', 'reduc1')):
        convs = [(i, m) for i, m in enumerate(getattr(model.decoder, name)) if isinstance(m, nn.Conv2d)]
        for j, (i, conv) in enumerate(convs):
            last = j == len(convs) - 1
            theirs = ('final.0' if scale == '1x1' else 'plane_params') if last else \
                f'inter_{conv.in_channels}_{conv.out_channels}.0'
            pairs.append((f'decoder.reduc{scale}.reduc.{theirs}.', f'decoder.{name}.{i}.'))
    return pairs


def _lircdepth_pairs(model: nn.Module) -> list:
    """(their prefix, our prefix) for LiRCDepth (student_models/ of harborsarah/LiRCDepth), one to one."""
    pairs = [('encoder.base_model.', 'image_encoder.encoder.backbone.features.'),
             ('encoder_radar.conv.0.', 'radar_encoder.stem.0.'),
             ('encoder_radar.base_model.', 'radar_encoder.encoder.backbone.features.'),
             ('decoder.upconv1.0.', 'decoder.to1.0.'),
             ('decoder.conv1.0.', 'decoder.refine.0.'), ('decoder.get_depth.0.', 'decoder.refine.2.')]
    for i in range(len(model.fusion)):
        pairs += [(f'encoder.conv_image.{i}.conv.0.', f'image_encoder.project.{i}.0.'),
                  (f'encoder_radar.conv_radar.{i}.conv.0.', f'radar_encoder.project.{i}.0.'),
                  (f'decoder.conv_radar.{i}.conv.0.', f'fusion.{i}.0.')]
    # their InvertedResidualTranspose: expansion_layer (conv, BN, ReLU6), depthwise_layer_transpose
    # (same), pointwise_layer_transpose (conv, BN); ours one Sequential of the eight.
    block = (('expansion_layer.0', 0), ('expansion_layer.1', 1), ('depthwise_layer_transpose.0', 3),
             ('depthwise_layer_transpose.1', 4), ('pointwise_layer_transpose.0', 6),
             ('pointwise_layer_transpose.1', 7))
    for n, stage in ((5, 'to16'), (4, 'to8'), (3, 'to4'), (2, 'to2')):
        for j in range(len(getattr(model.decoder, stage))):
            pairs += [(f'decoder.upconv{n}.{j}.{theirs}.', f'decoder.{stage}.{j}.{ours}.') for theirs, ours in block]
    pairs += [(f'decoder.scale{s}.0.', f'decoder.side.{i}.0.') for i, s in enumerate((8, 4, 2, 1))]
    if model.rad_conf is not None:
        for n in range(1, len(model.rad_conf.sparse) + 1):
            theirs, ours = f'rad_conf.sparse.sparse_conv{n}.', f'rad_conf.sparse.{n - 1}.'
            pairs += [(theirs + 'conv.', ours + 'conv.'), (theirs + 'bias', ours + 'bias'),
                      (theirs + 'sparsity.weight', ours + 'sparsity')]
        pairs.append(('rad_conf.confidence.0.', 'rad_conf.head.'))
    return pairs


def _rename(key: str, pairs: list) -> str | None:
    """``key`` with its longest matching prefix replaced by its partner; None when no prefix matches."""
    best = max((p for p in pairs if key.startswith(p[0])), key=lambda p: len(p[0]), default=None)
    return None if best is None else best[1] + key[len(best[0]):]


# ----------------------------------------------------------------------------- reading the file

def read_official(path) -> tuple[dict, dict]:
    """(state_dict without 'module.', {'global_step': int or None}) of one of the authors' files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'file not found: {path} (expected a checkpoint of the authors\' code)')
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # code to run, not a torch file, truncated, ...
        first_line = (str(exc).strip().splitlines() or [''])[0]
        raise ValueError(f'{path} cannot be read as plain tensors (torch.load weights_only=True refused it: '
                         f'{type(exc).__name__}: {first_line})') from None
    if isinstance(obj, dict) and obj.get('format') == CHECKPOINT_FORMAT:
        raise ValueError(f'{path} is already an xd_rcdepth checkpoint; nothing to import')
    if isinstance(obj, dict) and isinstance(obj.get('model'), dict):
        state, info = obj['model'], {'global_step': _plain_int(obj.get('global_step'))}
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, info = obj, {'global_step': None}
    else:
        what = f'a dict with keys {sorted(map(str, obj))[:6]}' if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} holds {what}: expected {{'model': state_dict}} (as the authors' training "
                         'saves it) or a bare state_dict')
    bad = [str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise ValueError(f'{path}: the state_dict holds {len(bad)} entries that are not named tensors, '
                         f'e.g. {bad[:SHOW]}')
    if state and all(k.startswith('module.') for k in state):   # saved from DataParallel, as theirs are
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state), info


def _plain_int(value):
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def which_model(keys) -> str | None:
    """'cafnet', 'lircdepth' or None: which of the authors' models a state_dict's names belong to."""
    hits = {name: sum(any(k.startswith(p) for p in prefixes) for k in keys) for name, prefixes in SIGNATURES.items()}
    best = max(hits, key=hits.get)
    return best if hits[best] else None


# ----------------------------------------------------------------------------- conversion

@dataclass
class ImportReport:
    format: str
    model_name: str
    variant: str                    # what was found, in words
    tensors: int                    # tensors in the file
    mapped: int                     # of them loaded into our model
    dropped: list = field(default_factory=list)   # of them left out on purpose (names as in the file)
    warnings: list = field(default_factory=list)
    global_step: int | None = None

    def to_dict(self) -> dict:
        return {'format': self.format, 'model_name': self.model_name, 'variant': self.variant,
                'tensors': self.tensors, 'mapped': self.mapped, 'dropped': list(self.dropped),
                'warnings': list(self.warnings), 'global_step': self.global_step}


def convert_official(fmt: str, state: dict, name: str = 'the state_dict') -> tuple[nn.Module, ImportReport]:
    """Our model (eval mode) holding the authors' weights ``state`` (keys without 'module.'), and what
    was done. ``name`` (the file) is used in errors. One ValueError lists every problem."""
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
    model_name = FORMATS[fmt]
    title = MODEL_TITLES[model_name]
    found = which_model(state)
    if found != model_name:
        if found is None:
            raise ValueError(f'{name} is not a state_dict of the authors\' {title}: none of its {len(state)} tensors '
                             f'has their names (e.g. {sorted(state)[:3]})')
        other = next(f for f, m in FORMATS.items() if m == found)
        raise ValueError(f'{name} holds the authors\' {MODEL_TITLES[found]} ({len(state)} tensors), not {title}: '
                         f'use --format {other}')
    if model_name == 'cafnet':
        model, variant, dropped_names = build_model('cafnet'), 'CaFNet (CaFNet_single layout)', CAFNET_DROPPED
        pairs = _cafnet_pairs(model)
    else:
        with_conf = any(k.startswith('rad_conf.') for k in state)
        model = build_model('lircdepth', radar_confidence=with_conf)
        variant = ('LiRCDepth with the radar-confidence module (--radar_confidence)' if with_conf else
                   'LiRCDepth without the radar-confidence module (the nuScenes test configuration)')
        dropped_names, pairs = (), _lircdepth_pairs(model)
    target = model.state_dict()
    ours, source, dropped, unknown, twice, shapes = {}, {}, [], [], [], []
    for key, value in state.items():
        if key in dropped_names:
            dropped.append(key)
            continue
        new = _rename(key, pairs)
        if new is None or new not in target:
            unknown.append(key)
        elif new in source:
            twice.append(f'{key} and {source[new]} (both {new})')
        elif value.shape != target[new].shape:
            shapes.append(f'{key} {tuple(value.shape)} in the file, {tuple(target[new].shape)} expected')
            source[new] = key
        else:
            ours[new], source[new] = value, key
    inverse = [(o, t) for t, o in pairs]   # our missing tensors, by the names the file should have
    missing = [_rename(k, inverse) or k for k in target if k not in source]
    problems = [(f'{len(missing)} missing', missing), (f'{len(shapes)} mis-shaped', shapes),
                (f'{len(unknown)} unknown (no counterpart in our {model_name})', unknown),
                (f'{len(twice)} mapped twice', twice)]
    problems = [(what, items) for what, items in problems if items]
    if problems:
        parts = [f'{what}: {", ".join(items[:SHOW])}{", ..." if len(items) > SHOW else ""}' for what, items in problems]
        raise ValueError(f'{name} does not fit the authors\' {title} layout ({len(state)} tensors; names without '
                         f'"module."): ' + '; '.join(parts))
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in ours.items()}, strict=True)
    warnings = [f'{source[k]} is not all ones (the authors never train it; values used as they are)'
                for k, v in ours.items() if k.endswith('.sparsity') and not bool((v == 1).all())]
    report = ImportReport(fmt, model_name, variant, tensors=len(state), mapped=len(ours), dropped=dropped,
                          warnings=warnings)
    return model.eval(), report


def official_conventions(fmt: str, file_name: str, sha256: str) -> InputConventions:
    """How the authors feed their networks: nuScenes CAM_FRONT keyframes, 1600 x 900 (fx 1266.417; the
    test crop of the top 4 rows keeps it), ImageNet normalisation, raw radar depth, RCS, vx, vy."""
    return InputConventions(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, radar_channels=RADAR_CHANNELS,
                            focal=float(NUSCENES_CAM_FRONT.fx),
                            image_size=(NUSCENES_CAM_FRONT.height, NUSCENES_CAM_FRONT.width),
                            source={'format': fmt, 'file': file_name, 'sha256': sha256})


def import_official(fmt: str, src, out) -> tuple[Path, ImportReport]:
    """Read the authors' file ``src``, convert it, write our checkpoint ``out`` (atomically; nothing is
    written when anything fails). Returns (path written, report)."""
    src, out = Path(src), Path(out)
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise ValueError(f'--out {out} is the file being imported; choose another path')
    state, info = read_official(src)
    model, report = convert_official(fmt, state, str(src))
    report.global_step = info['global_step']
    conventions = official_conventions(fmt, src.name, file_sha256(src))
    path = save_checkpoint(out, model, extra={'inputs': conventions.to_dict(), 'imported': report.to_dict()})
    return path, report
