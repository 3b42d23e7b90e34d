"""The real cells end to end (the ``make report`` runner), subsampled for speed: synthetic
against real (Kang et al. 2018's two stimulated donors, held out of the synthetic side)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, run_cli


def _small(tmp_path, profile: str, **data) -> str:
    params = yaml.safe_load((ROOT / "params" / f"{profile}.yaml").read_text())
    params["data"].update(data)
    params.setdefault("ldvae", {}).update(max_epochs=15, snapshot_every=None)
    params["classifier"] = {"max_epochs": 60, "n_bootstrap": 50, "n_permutations": 2}
    params["cell_types"] = {
        "subsample_size": 10,
        "n_subsamples": 3,
        "n_permutations": 3,
        "e_permutations": 50,
    }
    params["real_transfer"] = {**params.get("real_transfer", {}), "null_draws": 20}
    path = tmp_path / f"{profile}_small.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


@pytest.mark.slow
@pytest.mark.pipeline
def test_synthetic_against_real_cells_end_to_end(tmp_path):
    profile = _small(tmp_path, "kang2018_transfer", n_cells=600)
    run, rep = tmp_path / "run", tmp_path / "rep"
    result = run_cli(profile, "--run-dir", str(run), "--report-dir", str(rep))
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    genes = metrics["data"]["real_transfer"]
    assert genes["matched_on"] == "ensembl" and genes["genes_common"] > 900
    transfer = metrics["transfer"]
    assert transfer["real_donors"] == ["101", "107"]
    rates = transfer["by_condition"]["IFN-beta stimulated"]
    for key in ("ldvae_targeted_disease", "ldvae_targeted_control", "pca_targeted_disease"):
        assert 0 <= rates[key] <= 1, key
    direction = transfer["direction"]["IFN-beta stimulated / ldvae"]
    assert -1 <= direction["cosine"] <= 1 and direction["n_types_tested"] >= 3
    converse = transfer["converse"]["IFN-beta stimulated"]
    assert converse["paired"] is True and converse["auroc"] > 0.8  # the known answer
    page = (rep / "05_classifier.html").read_text()
    assert "Synthetic against real" in page and "The converse" in page
    index = (rep / "index.html").read_text()
    assert "kang2018_ifnb_2donors.h5ad" in index and "motor-cortex" not in index
    assert str(ROOT) not in (rep / "01_data.html").read_text()  # no machine path
