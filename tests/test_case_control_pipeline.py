"""The case–control design end to end on ``params/case_control_smoke.yaml`` (the ``make report`` runner)."""

from __future__ import annotations

import json

import nbformat
import pytest

from latentshift import runner
from tests.conftest import run_cli


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
    assert clf["design"] == "case_control" and clf["n_donors"] == 8
    for key in ("accuracy", "donor_accuracy", "permutation_accuracy", "permutation_donor_accuracy"):
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
    assert "Leave-donors-out classification" in page and "Confusion matrix" not in page
    assert "per donor" in page and "Synthetic versus real" in page
    assert "Held-out donors are called right" in (rep / "index.html").read_text()
    pages = [rep / f"{nb.stem}.html" for nb in runner.notebooks(root)] + [rep / "index.html"]
    problems = check_pages(pages, chromium=require_chromium())
    assert {p.name: found for p, found in problems.items() if found} == {}
