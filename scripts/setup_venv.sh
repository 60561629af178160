#!/usr/bin/env bash
# Create or refresh the project's virtual environment (called by the Makefile; idempotent).
# With a sourced system ROS 2 (ROS_DISTRO set) the venv sees the system's rclpy and messages;
# otherwise ROS 2 Jazzy comes from PyPI wheels, which exist for x86_64 only.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
cd "$(dirname "$0")/.."

"$PYTHON" - <<'PY' || { echo "setup: Python 3.10-3.12 is required (found $($PYTHON --version 2>&1)); set PYTHON=python3.11" >&2; exit 1; }
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
PY

reqs=(-r requirements.txt)
if [ -n "${ROS_DISTRO:-}" ]; then
  echo "setup: using the sourced system ROS 2 '$ROS_DISTRO' (venv with system site packages; no ROS wheels)"
  [ -d "$VENV" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
else
  arch=$(uname -m)
  if [ "$arch" != "x86_64" ]; then
    echo "setup: the ROS 2 Jazzy PyPI wheels exist for x86_64 only (this is $arch)." >&2
    echo "setup: install ROS 2 Jazzy from apt, 'source /opt/ros/jazzy/setup.bash', then run make again." >&2
    exit 1
  fi
  echo "setup: ROS 2 Jazzy from PyPI wheels"
  [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
  reqs+=(-r requirements-ros.txt)
fi

"$VENV/bin/python" -m pip install --quiet --progress-bar off "${reqs[@]}" -c constraints.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m pip install --quiet --progress-bar off --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m pip check
echo "setup: $VENV ready"
