"""Synthetic against real cells (latentshift.readings.real_cells) and pseudobulk DE (latentshift.readings.pseudobulk)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentshift.errors import DataError
from latentshift.readings import pseudobulk, real_cells, set_tests


def test_genes_match_on_ensembl_ids_where_both_have_them_else_on_symbols():
    ours = pd.DataFrame(
        {"feature_name": ["ISG15", "MX1", "ACTB"]},
        index=["ENSG00000187608", "ENSG00000157601", "ENSG00000075624"],
    )
    theirs = pd.DataFrame(
        {"ensembl_id": ["ENSG00000075624", "ENSG00000187608"]}, index=["ACTB", "ISG15"]
    )
    match, key = real_cells.gene_match(ours, theirs)
    assert key == "ensembl" and match.tolist()[0] == "ISG15" and pd.isna(match.iloc[1])
    match, key = real_cells.gene_match(ours, pd.DataFrame(index=["mx1", "ACTB"]))
    assert key == "symbol" and match.tolist()[1:] == ["mx1", "ACTB"]


def test_conditions_pair_with_entries_by_name_or_one_to_one():
    assert real_cells.paired_conditions(["IFN"], ["IFN-beta stimulated"]) == [
        ("IFN-beta stimulated", "IFN")
    ]
    assert real_cells.paired_conditions(["ALS", "HD"], ["HD"]) == [("HD", "HD")]
    with pytest.raises(DataError, match="name each entry like the real condition"):
        real_cells.paired_conditions(["ALS", "HD"], ["x", "y"])


def _latent(shift: np.ndarray, n: int = 60, d: int = 4, seed: int = 0) -> ad.AnnData:
    """Source cells and one copy each; the copy = source + shift; half the cells test."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(["normal"] * n + ["IFN"] * n, ["normal", "IFN"]),
            "source_cell": [f"s{i}" for i in range(n)] * 2,
            "cell_type": (["B"] * (n // 2) + ["T"] * (n // 2)) * 2,
            "split": (["test", "train"] * (n // 2)) * 2,
            "perturbed": [False] * n + [True] * n,
        }
    )
    adata = ad.AnnData(X=np.zeros((2 * n, 1), np.float32), obs=obs)
    adata.obsm["X_ldvae"] = np.vstack([base, base + shift])
    return adata


def _real(shift: np.ndarray, n: int = 40, d: int = 4, seed: int = 1) -> ad.AnnData:
    """Two donors, each with control and stimulated cells of two types; stimulated += shift."""
    rng = np.random.default_rng(seed)
    rows, Z = [], []
    for donor in ("101", "107"):
        for cond in ("normal", "stim"):
            for ct in ("B", "T"):
                z = rng.normal(size=(n, d)) + (shift if cond == "stim" else 0)
                Z.append(z)
                rows += [{"donor_id": donor, "condition": cond, "cell_type": ct}] * n
    obs = pd.DataFrame(rows)
    obs["condition"] = pd.Categorical(obs["condition"], ["normal", "stim"])
    real = ad.AnnData(X=np.zeros((len(obs), 1), np.float32), obs=obs)
    real.obsm["X_ldvae"] = np.vstack(Z)
    return real


def test_the_direction_of_a_matching_shift_beats_its_null_and_an_orthogonal_one_does_not():
    shift = np.array([3.0, 0, 0, 0])
    table = real_cells.direction_match(
        _latent(shift), _real(shift), "IFN", "stim", "normal", draws=100
    )
    pooled = table.set_index("cell_type").loc["all"]
    assert pooled["cosine"] > 0.95 and pooled["cosine"] > pooled["null_high"]
    assert pooled["length_ratio"] == pytest.approx(1.0, abs=0.3) and pooled["n_donors"] == 2
    assert pooled["pvalue"] == pytest.approx(1 / 101)
    other = real_cells.direction_match(
        _latent(shift), _real(np.array([0, 0, 3.0, 0])), "IFN", "stim", "normal", draws=100
    ).set_index("cell_type")
    assert abs(other.loc["all", "cosine"]) < 0.3 and other.loc["all", "pvalue"] > 0.05
    summary = real_cells.direction_summary(table)
    assert summary["types_above_null"] == ["B", "T"] and summary["n_types_tested"] == 2


def test_real_cells_are_called_by_the_networks_of_the_copies():
    class Net:  # calls a cell "IFN" when its first coordinate is above 1.5
        def predict(self, X):
            return np.where(np.asarray(X)[:, 0] > 1.5, "IFN", "normal")

    real = _real(np.array([3.0, 0, 0, 0]))
    real.obsm["X_pca_baseline"] = real.obsm["X_ldvae"]
    result = real_cells.real_calls({"ldvae": Net(), "pca": Net()}, real, "normal", ["IFN"])
    rates = result.summary["by_condition"]["stim"]
    assert rates["ldvae_targeted_disease"] > 0.8 and rates["ldvae_targeted_control"] < 0.2
    row = result.by_cell_type.iloc[0]
    assert row["ldvae_disease_low"] < row["ldvae_disease"] < row["ldvae_disease_high"]
    assert set(result.by_donor["donor_id"]) == {"101", "107"}


# --- pseudobulk -----------------------------------------------------------------------------


def _cells(n: int = 20, seed: int = 0) -> ad.AnnData:
    """3 donors × 2 conditions × n cells, 40 genes; gene g0–g4 up 4× when stimulated."""
    rng = np.random.default_rng(seed)
    rows, X = [], []
    for donor in ("a", "b", "c"):
        depth = rng.uniform(0.7, 1.4)
        for cond in ("ctrl", "stim"):
            mu = np.full(40, 3.0) * depth
            if cond == "stim":
                mu[:5] *= 4
            X.append(rng.poisson(mu, (n, 40)))
            rows += [{"donor_id": donor, "condition": cond}] * n
    obs = pd.DataFrame(rows)
    obs["condition"] = pd.Categorical(obs["condition"], ["ctrl", "stim"])
    counts = sp.csr_matrix(np.vstack(X).astype(np.int32))
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(40)]))
    adata.layers["counts"] = counts
    return adata


