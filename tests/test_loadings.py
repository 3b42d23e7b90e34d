"""Tests of latentshift.readings.loadings: paired shifts, gene-set recovery, PCA baseline, LDVAE loadings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift.model import embedding as E
from latentshift.readings import factor_shifts as FS
from latentshift.readings import loadings as L
from latentshift.report import readings_findings

# --- helpers ---------------------------------------------------------------------------


def _synthetic(
    seed: int,
    n_genes: int = 2000,
    k: int = 6,
    n_set: int = 60,
    carrier: int = 3,
    shift: float = 1.0,
    n_cells: int = 300,
    structured: bool = True,
):
    """Loadings where the set's genes load strongly on factor `carrier`, and a latent whose
    disease copies are shifted along that factor (or, unstructured, by pure noise)."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    w = rng.normal(0, 0.5, size=(n_genes, k))
    set_idx = rng.choice(n_genes, n_set, replace=False)
    if structured:
        w[set_idx, carrier] += 2.0
    loadings = pd.DataFrame(w, index=genes, columns=[f"Z_{i}" for i in range(k)])
    z = rng.normal(size=(n_cells, k))
    delta = np.zeros(k)
    if structured:
        delta[carrier] = shift
    dz = delta + rng.normal(0, 0.3, size=(n_cells, k))
    latent = np.vstack([z, z + dz])
    src = [f"c{i}" for i in range(n_cells)]
    split = np.where(rng.random(n_cells) < 0.5, "train", "test")
    obs = pd.DataFrame(
        {
            "condition": ["normal"] * n_cells + ["D"] * n_cells,
            "source_cell": src + src,
            "split": np.concatenate([split, split]),
            "perturbed": [False] * n_cells + [True] * n_cells,
        }
    )
    order = rng.permutation(2 * n_cells)  # pairing must not rely on row order
    return (
        loadings,
        latent[order],
        obs.iloc[order].reset_index(drop=True),
        [genes[i] for i in set_idx],
    )


def test_factor_shifts_ranks_the_shifted_factor_first():
    loadings, latent, obs, _ = _synthetic(0)
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    top = shifts.sort_values("rank").iloc[0]
    assert top["factor"] == "Z_3"
    assert top["effect_size"] > 2
    assert {"cohens_d", "ci_low", "ci_high", "n_pairs"} <= set(shifts.columns)


def test_zero_shift_gives_zero_effect_and_chance_recovery():
    loadings, latent, obs, genes = _synthetic(0)
    normal = obs["condition"] == "normal"
    pos = pd.Series(np.arange(len(obs)), index=obs["source_cell"].where(normal))
    ref = pos[pos.index.notna()]
    latent = latent.copy()
    latent[~normal.to_numpy()] = latent[ref.loc[obs.loc[~normal, "source_cell"]].to_numpy()]
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    assert (shifts["effect_size"] == 0).all()
    table = L.recovery_table(loadings, shifts, {"D": genes}, {"D": "up"})
    assert table.loc["D", "auroc_ldvae_projected"] == pytest.approx(0.5)
    assert table.loc["D", "auroc_ldvae_factor"] == pytest.approx(0.5)
    assert table.loc["D", "best_factor"] is None


# --- recovery --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "direction,shift,sign", [("up", 1.0, 1.0), ("down", -1.0, 1.0), ("down", 1.0, -1.0)]
)
def test_recovery_is_high_when_one_factor_carries_the_set(direction, shift, sign):
    """The set loads on Z_3 with sign `sign`; the latent moves along Z_3 by `shift`; the
    perturbation moved the genes in `direction` = sign(shift × sign)."""
    loadings, latent, obs, genes = _synthetic(1, shift=shift)
    loadings = loadings.copy()
    loadings["Z_3"] *= sign
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    table = L.recovery_table(loadings, shifts, {"D": genes}, {"D": direction}, loadings, shifts)
    row = table.loc["D"]
    assert row["best_factor"] == "Z_3"
    assert row["auroc_ldvae_factor"] > 0.9
    assert row["auroc_ldvae_projected"] > 0.9
    assert row["enrichment_p"] < 1e-6


def test_recovery_in_the_wrong_direction_is_low():
    loadings, latent, obs, genes = _synthetic(2)
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    table = L.recovery_table(loadings, shifts, {"D": genes}, {"D": "down"})
    assert table.loc["D", "auroc_ldvae_projected"] < 0.1
    assert table.loc["D", "enrichment_p"] > 0.99


def test_recovery_under_a_null_shift_sits_near_half():
    aurocs = []
    for seed in range(5):
        loadings, latent, obs, genes = _synthetic(seed, n_genes=4000, n_set=200, structured=False)
        shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
        table = L.recovery_table(loadings, shifts, {"D": genes}, {"D": "up"})
        aurocs += [table.loc["D", "auroc_ldvae_projected"], table.loc["D", "auroc_ldvae_factor"]]
    assert abs(np.mean(aurocs) - 0.5) < 0.1
    assert max(abs(a - 0.5) for a in aurocs) < 0.15


