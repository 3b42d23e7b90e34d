"""Tests of latentshift.run.study: designing points, their params, collecting their numbers, the page;
and one two-point study on the smoke profile through the command line (the pipeline test)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from latentshift import config
from latentshift.data import artifacts
from latentshift.errors import SweepError
from latentshift.record.readme import sync as readme_sync
from latentshift.record.readme import sync_docs
from latentshift.report import study_report
from latentshift.run import study


def test_parse_vary_makes_every_combination_with_yaml_values():
    points = study.parse_vary(
        ["ldvae.n_top_genes=null,5000,1000", "ldvae.keep_perturbed_genes=false,true"]
    )
    assert len(points) == 6
    assert points[0].changes == {"ldvae.n_top_genes": None, "ldvae.keep_perturbed_genes": False}
    assert points[0].name == "n_top_genes=null__keep_perturbed_genes=false"
    assert points[-1].changes == {"ldvae.n_top_genes": 1000, "ldvae.keep_perturbed_genes": True}
    lists = study.parse_vary(["classifier.hidden_layers=[7],[32, 8]"])
    assert [p.changes["classifier.hidden_layers"] for p in lists] == [[7], [32, 8]]
    assert len({p.name for p in lists}) == 2
    for bad in (["ldvae.n_latent"], ["=1,2"], ["ldvae.n_latent="]):
        with pytest.raises(SweepError, match="KEY=V1,V2"):
            study.parse_vary(bad)
    with pytest.raises(SweepError, match="twice"):
        study.parse_vary(["ldvae.n_latent=3", "ldvae.n_latent=5"])


def test_point_params_set_dotted_keys_and_levels_and_refuse_data_keys():
    raw = yaml.safe_load((artifacts.project_root() / "params" / "demo.yaml").read_text())
    out = study.point_params(
        raw, {"ldvae.n_top_genes": 2000, "seed": 3, "classifier.hidden_layers": [7]}
    )
    assert out["ldvae"]["n_top_genes"] == 2000 and out["ldvae"]["n_latent"] == 36
    assert out["seed"] == 3 and out["classifier"]["hidden_layers"] == [7]
    assert raw["ldvae"]["n_top_genes"] == 1000  # the profile itself is not changed
    config.validate(out)
    level = study.point_params(raw, {study.LEVEL_KEY: 2.0})
    assert level == study.scaled_params(raw, 2.0)
    with pytest.raises(SweepError, match="01_data runs once"):
        study.point_params(raw, {"data.n_cells": 100})
    with pytest.raises(SweepError, match="section.key"):
        study.point_params(raw, {"nonsense": 1})


def test_load_design(tmp_path):
    design = tmp_path / "d.yaml"
    design.write_text(
        "name: genes\nnulls: true\npoints:\n"
        "  - name: all\n    set: {ldvae.n_top_genes: null}\n"
        "  - name: blind1000\n    set: {ldvae.n_top_genes: 1000}\n"
    )
    name, points, options = study.load_design(design)
    assert name == "genes" and options == {"nulls": True, "viz": False, "threads": None}
    assert [p.name for p in points] == ["all", "blind1000"]
    assert points[0].changes == {"ldvae.n_top_genes": None}
    design.write_text("threads: 1\npoints:\n  - name: a\n")
    assert study.load_design(design)[2]["threads"] == 1
    for bad in ("0", "two", "true", "1.5"):
        design.write_text(f"threads: {bad}\npoints:\n  - name: a\n")
        with pytest.raises(SweepError, match="'threads' is .*whole number"):
            study.load_design(design)
    design.write_text("nulls: [all, other]\npoints:\n  - name: all\n")
    with pytest.raises(SweepError, match="other"):
        study.load_design(design)
    design.write_text("points:\n  - name: a\n  - name: a\n")
    with pytest.raises(SweepError, match="twice"):
        study.load_design(design)
    with pytest.raises(SweepError, match="does not exist"):
        study.load_design(tmp_path / "nope.yaml")


def test_thread_limit_reaches_a_fresh_kernel_and_is_undone(monkeypatch):
    import subprocess
    import sys

    from latentshift.record.provenance import THREAD_VARIABLES

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    code = "import torch; print(torch.get_num_threads())"
    with study.thread_limit(1):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "1"
    assert all(name not in os.environ for name in THREAD_VARIABLES)
    with study.thread_limit(None):
        assert all(name not in os.environ for name in THREAD_VARIABLES)


def test_every_shipped_study_design_is_valid_for_its_profile(root):
    designs = sorted((root / "params" / "studies").glob("*.yaml"))
    assert designs
    for path in designs:
        spec = yaml.safe_load(path.read_text())
        profile = root / spec["profile"]
        raw = yaml.safe_load(profile.read_text())
        _, points, _ = study.load_design(path)
        assert len(points) >= 2
        for p in points:
            config.validate(study.point_params(raw, p.changes))


def test_a_bad_point_stops_the_study_before_anything_runs(tmp_path):
    with pytest.raises(SweepError, match="point 'n_latent=0'.*n_latent"):
        study.run_study(
            "params/smoke.yaml",
            study.parse_vary(["ldvae.n_latent=0"]),
            run_folder=tmp_path / "run",
            report_folder=tmp_path / "rep",
        )
    assert not (tmp_path / "run" / "cells.h5ad").exists()


def test_points_runs_only_the_named_points_and_their_nulls(tmp_path, monkeypatch):
    points = study.parse_vary(["ldvae.n_latent=3,5,7"])
    ran: list[str] = []

    def fake_run_points(params_path, runs, *args, **kwargs):
        ran.extend(name for name, _ in runs)
        return {name: 0 for name, _ in runs}

    monkeypatch.setattr(study, "ensure_cells", lambda *a, **k: tmp_path / "cells.h5ad")
    monkeypatch.setattr(study, "run_points", fake_run_points)
    monkeypatch.setattr(study.runner, "render_index_of", lambda plan: None)
    kwargs = {"run_folder": tmp_path / "run", "report_folder": tmp_path / "rep"}
    assert (
        study.run_study("params/smoke.yaml", points, nulls=True, only=["n_latent=5"], **kwargs) == 0
    )
    assert ran == ["n_latent=5", "n_latent=5__null"]
    table = pd.read_csv(tmp_path / "run" / "study" / "study.csv")
    assert list(table["point"]) == ["n_latent=3", "n_latent=5", "n_latent=7"]  # all rows kept
    with pytest.raises(SweepError, match="n_latent=9.*its points are n_latent=3"):
        study.run_study("params/smoke.yaml", points, only=["n_latent=9"], **kwargs)


def test_a_study_brings_01_up_to_date_even_when_its_cells_exist(tmp_path, monkeypatch, root):
    # a stale cells.h5ad (made before the profile's data section changed) must not be reused:
    # the runner's 01 decides, by its input stamp, whether to skip or re-run
    run = tmp_path / "run"
    run.mkdir()
    (run / "cells.h5ad").write_text("stale")
    calls = []
    monkeypatch.setattr(study.runner, "run", lambda *a, **k: calls.append(k["select"]) or 0)
    assert study.ensure_cells(root / "params/smoke.yaml", root, run) == run / "cells.h5ad"
    assert calls == [["01"]]


def test_a_case_control_study_refuses_nulls_made_after_01(tmp_path):
    points = study.parse_vary(["case_control.split=donor,cell"])
    with pytest.raises(SweepError, match="made in 01_data.*case_control_sim_null"):
        study.run_study(
            "params/case_control_smoke.yaml",
            points,
            nulls=True,
            run_folder=tmp_path / "run",
            report_folder=tmp_path / "rep",
        )
    assert not (tmp_path / "run").exists()


def _fake_point(folder, acc, low, high, *, oracle=False, perm=0.33):
    artifacts.update_metrics(
        folder,
        "classifier",
        {
            "accuracy": acc,
            "accuracy_low": low,
            "accuracy_high": high,
            "permutation_accuracy": perm,
            "chance_uniform": 1 / 3,
            "baseline_accuracy": {"mlp_pca": 0.4, "logreg_disease_genes": 0.8},
        },
    )
    artifacts.update_metrics(
        folder,
        "ldvae",
        {
            "epochs_run": 50,
            "n_genes_used": 1000,
            "gene_choice": {"oracle": oracle, "set_genes": {"ALS": {"in_model": 3, "shifted": 41}}},
        },
    )
    artifacts.update_metrics(folder, "loadings", {"ALS": {"auroc_ldvae_projected": 0.7}})


def test_collect_reads_each_point_and_its_null_and_the_findings_name_the_oracle(tmp_path):
    points = [study.Point("blind", {"ldvae.n_top_genes": 1000}), study.Point("oracle", {})]
    _fake_point(tmp_path / "blind", 0.50, 0.45, 0.55)
    _fake_point(tmp_path / "blind__null", 0.34, 0.30, 0.38)
    _fake_point(tmp_path / "oracle", 0.66, 0.62, 0.70, oracle=True)
    table = study.collect(tmp_path, points)
    assert list(table["point"]) == ["blind", "oracle"]
    assert table.loc[0, "null_accuracy"] == 0.34 and pd.isna(table.loc[1, "null_accuracy"])
    assert table.loc[0, "ALS_genes_in_model"] == 3 and table.loc[0, "ALS_recovery"] == 0.7
    assert table.loc[0, "ldvae.n_top_genes"] == "1000"
    assert study_report.detected(table.loc[0]) and study_report.detected(table.loc[1])
    box = study_report.study_findings(table, "genes", simulated=True)
    assert "blind" in box.headline  # the best label-blind point, not the oracle
    assert any("ORACLE" in item and "oracle" in item for item in box.items)
    below = table.copy()
    below.loc[0, "null_accuracy"] = 0.5  # a null as good as the point: not detected
    assert not study_report.detected(below.loc[0])


@pytest.mark.slow
@pytest.mark.pipeline
def test_two_point_study_on_the_smoke_profile(smoke_run, root):
    """Must-show: a study over a key other than the fold change, through the command line."""
    from tests.browser import check_pages, require_chromium

    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-2000:]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentshift",
            "sweep",
            "params/smoke.yaml",
            "--vary",
            "ldvae.n_latent=3,5",
            "--name",
            "latent_size",
            "--run-dir",
            str(smoke_run.run),
            "--report-dir",
            str(smoke_run.report),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(smoke_run.run / "latent_size" / "study.csv")
    assert list(table["point"]) == ["n_latent=3", "n_latent=5"]
    for column in (
        "accuracy",
        "accuracy_low",
        "accuracy_high",
        "permutation_accuracy",
        "null_accuracy",
        "pca_accuracy",
        "disease_genes_accuracy",
        "ALS_recovery",
        "HD_recovery",
        "epochs",
        "wall_seconds",
        "peak_memory_gb",
    ):
        assert column in table, column
    assert table["accuracy"].notna().all() and (table["epochs"] > 0).all()
    for n, folder in zip((3, 5), table["point"], strict=True):
        metrics = artifacts.read_metrics(smoke_run.run / "latent_size" / folder)
        assert metrics["ldvae"]["n_latent"] == n
    page = smoke_run.report / "latent_size.html"
    problems = check_pages([page], chromium=require_chromium())
    assert {p.name: found for p, found in problems.items() if found} == {}
    assert "n_latent=5" in page.read_text()


def test_readme_study_tables_are_generated_from_the_recorded_studies(root, tmp_path):
    # the tables of the README and docs/*.md equal what the recorded study.csv files give
    assert sync_docs(root, check=True) == []
    # and a stale table is found and rewritten
    table = pd.DataFrame(
        {
            "point": ["a"],
            "accuracy": [0.5],
            "accuracy_low": [0.45],
            "accuracy_high": [0.55],
            "permutation_accuracy": [0.33],
            "null_accuracy": [0.334],
            "pca_accuracy": [0.4],
            "logreg_latent_accuracy": [0.48],
            "disease_genes_accuracy": [0.8],
            "oracle": [False],
            "ALS_genes_in_model": [9],
            "ALS_recovery": [0.9],
            "epochs": [80],
            "wall_seconds": [300.0],
        }
    )
    (tmp_path / "results").mkdir()
    table.to_csv(tmp_path / "results" / "s.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(
        "before\n<!-- study-table results/s.csv -->\nold\n<!-- /study-table -->\nafter\n"
    )
    assert readme_sync(readme, tmp_path, check=True) == ["study-table results/s.csv"]
    assert "old" in readme.read_text()
    assert readme_sync(readme, tmp_path) == ["study-table results/s.csv"]
    text = readme.read_text()
    assert "| `a` | 50.0% [45.0%, 55.0%] | 33.0% | 33.4% |" in text and "5.0 min" in text
    assert text.startswith("before\n") and text.endswith("after\n")
    assert readme_sync(readme, tmp_path, check=True) == []


def test_the_transfer_table_is_generated_from_the_study_record(tmp_path):
    cond = "Huntington disease"
    rates = {"targeted_disease": 0.6, "targeted_control": 0.1, "untargeted_disease": 0.2}
    row = {"point": "donor_split", **{f"{cond}_transfer_ldvae_{k}": v for k, v in rates.items()}}
    row[f"{cond}_transfer_ldvae_untargeted_control"] = 0.15
    table = pd.DataFrame([row, {"point": "cell_split"}])  # the cell split ran no transfer
    text = study_report.transfer_table(table)
    lines = text.splitlines()
    assert len(lines) == 3  # header, rule, one row: no PCA columns recorded, no cell_split row
    assert lines[2] == f"| `donor_split` | {cond} | LDVAE latent | 60.0% | 10.0% | 20.0% | 15.0% |"
    (tmp_path / "results").mkdir()
    table.to_csv(tmp_path / "results" / "t.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- transfer-table results/t.csv -->\nold\n<!-- /transfer-table -->\n")
    assert readme_sync(readme, tmp_path) == ["transfer-table results/t.csv"]
    assert readme.read_text() == (
        "<!-- transfer-table results/t.csv -->\n" + text + "\n<!-- /transfer-table -->\n"
    )


def test_each_point_carries_the_data_readings_of_the_run_that_made_its_cells(tmp_path, monkeypatch):
    """A point runs from 02 on: 01's readings (QC, composition) of its cells go with it, so
    05's donor-level findings and the point's record read them (05 stopped without them)."""
    profile_run = tmp_path / "run"
    artifacts.write_text("cells", profile_run / "cells.h5ad")
    artifacts.update_metrics(profile_run, "data", {"composition": {"HD": {"L5 ET": {"p": 0.01}}}})
    monkeypatch.setattr(study.runner, "run", lambda *a, **k: 0)
    status = study.run_points(
        "params/smoke.yaml",
        [("a", {}), ("b", {})],
        tmp_path / "run" / "s",
        tmp_path / "rep",
        ["02"],
        profile_run / "cells.h5ad",
        tmp_path,
    )
    assert status == {"a": 0, "b": 0}
    for name in ("a", "b"):
        point = artifacts.read_metrics(tmp_path / "run" / "s" / name)
        assert point["data"]["composition"]["HD"]["L5 ET"]["p"] == 0.01
