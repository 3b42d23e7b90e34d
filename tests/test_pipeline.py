"""The runner: validation before any notebook, the smoke profile end to end, failure and resume.

The end-to-end test runs every notebook on ``params/smoke.yaml`` through the same command
``make report`` uses (``python -m latentshift run``), into a temporary folder.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from latentshift import config
from latentshift.report import index_page
from latentshift.run import bookkeeping, runner
from tests.conftest import run_cli


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def test_misspelt_key_fails_before_any_notebook(root, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"data": {"n_cels": 100}}))
    result = _run(
        root, str(bad), "--run-dir", str(tmp_path / "run"), "--report-dir", str(tmp_path / "rep")
    )
    assert result.returncode == 2
    assert "data.n_cels" in result.stderr and "did you mean 'n_cells'" in result.stderr
    assert not (tmp_path / "run").exists(), "no notebook may start on invalid params"


def test_missing_data_file_stops_before_any_notebook(root, tmp_path):
    prof = tmp_path / "real.yaml"
    prof.write_text(
        yaml.safe_dump({"data": {"source": "h5ad", "path": str(tmp_path / "missing.h5ad")}})
    )
    result = _run(root, str(prof), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "make data" in result.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_notebook_and_too_many_cells_stop_before_any_notebook(root, tmp_path):
    run = tmp_path / "run"
    result = _run(root, "params/smoke.yaml", "--only", "07_extra", "--run-dir", str(run))
    assert result.returncode == 2
    assert "'07_extra' matches no single notebook; choose from 01_data, 02_perturb" in result.stderr
    assert not run.exists()
    prof = tmp_path / "big.yaml"
    prof.write_text(yaml.safe_dump({"data": {"simulate_n_cells": 100, "n_cells": 500}}))
    result = _run(root, str(prof), "--run-dir", str(tmp_path / "run2"))
    assert result.returncode == 2 and "at most 100" in result.stderr
    assert not (tmp_path / "run2").exists()


def test_gpu_asked_for_on_a_machine_without_one_stops_before_any_notebook(root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    prof = tmp_path / "gpu.yaml"
    prof.write_text(yaml.safe_dump({"ldvae": {"accelerator": "gpu"}}))
    result = _run(root, str(prof), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "torch sees no GPU" in result.stderr and "'auto'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_injects_only_declared_parameters(tmp_path):
    params = {"seed": 1, "data": {"a": 1}, "ldvae": {"b": 2}}
    got = runner.injected_parameters({"profile", "seed", "data"}, params, "p", tmp_path)
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


def test_a_gmt_of_non_genes_stops_at_the_zero_overlap_error(root, tmp_path):
    gmt = tmp_path / "fake.gmt"
    gmt.write_text(
        "FAKE_ALS\theld-out\t" + "\t".join(f"NOTAGENE{i}" for i in range(1, 6)) + "\n"
        "FAKE_HD\theld-out\t" + "\t".join(f"NOTAGENE{i}" for i in range(6, 11)) + "\n"
    )
    smoke = yaml.safe_load((root / "params" / "smoke.yaml").read_text())
    smoke["genesets"] = {"gmt": str(gmt)}
    smoke["perturbations"][0]["geneset"] = "FAKE_ALS"
    smoke["perturbations"][1]["geneset"] = "FAKE_HD"
    prof = tmp_path / "fake.yaml"
    prof.write_text(yaml.safe_dump(smoke))
    run, rep = tmp_path / "run", tmp_path / "rep"
    result = _run(root, str(prof), "--run-dir", str(run), "--report-dir", str(rep))
    assert result.returncode == 1
    assert "02_perturb FAILED" in result.stderr
    assert "gene set 'FAKE_ALS'" in result.stderr and "none of its genes" in result.stderr
    assert not (run / "perturbed.h5ad").exists()


@pytest.mark.pipeline
def test_smoke_profile_end_to_end_then_resume(root, smoke_run):
    run, rep = smoke_run.run, smoke_run.report
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-4000:]
    names = [nb.stem for nb in runner.notebooks(root)]
    assert names == [
        "01_data",
        "02_perturb",
        "03_ldvae",
        "04_latent_viz",
        "05_classifier",
        "06_loadings",
    ]
    provenance = json.loads((run / "provenance.json").read_text())
    for name in names:
        html = (rep / f"{name}.html").read_text()
        assert "SIMULATED" in html, f"{name} report does not label simulated data"
        # every page closes with its provenance: commit, versions, data checksum, times, params
        assert "Provenance" in html and "data SHA-256" in html, f"{name} report has no provenance"
        assert provenance["packages"]["scvi-tools"] in html and "n_latent" in html
        if provenance["git_commit"]:
            assert provenance["git_commit"] in html
        # every page shows its figures (even when the shell says MPLBACKEND=Agg), each with
        # its titles as alternative text rather than nbconvert's placeholder
        figures = re.findall(r"<img\b[^>]*>", html)
        assert figures, f"{name} report shows no figure"
        for img in figures:
            assert re.search(r"alt=[\"']Figure", img), (
                f"{name}: a figure without alt text: {img[:200]}"
            )
        executed = nbformat.read(run / "notebooks" / f"{name}.ipynb", as_version=4)
        errors = [
            o
            for c in executed.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.output_type == "error"
        ]
        assert not errors, f"{name} has error outputs: {errors[:1]}"
    index = (rep / "index.html").read_text()
    assert "Simulated data" in index and "FAILED" not in index
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"data", "perturb", "ldvae", "embedding", "classifier", "loadings"} <= set(metrics)
    assert metrics["data"]["n_cells"] > 0
    assert provenance["data_sha256"] == "simulated" and provenance["packages"]["scvi-tools"]
    assert provenance["started"] <= provenance["finished"]
    timings = json.loads((run / "timings.json").read_text())
    for name in names:  # wall time and peak memory of every notebook, recorded by the runner
        assert timings[f"notebook_{name}_seconds"] > 0
        assert 50e6 < timings[f"notebook_{name}_peak_rss_bytes"] < 24e9
    assert "peak memory" in index
    # metrics.json carries the reproducible part of the provenance (no times)
    assert metrics["provenance"]["params"] == config.load_params(root / "params/smoke.yaml")
    assert metrics["provenance"]["git_commit"] == provenance["git_commit"]
    assert metrics["provenance"]["packages"] == provenance["packages"]
    assert "started" not in metrics["provenance"] and "finished" not in metrics["provenance"]

    # a second run with nothing changed resumes: every notebook is up to date
    again = _run(root, "params/smoke.yaml", "--run-dir", str(run), "--report-dir", str(rep))
    assert again.returncode == 0
    assert again.stderr.count("up to date") == len(names)


def test_headline_rows_put_each_number_beside_its_control():
    metrics = {
        "classifier": {
            "accuracy": 0.5,
            "accuracy_low": 0.45,
            "accuracy_high": 0.55,
            "chance_uniform": 1 / 3,
            "permutation_accuracy": 0.34,
            "baseline_accuracy": {"majority": 1 / 3},
        },
        "loadings": {
            "ALS": {
                "auroc_ldvae_projected": 0.9,
                "auroc_ldvae_factor": 0.7,
                "best_factor": "Z_1",
                "auroc_pca_projected": 0.6,
            },
            "cells": "test",
        },
    }
    rows = dict(index_page.headline_rows(metrics))
    assert rows["classifier accuracy on the LDVAE latent [95% CI]"] == "50.0% [45.0%, 55.0%]"
    assert rows["chance (uniform) / label null (labels permuted within each source cell)"] == (
        "33.3% / 34.0%"
    )
    assert (
        rows["ALS: gene-set recovery AUROC (LDVAE projected / best factor / PCA)"]
        == "0.900 / 0.700 (Z_1) / 0.600"
    )
    assert index_page.headline_rows({}) == []
    # the gene choice is said, and an oracle run is a named row beside the headline, never it
    metrics["ldvae"] = {
        "gene_choice": {
            "n_top_genes": 1000,
            "hvg_cells": "all",
            "keep_perturbed_genes": False,
            "n_genes_used": 1000,
            "set_genes": {"ALS": {"in_model": 9, "shifted": 53}},
        }
    }
    oracle = {"classifier": {"accuracy": 0.66, "accuracy_low": 0.64, "accuracy_high": 0.68}}
    rows = dict(index_page.headline_rows(metrics, oracle_metrics=oracle))
    assert "label-blind" in rows["LDVAE genes"] and "ALS 9 of 53" in rows["LDVAE genes"]
    assert rows["classifier accuracy on the LDVAE latent [95% CI]"] == "50.0% [45.0%, 55.0%]"
    oracle_rows = [v for k, v in rows.items() if k.startswith("ORACLE")]
    assert oracle_rows == ["66.0% [64.0%, 68.0%]"]
    from latentshift.report.index_page import run_findings

    box = run_findings(metrics, None, True, oracle)
    assert "50.0%" in box.headline and "66.0%" not in box.headline
    assert any(item.startswith("Oracle (not the headline)") for item in box.items)
    # synthetic against real at fold change 1: no synthetic shift, so no direction to compare
    cond = "IFN-beta stimulated"
    metrics["transfer"] = {
        "by_condition": {cond: {"ldvae_targeted_disease": 0.1, "ldvae_targeted_control": 0.1}},
        "direction": {f"{cond} / ldvae": {"cosine": None, "null_high": None}},
    }
    box = run_findings(metrics, None, True, oracle)
    assert any("cosine n/a (null 97.5 % n/a)" in item for item in box.items)


def test_peak_memory_sees_a_child_process_allocation():
    import sys

    script = (
        "import numpy as np, time; a = np.ones(40_000_000); time.sleep(0.3); del a; time.sleep(0.3)"
    )
    with bookkeeping.PeakMemory(interval=0.05) as memory:
        subprocess.run([sys.executable, "-c", script], check=True)
    # 40 M float64 = 320 MB held by the child; its high-water mark survives the del
    assert 300e6 < memory.peak_bytes < 2e9


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_rerun_on_one_machine_reproduces_every_number(smoke_run, tmp_path, root):
    # the LDVAE retrained and the classifier re-run on a copy of the smoke run give the same
    # metrics to the last digit (same seed, same machine, same threads): what `python -m
    # latentshift results runs/<profile> --check` tells a user about their re-run
    import shutil

    from latentshift.record import results

    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-4000:]
    copy = tmp_path / "run"
    shutil.copytree(smoke_run.run, copy, symlinks=True)
    for nb in ("03", "05"):
        again = run_cli(
            "params/smoke.yaml", "--only", nb, "--force", "--run-dir", str(copy),
            "--report-dir", str(tmp_path / "rep"),
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
    first, second = results.record(smoke_run.run, root), results.record(copy, root)
    assert (
        json.loads((copy / "state.json").read_text())["03_ldvae"]["finished"]
        != json.loads((smoke_run.run / "state.json").read_text())["03_ldvae"]["finished"]
    )  # it did run again
    assert (
        first["metrics"]["ldvae"]["final_elbo_train"]
        == second["metrics"]["ldvae"]["final_elbo_train"]
    )
    assert results.differences(first, second) == []
