"""Real services for the job and API tests: Debian's redis-server on a free loopback port, `facekit worker`
processes and `facekit serve` (uvicorn), each in its own process group so a test can SIGKILL it whole."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """redis-server on a free loopback port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: apt-get install redis-server (`make redis` does it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def facekit(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """`facekit ARGS` in its own process group (stdout and stderr to `log`)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed when the process ends)
    return subprocess.Popen(
        [sys.executable, "-m", "facekit.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=out,
        stderr=out,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process and everything it started (a worker and its work-horse)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(30)