def test_recovery_needs_set_and_other_genes():
    scores = pd.Series([1.0, 2.0], index=["a", "b"])
    # a label-blind gene choice may keep none of a set's genes: recovery is not measurable
    none = L.recovery(scores, ["x"], "up")
    assert np.isnan(none["auroc"]) and np.isnan(none["p"]) and none["n_set"] == 0
    with pytest.raises(L.LoadingsError, match="perturbation_genes"):
        L.recovery(scores, ["a", "b"], "up")
    with pytest.raises(L.LoadingsError, match="'up' or 'down'"):
        L.recovery(scores, ["a"], "sideways")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 100),
    offset=st.floats(-100, 100),
)
def test_recovery_auroc_is_rank_based_and_flips_with_direction(seed, scale, offset):
    rng = np.random.default_rng(seed)
    scores = pd.Series(rng.normal(size=200), index=[f"g{i}" for i in range(200)])
    genes = list(scores.index[rng.choice(200, 20, replace=False)])
    up = L.recovery(scores, genes, "up")
    moved = L.recovery(scores * scale + offset, genes, "up")
    down = L.recovery(scores, genes, "down")
    assert moved["auroc"] == pytest.approx(up["auroc"], abs=1e-9)
    assert down["auroc"] == pytest.approx(1 - up["auroc"], abs=1e-9)
    assert 0 <= up["p"] <= 1


def test_projected_scores_is_loadings_times_shift():
    loadings = pd.DataFrame([[1.0, 2.0], [-1.0, 0.5]], index=["a", "b"], columns=["Z_0", "Z_1"])
    s = L.projected_scores(loadings, [2.0, -1.0])
    assert s.tolist() == [0.0, -2.5]
    with pytest.raises(L.LoadingsError, match="one value per factor"):
        L.projected_scores(loadings, [1.0])


def test_top_genes_and_mean_latent_by_group():
    loadings = pd.DataFrame({"Z_0": [3.0, -2.0, 1.0, -5.0]}, index=["a", "b", "c", "d"])
    top = L.top_genes(loadings, n=2)
    assert top["positive_gene"].tolist() == ["a", "c"]
    assert top["negative_gene"].tolist() == ["d", "b"]
    means = L.mean_latent_by_group(np.array([[1.0], [3.0], [10.0]]), ["x", "x", "y"])
    assert means.loc["x", "Z_0"] == 2.0 and means.loc["y", "Z_0"] == 10.0


# --- PCA baseline ----------------------------------------------------------------------


def _count_adata(n_cells: int = 120, n_genes: int = 40, seed: int = 0):
    import anndata as ad

    rng = np.random.default_rng(seed)
    counts = sp.csr_matrix(rng.poisson(rng.gamma(2.0, 1.0, size=n_genes), size=(n_cells, n_genes)))
    adata = ad.AnnData(counts.astype(np.float32))
    adata.layers["counts"] = counts.astype(np.int32)
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.obs["split"] = np.where(np.arange(n_cells) % 3 == 0, "test", "train")
    return adata


def test_log_normalize_stays_sparse():
    x = sp.csr_matrix(np.array([[1, 0, 3], [0, 0, 0]]))
    y = E.log_normalised(counts=x, target_sum=4)
    assert sp.issparse(y)
    np.testing.assert_allclose(
        y.toarray(), [[np.log1p(1.0), 0, np.log1p(3.0)], [0, 0, 0]], rtol=1e-6
    )


def test_pca_baseline_refits_or_uses_stored():
    adata = _count_adata()
    pcs, coords, source = L.pca_baseline(adata, n_comps=5, seed=0)
    assert source == "refit"
    assert pcs.shape == (40, 5) and coords.shape == (120, 5)
    train = (adata.obs["split"] == "train").to_numpy()
    np.testing.assert_allclose(
        coords[train].mean(axis=0), 0, atol=1e-3
    )  # centred on training cells
    adata.varm["PCs_baseline"] = pcs.to_numpy()
    adata.obsm["X_pca_baseline"] = coords
    pcs2, coords2, source2 = L.pca_baseline(adata)
    assert source2 == "stored"
    np.testing.assert_array_equal(coords2, coords)


# --- LDVAE loadings --------------------------------------------------------------------


def test_loadings_shape_matches_genes_by_latent_from_tiny_linear_scvi(tmp_path):
    scvi = pytest.importorskip("scvi")
    adata = _count_adata(n_cells=120, n_genes=40)
    scvi.settings.seed = 0
    scvi.model.LinearSCVI.setup_anndata(adata, layer="counts")
    model = scvi.model.LinearSCVI(adata, n_latent=3, n_hidden=8)
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    w = L.ldvae_loadings(model)
    assert w.shape == (adata.n_vars, 3)
    assert list(w.index) == list(adata.var_names)
    assert np.isfinite(w.to_numpy()).all()
    model.save(str(tmp_path / "model"))
    w2 = L.load_ldvae_loadings(tmp_path / "model", adata)
    np.testing.assert_allclose(w2.to_numpy(), w.to_numpy(), rtol=1e-6)
    with pytest.raises(L.LoadingsError, match="03_ldvae"):
        L.load_ldvae_loadings(tmp_path / "missing", adata)


