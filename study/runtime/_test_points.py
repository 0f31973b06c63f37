"""Moments a test may stop a process at, named by one environment variable."""

from __future__ import annotations

import os
import signal
import time

# Tests reach moments no user can time (a process dying right after it created a trial, three
# commands opening one storage at once) through this one variable, read in `checkpoint` only:
# "NAME:kill" kills the process at the point NAME; "NAME:barrier=DIR,N" makes it wait there until
# N processes have arrived (each leaves a file in DIR).
TEST_POINT = "STUDY_TEST_POINT"



def checkpoint(name: str) -> None:
    """A moment a test may stop at (see TEST_POINT); does nothing unless the variable names it.

    Example:
        >>> checkpoint("trial-created")  # no STUDY_TEST_POINT set: returns at once
    """
    point, _, action = os.environ.get(TEST_POINT, "").partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("barrier="):
        folder, _, count = action.removeprefix("barrier=").rpartition(",")
        open(os.path.join(folder, f"{os.getpid()}.arrived"), "w").close()
        deadline = time.monotonic() + 300
        while len([f for f in os.listdir(folder) if f.endswith(".arrived")]) < int(count) and time.monotonic() < deadline:
            time.sleep(0.01)
