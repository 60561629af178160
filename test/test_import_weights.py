"""`xd-rcdepth import-weights`: the authors' CaFNet / LiRCDepth checkpoints into ours (models/official.py).

No published weights are needed: the authors' state_dict layouts (names, shapes) and pattern weights
(every tensor filled from its own name, pattern_weights.py) are in the shared folder, with the outputs
of the authors' code under those weights. A file in their layout -> importer -> our model must give
their outputs, every intermediate depth included:
- CaFNet against the shared float32 fixture (well conditioned: any thread count);
- LiRCDepth against float64 outputs of their code (test/data/README.md), our model run in float64:
  under pattern weights its decoder amplifies rounding (its float32 fixture is reproducible only with
  the fixture maker's exact arithmetic).
Tolerance: 1e-4 relative to the output's scale (max |reference|). Our returned depths are floored at
min_depth = 1e-3 m where theirs go to 0, i.e. 1e-5 of the 100 m scale.

The pattern of a tensor is computed from its name WITHOUT 'module.' (how the fixtures were made) and
stored under the 'module.' name, as in the authors' files.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA  # noqa: E402

from xd_rcdepth_core import cli
from xd_rcdepth_core.config import NUSCENES_CAM_FRONT
from xd_rcdepth_core.models import load_model
from xd_rcdepth_core.models.official import CAFNET_DROPPED, convert_official, import_official, read_official
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import generate_sequence

OFFICIAL = SHARED_DATA / 'official-checkpoints'
DATA = Path(__file__).resolve().parent / 'data'
if not (OFFICIAL / 'pattern_weights.py').is_file():
    pytest.skip(f'the authors\' layouts and pattern weights are not at {OFFICIAL} (set XD_RCDEPTH_SHARED_DATA)',
                allow_module_level=True)

pytestmark = pytest.mark.usefixtures('one_thread')
TOL = 1e-4
LAYOUTS = {'cafnet': 'cafnet_state_dict_layout.json', 'lircdepth': 'lircdepth_state_dict_layout.json',
           'lircdepth_conf': 'lircdepth_radar_confidence_state_dict_layout.json'}


def _pattern_module():
    spec = importlib.util.spec_from_file_location('official_pattern_weights', OFFICIAL / 'pattern_weights.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PATTERN = _pattern_module()


def pattern_state(name: str) -> dict:
    """The authors' state_dict of layout ``name`` with pattern weights, keyed as in their files ('module.')."""
    layout = json.loads((OFFICIAL / LAYOUTS[name]).read_text())['tensors']
    bare = {k.removeprefix('module.'): torch.zeros(shape, dtype=getattr(torch, dtype)) for k, shape, dtype in layout}
    values = PATTERN.pattern_weights(bare)
    return {k: values[k.removeprefix('module.')] for k, _, _ in layout}


def strip(state):
    return {k.removeprefix('module.'): v for k, v in state.items()}


@pytest.fixture(scope='module')
def lirc_state():
    return pattern_state('lircdepth')


@pytest.fixture(scope='module')
def lirc_file(tmp_path_factory, lirc_state):
    """As the authors' "best" files: {'model': DataParallel state_dict, global_step, a numpy int32 array, ...}."""
    path = tmp_path_factory.mktemp('authors') / 'model-1170000-best_abs_rel'
    torch.save({'global_step': 1170000, 'model': lirc_state, 'optimizer': {'state': {}, 'param_groups': []},
                'best_eval_measures_lower_better': torch.zeros(6), 'best_eval_steps': np.zeros(9, dtype=np.int32)},
               path)
    return path


def compare(outputs: dict, reference, names) -> None:
    for name in names:
        ref = np.asarray(reference[name], dtype=np.float64)
        got = outputs[name].detach().double().numpy()
        assert got.shape == ref.shape, name
        scale = np.abs(ref).max()
        err = np.abs(got - ref).max() / scale
        assert err <= TOL, f'{name}: max |ours - theirs| / max |theirs| = {err:.3g} (scale {scale:.4g})'


def cafnet_outputs(model, image, radar):
    with torch.no_grad():
        out = model(image, radar)
    f = out['features']
    return {'depth_8x8_scaled': f['lpg_1_8'], 'depth_4x4_scaled': f['lpg_1_4'], 'depth_2x2_scaled': f['lpg_1_2'],
            'reduc1x1': f['reduction_1_1'], 'final_depth': out['depth'], 'rad_confidence': out['confidence'],
            'rad_depth': out['coarse_depth']}


def lircdepth_outputs(model, image, radar):
    with torch.no_grad():
        out = model(image, radar)
    f = out['features']
    got = {'depth_0': f['side_depth_1_8'], 'depth_1': f['side_depth_1_4'], 'depth_2': f['side_depth_1_2'],
           'final_depth': out['depth']}
    if 'confidence' in out:
        got['radar_confidence'] = out['confidence']
    return got


