"""The node's glibc heap settings: an image-sized block comes from the reusable heap, not a fresh mmap.

Each case runs in its own interpreter: mallopt changes the whole process, and glibc's mmap threshold
starts at 128 KiB only in a process that has not yet freed a large block.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xd_rcdepth_ros.heap import USER_VARIABLES

ROOT = Path(__file__).resolve().parents[1]

PROBE = r'''
import ctypes, sys
sys.path.insert(0, sys.argv[1])
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                               'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
if sys.argv[2] == 'tuned':
    from xd_rcdepth_ros.heap import keep_large_blocks
    print(keep_large_blocks())
else:
    print('default')
before = libc.mallinfo2().hblkhd
block = libc.malloc(6 << 20)          # a 900x1600 float32 depth image is 5.8 MB
print(libc.mallinfo2().hblkhd - before)
'''


def probe(mode: str, **env) -> tuple:
    """(the note, bytes newly mmapped for a 6 MB block) in a fresh interpreter without the caller's malloc
    settings, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in USER_VARIABLES}
    out = subprocess.run([sys.executable, '-c', PROBE, str(ROOT), mode], capture_output=True, text=True,
                         env={**base, **env}, timeout=60, check=True).stdout.split('\n')
    return out[0], int(out[1])


def glibc_has_mallinfo2() -> bool:
    import ctypes
    try:
        return hasattr(ctypes.CDLL('libc.so.6'), 'mallinfo2')
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not glibc_has_mallinfo2(), reason='needs glibc >= 2.33 (mallinfo2) to look at the heap')


def test_default_glibc_maps_an_image_sized_block():
    # The probe itself can tell: without the settings the block is a fresh mmap (page faults on every use).
    note, mapped = probe('default')
    assert mapped >= 6 << 20


def test_settings_serve_image_sized_blocks_from_the_heap():
    note, mapped = probe('tuned')
    assert note.startswith('heap: large message buffers reused'), note
    assert mapped == 0


def test_user_malloc_settings_are_left_alone():
    note, mapped = probe('tuned', MALLOC_TOP_PAD_='1048576')
    assert 'MALLOC_TOP_PAD_' in note and 'left as they are' in note
    assert mapped >= 6 << 20     # our mmap threshold was not applied
