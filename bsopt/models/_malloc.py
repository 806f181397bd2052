"""glibc's allocator, told to hand large freed blocks back to the system during an export.

glibc serves a block from its heap, not from a fresh mapping, once a block of that size has been
freed (its mmap threshold follows the largest freed block, up to 32 MiB), and keeps freed heap memory
for reuse.  An export allocates and frees weight-sized blocks again and again (torch's trace computes
every quantised weight; qonnx converts initializers to arrays and back), so the process grows by ~600 MB
of freed but kept blocks for BERT-base.  :func:`large_blocks_returned` fixes the threshold at 1 MiB
for the export (blocks from 1 MiB up are mapped and unmapped: freed at once, ~30 % slower) and then
at 32 MiB (trim 64 MiB), the values glibc's own adjustment settles at: fixing them there keeps later
array-heavy work (lowering) at its usual speed, which a 1 MiB threshold would halve.  Elsewhere than
glibc this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_EXPORT_MMAP = 1 << 20
_AFTER_MMAP = 32 << 20
_AFTER_TRIM = 64 << 20


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def large_blocks_returned() -> Iterator[None]:
    """Within the block, freed blocks of 1 MiB and more go back to the system at once."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _EXPORT_MMAP)
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
            libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
            libc.malloc_trim(0)
