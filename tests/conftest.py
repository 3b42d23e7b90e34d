"""Shared test fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


#: Test files with a test that reads the session's smoke run (found by name, so a new one joins).
SMOKE_RUN_FILES = {
    f"tests/{p.name}"
    for p in Path(__file__).parent.glob("test_*.py")
    if "smoke_run" in p.read_text(encoding="utf-8")
}


def pytest_xdist_make_scheduler(config, log):
    """Schedule by file under pytest-xdist (``make test`` runs ``-n auto``), keeping shared runs
    whole: the tests of one file run on one worker (its module fixtures are built once), and all
    files reading the session's smoke run share one worker, so the smoke pipeline runs once per
    session rather than once per worker. (``--dist loadgroup`` would do this with markers, but
    it does not group under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "smoke_run" if path in SMOKE_RUN_FILES else path

    return SharedRunScheduling(config, log)


@pytest.fixture(scope="session")
def root() -> Path:
    """The project root."""
    return ROOT


def run_cli(
    *args: str, timeout: float = 1800, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m latentshift run ARGS`` — the command ``make report`` runs (``env``: extra
    environment variables)."""
    return subprocess.run(
        [sys.executable, "-m", "latentshift", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@dataclass
class SmokeRun:
    run: Path
    report: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """The whole pipeline on ``params/smoke.yaml``, once per test session, in a temporary folder.

    It runs from a headless shell's environment (``MPLBACKEND=Agg``), where the report pages
    must still show every figure.
    """
    base = tmp_path_factory.mktemp("smoke")
    run, report = base / "run", base / "rep"
    result = run_cli(
        "params/smoke.yaml",
        "--run-dir",
        str(run),
        "--report-dir",
        str(report),
        env={"MPLBACKEND": "Agg"},
    )
    return SmokeRun(run, report, result)


def random_counts(n_cells, n_genes, density=0.3, seed=0, dtype=None, mean=3.0):
    """A random CSR count matrix (stored values 1 + Poisson(mean), int32 by default)."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.random(
        n_cells,
        n_genes,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda k: rng.poisson(mean, k) + 1,
    )
    return X.astype(dtype or np.int32)
