"""Leave-donors-out classification: per nucleus, per donor, donor-permutation control, the leak."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from latentshift import case_control as cc
from latentshift import donor_eval

CLASSIFIER = {
    "hidden_layers": [8],
    "max_epochs": 60,
    "lr": 1e-2,
    "weight_decay": 1e-4,
    "validation_fraction": 0.15,
    "patience": 10,
    "n_bootstrap": 50,
    "n_permutations": 4,
}


def _latent(shift: float, donor_sd: float, split: str, seed: int = 0) -> ad.AnnData:
    """12 donors (6 ALS), 40 nuclei each, 5-d latent: a donor offset, the disease on dim 0."""
    rng = np.random.default_rng(seed)
    donors = np.repeat([f"d{i:02d}" for i in range(12)], 40)
    disease = np.where(np.repeat(np.arange(12) < 6, 40), "ALS", "normal")
    Z = rng.normal(0, donor_sd, (12, 5))[np.repeat(np.arange(12), 40)]
    Z += rng.normal(0, 1, Z.shape)
    Z[disease == "ALS", 0] += shift
    obs = pd.DataFrame(
        {"donor_id": donors, "disease": disease, "cell_type": "L2/3 IT"},
        index=[f"n{i}" for i in range(len(donors))],
    )
    X = np.zeros((len(obs), 3), dtype=np.int32)
    adata = ad.AnnData(X=X, obs=obs)
    adata.layers["counts"] = adata.X
    labelled = cc.label_case_control(adata, split=split, n_folds=4, seed=seed)
    labelled.obsm["X_ldvae"] = Z
    labelled.obsm["X_pca_baseline"] = Z[:, ::-1].copy()
    return labelled


def test_a_disease_shift_is_found_per_nucleus_and_per_donor():
    result = donor_eval.classify_by_donor(_latent(3.0, 0.3, "donor"), CLASSIFIER, seed=0)
    main = result.table.loc["mlp_ldvae"]
    assert main["accuracy"] > 0.85 and main["donor_accuracy"] == 1.0 and main["n_donors"] == 12
    assert main["donor_accuracy_low"] > 0.7  # exact interval for 12 of 12
    assert result.permutation["donor_accuracy"] < 0.75
    assert result.permutation["donor_p_value"] <= 1 / 5 + 1e-9
    # class-balanced training: the majority baseline has no prior to learn
    assert result.table.loc["majority", "accuracy"] == pytest.approx(0.5, abs=0.1)
    assert set(result.donors["fold"]) == {0, 1, 2, 3} and result.split["donors_across_folds"] == 0
    assert list(result.donors.columns[-2:]) == ["p_normal", "p_ALS"]
    metrics = donor_eval.summary_metrics(result)
    assert metrics["design"] == "case_control" and metrics["n_donors"] == 12


def test_the_leak_a_cell_split_recognises_donors_a_donor_split_does_not():
    # no disease effect, strong donor effects
    leaky = donor_eval.classify_by_donor(_latent(0.0, 2.0, "cell"), CLASSIFIER, seed=0)
    honest = donor_eval.classify_by_donor(_latent(0.0, 2.0, "donor"), CLASSIFIER, seed=0)
    assert leaky.split["donors_across_folds"] == 12 and honest.split["donors_across_folds"] == 0
    leak = leaky.table.loc["mlp_ldvae"]
    assert leak["accuracy"] > 0.7 and leak["accuracy_low"] > 0.55  # it recognises the donors
    low, high = (honest.table.loc["mlp_ldvae", k] for k in ("accuracy_low", "accuracy_high"))
    assert low < 0.5 < high or honest.table.loc["mlp_ldvae", "accuracy"] < 0.6


def test_balanced_rows_give_every_class_the_smallest_size():
    y = np.array(["a"] * 10 + ["b"] * 4 + ["c"] * 7)
    rows = donor_eval.balanced_rows(y, np.random.default_rng(0))
    assert sorted(pd.Series(y[rows]).value_counts().tolist()) == [4, 4, 4]
    assert (np.diff(rows) > 0).all()
