"""The data commands end to end through the installed `xd-rcdepth` console script."""
import subprocess
import sys
from pathlib import Path

import cv2

EXE = str(Path(sys.executable).parent / 'xd-rcdepth')


def run(*args, ok=True):
    out = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert (out.returncode == 0) == ok, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def test_synth_nuscenes_then_prepare_then_show(tmp_path):
    data, cache, png = tmp_path / 'nus', tmp_path / 'cache', tmp_path / 'show.png'
    run('synth', '--format', 'nuscenes', '--out', data, '--scenes', '1', '--frames', '3', '--size', '90x160',
        '--accumulate', '2', '--quiet')
    assert (data / 'v1.0-mini' / 'sample_data.json').is_file()
    assert list((data / 'samples' / 'RADAR_FRONT').glob('*.pcd'))
    out = run('prepare', '--dataset', 'nuscenes', '--root', data, '--version', 'v1.0-mini', '--out', cache)
    assert 'GT coverage' in out.stdout
    run('show', '--cache', cache, '--index', '0', '--out', png)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 90 and img.shape[1] > 160
    # A second run over the same folder refuses without --overwrite, with one line and no traceback.
    bad = run('synth', '--format', 'nuscenes', '--out', data, '--size', '90x160', ok=False)
    assert 'not empty' in bad.stderr and 'Traceback' not in bad.stderr


def test_prepare_reports_a_missing_root(tmp_path):
    bad = run('prepare', '--dataset', 'nuscenes', '--root', tmp_path / 'nope', '--version', 'v1.0-mini',
              '--out', tmp_path / 'c', ok=False)
    assert 'Traceback' not in bad.stderr and bad.stderr.strip().count('\n') == 0, bad.stderr
