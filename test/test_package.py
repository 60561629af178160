"""The package installs as a ROS 2 ament_python package, and the core stays free of ROS."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_core_imports_without_loading_ros():
    code = (
        'import importlib, pkgutil, sys, xd_rcdepth_core\n'
        'names = [m.name for m in pkgutil.walk_packages(xd_rcdepth_core.__path__, "xd_rcdepth_core.")]\n'
        'for n in names: importlib.import_module(n)\n'
        'bad = sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosbags") '
        'or m.split(".")[0].endswith("_msgs"))\n'
        'print(len(names)); print(",".join(bad))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.strip().split('\n') if '\n' in out.stdout.strip() else (out.stdout.strip(), '')
    assert int(count) >= 5
    assert bad == '', f'xd_rcdepth_core imported ROS modules: {bad}'


def test_package_xml_is_ament_python_format_3():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'xd_rcdepth_ros'
    assert root.find('export').findtext('build_type') == 'ament_python'
    deps = {e.text for e in root.iter('exec_depend')}
    for key in ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'diagnostic_msgs', 'cv_bridge',
                'python3-numpy', 'python3-opencv', 'python3-torch'):
        assert key in deps, key
    assert (ROOT / 'resource' / 'xd_rcdepth_ros').is_file()


def test_info_command_json():
    exe = BIN / 'xd-rcdepth'
    if not exe.exists():
        pytest.fail(f'{exe} missing: the package is not installed in this venv (run make test)')
    out = subprocess.run([str(exe), 'info', '--json'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info['versions']['torch'].startswith('2.')
    assert 'cpu' in info['devices'] and isinstance(info['ros_available'], bool)


def test_unknown_command_fails_clearly():
    out = subprocess.run([str(BIN / 'xd-rcdepth'), 'nonsense'], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and 'invalid choice' in out.stderr


def test_colcon_build(tmp_path):
    # The venv's colcon (wheel installs) or the system's (a sourced apt ROS 2 brings its own).
    colcon = BIN / 'colcon' if (BIN / 'colcon').exists() else shutil.which('colcon')
    if colcon is None:
        pytest.fail(f'{BIN / "colcon"} missing and no colcon on PATH: colcon-common-extensions is a test '
                    f'requirement (requirements-ros.txt; apt: python3-colcon-common-extensions)')
    src = tmp_path / 'ws' / 'src' / 'xd_rcdepth_ros'
    ignore = shutil.ignore_patterns('.venv', '.git', 'out', 'build', 'install', 'log', '__pycache__',
                                    '*.egg-info', '.pytest_cache', 'runs')
    shutil.copytree(ROOT, src, ignore=ignore)
    env = dict(os.environ, PATH=f'{BIN}:{os.environ["PATH"]}')
    out = subprocess.run([str(colcon), 'build', '--event-handlers', 'console_cohesion+'],
                         cwd=tmp_path / 'ws', capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    share = tmp_path / 'ws' / 'install' / 'xd_rcdepth_ros' / 'share' / 'xd_rcdepth_ros'
    assert (share / 'package.xml').is_file()
    for folder in ('launch', 'config'):
        for f in (ROOT / folder).rglob('*'):
            if f.is_file():
                assert (share / f.relative_to(ROOT)).is_file(), f'{f.relative_to(ROOT)} not installed'
    lib = tmp_path / 'ws' / 'install' / 'xd_rcdepth_ros' / 'lib' / 'xd_rcdepth_ros'
    assert (lib / 'xd-rcdepth').is_file(), 'console script not in lib/xd_rcdepth_ros (setup.cfg script dirs)'
    marker = tmp_path / 'ws' / 'install' / 'xd_rcdepth_ros' / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (marker / 'xd_rcdepth_ros').is_file()
