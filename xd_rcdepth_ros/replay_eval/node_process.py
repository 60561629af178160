"""The xd_rcdepth node as a subprocess for live replay evaluation: parameters, remaps, start, stop.

Parameters go through a params file (YAML floats round-trip exactly, `-p` strings need care), and
the static T_camera_radar is handed over as translation + quaternion like a user would; `node_extrinsics`
gives the matrix the node rebuilds from those numbers, which the offline path uses too, so both feed
DepthEstimator bit-identical radar positions.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from xd_rcdepth_core.geometry import rotation_to_quaternion, transform_from_pose


def node_extrinsics(T: np.ndarray) -> tuple:
    """(translation list, quaternion wxyz list, the 4x4 the node builds from them)."""
    t = [float(v) for v in np.asarray(T, float)[:3, 3]]
    q = [float(v) for v in rotation_to_quaternion(np.asarray(T, float)[:3, :3])]
    return t, q, transform_from_pose(t, q)


def node_command() -> list:
    """The console script next to this interpreter, else on PATH, else `python -m xd_rcdepth_ros.node`."""
    local = Path(sys.executable).parent / 'xd_rcdepth_node'
    if local.is_file():
        return [str(local)]
    found = shutil.which('xd_rcdepth_node')
    return [found] if found else [sys.executable, '-m', 'xd_rcdepth_ros.node']


def write_params(path: Path, node_name: str, params: dict) -> Path:
    import yaml
    path.write_text(yaml.safe_dump({node_name: {'ros__parameters': params}}, sort_keys=False))
    return path


class NodeProcess:
    """Start the node with params + remaps, log to a file; `stop()` sends SIGINT, then kills if needed."""

    def __init__(self, name: str, params: dict, remaps: dict, workdir: Path):
        self.name = name
        self.log_path = workdir / 'node.log'
        params_file = write_params(workdir / 'node_params.yaml', name, params)
        cmd = node_command() + ['--ros-args', '-r', f'__node:={name}', '--params-file', str(params_file)]
        for src, dst in remaps.items():
            cmd += ['-r', f'{src}:={dst}']
        self.command = cmd
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ),
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return ''

    def stop(self, timeout: float = 15.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def wait_until(condition, timeout: float, poll: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(poll)
    return condition()
