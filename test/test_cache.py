"""The preprocessing cache: prepare -> files -> Frames, bad samples skipped and reported, resume after kills."""
import argparse
import json
import os

import numpy as np
import pytest

from test_nuscenes import write_toy
from test_zju import write_zju_frames
from xd_rcdepth_core.data.cache import CacheIndex, read_sample, sample_path
from xd_rcdepth_core.data.commands import add_prepare_arguments, add_show_arguments, run_prepare, run_show
from xd_rcdepth_core.data.errors import DatasetError
from xd_rcdepth_core.data.prepare import prepare
from xd_rcdepth_core.data.zju import ZJUAdapter


def quiet(*_):
    pass


def test_zju_cache_reads_back_the_frames(tmp_path):
    write_zju_frames(tmp_path / 'zju', n=4)
    summary = prepare('zju', tmp_path / 'zju', out=tmp_path / 'cache', progress=False, log=quiet)
    assert summary['splits']['train'] == dict(total=3, written=3, resumed=0, skipped=0, failed=0, unfinished=0)
    assert summary['radar_points']['mean'] > 0 and 0 < summary['coverage']['depth_sparse']['mean'] < 0.1
    index = CacheIndex(tmp_path / 'cache')
    assert index.splits == {'train': ['000000', '000001', '000002'], 'val': ['000003'], 'test': ['000003']}
    adapter = ZJUAdapter(tmp_path / 'zju')
    for i, name in enumerate(index.names('train')):
        cached, original = index.frame('train', i), adapter.frame(name)
        np.testing.assert_array_equal(cached.image, original.image)        # source PNG bytes kept
        np.testing.assert_array_equal(cached.radar, original.radar)
        assert cached.radar_fields == original.radar_fields and cached.name == name
        np.testing.assert_array_equal(cached.K, original.K)
        for m in ('depth_sparse', 'depth_interp'):
            np.testing.assert_allclose(getattr(cached, m), getattr(original, m), atol=1 / 256)
        assert cached.depth_accumulated is None
    with np.load(index.path('train', 0)) as z:
        assert z['image'].tobytes() == (tmp_path / 'zju' / 'image' / '000000.png').read_bytes()


def test_nuscenes_cache_skips_bad_samples_and_reports_them(tmp_path):
    toy = write_toy(tmp_path / 'nus', n_samples=6)
    from xd_rcdepth_core.data.nuscenes import NuScenesAdapter, NuScenesConfig
    nusc = NuScenesAdapter(toy.root, 'v1.0-mini', NuScenesConfig(lidar_sweeps=4)).nusc

    def file_of(sample, channel):
        return toy.root / nusc.get('sample_data', nusc.get('sample', sample)['data'][channel])['filename']
    s = toy.tokens
    radar0 = file_of(s[0], 'RADAR_FRONT')        # all 18 fields written as float32 under the packed header
    head = radar0.read_bytes().split(b'DATA binary\n')[0] + b'DATA binary\n'
    radar0.write_bytes(head + np.zeros((4, 18), '<f4').tobytes() + b'\n')
    radar1 = file_of(s[1], 'RADAR_FRONT')        # truncated
    radar1.write_bytes(radar1.read_bytes()[:-60])
    camera2 = file_of(s[2], 'CAM_FRONT')         # missing
    camera2.unlink()
    lidar3 = nusc.get('sample_data', nusc.get('sample', s[3])['data']['LIDAR_TOP'])
    sweep3 = toy.root / nusc.get('sample_data', lidar3['next'])['filename']
    sweep3.unlink()                              # a missing sweep: a warning, the sample survives

    summary = prepare('nuscenes', toy.root, 'v1.0-mini', tmp_path / 'cache', workers=2, progress=False,
                      options={'lidar_sweeps': 4}, log=quiet)
    counts = summary['splits']['train']
    assert (counts['total'], counts['written'], counts['skipped'], counts['failed']) == (5, 2, 3, 0)
    reasons = {r['name']: r['reason'] for r in summary['skipped']}
    assert 'float32' in reasons[s[0]] and radar0.name in reasons[s[0]]
    assert 'truncated' in reasons[s[1]] and radar1.name in reasons[s[1]]
    assert 'missing file' in reasons[s[2]] and camera2.name in reasons[s[2]]
    assert summary['warnings'] >= 1 and any(sweep3.name in w for w in summary['warning_examples'])
    assert CacheIndex(tmp_path / 'cache').names('train') == [s[3], s[4]]
    saved = json.loads((tmp_path / 'cache' / 'summary.json').read_text())
    assert saved['splits'] == summary['splits']
    # The cached image is the dataset's JPEG, byte for byte, and decodes to the adapter's pixels.
    path = sample_path(tmp_path / 'cache', 'train', s[4])
    with np.load(path) as z:
        assert z['image'].tobytes() == file_of(s[4], 'CAM_FRONT').read_bytes() and str(z['image_format']) == 'jpg'
    frame = read_sample(path)
    original = NuScenesAdapter(toy.root, 'v1.0-mini', NuScenesConfig(lidar_sweeps=4)).frame(s[4])
    np.testing.assert_array_equal(frame.image, original.image)
    np.testing.assert_array_equal(frame.radar, original.radar)
    np.testing.assert_allclose(frame.T_camera_radar, original.T_camera_radar)
    for m in ('depth_sparse', 'depth_accumulated', 'depth_interp'):
        np.testing.assert_allclose(getattr(frame, m), getattr(original, m), atol=1 / 256)


