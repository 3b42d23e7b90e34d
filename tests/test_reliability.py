"""Reliability: a killed run resumes without trusting half-written files, and the same params
give the same numbers (``metrics.json`` byte-identical; timings live in ``state.json``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli


def _state(run) -> dict:
    try:
        return json.loads((run / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
@pytest.mark.pipeline
def test_killed_run_resumes_and_reproduces_metrics(smoke_run, tmp_path):
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-3000:]
    run, rep = tmp_path / "run", tmp_path / "rep"
    args = ["params/smoke.yaml", "--run-dir", str(run), "--report-dir", str(rep)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "latentshift", "run", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kernel dies with it
    )
    try:
        deadline = time.time() + 600
        while _state(run).get("03_ldvae", {}).get("status") != "running":
            assert proc.poll() is None, "the run ended before 03_ldvae started"
            assert time.time() < deadline, "03_ldvae never started"
            time.sleep(0.2)
        time.sleep(3)  # mid-notebook: the kernel is importing or training
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = _state(run)
    assert state["01_data"]["status"] == "ok" and state["02_perturb"]["status"] == "ok"
    assert state["03_ldvae"]["status"] == "running"  # what a kill leaves behind
    assert not (run / "latent.h5ad").exists()

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "01_data is up to date" in resumed.stderr
    assert "02_perturb is up to date" in resumed.stderr
    assert "[3/6] 03_ldvae: running" in resumed.stderr
    assert not list(run.glob(".*.tmp")), "stale temporary files were left behind"

    # same params, same seed → the same numbers, byte for byte
    assert (run / "metrics.json").read_bytes() == (smoke_run.run / "metrics.json").read_bytes()
