"""Who holds a lease: a process on a host, and whether it is still alive."""

from __future__ import annotations

import os
import socket
import threading

import psutil

_SEPARATOR = "/"


def current_owner(slot: int | str = 0) -> str:
    """Return an owner id for this process and a worker slot in it.

    The id carries the process start time, so a recycled pid never passes
    for the process that took the lease.
    """
    pid = os.getpid()
    started = int(psutil.Process(pid).create_time())
    return _SEPARATOR.join(
        [
            socket.gethostname(),
            str(pid),
            str(started),
            f"{slot}.{threading.get_native_id()}",
        ]
    )


def is_gone(owner: str) -> bool:
    """Tell whether an owner on this host has exited; owners elsewhere are alive.

    Leases held on other hosts lapse by their expiry time instead.
    """
    parts = owner.split(_SEPARATOR)
    if len(parts) != 4 or parts[0] != socket.gethostname():
        return False
    try:
        pid, started = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    try:
        return int(psutil.Process(pid).create_time()) != started
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
