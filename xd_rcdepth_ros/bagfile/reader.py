"""Opening a rosbag2 with one clear error per problem, and the small helpers every bag reader needs.

rosbags raises ReaderError with terse texts ("File magic is invalid.") for what it checks, and
whatever its parsers hit for what it does not: a corrupt sqlite3 file surfaces while iterating as
the SQLite binding's error (apsw.CorruptError in rosbags 0.11), a corrupt MCAP record as
OverflowError, UnicodeDecodeError, MemoryError or silently skipped messages (rosbags writes no chunk
checksums, so corrupt payload bytes cannot be noticed at all). So the reader every command gets
(`reading()`, `open_reader()`) guards exactly the rosbags calls - opening, and each step of
`messages()` - and turns any failure there into one BagError (a ValueError: the CLI prints one line)
naming the bag; a full pass over a connection that yields fewer messages than the bag's metadata
counts is a corrupt bag too. Errors raised by the caller's own loop body are left as they are.
"""
from __future__ import annotations

import importlib
import struct
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

CORRUPT_HINT = 'the bag file is truncated or corrupt (was the recording interrupted?); re-record or re-convert it'


class BagError(ValueError):
    """A bag that cannot be read or does not hold what the command needs."""


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


def open_reader(path) -> 'CheckedReader':
    """An opened reader; BagError naming the bag for a missing, foreign, truncated or corrupt one."""
    from rosbags.rosbag2 import Reader
    path = check_bag_path(path)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:   # only rosbags runs here: whatever it raises, the bag cannot be opened
        raise BagError(f'cannot open bag {path}: {_explain(exc)}') from None
    return CheckedReader(reader, path)


def _explain(exc: Exception, reading: bool = False) -> str:
    text = (str(exc) or type(exc).__name__).rstrip('.')
    low = text.lower()
    if 'storage plugin' in low:
        return f'{text} (rosbags reads the mcap and sqlite3 storage plugins only)'
    if reading or any(k in low for k in ('truncat', 'magic', 'footer', 'summary', 'malformed', 'not a database',
                                         'chunk', 'record length', 'empty', 'codec')):
        return f'{text}: {CORRUPT_HINT}'
    return text


class CheckedReader:
    """A rosbags Reader whose messages() raises BagError naming the bag for anything that goes wrong
    while reading; every other attribute (connections, start_time, close, ...) is the Reader's."""

    def __init__(self, reader, path: Path):
        self._reader, self.path = reader, path

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def messages(self, connections=(), start=None, stop=None) -> Iterator:
        conns = list(connections) or list(self._reader.connections)
        messages = self._reader.messages(connections=conns, start=start, stop=stop)
        counts = Counter()
        while True:
            try:
                conn, t_ns, raw = next(messages)
            except StopIteration:
                break
            except Exception as exc:   # rosbags' parsers on a corrupt file (see the module docstring)
                raise BagError(f'error reading bag {self.path}: {_explain(exc, reading=True)}') from None
            counts[conn.id] += 1
            yield conn, t_ns, raw
        if start is None and stop is None:
            short = [(c, counts[c.id]) for c in conns if counts[c.id] < c.msgcount]
            if short:
                conn, n = short[0]
                raise BagError(f'error reading bag {self.path}: topic {conn.topic} has {conn.msgcount} messages '
                               f'in the metadata but only {n} could be read: {CORRUPT_HINT}')


@contextmanager
def reading(path) -> Iterator[CheckedReader]:
    """`with reading(bag) as reader:` open (errors as BagError), yield the checked reader, close."""
    reader = open_reader(path)
    try:
        yield reader
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
