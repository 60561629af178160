"""The preprocessing cache: prepare -> files -> Frames, bad samples skipped and reported, resume after kills."""
import argparse
import json
import os

import numpy as np
import pytest
from test_nuscenes import write_toy
from test_zju import write_zju_frames

from xd_rcdepth_core.commands.prepare import add_arguments as add_prepare_arguments
from xd_rcdepth_core.commands.prepare import run as run_prepare
from xd_rcdepth_core.commands.show import add_arguments as add_show_arguments
from xd_rcdepth_core.commands.show import run as run_show
from xd_rcdepth_core.commands.synth import add_arguments, run
from xd_rcdepth_core.data.cache import CacheIndex, read_sample, sample_path
from xd_rcdepth_core.data.errors import CacheMismatchError, DatasetError
from xd_rcdepth_core.data.nuscenes.adapter import NuScenesAdapter, NuScenesConfig
from xd_rcdepth_core.data.prepare import prepare
from xd_rcdepth_core.data.zju import ZJUAdapter
from xd_rcdepth_core.synthetic import SyntheticStore


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


# --------------------------------------------------------------------------------------------------
# several runs into one cache: merged index, settings fingerprint, --overwrite
def _two_version_dataroot(root):
    """One dataroot with v1.0-trainval (split train) and v1.0-test (split test), as on a full download."""
    write_toy(root, n_samples=3, version='v1.0-trainval', split='train')
    return write_toy(root, n_samples=3, version='v1.0-test', split='test')


def test_later_prepare_keeps_other_splits_and_limit_never_shrinks(tmp_path):
    toy = _two_version_dataroot(tmp_path / 'nus')
    cache, opts = tmp_path / 'cache', {'lidar_sweeps': 2}
    prepare('nuscenes', toy.root, 'v1.0-trainval', cache, progress=False, options=opts, log=quiet)
    prepare('nuscenes', toy.root, 'v1.0-test', cache, progress=False, options=opts, log=quiet)
    index = CacheIndex(cache)
    assert index.splits == {'train': toy.tokens[:2], 'test': toy.tokens[:2]}     # both visible
    assert index.record('train')['version'] == 'v1.0-trainval' and index.record('test')['version'] == 'v1.0-test'
    assert index.record('train')['options'] == opts and index.record('train')['eval_multiple'] == 32
    # --limit adds to a split, it does not cut what an earlier run finished.
    summary = prepare('nuscenes', toy.root, 'v1.0-trainval', cache, progress=False, options=opts, limit=1, log=quiet)
    assert summary['splits']['train']['resumed'] == 1 and summary['listed'] == {'train': 2}
    assert CacheIndex(cache).splits == {'train': toy.tokens[:2], 'test': toy.tokens[:2]}
    assert json.loads((cache / 'index.json').read_text())['splits'] == {'train': 2, 'test': 2}


def test_changed_settings_are_refused_with_one_clear_error(tmp_path):
    toy = write_toy(tmp_path / 'nus', n_samples=3)
    write_toy(tmp_path / 'nus', n_samples=3, version='v1.0-trainval')   # the same scene under another version
    cache = tmp_path / 'cache'
    prepare('nuscenes', toy.root, 'v1.0-mini', cache, progress=False, options={'lidar_sweeps': 2}, log=quiet)
    before = {p: p.stat().st_mtime_ns for p in cache.rglob('*')}
    with pytest.raises(CacheMismatchError, match=r"split 'train'.*lidar_sweeps 2 -> 3.*new --out.*--overwrite"):
        prepare('nuscenes', toy.root, 'v1.0-mini', cache, progress=False, options={'lidar_sweeps': 3}, log=quiet)
    with pytest.raises(CacheMismatchError, match=r"mover_rule 'category' -> 'moving'"):
        prepare('nuscenes', toy.root, 'v1.0-mini', cache, progress=False,
                options={'lidar_sweeps': 2, 'mover_rule': 'moving'}, log=quiet)
    with pytest.raises(CacheMismatchError, match=r"version 'v1.0-mini' -> 'v1.0-trainval'"):
        prepare('nuscenes', toy.root, 'v1.0-trainval', cache, progress=False, options={'lidar_sweeps': 2}, log=quiet)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob('*')} == before          # nothing touched
    # Options that only choose samples are no mismatch: keeping the last keyframe adds one.
    summary = prepare('nuscenes', toy.root, 'v1.0-mini', cache, progress=False, log=quiet,
                      options={'lidar_sweeps': 2, 'skip_last_keyframe': False})
    assert summary['splits']['train'] == dict(total=3, written=1, resumed=2, skipped=0, failed=0, unfinished=0)


def test_killed_run_without_index_is_judged_by_its_samples(tmp_path):
    write_zju_frames(tmp_path / 'zju', n=3)
    cache = tmp_path / 'cache'
    prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)
    (cache / 'index.json').unlink()                       # as if killed before the index was written
    with pytest.raises(CacheMismatchError, match=r"split '\w+'.*samples \(e.g. 0000\d\d.npz\) carry settings"):
        prepare('zju', tmp_path / 'zju', out=cache, progress=False, options={'crop_rows': (10, 40)}, log=quiet)
    summary = prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)      # same settings: resumes
    assert summary['splits']['train']['resumed'] == 2 and summary['splits']['train']['written'] == 0


def test_overwrite_redoes_the_split_with_the_new_settings(tmp_path, capsys):
    write_zju_frames(tmp_path / 'zju', n=3, height=720, width=1280)
    cache = tmp_path / 'cache'
    prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)
    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    argv = ['--dataset', 'zju', '--root', str(tmp_path / 'zju'), '--out', str(cache), '--no-progress',
            '--splits', 'train', '--zju-crop']
    with pytest.raises(CacheMismatchError, match=r'crop_rows None -> \[240, 540\]'):
        run_prepare(parser.parse_args(argv))
    assert run_prepare(parser.parse_args(argv + ['--overwrite'])) == 0
    assert 'deleted 2 sample file(s)' in capsys.readouterr().out
    index = CacheIndex(cache)
    assert index.frame('train', 0).image.shape == (300, 1280, 3)
    assert index.record('train')['settings']['crop_rows'] == [240, 540]
    assert index.names('val') == ['000002'] and index.frame('val', 0).image.shape == (720, 1280, 3)   # untouched
    # the new settings are the split's now: a plain rerun with them resumes
    assert run_prepare(parser.parse_args(argv)) == 0
    assert json.loads((cache / 'summary.json').read_text())['splits']['train']['resumed'] == 2


def test_stale_temporaries_at_the_top_are_removed_too(tmp_path):
    write_zju_frames(tmp_path / 'zju', n=2)
    cache = tmp_path / 'cache'
    prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)
    for name in ('index.json.tmp123', 'summary.json.tmp9', 'train.txt.tmp77', 'train/000000.npz.tmp5'):
        (cache / name).write_bytes(b'half')
    (cache / 'notes.tmpl').write_text('a user file that only looks similar')
    summary = prepare('zju', tmp_path / 'zju', out=cache, progress=False, log=quiet)
    assert summary['stale_temporaries_removed'] == 4 and _tmp_files(cache) == ['notes.tmpl']
