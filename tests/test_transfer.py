"""Synthetic versus real: the synthetic pipeline trained on control donors, applied to disease."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentshift import config
from latentshift.data.simulate import simulate_m1
from latentshift.perturb import case_control as cc
from latentshift.readings import transfer as tr
from latentshift.report import study_report

HD_GENES = ["HTT", "BDNF", "PENK", "DRD1", "DRD2", "ADORA2A", "PDE10A", "RGS9", "PPP1R1B", "CNR1"]
ENTRY = {"name": "HD", "geneset": "HD_SET", "direction": "up", "fold_change": 6.0}


def _case_control(target=None, n_donors=8, fold_change=6.0):
    adata = simulate_m1(600, 300, seed=0, required_genes=HD_GENES, n_donors=n_donors)
    genes = {"HD_SET": [g for g in HD_GENES if g in adata.var_names]}
    entry = {**ENTRY, "fold_change": fold_change, "target_cell_types": target}
    adata = cc.add_disease_donors(adata, [entry], genes, n_donors // 2, seed=0)
    out = cc.label_case_control(adata, n_folds=4, seed=0)
    out.uns["perturbations"], out.uns["perturbation_genes"] = cc.named_sets(
        [entry], genes, out.obs["condition"]
    )
    return out


def test_heldout_controls_are_half_the_control_donors_drawn_by_seed():
    obs = pd.DataFrame(
        {
            "donor_id": np.repeat([f"d{i}" for i in range(10)], 3),
            "condition": np.repeat(["normal"] * 6 + ["ALS"] * 4, 3),
        }
    )
    held = tr.heldout_control_donors(obs, "normal", seed=0)
    assert len(held) == 3 and set(held) <= {f"d{i}" for i in range(6)}
    assert held == tr.heldout_control_donors(obs, "normal", seed=0)
    draws = {tuple(tr.heldout_control_donors(obs, "normal", seed=s)) for s in range(10)}
    assert len(draws) > 1
    with pytest.raises(tr.TransferError, match="at least 2 control donors"):
        tr.heldout_control_donors(obs[obs["donor_id"].isin(["d0", "d7"])], "normal")


def test_the_synthetic_side_shifts_every_cell_type_and_needs_a_named_set():
    adata = _case_control(target=["L2/3 IT"])
    entries, genes, targets = tr.synthetic_entries(adata)
    (entry,) = entries
    assert entry["name"] == entry["geneset"] == "Huntington disease"
    assert "target_cell_types" not in entry and entry["fold_change"] == 6.0
    assert genes["Huntington disease"] == list(
        adata.uns["perturbation_genes"]["Huntington disease"]
    )
    assert targets == {"Huntington disease": ["L2/3 IT"]}
    adata.uns["perturbations"] = {}
    with pytest.raises(tr.TransferError, match="no condition has one"):
        tr.synthetic_entries(adata)


def test_call_tables_count_rates_per_type_and_donor_and_test_over_donors():
    nuclei = pd.DataFrame(
        {
            "donor_id": np.repeat(["a", "b", "c", "d", "e"], 4),
            "condition": np.repeat(["HD", "HD", "HD", "normal", "normal"], 4),
            "cell_type": ["T", "T", "U", "U"] * 5,
            "call_ldvae": [1, 1, 0, 0] * 3 + [0, 1, 0, 0] * 2,
        }
    ).astype({"call_ldvae": bool})
    nuclei["targeted"] = (nuclei["condition"] == "HD") & (nuclei["cell_type"] == "T")
    by_type, by_donor = tr.call_tables(nuclei, "normal", ["ldvae"])
    t = by_type.set_index("cell_type").loc["T"]
    assert t["targeted"] and t["ldvae_disease"] == 1.0 and t["ldvae_control"] == 0.5
    assert (t["donors_disease"], t["donors_control"]) == (3, 2)
    # every disease donor (1.0) above both controls (0.5): U = 6 of 6, p = 1 / C(5, 2)
    assert t["ldvae_donor_p"] == pytest.approx(1 / 10)
    u = by_type.set_index("cell_type").loc["U"]
    assert not u["targeted"] and u["ldvae_disease"] == 0.0 and u["ldvae_donor_p"] > 0.5  # all tied
    # two types: BH multiplies the smaller p by 2, the larger stays
    assert (
        t["ldvae_donor_p_adj"] == pytest.approx(0.2)
        and u["ldvae_donor_p_adj"] == u["ldvae_donor_p"]
    )
    assert by_donor.set_index("donor_id").loc["a", "rate_ldvae"] == 0.5
    assert by_donor.set_index("donor_id").loc["a", "targeted_rate_ldvae"] == 1.0
    assert np.isnan(by_donor.set_index("donor_id").loc["d", "targeted_rate_ldvae"])
    # the README's per-type table reads the same numbers (a PCA column set for the example)
    both = by_type.assign(pca_disease=0.25, pca_control=0.0, pca_donor_p=float("nan"))
    text = study_report.transfer_calls_table(both)
    assert (
        "| HD | **T** (targeted) | 6 / 4 (3 / 2) | 100.0% | 50.0% | 0.100 (0.200) | 25.0% | 0.0% | – |"
        in text
    )


def test_a_synthetic_classifier_calls_the_targeted_disease_nuclei():
    adata = _case_control(target=["L2/3 IT"], fold_change=20.0)
    ldvae = config.section("ldvae", {"n_latent": 5, "n_hidden": 32, "max_epochs": 30})
    clf = config.section("classifier", {"hidden_layers": [8], "max_epochs": 60})
    res = tr.synthetic_transfer(adata, ldvae, clf, seed=0)
    # nothing the synthetic side trained on is scored: the held-out controls and every disease donor
    held = set(res.summary["heldout_control_donors"])
    scored = res.nuclei.groupby("condition")["donor_id"].unique()
    assert set(scored["normal"]) == held
    assert len(scored["Huntington disease"]) == 4
    assert res.summary["n_heldout_nuclei"] == len(res.nuclei)
    hd = res.summary["by_condition"]["Huntington disease"]
    # the set up 20-fold in L2/3 IT: the disease nuclei there are called far more often than
    # the control nuclei of that type, and more often than the disease nuclei of other types
    assert hd["pca_targeted_disease"] > hd["pca_targeted_control"] + 0.3
    assert hd["pca_targeted_disease"] > hd["pca_untargeted_disease"] + 0.2
    assert hd["ldvae_targeted_disease"] > hd["ldvae_untargeted_disease"] + 0.2
    assert set(res.by_cell_type["condition"]) == {"Huntington disease"}
    assert res.by_cell_type.iloc[0]["cell_type"] == "L2/3 IT"
    assert len(tr.headline_table(res)) == 4
