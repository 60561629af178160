"""glibc heap settings for a process that moves camera-sized messages (megabytes each, tens a second).

Why: glibc serves every allocation above its mmap threshold (128 KiB at start; it rises only to the
largest block freed so far) with a fresh mmap, and gives a freed heap top back to the kernel once it
passes the trim threshold. A node taking 900x1600 images at 12 Hz allocates and frees several 4-6 MB
buffers per image (the received message, its conversion, resized inputs, the depth it publishes), and
each one comes back from the kernel as ~1000 zero-filled pages. Measured here with a bare subscriber
of 900x1600 rgb8 at 12 Hz: 8.6 % of a core in the kernel, 0.2 % with the settings below; in the node,
kernel time fell from 4.9 % to 1.2 % of a core (benchmarks/README.md, 2026-12-04). On two cores that
time is taken from inference.

The price is memory: freed blocks stay with the process (up to TRIM_THRESHOLD above its working set)
instead of going back to the kernel at once; the node's resident size stays within its 600 MB goal.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt(3) parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MIB = 1 << 20
MMAP_THRESHOLD = 32 * MIB     # glibc's ceiling on 64-bit; blocks below it come from the heap and are reused
TRIM_THRESHOLD = 64 * MIB     # free memory kept at the heap top before any is returned
TOP_PAD = 16 * MIB            # grow the heap in steps that hold a few images, not page by page
# A user who tunes malloc through the environment keeps their settings.
USER_VARIABLES = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'GLIBC_TUNABLES')


def keep_large_blocks(environ=os.environ) -> str:
    """Apply the settings above with mallopt (glibc only); one line saying what is in effect."""
    chosen = [var for var in USER_VARIABLES if var != 'GLIBC_TUNABLES' and environ.get(var)]
    if 'malloc' in environ.get('GLIBC_TUNABLES', ''):   # tunables of other glibc parts do not count
        chosen.append('GLIBC_TUNABLES')
    if chosen:
        return f'heap: glibc malloc settings from the environment ({", ".join(chosen)}), left as they are'
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return 'heap: not glibc (no mallopt): large message buffers use the C library\'s default policy'
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    failed = [name for name, param, value in (('mmap threshold', M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                              ('trim threshold', M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                              ('top pad', M_TOP_PAD, TOP_PAD))
              if mallopt(param, value) != 1]
    if failed:
        return f'heap: glibc refused the {", ".join(failed)} setting(s); large buffers may cost page faults'
    return (f'heap: large message buffers reused (glibc mmap threshold {MMAP_THRESHOLD // MIB} MiB, trim threshold '
            f'{TRIM_THRESHOLD // MIB} MiB, top pad {TOP_PAD // MIB} MiB)')
