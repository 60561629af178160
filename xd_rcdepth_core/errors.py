"""Errors a user can fix: the `xd-rcdepth` command prints them as one line (exit status 2).

Every layer raises these (the core's commands and the ROS layer's alike), so none needs the CLI
module to report a problem. Dataset-level errors live in data/errors.py and are caught as well.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a bad argument, a missing file); printed as one line, no traceback."""
