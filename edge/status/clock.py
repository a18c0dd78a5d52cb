"""Whether the kernel's clock is synchronised (by NTP or any time daemon).

Read with adjtimex(2) in read-only mode, not from timedatectl: it needs neither systemd nor
D-Bus, answers in microseconds, and is what the kernel itself believes. TIME_ERROR (5)
means the clock is not synchronised (STA_UNSYNC set, or no daemon disciplines it).
"""

from __future__ import annotations

import ctypes
import ctypes.util

TIME_ERROR = 5


def ntp_synchronised() -> bool | None:
    """True when synchronised, False when not, None when the kernel cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR
