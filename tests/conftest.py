"""Shared test fixtures."""

from __future__ import annotations

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


def run_cli(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``python -m latentshift run ARGS`` — the command ``make report`` runs."""
    return subprocess.run(
        [sys.executable, "-m", "latentshift", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class SmokeRun:
    run: Path
    report: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """The whole pipeline on ``params/smoke.yaml``, once per test session, in a temporary folder."""
    base = tmp_path_factory.mktemp("smoke")
    run, report = base / "run", base / "rep"
    result = run_cli("params/smoke.yaml", "--run-dir", str(run), "--report-dir", str(report))
    return SmokeRun(run, report, result)
