"""`xd-rcdepth demo` end to end (what `make demo` runs), small: synth -> to-bag -> the node live -> report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from xd_rcdepth_core.models.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
XD = str(Path(sys.executable).with_name('xd-rcdepth'))
SHIPPED = ROOT / 'models' / 'xd_rcdepth_synthetic.pt'


def test_shipped_checkpoint_is_small_safe_and_has_a_model_card():
    assert SHIPPED.stat().st_size < 20e6
    ckpt = torch.load(SHIPPED, map_location='cpu', weights_only=True)   # plain tensors and dicts only
    assert all(v.dtype == torch.float16 for v in ckpt['state_dict'].values() if v.is_floating_point())
    model, _ = load_model(SHIPPED)
    assert type(model).__name__ == 'XDRCDepth' and model.config.fusion == 'film'
    assert all(p.dtype == torch.float32 for p in model.parameters())     # fp16 storage, fp32 compute on CPU
    card = (ROOT / 'models' / 'README.md').read_text()
    assert 'synthetic data only' in card and 'scripts/train_shipped_model.sh' in card


def test_demo_end_to_end(tmp_path):
    out = tmp_path / 'demo'
    env = dict(os.environ)
    proc = subprocess.run([XD, 'demo', '--out', str(out), '--frames', '3',
                           '--size', '96x160', '--device', 'cpu', '--figures', '1'],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / 'metrics.json').read_text())
    assert result['valid'] and result['mode'] == 'live' and result['frames_processed'] == 3
    assert result['by_range']['80']['images'] == 3 and not result['dropped_frames']
    assert result['latency_ms']['count'] == 3 and (out / 'latency.md').is_file()
    assert [Path(f).suffix for f in result['figures']] == ['.png'] and Path(result['figures'][0]).is_file()
    meta = yaml.safe_load((out / 'output_bag' / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    counts = {t['topic_metadata']['name']: t['message_count'] for t in meta['topics_with_message_count']}
    assert counts == {'/xd_rcdepth/output/depth': 3, '/xd_rcdepth/output/depth/camera_info': 3,
                      '/xd_rcdepth/output/depth_colored': 3, '/xd_rcdepth/debug/saliency_overlay': 3}
    assert (out / 'input_bag' / 'metadata.yaml').is_file()
    assert 'Foxglove' in proc.stdout and 'ros2 bag play' in proc.stdout


def test_demo_without_a_checkpoint_is_one_clear_line(tmp_path):
    proc = subprocess.run([XD, 'demo', '--out', str(tmp_path / 'd'),
                           '--checkpoint', str(tmp_path / 'missing.pt')], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f'xd-rcdepth demo: error: --checkpoint {tmp_path / "missing.pt"} '
                                                'does not exist']
