"""Fixtures every test folder shares."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest


def kill_when(
    proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, poll: float = 0.05
) -> int:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (or at once if it has exited); its code.

    ``ready`` is polled every ``poll`` seconds; past ``timeout`` seconds without
    it the test fails (the kill-and-resume tests need the process caught mid-run).
    """
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None:
        assert time.time() < deadline, f"the process was not ready within {timeout:.0f} s"
        time.sleep(poll)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.fixture(scope="session")
def kill_process_when() -> Callable[..., int]:
    """``kill_when`` for the kill-and-resume tests of any folder."""
    return kill_when
