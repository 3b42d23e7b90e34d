"""What the runner keeps in order around the notebooks: the run folder and the kernels.

- :func:`lock_run_folder` — the run folder's exclusive lock (two runs never write the same files);
- :func:`remove_stale_temporaries` — the temporary files a killed run left behind;
- :func:`inline_figures` — the kernels start with matplotlib's inline backend;
- :class:`PeakMemory` — the peak resident memory of a notebook's processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from latentshift.errors import PipelineError

log = logging.getLogger("latentshift")

# matplotlib's backend in the notebook kernels: the inline one, whose figures become the
# notebook's PNG outputs. A kernel inherits the runner's environment, and a headless shell
# often sets MPLBACKEND=Agg, with which every figure is drawn and thrown away, unseen.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@contextlib.contextmanager
def inline_figures() -> Iterator[None]:
    """Start notebook kernels with matplotlib's inline backend, whatever ``MPLBACKEND`` says.

    The kernel inherits this process's environment; ``MPLBACKEND=Agg`` (set by many headless
    setups) would make it draw every figure without showing it, so the report would have none.
    The variable is restored afterwards.
    """
    before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = before


def remove_stale_temporaries(run_folder: Path) -> None:
    """Delete temporary files a killed run left behind (under the lock, nobody else writes)."""
    import shutil

    for tmp in run_folder.glob(".*.tmp"):
        log.info("removing %s, left behind by an interrupted run", tmp.name)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def lock_run_folder(run_folder: Path, profile: str) -> Any:
    """Hold an exclusive lock on the run folder so two runs never write the same files.

    Returns
    -------
    file
        The open lock file; close it to release the lock.

    Raises
    ------
    PipelineError
        Another run holds the lock.
    """
    import fcntl

    handle = open(run_folder / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise PipelineError(
            f"another run is already using {run_folder} (profile {profile}); wait for it to "
            "finish, or give this run its own folder with --run-dir."
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class PeakMemory:
    """Peak resident memory of the processes a notebook runs in, watched from the runner.

    A thread reads, every ``interval`` seconds, the kernel's (and its children's) high-water
    mark of resident memory (``VmHWM`` from ``/proc``, exact, not sampled; on other systems the
    current RSS from psutil, sampled). :attr:`peak_bytes` is the largest of them.

    Use as a context manager around one notebook's execution.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="peak-memory")

    @staticmethod
    def _high_water(proc: Any) -> int:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return int(proc.memory_info().rss)

    def _sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                self.peak_bytes = max(self.peak_bytes, self._high_water(child))
            except psutil.Error:
                continue

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()
