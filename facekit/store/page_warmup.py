"""Read an embedded store's segment files once, in the background, so that its searches find their pages warm.

Qdrant Edge drops a shard's files from the page cache when it closes it (`posix_fadvise(DONTNEED)`), and fills
only the vectors and the HNSW graph when it opens one: payloads and labels stay on disk until a search reads them.
A clustering pass can push pages out too (the kernel reclaims page cache to make huge pages for the pass's
arrays). And on a virtual machine a page that the disk has just filled still costs a hypervisor fault the first
time a CPU reads it. Measured at a million faces on a 2-core VM: a search on new vectors took 25-35 ms, with no
disk read left, until every page of the vector file had been read once by any process; 2-3 ms after.

`FileWarmer` reads files once in a daemon thread, holes left out: kernel readahead first, then sequential reads
into one small buffer. Nothing is kept and nothing is mapped: the process's memory does not grow. Reads release the GIL.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes a read
READAHEAD_WINDOW = 4 << 20  # one posix_fadvise(WILLNEED) call reads at most the device's readahead size


def segment_files(shard: Path) -> list[Path]:
    """The files a shard's searches read: everything under its `segments` folder (the WAL is only written)."""
    return sorted(p for p in (shard / "segments").rglob("*") if p.is_file())


class FileWarmer:
    """Reads files once in a background thread; a new `start` replaces the reading in progress (from any thread:
    one reading at a time). `bytes_read` and `files_read` count what the last reading has read so far."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self.bytes_read = self.files_read = 0

    def start(self, files: Iterable[Path]) -> None:
        with self._lock:
            self.stop()
            self._stop = threading.Event()
            self.bytes_read = self.files_read = 0
            self._thread = threading.Thread(
                target=self._read_once, args=(list(files), self._stop), name="facekit-page-warmup", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the reading to finish; True when none is in progress."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def stop(self) -> None:
        """Stop the reading in progress (between two reads) and wait for the thread."""
        with self._lock:
            self._stop.set()
            self.wait()

    def _read_once(self, files: list[Path], stop: threading.Event) -> None:
        began = time.perf_counter()
        buffer = memoryview(bytearray(CHUNK))
        for path in files:
            if stop.is_set():
                return
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # a segment the engine merged away since the listing: nothing to warm
                continue
            try:
                self._read_file(fd, buffer, stop)
                self.files_read += 1
            except OSError as exc:  # a warm-up only: a search that needs the page reads it itself
                log.debug("page warm-up of %s stopped: %s", path, exc)
            finally:
                os.close(fd)
        log.debug("page warm-up: %d MiB of %d files read in %.1f s", self.bytes_read >> 20, self.files_read,
                  time.perf_counter() - began)  # fmt: skip

    def _read_file(self, fd: int, buffer: memoryview, stop: threading.Event) -> None:
        for start, end in _data_extents(fd, os.fstat(fd).st_size):
            _advise_willneed(fd, start, end)  # the disk reads ahead in large requests
            offset = start
            while offset < end and not stop.is_set():
                read = os.preadv(fd, [buffer[: min(CHUNK, end - offset)]], offset)
                if read == 0:  # the file shrank
                    break
                offset += read
                self.bytes_read += read


def readahead(files: Iterable[Path]) -> None:
    """Ask the kernel to read the files' data back into its page cache, without waiting for the reads (a second
    at a million faces, for 3 GB). After Edge closes a shard, whose cached pages it let go of: the next open of the
    store (a restarted kernel, the next CLI command) loads them from memory, not from disk."""
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            for start, end in _data_extents(fd, os.fstat(fd).st_size):
                _advise_willneed(fd, start, end)
        except OSError as exc:
            log.debug("readahead of %s stopped: %s", path, exc)
        finally:
            os.close(fd)


def _advise_willneed(fd: int, start: int, end: int) -> None:
    """posix_fadvise(WILLNEED) over [start, end), in windows: one call reads at most the device's readahead size."""
    if hasattr(os, "posix_fadvise"):
        for offset in range(start, end, READAHEAD_WINDOW):
            os.posix_fadvise(fd, offset, min(READAHEAD_WINDOW, end - offset), os.POSIX_FADV_WILLNEED)


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each stretch of the file that holds data: Edge preallocates its page files sparse (32 MB
    apparent for a few KB written), and a hole has nothing to warm. The whole file where the system cannot tell."""
    if not hasattr(os, "SEEK_DATA"):
        yield 0, size
        return
    position = 0
    while position < size:
        try:
            position = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no data past here; anything else: no hole support
                yield position, size
            return
        end = min(os.lseek(fd, position, os.SEEK_HOLE), size)
        yield position, end
        position = end
