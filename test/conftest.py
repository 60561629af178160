"""Shared test set-up: DDS stays on loopback in a domain of its own for every test run."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The one real nuScenes frame beside the checkout (../shared/data); a clone elsewhere points at it
# with XD_RCDEPTH_SHARED_DATA, else the tests that need it skip and say so.
SHARED_DATA = Path(os.environ.get('XD_RCDEPTH_SHARED_DATA') or ROOT.parent / 'shared' / 'data')

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 80))
# Backend auto exports checkpoints to ONNX on the fly into $XD_RCDEPTH_CACHE (else ~/.cache): tests,
# and the nodes they start, share one throwaway cache instead of writing into the user's home.
if 'XD_RCDEPTH_CACHE' not in os.environ:
    os.environ['XD_RCDEPTH_CACHE'] = tempfile.mkdtemp(prefix='xd_rcdepth_test_cache_')
    atexit.register(shutil.rmtree, os.environ['XD_RCDEPTH_CACHE'], True)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope='module')
def one_thread():
    """torch on one intra-op thread for a module (`pytestmark = pytest.mark.usefixtures('one_thread')`).

    Tiny inputs gain nothing from intra-op threads, and on a loaded machine (parallel test runs)
    OpenMP barriers spin: one thread made the export tests ~6x faster there."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def export_cli(capsys):
    """Run `xd-rcdepth export ARGS` in-process (no second torch import); (rc, stdout, stderr)."""
    from xd_rcdepth_core import cli

    def run(*args):
        rc = cli.main(['export', *map(str, args)])
        out = capsys.readouterr()
        return rc, out.out, out.err
    return run
