"""Peak resident memory of the current process, for benchmarks that run each variant in a
fresh subprocess (Linux ``/proc``; elsewhere the lifetime maximum from ``getrusage``)."""

from __future__ import annotations

import resource
from pathlib import Path


def proc_status(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (e.g. ``VmRSS``) in bytes, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def reset_peak_rss() -> int:
    """Reset the peak-RSS mark (Linux ``clear_refs`` 5) and return the current RSS in bytes.

    Loading the input may have left a higher mark than the input itself; after the reset the
    mark is the current RSS, so the next peak belongs to the measured code.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    rss = proc_status("VmRSS")
    return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss() -> int:
    """The peak resident set size since the last reset, in bytes."""
    hwm = proc_status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
