"""The runner: validation before any notebook, the smoke profile end to end, failure and resume.

The end-to-end test runs every notebook on ``params/smoke.yaml`` through the same command
``make report`` uses (``python -m latentshift run``), into a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from latentshift import pipeline
from tests.conftest import run_cli


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def test_misspelt_key_fails_before_any_notebook(root, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"data": {"n_cels": 100}}))
    result = _run(root, str(bad), "--run-dir", str(tmp_path / "run"), "--report-dir", str(tmp_path / "rep"))
    assert result.returncode == 2
    assert "data.n_cels" in result.stderr and "did you mean 'n_cells'" in result.stderr
    assert not (tmp_path / "run").exists(), "no notebook may start on invalid params"


def test_missing_data_file_stops_before_any_notebook(root, tmp_path):
    prof = tmp_path / "real.yaml"
    prof.write_text(yaml.safe_dump({"data": {"source": "h5ad", "path": str(tmp_path / "missing.h5ad")}}))
    result = _run(root, str(prof), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "make data" in result.stderr
    assert not (tmp_path / "run").exists()


def test_injects_only_declared_parameters(tmp_path):
    params = {"seed": 1, "data": {"a": 1}, "ldvae": {"b": 2}}
    got = pipeline.injected_parameters({"profile", "seed", "data"}, params, "p", tmp_path)
    assert got == {"profile": "p", "seed": 1, "data": {"a": 1}}


def test_failing_notebook_gets_html_and_nonzero_exit(root, tmp_path):
    not_h5ad = tmp_path / "not_an.h5ad"
    not_h5ad.write_text("this is not an HDF5 file")
    prof = tmp_path / "broken.yaml"
    prof.write_text(yaml.safe_dump({"data": {"source": "h5ad", "path": str(not_h5ad)}}))
    run, rep = tmp_path / "run", tmp_path / "rep"
    result = _run(root, str(prof), "--only", "01", "--run-dir", str(run), "--report-dir", str(rep))
    assert result.returncode == 1
    assert "01_data FAILED" in result.stderr
    html = (rep / "01_data.html").read_text()
    assert "not_an.h5ad" in html  # the error is shown in the report
    assert "FAILED" in (rep / "index.html").read_text()
    assert not (run / "cells.h5ad").exists()


@pytest.mark.pipeline
def test_smoke_profile_end_to_end_then_resume(root, smoke_run):
    run, rep = smoke_run.run, smoke_run.report
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-4000:]
    names = [nb.stem for nb in pipeline.notebooks(root)]
    assert names == ["01_data", "02_perturb", "03_ldvae", "04_latent_viz", "05_classifier", "06_loadings"]
    for name in names:
        html = (rep / f"{name}.html").read_text()
        assert "SIMULATED" in html, f"{name} report does not label simulated data"
        executed = nbformat.read(run / "notebooks" / f"{name}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{name} has error outputs: {errors[:1]}"
    index = (rep / "index.html").read_text()
    assert "SIMULATED DATA" in index and "FAILED" not in index
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"data", "perturb", "ldvae", "embedding", "classifier", "loadings"} <= set(metrics)
    assert metrics["data"]["n_cells"] > 0
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["data_sha256"] == "simulated" and provenance["packages"]["scvi-tools"]

    # a second run with nothing changed resumes: every notebook is up to date
    again = _run(root, "params/smoke.yaml", "--run-dir", str(run), "--report-dir", str(rep))
    assert again.returncode == 0
    assert again.stderr.count("up to date") == len(names)


def test_headline_rows_put_each_number_beside_its_control():
    metrics = {
        "classifier": {"accuracy": 0.5, "accuracy_low": 0.45, "accuracy_high": 0.55, "chance_uniform": 1 / 3,
                       "permutation_accuracy": 0.34, "baseline_accuracy": {"majority": 1 / 3}},
        "loadings": {"ALS": {"auroc_ldvae_projected": 0.9, "auroc_ldvae_factor": 0.7, "best_factor": "Z_1",
                             "auroc_pca_projected": 0.6}, "cells": "test"},
    }
    rows = dict(pipeline.headline_rows(metrics))
    assert rows["classifier accuracy on the LDVAE latent [95% CI]"] == "50.0% [45.0%, 55.0%]"
    assert rows["chance (uniform) / label-permutation control"] == "33.3% / 34.0%"
    assert rows["ALS: gene-set recovery AUROC (LDVAE projected / best factor / PCA)"] == "0.900 / 0.700 (Z_1) / 0.600"
    assert pipeline.headline_rows({}) == []