def assert_each_tensor_used_once(fmt: str, layout: str, dropped=()):
    """Independently of the importer's name table: their tensor i filled with the value i, so each tensor
    of ours shows which of theirs it came from; each of theirs lands once, all but the dropped."""
    layout = json.loads((OFFICIAL / LAYOUTS[layout]).read_text())['tensors']
    names = [k.removeprefix('module.') for k, _, _ in layout]
    tagged = {k: torch.full(shape, i, dtype=torch.int64 if k.endswith('num_batches_tracked') else torch.float32)
              for i, (k, (_, shape, _)) in enumerate(zip(names, layout))}
    model, _ = convert_official(fmt, tagged)
    used = []
    for k, v in model.state_dict().items():
        tag = int(v.flatten()[0])
        assert (v == tag).all(), f'our {k} mixes tensors of theirs'
        used.append(names[tag])
    assert len(used) == len(set(used)), 'a tensor of theirs is used twice'
    assert set(names) - set(used) == set(dropped)


# ----------------------------------------------------------------------------- outputs match theirs

def test_cafnet_reproduces_the_authors_outputs():
    theirs = pattern_state('cafnet')
    assert len(theirs) == 631
    model, report = convert_official('cafnet-official', strip(theirs))
    assert (report.model_name, report.tensors, report.mapped) == ('cafnet', 631, 625)
    assert report.dropped == list(CAFNET_DROPPED) and len(report.dropped) == 6
    assert_each_tensor_used_once('cafnet-official', 'cafnet', CAFNET_DROPPED)
    # pattern values in the fixed window-count kernels: used, and said
    assert len(report.warnings) == 4 and all('sparsity' in w for w in report.warnings)
    fixture = np.load(OFFICIAL / 'cafnet_pattern_fixture.npz')
    got = cafnet_outputs(model, torch.from_numpy(fixture['image']), torch.from_numpy(fixture['radar']))
    compare(got, fixture, ('depth_8x8_scaled', 'depth_4x4_scaled', 'depth_2x2_scaled', 'reduc1x1', 'final_depth',
                           'rad_confidence', 'rad_depth'))


@pytest.mark.parametrize('layout, reference, n, variant', [
    ('lircdepth', 'lircdepth_fp64_authors.npz', 935, 'without the radar-confidence module'),
    ('lircdepth_conf', 'lircdepth_radar_confidence_fp64_authors.npz', 948, 'with the radar-confidence module')])
def test_lircdepth_reproduces_the_authors_outputs_in_float64(request, layout, reference, n, variant):
    theirs = request.getfixturevalue('lirc_state') if layout == 'lircdepth' else pattern_state(layout)
    assert len(theirs) == n
    model, report = convert_official('lircdepth-official', strip(theirs))
    assert (report.tensors, report.mapped, report.dropped) == (n, n, [])
    assert variant in report.variant and model.config.radar_confidence == (n == 948)
    assert_each_tensor_used_once('lircdepth-official', layout)
    inputs = np.load(OFFICIAL / 'lircdepth_pattern_fixture.npz')
    ref = np.load(DATA / reference)
    got = lircdepth_outputs(model.double(), torch.from_numpy(inputs['image']).double(),
                            torch.from_numpy(inputs['radar']).double())
    names = [k for k in ref.files if k != 'provenance']
    assert set(names) >= {'depth_0', 'depth_1', 'depth_2', 'final_depth'}
    compare(got, ref, names)


# ----------------------------------------------------------------------------- the file and the CLI

