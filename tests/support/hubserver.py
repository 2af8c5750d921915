"""A real ``gardien hub serve`` process for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from support.ports import free_port

__all__ = ["free_port", "hub_server"]


@contextlib.contextmanager
def hub_server(database: str, *options: str, timeout: float = 30.0) -> Iterator[str]:
    """``gardien hub serve --database DATABASE OPTIONS...`` on a free loopback port, once its
    ``/health`` answers; yields its base URL, and stops it (SIGTERM, then SIGKILL) at the end.
    ``GARDIEN_HUB_DATABASE`` is cleared so that only ``database`` counts."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gardien",
            "hub",
            "serve",
            "--database",
            database,
            "--listen",
            f"127.0.0.1:{port}",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GARDIEN_HUB_DATABASE": ""},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the hub exited: {process.communicate()[1]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"the hub did not answer /health within {timeout:g} s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
