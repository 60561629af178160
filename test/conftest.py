"""Shared test set-up: DDS stays on loopback in a domain of its own for every test run."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The one real nuScenes frame beside the checkout (../shared/data); a clone elsewhere points at it
# with XD_RCDEPTH_SHARED_DATA, else the tests that need it skip and say so.
SHARED_DATA = Path(os.environ.get('XD_RCDEPTH_SHARED_DATA') or ROOT.parent / 'shared' / 'data')

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 200))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
