"""What the worker processes of both pools (proctor.vision.pool, the frames' analysis;
proctor.vision.identity_pool, the identity checks) do first: end with the server."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the server process dies, even by SIGKILL (a
    killed worker would otherwise be left behind). The signal follows the *thread* that
    started the process: each pool is used from one thread that lives as long as the
    server (the event loop's for the identity pool, the monitor's analysis thread for the
    analysis pool)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: the pool still shuts down normally
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)
