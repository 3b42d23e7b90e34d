"""The case–control design end to end on ``params/case_control_smoke.yaml`` (the ``make report`` runner)."""

from __future__ import annotations

import json

import nbformat
import pytest

from latentshift.run import runner
from tests.conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def cc_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cc")
    run, report = base / "run", base / "rep"
    result = run_cli(
        "params/case_control_smoke.yaml", "--run-dir", str(run), "--report-dir", str(report)
    )
    return run, report, result


@pytest.mark.pipeline
def test_case_control_smoke_end_to_end(cc_run, root):
    from tests.browser import check_pages, require_chromium

    run, rep, result = cc_run
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    design = metrics["data"]["case_control"]
    assert design["donors"] == {"Huntington disease": 4, "normal": 4}
    perturb = metrics["perturb"]
    assert perturb["design"] == "case_control" and perturb["donors_across_folds"] == 0
    assert perturb["n_folds"] == 4 and perturb["named_sets"]["Huntington disease"] > 0
    clf = metrics["classifier"]
    assert clf["unit"] == "donor" and clf["paired"] is False and clf["n_units"] == 8
    for key in ("accuracy", "unit_accuracy", "permutation_accuracy", "permutation_unit_accuracy"):
        assert 0 <= clf[key] <= 1, key
    assert {"mlp_pca", "logreg_disease_genes", "majority"} <= set(clf["baseline_accuracy"])
    assert metrics["cell_types"]["etest"]["LDVAE"]["Huntington disease"]["all"]["pvalue"] > 0
    assert "Huntington disease" in metrics["loadings"]
    # synthetic versus real: trained on half the control donors, scored on the others and on
    # every disease donor
    transfer = metrics["transfer"]
    assert (
        transfer["n_training_control_donors"] == 2 and len(transfer["heldout_control_donors"]) == 2
    )
    rates = transfer["by_condition"]["Huntington disease"]
    assert all(
        0 <= rates[f"{r}_targeted_{s}"] <= 1
        for r in ("ldvae", "pca")
        for s in ("disease", "control")
    )
    assert (run / "transfer_calls.csv").is_file() and (
        run / "figures" / "transfer_calls.png"
    ).is_file()
    # the executed notebooks hold only the case-control design's cells
    for nb_path in (run / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(nb_path, as_version=4)
        tags = {t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])}
        assert "synthetic" not in tags, nb_path.name
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{nb_path.name}: {errors[:1]}"
    page = (rep / "05_classifier.html").read_text()
    assert "Per unit" in page and "Confusion matrix" in page and "untouched" not in page
    assert "Per donor" in page and "Synthetic versus real" in page
    assert "Held-out donors are called right" in (rep / "index.html").read_text()
    pages = [rep / f"{nb.stem}.html" for nb in runner.notebooks(root)] + [rep / "index.html"]
    problems = check_pages(pages, chromium=require_chromium())
    assert {p.name: found for p, found in problems.items() if found} == {}


def _profile(tmp_path, name: str, **overrides) -> str:
    """A small case-control profile: params/case_control_smoke.yaml with some keys changed."""
    import yaml

    params = yaml.safe_load((ROOT / "params/case_control_smoke.yaml").read_text())
    for key, value in overrides.items():
        section, field = key.split("__")
        params.setdefault(section, {})[field] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


SMALL = {
    "data__simulate_n_cells": 480,
    "data__simulate_n_genes": 400,
    "ldvae__max_epochs": 4,
    "ldvae__snapshot_every": None,
    "case_control__transfer": False,
    "cell_types__subsample_size": 8,
    "cell_types__n_subsamples": 3,
}


@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.parametrize(
    ("n_disease", "n_folds"),
    [(4, 2), (3, 3)],
    ids=["4_cases_2_controls_2_folds", "3_against_3_3_folds"],
)
def test_small_case_control_studies_run_05_and_06_with_their_null(tmp_path, n_disease, n_folds):
    """Six donors and few folds: every relabelling of the null is scored on folds dealt for it,
    so no training side is left with one condition (05 stopped here before)."""
    profile = _profile(
        tmp_path,
        f"six_donors_{n_disease}",
        data__simulate_n_donors=6,
        data__simulate_disease_donors=n_disease,
        case_control__n_folds=n_folds,
        classifier__n_permutations=6,
        **SMALL,
    )
    run = tmp_path / "run"
    result = run_cli(profile, "--run-dir", str(run), "--report-dir", str(tmp_path / "rep"))
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    clf = metrics["classifier"]
    assert clf["paired"] is False and clf["n_units"] == 6 and clf["split"]["n_folds"] == n_folds
    assert clf["n_permutations"] == 6 and clf["permutation_invalid"] == 0
    # C(6, 2) = 15 or C(6, 3) = 20 relabellings of the donors; 6 of them sampled
    assert clf["n_relabellings"] == (15 if n_disease == 4 else 20)
    assert clf["permutation_min_p_value"] == pytest.approx(1 / 7)
    assert 0 <= clf["permutation_unit_accuracy"] <= 1
    assert "Huntington disease" in metrics["loadings"]


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_paired_design_runs_end_to_end(tmp_path):
    run, rep = tmp_path / "run", tmp_path / "rep"
    result = run_cli(
        "params/case_control_paired_smoke.yaml", "--run-dir", str(run), "--report-dir", str(rep)
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["perturb"]["paired"] is True
    assert metrics["data"]["case_control"]["donors"] == {"Huntington disease": 4, "normal": 4}
    clf = metrics["classifier"]
    assert clf["paired"] is True and clf["unit"] == "donor" and clf["n_units"] == 4
    assert clf["units_across"] == 0 and clf["n_relabellings"] == 2**4
    for key in ("accuracy", "unit_accuracy", "permutation_accuracy", "permutation_unit_accuracy"):
        assert 0 <= clf[key] <= 1, key
    assert "Huntington disease" in metrics["loadings"]
    page = (rep / "05_classifier.html").read_text()
    assert "how well each held-out donor" in page and "labels permuted within each donor" in page


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_paired_real_cells_run_end_to_end(tmp_path):
    """Kang et al. 2018 (2 donors, before and after interferon-β), subsampled for speed: per
    nucleus and per donor beside the within-donor null, whose 2^2 relabellings floor p at 1/2."""
    import yaml

    params = yaml.safe_load((ROOT / "params/kang2018_paired.yaml").read_text())
    params["data"]["n_cells"] = 600
    params["ldvae"].update(max_epochs=20, snapshot_every=None)
    params["classifier"] = {"max_epochs": 60, "n_bootstrap": 50}
    profile = tmp_path / "kang2018_paired_small.yaml"
    profile.write_text(yaml.safe_dump(params))
    run, rep = tmp_path / "run", tmp_path / "rep"
    result = run_cli(str(profile), "--run-dir", str(run), "--report-dir", str(rep))
    assert result.returncode == 0, result.stderr[-4000:]
    clf = json.loads((run / "metrics.json").read_text())["classifier"]
    assert clf["paired"] is True and clf["n_units"] == 2 and clf["units_across"] == 0
    assert clf["permutation_exact"] is True and clf["n_relabellings"] == 4
    assert clf["permutation_min_p_value"] == 0.5 and clf["permutation_p_value"] >= 0.5
    assert clf["accuracy_low"] > 0.8 and clf["unit_accuracy"] > 0.8  # the known answer
    page = (rep / "05_classifier.html").read_text()
    assert "With 2 donors the design has 4 distinct relabellings" in page
    assert "Simulated data" not in page
