"""The loss of each recipe, as named terms.

teacher  CaFNet (docs/reference.md 4.1/4.2): w_depth L1(depth, GT_interp) [+ w_single L1(depth, GT_single)]
         + w_confidence BCE(confidence, radar target) + w_coarse L1(coarse, GT_interp) + w_smooth smooth.
student  L_depth = w_depth L1(depth, GT_interp) + w_single L1(depth, GT_single) + w_smooth smooth
         (depth supervision on valid GT; docs/paper.md Total loss).
distill  lambda1 L_depth + lambda2 L_XKD + lambda3 L_D2KD with a frozen teacher (docs/paper.md); either KD
         term can be switched off (distill.kd = none | xkd | d2kd | both).
radarnet-stage1  RadarNet's correspondence maps: BCE with positive weight 2 against the lidar labels
         (targets.correspondence_target; docs/reference.md Part A 4.4) of 4 radar points drawn per image,
         replaced by noisy lidar points on 10 % of the images (prepare_batch; its draws are seeded by
         (seed, step), so a resumed run draws what the uninterrupted one did).
radarnet-stage2  RadarNet's dense depth: L1 on GT_interp where the accumulated map is empty + 2 L1 on the
         accumulated map (docs/reference.md Part A 4.4) [+ w_smooth smooth].

Each objective returns (total loss, {term: detached tensor}); terms are the weighted contributions, so
they add up to the total, and log under loss/<term>.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..distill.losses import (
    bin_centres,
    confidence_bce,
    d2kd_loss,
    edge_aware_smoothness,
    masked_l1,
    student_saliency,
    teacher_saliency,
    valid_depth_mask,
    xkd_loss,
)
from ..models.radarnet import RadarNetConfig
from .config import TrainConfig
from .data import draw_seed
from .targets import confidence_target, correspondence_target, lidar_points_for_radar, sample_radar_points


def _total(terms: dict):
    total = sum(terms.values())
    return total, {k: v.detach() for k, v in terms.items()}   # tensors: no device sync per step


class StudentObjective:
    """L_depth on valid GT."""

    def __init__(self, config: TrainConfig):
        self.loss = config.loss

    def depth_terms(self, out: dict, batch: dict) -> dict:
        c = self.loss
        terms = {'depth': c.w_depth * masked_l1(out['depth'], batch['depth_interp'], c.min_depth)}
        if c.w_single:
            terms['single'] = c.w_single * masked_l1(out['depth'], batch['depth_sparse'], c.min_depth)
        if c.w_smooth:
            terms['smooth'] = c.w_smooth * edge_aware_smoothness(out['depth'], batch['image'])
        return terms

    def __call__(self, model, out: dict, batch: dict):
        return _total(self.depth_terms(out, batch))


class TeacherObjective(StudentObjective):
    """CaFNet's loss; the confidence target is built on the CPU batch (see prepare_batch)."""

    def prepare_batch(self, batch: dict) -> dict:
        c = self.loss
        batch['confidence_target'] = confidence_target(batch['radar'], batch['depth_interp'],
                                                       c.confidence_window, c.confidence_threshold)
        return batch

    def __call__(self, model, out: dict, batch: dict):
        c = self.loss
        terms = self.depth_terms(out, batch)
        mask = valid_depth_mask(batch['depth_interp'], c.min_depth)
        terms['confidence'] = c.w_confidence * confidence_bce(out['confidence'], batch['confidence_target'], mask)
        terms['coarse'] = c.w_coarse * masked_l1(out['coarse_depth'], batch['depth_interp'], c.min_depth)
        return _total(terms)


