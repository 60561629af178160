"""Training runs as resumable units of a longer plan (what `reproduce` and a benchmark plan need).

- A run folder is finished when its ``summary.json`` says so (the Trainer writes it at the end of
  every ``fit``, with ``finished`` false when it stopped early on request); a finished run is skipped.
- A run that was killed resumes from ``checkpoints/last.pt`` (the Trainer's exact resume).
- One process trains a run folder at a time: an advisory lock on ``RUN/.lock`` (released by the OS
  when the process dies, so a killed run never leaves a stale lock).
- One run in this process (``train_run``), or as N processes per machine under torchrun
  (``torchrun_argv``: ``python -m torch.distributed.run ... -m xd_rcdepth_core.commands.train``),
  on one machine (``--standalone``) or several (torchrun's own rendezvous options).
- What a run logged (``read_run_log``) and how fast it went (``seconds_per_step``).

benchmarks/distillation.py runs its plan with these too.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ..training import Trainer
from ..training.config import TrainConfig

TRAIN_MODULE = 'xd_rcdepth_core.commands.train'


class RunBusy(RuntimeError):
    """Another process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(run_dir):
    """Yields True when this process may train ``run_dir`` (no other process holds its lock)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / '.lock', 'w') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_summary(run_dir) -> Optional[dict]:
    path = Path(run_dir) / 'summary.json'
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def finished_summary(run_dir) -> Optional[dict]:
    """The run's summary.json when it says the run finished, else None."""
    summary = read_summary(run_dir)
    return summary if summary and summary.get('finished') else None


def last_checkpoint(run_dir) -> Optional[Path]:
    path = Path(run_dir) / 'checkpoints' / 'last.pt'
    return path if path.is_file() else None


def train_run(config: TrainConfig, log=print, stop_after: Optional[int] = None) -> dict:
    """Train ``config.run_dir`` in this process: skipped when finished, resumed from last.pt when one
    exists. ``stop_after``: stop after that step as a killed run would (a test hook). RunBusy when
    another process trains the same folder."""
    run_dir = Path(config.run_dir)
    done = finished_summary(run_dir)
    if done:
        return done
    with run_lock(run_dir) as mine:
        if not mine:
            raise RunBusy(f'{run_dir} is being trained by another process (it holds {run_dir / ".lock"})')
        resume = 'auto' if last_checkpoint(run_dir) else None
        trainer = Trainer(config, resume=resume, log=log, progress=False)
        try:
            return trainer.fit(stop_after=stop_after)
        finally:
            trainer.close()


@dataclass(frozen=True)
class Launch:
    """How a training run is started: processes per machine and, for several machines, torchrun's
    rendezvous (every machine runs the same command; they meet at ``endpoint``)."""
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_backend: str = 'c10d'
    rdzv_endpoint: Optional[str] = None
    rdzv_id: str = 'xd-rcdepth'

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node > 1 or self.nnodes > 1

    @property
    def world_size(self) -> int:
        return max(self.nproc_per_node, 1) * max(self.nnodes, 1)


def torchrun_argv(launch: Launch, recipe: str, config_file, overrides, resume: bool, run_name: str = 'run',
                  python: str = sys.executable) -> list:
    """The torchrun command line of one run (`xd-rcdepth train` as a module, so any Python runs it)."""
    argv = [python, '-m', 'torch.distributed.run', f'--nproc_per_node={launch.nproc_per_node}']
    if launch.nnodes > 1:
        if not launch.rdzv_endpoint:
            raise ValueError('several machines need a rendezvous endpoint (HOST:PORT)')
        # one rendezvous per run, so a machine that is late for one run cannot join the next
        argv += [f'--nnodes={launch.nnodes}', f'--rdzv_backend={launch.rdzv_backend}',
                 f'--rdzv_endpoint={launch.rdzv_endpoint}', f'--rdzv_id={launch.rdzv_id}-{run_name}']
    else:
        argv.append('--standalone')
    argv += ['-m', TRAIN_MODULE, '--recipe', recipe, '--quiet']
    if resume:
        argv.append('--resume')      # before --config: the overrides that follow are not its CKPT
    argv += ['--config', str(config_file), *overrides]
    return argv


def read_run_log(run_dir) -> tuple[dict, dict]:
    """({step: training record}, {step: val record}) from RUN/log.jsonl; a resumed run logged some
    steps twice (those after its last checkpoint): the later record wins."""
    path = Path(run_dir) / 'log.jsonl'
    train, val = {}, {}
    if not path.is_file():
        return train, val
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:      # a line cut by a kill
            continue
        if not isinstance(rec, dict) or 'step' not in rec:
            continue
        (val if any(k.startswith('val/') for k in rec) else train)[int(rec['step'])] = rec
    return train, val


def seconds_per_step(run_dir) -> Optional[float]:
    """Measured wall seconds per optimizer step of a run (validation and checkpoints included): from
    summary.json of its last invocation, else from the speed log.jsonl recorded; None before any."""
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / 'config.yaml').read_text())
        batch = int(config['data']['batch_size'])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    summary = read_summary(run_dir)
    if summary and summary.get('samples_per_s'):
        return batch * int(summary.get('world_size') or 1) / float(summary['samples_per_s'])
    train, _ = read_run_log(run_dir)
    speeds = sorted(float(r['samples_per_s']) for r in train.values() if r.get('samples_per_s'))
    if not speeds:
        return None
    return batch / speeds[len(speeds) // 2]     # per process: the log's speed counts every process


__all__ = ['RunBusy', 'run_lock', 'read_summary', 'finished_summary', 'last_checkpoint', 'train_run', 'Launch',
           'torchrun_argv', 'read_run_log', 'seconds_per_step']
