"""The owner record: which process runs a trial or created a study (study.storage's recovery reads it)."""

from __future__ import annotations

import os
import socket

from study.runtime import boot_id, start_ticks
from study.storage._schema import BOOT, HOST, PID, STARTED


def this_process() -> dict:
    """The owner record of the current process: host, pid, boot id and start time.

    Example:
        >>> this_process()[PID] == os.getpid()
        True
    """
    return {HOST: socket.gethostname(), PID: os.getpid(), BOOT: boot_id(), STARTED: start_ticks(os.getpid())}
