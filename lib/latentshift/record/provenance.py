"""What made a run: package versions, the git commit, the data file's checksum.

:func:`provenance` is recorded by the runner in ``runs/<profile>/provenance.json`` (with start
and end times) and, without the times, in the ``provenance`` section of ``metrics.json``;
every report page closes with it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from latentshift.data import artifacts

log = logging.getLogger(__name__)

#: Packages whose versions every run records.
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "latentshift",
    "anndata",
    "scanpy",
    "scvi-tools",
    "torch",
    "lightning",
    "numpy",
    "scipy",
    "scikit-learn",
    "leidenalg",
    "papermill",
    "nbconvert",
)


#: Environment variables that set the thread count of torch and the BLAS in a kernel.
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_model() -> str | None:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), or ``None``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """Cores, CPU, memory, platform, torch (version, threads, CPU kernels) and BLAS.

    ``torch_threads`` is the count a fresh kernel gets: ``OMP_NUM_THREADS`` when it is set
    (torch reads it when it starts), otherwise torch's default here. ``blas`` is the BLAS as
    loaded in this process; a kernel started with ``OPENBLAS_NUM_THREADS`` set uses that count.
    ``cpu_model`` and ``torch_cpu_capability`` (the vector instruction set torch's kernels use,
    e.g. ``AVX512``) say whether two runs did the same floating-point work: on another CPU the
    same code and seed can train another path (see docs/results.md, "How much a number moves").
    """
    info: dict[str, Any] = {
        "cpu_cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/meminfo") as fh:
            total_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(total_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gib"] = None
    try:
        import torch

        info["torch"] = str(torch.__version__)
        env = os.environ.get("OMP_NUM_THREADS", "")
        info["torch_threads"] = int(env) if env.isdigit() else torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        info["torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    except ImportError:  # pragma: no cover
        info["torch"] = None
    try:
        import numpy  # noqa: F401 - loads the BLAS that threadpoolctl reports
        from threadpoolctl import threadpool_info

        info["blas"] = sorted(
            {
                f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                for p in threadpool_info()
                if p.get("user_api") == "blas"
            }
        )
    except ImportError:  # pragma: no cover
        info["blas"] = None
    for name in (*THREAD_VARIABLES, "OPENBLAS_CORETYPE"):
        info[name] = os.environ.get(name)
    return info


def git(root: Path, *args: str) -> str | None:
    """Output of ``git ARGS`` in ``root``, or ``None`` when git or the repository is absent."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


#: Paths whose changes do not make a run's code dirty: the records, and the README and docs
#: pages written from them (a record made after another, before it is committed, is still
#: made by clean code).
RECORD_OUTPUTS = ("results", "docs", "README.md")


def dirty_paths(root: Path) -> str | None:
    """``git status --porcelain`` of ``root`` without :data:`RECORD_OUTPUTS` (``None``: no git).

    Non-empty when the code, notebooks, params or anything else a run reads differ from the
    commit, tracked or not.
    """
    excludes = [f":(exclude){p}" for p in RECORD_OUTPUTS]
    return git(root, "status", "--porcelain", "--", ".", *excludes)


def data_checksum(params: dict[str, Any], run_folder: Path) -> str:
    """SHA-256 of the data file (cached by size and modification time), or ``"simulated"``."""
    if params["data"]["source"] == "simulated":
        return "simulated"
    from latentshift.data.fetch import sha256_file

    path = Path(params["data"]["path"])
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    cache = run_folder / ".data_sha256.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["sha256"]
    log.info("computing the SHA-256 of %s for the provenance record", path)
    digest = sha256_file(path)
    artifacts.write_json({"key": key, "sha256": digest}, cache)
    return digest


def provenance(params: dict[str, Any], root: Path, run_folder: Path) -> dict[str, Any]:
    """What made this run: package versions, git commit (and whether the tree was dirty),
    the data file's checksum, the Python version and the machine (:func:`machine`).

    Parameters
    ----------
    params
        The resolved params (data paths absolute).
    root
        The project root (the git checkout).
    run_folder
        The run folder (caches the data checksum).
    """
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    status = dirty_paths(root)
    return {
        "python": sys.version.split()[0],
        "packages": versions,
        "git_commit": git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "data_sha256": data_checksum(params, run_folder),
        "machine": machine(),
    }
