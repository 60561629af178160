"""Shared test set-up: DDS stays on loopback in a domain of its own for every test run."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The one real nuScenes frame beside the checkout (../shared/data); a clone elsewhere points at it
# with XD_RCDEPTH_SHARED_DATA, else the tests that need it skip and say so.
SHARED_DATA = Path(os.environ.get('XD_RCDEPTH_SHARED_DATA') or ROOT.parent / 'shared' / 'data')

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 80))
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