def test_pseudobulk_sums_equal_hand_sums():
    cells = _cells()
    pb = pseudobulk.aggregate(cells, ["donor_id", "condition"])
    assert pb.n_obs == 6 and (pb.obs["n_cells"] == 20).all()
    for i, r in enumerate(pb.obs.itertuples()):
        mask = (cells.obs["donor_id"] == r.donor_id) & (cells.obs["condition"] == r.condition)
        hand = np.asarray(cells.layers["counts"][mask.to_numpy()].sum(axis=0)).ravel()
        assert (pb.X[i] == hand).all()
    assert pseudobulk.aggregate(cells, ["donor_id", "condition"], min_cells=21).n_obs == 0


@pytest.mark.parametrize("paired", [True, False])
def test_deseq_finds_the_raised_genes_first_and_up(paired):
    pb = pseudobulk.aggregate(_cells(), ["donor_id", "condition"])
    table = pseudobulk.deseq(pb, donor="donor_id" if paired else None)
    top = table.sort_values("stat", ascending=False).index[:5]
    assert set(top) == {f"g{i}" for i in range(5)}
    assert (table.loc[list(top), "log2FoldChange"] > 1.5).all()
    assert (table.loc[list(top), "padj"] < 0.01).all()
    ranked = set_tests.set_rank(table, ["g0", "g1", "g2", "g3", "g4"], "up", top=5)
    assert ranked["auroc"] == 1.0 and ranked["in_top"] == 5
    assert set_tests.set_rank(table, ["g0", "g1"], "down")["auroc"] < 0.1
    with pytest.raises(DataError, match="at least 2 samples"):
        pseudobulk.deseq(pb[pb.obs["donor_id"] == "a"].copy())
