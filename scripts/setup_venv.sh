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
  want_system_site=true
else
  arch=$(uname -m)
  if [ "$arch" != "x86_64" ]; then
    echo "setup: the ROS 2 Jazzy PyPI wheels exist for x86_64 only (this is $arch)." >&2
    echo "setup: install ROS 2 Jazzy from apt, 'source /opt/ros/jazzy/setup.bash', then run make again." >&2
    exit 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: the ROS 2 Jazzy PyPI wheels exist for CPython 3.11 only (found $($PYTHON --version 2>&1));" >&2
    echo "setup: set PYTHON=python3.11, or source a system ROS 2 (ROS_DISTRO) and run make again." >&2
    exit 1
  fi
  echo "setup: ROS 2 Jazzy from PyPI wheels"
  want_system_site=false
  reqs+=(-r requirements-ros.txt)
fi

# A venv made for the other mode (wheels vs system ROS 2) would silently keep it: make it anew.
if [ -f "$VENV/pyvenv.cfg" ]; then
  have_system_site=$(sed -n 's/^include-system-site-packages *= *//p' "$VENV/pyvenv.cfg")
  if [ "$have_system_site" != "$want_system_site" ]; then
    echo "setup: $VENV was made with include-system-site-packages=$have_system_site; recreating it"
    rm -rf "$VENV"
  fi
fi
if [ "$want_system_site" = true ]; then
  [ -d "$VENV" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
else
  [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install --quiet --progress-bar off "${reqs[@]}" -c constraints.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m pip install --quiet --progress-bar off --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m pip check
echo "setup: $VENV ready"