# --- expression-matched controls -------------------------------------------------------


def test_expression_matched_keeps_other_genes_within_the_sets_range():
    means = pd.Series([0.1, 0.5, 1.0, 2.0, 5.0, 0.6, 1.5, 9.0], index=list("abcdefgh"))
    matched = L.expression_matched(means, ["c", "d", "x"], quantiles=(0.0, 1.0))  # range [1, 2]
    assert matched == ["g"]
    assert L.expression_matched(means, ["b", "d"], quantiles=(0.0, 1.0)) == ["c", "f", "g"]
    with pytest.raises(L.LoadingsError, match="quantiles"):
        L.expression_matched(means, ["c"], quantiles=(0.9, 0.1))
    with pytest.raises(L.LoadingsError, match="no gene of the set"):
        L.expression_matched(means, ["x"])


def _expression(loadings: pd.DataFrame, genes: list[str], seed: int) -> pd.Series:
    """Set genes more highly expressed than most genes, overlapping the upper half of the others."""
    rng = np.random.default_rng(seed)
    means = pd.Series(rng.uniform(0.0, 2.0, len(loadings)), index=loadings.index)
    means[genes] = rng.uniform(1.0, 2.0, len(genes))
    return means


def test_matched_control_sees_through_a_score_that_only_tracks_expression():
    """A 'shift' whose projected score is the genes' expression level: the plain AUROC is high,
    the expression-matched one is near chance."""
    loadings, latent, obs, genes = _synthetic(3, n_genes=3000, n_set=150, structured=False)
    means = _expression(loadings, genes, 3)
    loadings = loadings.copy()
    loadings["Z_0"] = means.to_numpy()  # Z_0 loads by expression level alone
    shifted = latent.copy()
    shifted[(obs["condition"] == "D").to_numpy(), 0] += 5.0  # and the copies move along Z_0
    shifts = FS.factor_shifts(shifted, obs, ["D"], list(loadings.columns))
    row = L.recovery_table(loadings, shifts, {"D": genes}, {"D": "up"}, mean_expression=means).loc[
        "D"
    ]
    assert row["auroc_ldvae_projected"] > 0.7
    assert row["auroc_expression"] > 0.7
    assert abs(row["auroc_ldvae_matched"] - 0.5) < 0.1
    assert row["n_matched_background"] > 500


def test_matched_control_keeps_a_real_recovery_high_and_a_null_at_chance():
    loadings, latent, obs, genes = _synthetic(4, n_genes=3000, n_set=150)
    means = _expression(loadings, genes, 4)
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    row = L.recovery_table(
        loadings, shifts, {"D": genes}, {"D": "up"}, loadings, shifts, mean_expression=means
    ).loc["D"]
    assert row["auroc_ldvae_matched"] > 0.9 and row["auroc_pca_matched"] > 0.9
    metrics = L.metrics_from_table(
        L.recovery_table(loadings, shifts, {"D": genes}, {"D": "up"}, mean_expression=means)
    )
    assert metrics["D"]["auroc_ldvae_matched"] == pytest.approx(row["auroc_ldvae_matched"])

    null = latent.copy()  # copies identical to their cells: no factor moves
    normal = (obs["condition"] == "normal").to_numpy()
    ref = pd.Series(np.flatnonzero(normal), index=obs.loc[normal, "source_cell"])
    null[~normal] = latent[ref.loc[obs.loc[~normal, "source_cell"]].to_numpy()]
    shifts0 = FS.factor_shifts(null, obs, ["D"], list(loadings.columns))
    row0 = L.recovery_table(
        loadings, shifts0, {"D": genes}, {"D": "up"}, mean_expression=means
    ).loc["D"]
    assert row0["auroc_ldvae_matched"] == pytest.approx(0.5)


def test_too_few_matched_genes_give_no_matched_auroc():
    loadings, latent, obs, genes = _synthetic(5, n_genes=200, n_set=20)
    means = pd.Series(np.arange(200, dtype=float), index=loadings.index)
    means[genes] = 1000.0 + np.arange(20)  # no other gene is expressed like the set
    shifts = FS.factor_shifts(latent, obs, ["D"], list(loadings.columns))
    table = L.recovery_table(loadings, shifts, {"D": genes}, {"D": "up"}, mean_expression=means)
    assert table.loc["D", "n_matched_background"] == 0
    assert np.isnan(table.loc["D", "auroc_ldvae_matched"])
    assert table.loc["D", "auroc_expression"] == pytest.approx(1.0)
    assert L.metrics_from_table(table)["D"]["auroc_ldvae_matched"] is None
    assert readings_findings.format_auroc(table.loc["D", "auroc_ldvae_matched"]).startswith("n/a")
    with pytest.raises(L.LoadingsError, match="lacks 1"):
        L.recovery_table(
            loadings, shifts, {"D": genes}, {"D": "up"}, mean_expression=means.iloc[1:]
        )
