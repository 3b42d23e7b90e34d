"""Tests of latentshift.readings.celltype_shift: the per-cell-type analysis of 05 in one call."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest

from latentshift import config
from latentshift.readings import celltype_shift
from tests.test_detectability import paired_data

FAST = {
    **config.DEFAULTS["cell_types"],
    "n_subsamples": 5,
    "n_permutations": 5,
    "e_permutations": 99,
}


@pytest.fixture(scope="module")
def targeted() -> ad.AnnData:
    """ALS shifted only in type B, HD only in type C; A is never shifted; D is too small."""
    z, obs = paired_data(
        {"A": 60, "B": 50, "C": 50, "D": 8},
        shifted=(("ALS", "B"), ("HD", "C")),
        shift=3.0,
        noise=0.3,
        d=6,
    )
    obs.index = [f"c{i}" for i in range(len(obs))]
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_ldvae"] = z.astype(np.float32)
    adata.obsm["X_pca_baseline"] = (z + np.random.default_rng(1).normal(0, 0.5, z.shape)).astype(
        np.float32
    )
    adata.uns["perturbations"] = {
        "ALS": {"target_cell_types": ["B"], "penetrance": 1.0},
        "HD": {"target_cell_types": ["C"], "penetrance": 1.0},
    }
    return adata


def test_the_targeted_type_ranks_first_and_an_untargeted_one_sits_near_chance(targeted):
    shift = celltype_shift.analyse_cell_types(targeted, FAST, seed=0)
    top = shift.headline.set_index(["representation", "condition"])
    assert top.loc[("LDVAE", "ALS"), "cell_type"] == "B"
    assert top.loc[("LDVAE", "HD"), "cell_type"] == "C"
    auc = shift.auc.set_index(["representation", "condition", "cell_type"])
    assert abs(auc.loc[("LDVAE", "ALS", "A"), "auc_mean"] - 0.5) < 0.15
    # the small type is listed as untested, with the reason, not dropped
    assert not auc.loc[("LDVAE", "ALS", "D"), "testable"]
    assert "fewer than" in auc.loc[("LDVAE", "ALS", "D"), "reason"]
    # the pooled E-test of each condition reaches the smallest p the permutations allow
    assert (shift.headline["e_pvalue"] == shift.headline["e_min_pvalue"]).all()
    assert shift.headline["e_min_pvalue"].iloc[0] == pytest.approx(1 / 100)


def test_where_the_shift_was_put_sets_targets_beside_the_ranking(targeted):
    shift = celltype_shift.analyse_cell_types(targeted, FAST, seed=0)
    table = celltype_shift.where_the_shift_was_put(shift, targeted.uns["perturbations"])
    assert table.loc["ALS", "targeted"] == "B"
    assert table.loc["ALS", "LDVAE: top cell type"] == "B"
    assert table.loc["HD", "LDVAE: rank of the targets"] == "C 1"


def test_metrics_are_plain_json_and_deterministic(targeted):
    a = celltype_shift.cell_type_metrics(celltype_shift.analyse_cell_types(targeted, FAST, seed=3))
    b = celltype_shift.cell_type_metrics(celltype_shift.analyse_cell_types(targeted, FAST, seed=3))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["untested"]["ALS"] == ["D"]
    assert a["auc"]["LDVAE"]["ALS"]["D"] is None
    assert {"LDVAE", "PCA"} == set(a["etest"])
