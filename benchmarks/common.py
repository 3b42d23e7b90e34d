"""Shared benchmark helpers: each variant runs in a fresh worker subprocess, which measures its
own peak resident memory (Linux ``/proc``; elsewhere the lifetime maximum from ``getrusage``)."""

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


def run_worker(module: str, *args: str) -> dict:
    """Run ``python -m benchmarks.<module> --worker ARGS`` in a fresh process (clean peak memory)
    and return the JSON object it prints on its last line."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", f"benchmarks.{module}", "--worker", *args]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark worker {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt_bytes(n: float) -> str:
    """Bytes as GB from 1 GB up, MB below."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