class DistillObjective(StudentObjective):
    """Student + frozen teacher: lambda1 L_depth + lambda2 L_XKD + lambda3 L_D2KD."""

    def __init__(self, config: TrainConfig, teacher: torch.nn.Module, autocast=contextlib.nullcontext):
        super().__init__(config)
        self.d = config.distill
        self.teacher = teacher
        self.autocast = autocast
        self.use_xkd = self.d.kd in ('xkd', 'both')
        self.use_d2kd = self.d.kd in ('d2kd', 'both')
        self._centres = None
        self.last_maps = None   # (student maps, teacher maps) of the last step, for TensorBoard images
        self.step = 0           # the optimizer step being taken (the Trainer sets it): KD warm-up

    def centres(self, device):
        if self._centres is None or self._centres.device != device:
            d = self.d
            self._centres = bin_centres(d.d2kd_bins, d.d2kd_max_depth, d.d2kd_min_depth, device=device)
        return self._centres

    def teacher_outputs(self, batch: dict, phi_mask):
        """(teacher depth, teacher maps or None): cached in the batch (teacher_targets.py) or computed."""
        d = self.d
        if 'teacher_depth' in batch and (not self.use_xkd or 'teacher_maps' in batch):
            return batch['teacher_depth'], batch.get('teacher_maps')
        with self.autocast():
            if self.use_xkd:
                t_out, t_maps = teacher_saliency(self.teacher, batch['image'], batch['radar'], d.xkd_layers, phi_mask)
                return t_out['depth'], t_maps
            with torch.no_grad():
                return self.teacher(batch['image'], batch['radar'])['depth'], None

    def kd_weight(self) -> float:
        """0 before distill.kd_start_step, then rising linearly to 1 over distill.kd_ramp_steps."""
        d = self.d
        done = self.step - d.kd_start_step
        if done < 0:
            return 0.0
        return 1.0 if d.kd_ramp_steps == 0 else min(1.0, (done + 1) / d.kd_ramp_steps)

    def __call__(self, model, out: dict, batch: dict):
        d = self.d
        depth = self.depth_terms(out, batch)
        terms = {k: d.lambda_depth * v for k, v in depth.items()}
        weight = self.kd_weight()
        if not (self.use_xkd or self.use_d2kd) or weight == 0.0:
            return _total(terms)      # no KD yet: the teacher is not even run
        valid = valid_depth_mask(batch['depth_interp'], self.loss.min_depth)
        phi_mask = valid if d.xkd_target == 'valid_mean' else None
        t_depth, t_maps = self.teacher_outputs(batch, phi_mask)
        if self.use_xkd:
            with self.autocast():
                s_maps = student_saliency(getattr(model, 'module', model), batch['image'], batch['radar'],
                                          d.xkd_layers, phi_mask)
            xkd, per_layer = xkd_loss(s_maps, t_maps)
            terms['xkd'] = weight * d.lambda_xkd * xkd
            self.last_maps = ({k: v.detach() for k, v in s_maps.items()}, t_maps)
        if self.use_d2kd:
            mask = valid if d.d2kd_pixels == 'valid' else None
            terms['d2kd'] = weight * d.lambda_d2kd * d2kd_loss(out['depth'], t_depth,
                                                      self.centres(out['depth'].device), d.d2kd_tau, mask)
        return _total(terms)


class RadarNetStage1Objective:
    """Weighted BCE of RadarNet's per-point correspondence logits over each patch's in-image pixels."""

    def __init__(self, config: TrainConfig):
        self.r = config.radarnet
        self.seed = config.seed
        self.points = int(config.model.config.get('train_points', RadarNetConfig.train_points))
        self.step = 0           # the optimizer step being taken (the Trainer sets it)

    def prepare_batch(self, batch: dict) -> dict:
        """On the CPU batch: lidar points stand in for the radar points of some images, then each image keeps
        ``train_points`` points drawn at random."""
        r = self.r
        g = torch.Generator().manual_seed(draw_seed(self.seed, self.step, 0, 0))
        radar = batch['radar']
        if r.lidar_points_p > 0:
            radar = lidar_points_for_radar(radar, batch['depth_interp'], r.lidar_points_p, r.lidar_u_noise_px,
                                           r.lidar_depth_noise, generator=g)
        batch['radar'] = sample_radar_points(radar, self.points, g)
        return batch

    def __call__(self, model, out: dict, batch: dict):
        logits = out['correspondence_logits'].float()
        label, weight = correspondence_target(out['points'], out['point_valid'], batch['depth_interp'],
                                              logits.shape[-1], self.r.correspondence_threshold)
        bce = F.binary_cross_entropy_with_logits(logits, label, weight=weight, reduction='sum',
                                                 pos_weight=torch.tensor(self.r.w_positive, device=logits.device))
        return _total({'correspondence': bce / weight.sum().clamp(min=1)})


class RadarNetStage2Objective(StudentObjective):
    """L1(depth, GT_interp where no accumulated lidar) + w_accumulated L1(depth, accumulated) [+ smoothness].
    A cache without an accumulated map (all zero) leaves plain L1 on GT_interp."""

    def __init__(self, config: TrainConfig):
        super().__init__(config)
        self.r = config.radarnet

    def depth_terms(self, out: dict, batch: dict) -> dict:
        c = self.loss
        accumulated = batch['depth_accumulated']
        interp = torch.where(accumulated > c.min_depth, torch.zeros_like(accumulated), batch['depth_interp'])
        terms = {'depth': c.w_depth * masked_l1(out['depth'], interp, c.min_depth)}
        if self.r.w_accumulated:
            terms['accumulated'] = self.r.w_accumulated * masked_l1(out['depth'], accumulated, c.min_depth)
        if c.w_smooth:
            terms['smooth'] = c.w_smooth * edge_aware_smoothness(out['depth'], batch['image'])
        return terms


def make_objective(config: TrainConfig, teacher=None, autocast=contextlib.nullcontext):
    if config.recipe == 'radarnet-stage1':
        return RadarNetStage1Objective(config)
    if config.recipe == 'radarnet-stage2':
        return RadarNetStage2Objective(config)
    if config.recipe == 'teacher':
        return TeacherObjective(config)
    if config.recipe == 'distill':
        return DistillObjective(config, teacher, autocast)
    return StudentObjective(config)