def test_cli_writes_a_checkpoint_the_estimator_runs(tmp_path, lirc_file, capsys):
    out = tmp_path / 'ckpt' / 'lircdepth.pt'
    rc = cli.main(['import-weights', '--format', 'lircdepth-official', str(lirc_file), '--out', str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert 'without the radar-confidence module' in printed.out and '935 tensors: 935 loaded' in printed.out
    assert sorted(os.listdir(out.parent)) == ['lircdepth.pt']
    sha = hashlib.sha256(lirc_file.read_bytes()).hexdigest()

    model, ckpt = load_model(out)
    assert ckpt['imported']['global_step'] == 1170000 and ckpt['imported']['format'] == 'lircdepth-official'
    est = DepthEstimator.from_checkpoint(out, device='cpu')
    conv = est.conventions
    assert conv.source == {'format': 'lircdepth-official', 'file': lirc_file.name, 'sha256': sha}
    assert conv.focal == pytest.approx(1266.417, abs=1e-3) and conv.image_size == (900, 1600)
    assert conv.image_mean == (0.485, 0.456, 0.406) and conv.image_std == (0.229, 0.224, 0.225)
    assert conv.radar_channels == ('depth', 'rcs', 'vx', 'vy')

    # The weights went through the file unchanged: the authors' float64 outputs again.
    inputs, ref = np.load(OFFICIAL / 'lircdepth_pattern_fixture.npz'), np.load(DATA / 'lircdepth_fp64_authors.npz')
    got = lircdepth_outputs(model.double(), torch.from_numpy(inputs['image']).double(),
                            torch.from_numpy(inputs['radar']).double())
    compare(got, ref, ('depth_0', 'depth_1', 'depth_2', 'final_depth'))

    # A camera at half the training focal length runs at twice its size, as the conventions say.
    frame = next(generate_sequence(seed=1, n_frames=1, height=90, width=160))
    K = frame.K.copy()
    K[0, 0] = K[1, 1] = NUSCENES_CAM_FRONT.fx / 2
    frame = frame.replace(K=K)
    assert tuple(est.prepare(frame)[0].shape[-2:]) == (180, 320)
    depth = est.predict(frame).depth
    assert depth.shape == (90, 160) and np.isfinite(depth).any()


def test_a_bare_state_dict_without_module_imports_the_same(tmp_path, lirc_state):
    bare = tmp_path / 'bare.pth'
    torch.save(strip(lirc_state), bare)
    a, info = read_official(bare)
    b = strip(lirc_state)
    assert info['global_step'] is None
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    path, report = import_official('lircdepth-official', bare, tmp_path / 'out.pt')
    assert report.mapped == 935 and load_model(path)[1]['inputs']['source']['file'] == 'bare.pth'


class Payload:
    """Unpickling this calls open(marker, 'w'), which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _fails_cleanly(tmp_path, fmt, src, *patterns):
    """One ValueError whose message has every pattern; no output file (nor a temporary one) left."""
    out = tmp_path / 'out' / 'imported.pt'
    with pytest.raises(ValueError) as info:
        import_official(fmt, src, out)
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    assert not out.parent.exists() or os.listdir(out.parent) == []
    return message


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'model': {'encoder.base_model.0.0.weight': Payload(marker)}}, evil)
    _fails_cleanly(tmp_path, 'lircdepth-official', evil, 'cannot be read as plain tensors', 'weights_only')
    raw = tmp_path / 'evil.pkl'
    raw.write_bytes(pickle.dumps({'model': Payload(marker)}, protocol=2))
    _fails_cleanly(tmp_path, 'cafnet-official', raw, 'cannot be read as plain tensors')
    assert not marker.exists()
    # through the command: one line, exit status 2
    rc = cli.main(['import-weights', '--format', 'cafnet-official', str(evil), '--out', str(tmp_path / 'x.pt')])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith('xd-rcdepth import-weights: error: ') and err.count('\n') == 1
    assert not marker.exists() and not (tmp_path / 'x.pt').exists()


def test_the_other_models_state_dict_is_named(tmp_path, lirc_file):
    _fails_cleanly(tmp_path, 'cafnet-official', lirc_file, "holds the authors' LiRCDepth (935 tensors), not CaFNet",
                   '--format lircdepth-official')
    cafnet_names = {k: torch.zeros(1) for k in ('decoder_radar.bn1.weight', 'encoder_radar1.sparse_conv1.bias')}
    with pytest.raises(ValueError, match="holds the authors' CaFNet .*use --format cafnet-official"):
        convert_official('lircdepth-official', cafnet_names)
    with pytest.raises(ValueError, match="not a state_dict of the authors' LiRCDepth"):
        convert_official('lircdepth-official', {'conv1.weight': torch.zeros(1)})


def test_a_truncated_file_is_refused(tmp_path, lirc_file):
    cut = tmp_path / 'truncated.pth'
    data = lirc_file.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    _fails_cleanly(tmp_path, 'lircdepth-official', cut, 'cannot be read as plain tensors', 'truncated.pth')


def test_a_missing_or_misshaped_or_unknown_tensor_is_one_error_naming_it(tmp_path, lirc_state):
    missing = dict(lirc_state)
    del missing['module.decoder.get_depth.0.weight']
    path = tmp_path / 'missing.pth'
    torch.save({'model': missing}, path)
    message = _fails_cleanly(tmp_path, 'lircdepth-official', path, '1 missing: decoder.get_depth.0.weight')
    assert ' mis-shaped:' not in message and ' unknown (' not in message

    wrong = dict(lirc_state)
    wrong['module.decoder.scale8.0.weight'] = torch.zeros(1, 64, 1, 1)
    path = tmp_path / 'misshaped.pth'
    torch.save({'model': wrong}, path)
    message = _fails_cleanly(tmp_path, 'lircdepth-official', path,
                             '1 mis-shaped: decoder.scale8.0.weight (1, 64, 1, 1) in the file, (1, 128, 1, 1) expected')
    assert ' missing:' not in message

    extra = dict(lirc_state)
    extra['module.decoder.scale8.0.bias'] = torch.zeros(1)   # ours has no bias there, nor has theirs
    path = tmp_path / 'extra.pth'
    torch.save({'model': extra}, path)
    _fails_cleanly(tmp_path, 'lircdepth-official', path, '1 unknown (no counterpart in our lircdepth): '
                   'decoder.scale8.0.bias')
