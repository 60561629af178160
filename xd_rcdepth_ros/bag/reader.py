"""Opening a rosbag2 with one clear error per problem, and the small helpers every bag reader needs.

rosbags raises ReaderError with terse texts ("File magic is invalid.") and a truncated sqlite3 file
surfaces as sqlite3.DatabaseError while iterating; BagError (a ValueError, so the CLI prints one line)
names the bag and says what to do.
"""
from __future__ import annotations

import importlib
import sqlite3
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


class BagError(ValueError):
    """A bag that cannot be read or does not hold what the command needs."""


# What reading a corrupt bag can raise (rosbags' own errors are added at first use).
_READ_ERRORS = (sqlite3.DatabaseError, struct.error, EOFError, OSError)


def _read_errors() -> tuple:
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError
    return (ReaderError, SerdeError) + _READ_ERRORS


def check_bag_path(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise BagError(f'bag {path} does not exist')
    if path.is_file():
        hint = ' (a bare .mcap: rosbag2 bags are folders with a metadata.yaml; use the folder)' \
            if path.suffix in ('.mcap', '.db3') else ''
        raise BagError(f'bag {path} is a file, not a rosbag2 folder{hint}')
    if not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path} is not a rosbag2 folder: it has no metadata.yaml')
    return path


def open_reader(path):
    """An opened rosbags Reader; BagError naming the bag for a missing, foreign or truncated one."""
    from rosbags.rosbag2 import Reader
    path = check_bag_path(path)
    try:
        reader = Reader(path)
        reader.open()
    except _read_errors() as exc:
        raise BagError(f'cannot open bag {path}: {_explain(exc)}') from None
    return reader


def _explain(exc: Exception) -> str:
    text = (str(exc) or type(exc).__name__).rstrip('.')
    low = text.lower()
    if 'storage plugin' in low:
        return f'{text} (rosbags reads the mcap and sqlite3 storage plugins only)'
    if any(k in low for k in ('truncat', 'magic', 'footer', 'summary', 'malformed', 'not a database',
                              'chunk', 'record length', 'empty')):
        return f'{text}: the bag file is truncated or corrupt (was the recording interrupted?); ' \
               f're-record or re-convert it'
    return text


@contextmanager
def reading(path) -> Iterator:
    """`with reading(bag) as reader:` open, close, and turn read errors during iteration into BagError."""
    reader = open_reader(path)
    try:
        yield reader
    except _read_errors() as exc:
        raise BagError(f'error reading bag {path}: {_explain(exc)}') from None
    finally:
        try:
            reader.close()
        except Exception:  # closing a broken bag must not hide the real error
            pass


def topic_types(reader) -> dict:
    """topic -> message type of every connection in the bag."""
    return {c.topic: c.msgtype for c in reader.connections}


def describe_topics(types: dict, wanted: Optional[tuple] = None) -> str:
    items = [f'{t} ({m.split("/")[-1]})' for t, m in sorted(types.items()) if wanted is None or m in wanted]
    return ', '.join(items) or 'none'


def message_class(msgtype: str):
    """The rclpy message class of 'pkg/msg/Name', or None when that Python package is not installed."""
    pkg, _, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.msg'), name)
    except (ImportError, AttributeError):
        return None


def deserialize(raw: bytes, msgtype: str):
    """An rclpy message of CDR bytes: exactly what a subscriber of that topic would receive."""
    from rclpy.serialization import deserialize_message
    cls = message_class(msgtype)
    if cls is None:
        raise BagError(f'cannot decode {msgtype}: its Python message package is not installed')
    return deserialize_message(bytes(raw), cls)


def header_stamp_ns(raw) -> int:
    """Header stamp (ns) of a CDR message whose first field is a std_msgs/Header, without decoding it.

    CDR: 4 bytes of encapsulation (byte 1: 0 = big, 1 = little endian), then Header.stamp = int32 sec,
    uint32 nanosec. Used to pace and gate replay on images without paying for a full decode.
    """
    data = memoryview(raw)
    if len(data) < 12:
        raise BagError(f'message of {len(data)} bytes is too short to hold a header')
    order = '<' if data[1] == 1 else '>'
    sec, nsec = struct.unpack_from(order + 'iI', data, 4)
    return sec * 10**9 + nsec
