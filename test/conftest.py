"""Shared test set-up: DDS stays on loopback in a domain of its own for every test run."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / 'shared' / 'data'

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 200))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