def test_dataset_level_errors_stop_prepare(tmp_path):
    write_toy(tmp_path / 'nus', n_samples=2)
    with pytest.raises(DatasetError, match='v1.0-trainval not found'):
        prepare('nuscenes', tmp_path / 'nus', 'v1.0-trainval', tmp_path / 'cache', progress=False, log=quiet)
    assert not (tmp_path / 'cache' / 'index.json').exists()


def _tmp_files(cache):
    return sorted(p.name for p in cache.rglob('*.tmp*'))


def test_resume_removes_half_written_files_and_redoes_only_missing(tmp_path):
    write_zju_frames(tmp_path / 'zju', n=5)
    cache = tmp_path / 'cache'
    prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)
    victim = sample_path(cache, 'train', '000002')
    victim.unlink()                                             # as if the run died before this sample
    (victim.parent / (victim.name + '.tmp4242')).write_bytes(b'PK\x03\x04 half a zip')   # and mid-write here
    logged = []
    summary = prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=logged.append)
    assert summary['stale_temporaries_removed'] == 1 and 'removed 1 temporary file' in logged[0]
    assert summary['splits']['train']['written'] == 1 and summary['splits']['train']['resumed'] == 3
    assert _tmp_files(cache) == []
    assert read_sample(victim).name == '000002'


def test_killed_worker_leaves_no_partial_sample_and_resume_finishes(tmp_path, monkeypatch):
    write_zju_frames(tmp_path / 'zju', n=6)
    cache = tmp_path / 'cache'
    parent, real_savez = os.getpid(), np.savez_compressed

    def dying_savez(fh, **arrays):
        if str(arrays['name']) == '000003' and os.getpid() != parent:
            fh.write(b'PK\x03\x04 partial')
            fh.flush()
            os._exit(1)                                         # a worker killed in the middle of a write
        return real_savez(fh, **arrays)

    monkeypatch.setattr(np, 'savez_compressed', dying_savez)
    summary = prepare('zju', tmp_path / 'zju', out=cache, workers=2, progress=False, log=quiet)
    assert summary['interrupted'] and 'worker process died' in summary['interrupted']
    assert not sample_path(cache, 'train', '000003').exists()   # never a half file under the final name
    assert any(n.startswith('000003.npz.tmp') for n in _tmp_files(cache))   # the half file is a temporary
    written = CacheIndex(cache).names('train')
    assert '000003' not in written
    for name in written:                                        # what the index lists is whole
        read_sample(sample_path(cache, 'train', name))
    monkeypatch.setattr(np, 'savez_compressed', real_savez)
    summary = prepare('zju', tmp_path / 'zju', out=cache, workers=2, progress=False, log=quiet)
    assert not summary['interrupted'] and _tmp_files(cache) == []
    assert CacheIndex(cache).names('train') == ['000000', '000001', '000002', '000003', '000004']
    assert read_sample(sample_path(cache, 'train', '000003')).name == '000003'


def test_cli_prepare_and_show(tmp_path, capsys):
    write_zju_frames(tmp_path / 'zju', n=3)
    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    args = parser.parse_args(['--dataset', 'zju', '--root', str(tmp_path / 'zju'), '--out', str(tmp_path / 'c'),
                              '--no-progress', '--splits', 'train'])
    assert run_prepare(args) == 0
    assert 'train' in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    add_show_arguments(parser)
    assert run_show(parser.parse_args(['--cache', str(tmp_path / 'c'), '--index', '1',
                                       '--out', str(tmp_path / 'show.png')])) == 0
    from PIL import Image
    with Image.open(tmp_path / 'show.png') as im:
        assert im.size == (2 * 128, 3 * 72)
    with pytest.raises(ValueError, match='out of range'):
        run_show(parser.parse_args(['--cache', str(tmp_path / 'c'), '--index', '9', '--out', str(tmp_path / 'x.png')]))


def test_synthetic_native_storage_cache(tmp_path):
    from xd_rcdepth_core.synthetic import SyntheticStore
    from xd_rcdepth_core.synthetic.command import add_arguments, run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    run(parser.parse_args(['--out', str(tmp_path / 'syn'), '--scenes', '2', '--frames', '2', '--size', '48x80',
                           '--accumulate', '1', '--quiet']))
    summary = prepare('synthetic', tmp_path / 'syn', out=tmp_path / 'cache', progress=False, log=quiet,
                      options={'val_scenes': 1})
    assert {s: c['written'] for s, c in summary['splits'].items()} == {'train': 2, 'val': 2}
    index = CacheIndex(tmp_path / 'cache')
    assert index.names('val') == ['scene-0002/0', 'scene-0002/1']
    store = SyntheticStore(tmp_path / 'syn')
    cached, original = index.frame('val', 1), store[3]
    np.testing.assert_array_equal(cached.image, original.image)
    np.testing.assert_array_equal(cached.radar, original.radar)
    np.testing.assert_allclose(cached.T_camera_radar, original.T_camera_radar)
    for m in ('depth_sparse', 'depth_accumulated', 'depth_interp', 'depth_dense'):
        np.testing.assert_allclose(getattr(cached, m), getattr(original, m), atol=1 / 256)
    assert cached.name == original.name
    with pytest.raises(DatasetError, match='meta.json'):
        prepare('synthetic', tmp_path / 'nothere', out=tmp_path / 'c2', progress=False, log=quiet)
