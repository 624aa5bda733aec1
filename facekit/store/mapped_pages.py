"""Let go of the resident pages of files an in-process engine maps, without closing anything.

Qdrant Edge reads its segment files through memory maps, and maps each vector file twice (one map for searches,
which it fills on every open, one for sequential reads). A bulk read of every face leaves both resident: at a
million 512-d faces that is 4 GB counted in the process's RSS on top of the 2 GB array the read fills.
`release_mapped_pages` tells the kernel (`madvise(MADV_DONTNEED)`) that this process no longer needs the pages
of every map of a file under a folder. The files and the maps stay as they are: the pages stay in the page
cache, and the next access maps them again (a minor fault, no disk read while the cache holds them).

Only maps where that cannot lose data are touched: shared maps (the file is the data) and private maps that
were never writable (no copy-on-write page to lose). Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux's value on every architecture
MAPS = Path("/proc/self/maps")


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's madvise, or None without /proc/self/maps (not Linux)."""
    if not MAPS.exists():
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = libc.madvise
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def releasable_maps(folder: str | os.PathLike[str], maps_text: str) -> list[tuple[int, int]]:
    """(start, length) of each map in `maps_text` (the format of /proc/self/maps) of a file under `folder`
    whose pages can be dropped without losing data: shared, or private and never writable.

    >>> line = "7f0000000000-7f0000002000 r--s 00000000 08:01 42 /s/edge/faces/segments/a/matrix.dat"
    >>> releasable_maps("/s/edge/faces", line + "\\n" + line.replace("r--s", "rw-p"))
    [(139637976727552, 8192)]
    """
    prefix = str(Path(folder)) + os.sep
    found = []
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefix):
            continue
        perms = fields[1]
        if perms[3] != "s" and "w" in perms:
            continue  # a private writable map may hold the only copy of what was written to it
        start, end = (int(part, 16) for part in fields[0].split("-"))
        found.append((start, end - start))
    return found


def release_mapped_pages(folder: str | os.PathLike[str]) -> int:
    """Drop this process's resident pages of the files under `folder` that it maps (see the module); returns the
    bytes of maps released (their length, resident or not). 0 where the system has no /proc/self/maps."""
    madvise = _madvise()
    if madvise is None:
        return 0
    released = 0
    for start, length in releasable_maps(folder, MAPS.read_text()):
        if madvise(start, length, MADV_DONTNEED) == 0:
            released += length
        else:  # a locked map, or one unmapped since the read: it keeps its pages, nothing is lost
            log.debug("madvise(%#x, %d) failed: %s", start, length, os.strerror(ctypes.get_errno()))
    return released
