"""Shared test fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
