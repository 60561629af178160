"""Where the package's shipped files are, and the Fast DDS profile every project process applies."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = 'xd_rcdepth_ros'
FASTDDS_PROFILE = 'fastdds_large_data.xml'
# Fast DDS 2.x (Jazzy) and 3.x (Kilted and later) read different variables.
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def share_dir() -> Path:
    """The package's share directory: ament index (colcon install, apt), the venv prefix, or the source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, ValueError, OSError):
            pass
    except ImportError:
        pass
    import sys
    for candidate in (Path(sys.prefix) / 'share' / PACKAGE, Path(__file__).resolve().parents[1]):
        if (candidate / 'config').is_dir():
            return candidate
    raise FileNotFoundError(f'cannot find the {PACKAGE} share directory (config/, launch/); '
                            f'install the package (pip install -e . or colcon build)')


SHIPPED_MODEL = 'xd_rcdepth_synthetic.pt'


def shipped_model() -> Path:
    """The checkpoint shipped with the package (models/, trained on synthetic data only; see its model card).

    A source checkout's own models/ comes first, so a retrained model is used without reinstalling.
    """
    candidates = [Path(__file__).resolve().parents[1] / 'models' / SHIPPED_MODEL]
    try:
        candidates.append(share_dir() / 'models' / SHIPPED_MODEL)
    except FileNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f'the shipped checkpoint {SHIPPED_MODEL} is missing (looked in '
                            f'{", ".join(str(p.parent) for p in candidates)}); restore models/ from git, '
                            f'or rebuild it with scripts/train_shipped_model.sh')


def config_file(name: str) -> Path:
    path = share_dir() / 'config' / name
    if not path.is_file():
        raise FileNotFoundError(f'{path} is missing from the {PACKAGE} installation')
    return path


def apply_fastdds_profile(environ=os.environ) -> str:
    """Point Fast DDS at the shipped large-data profile unless the user chose one; say which is in effect.

    Must run before rclpy.init(): Fast DDS reads the variables when the participant is created.
    """
    for var in PROFILE_VARIABLES:
        if environ.get(var):
            return f'Fast DDS profile: {environ[var]} (from {var}, set by the user)'
    path = str(config_file(FASTDDS_PROFILE))
    for var in PROFILE_VARIABLES:
        environ[var] = path
    return f'Fast DDS profile: {path} (shipped large-data profile: 32 MiB shared memory for images)'
