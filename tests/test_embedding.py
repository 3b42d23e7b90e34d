"""Tests of latentshift.model.embedding: PCA baseline, neighbours/UMAP/Leiden, agreement, separation."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift.model import embedding as E
from tests.conftest import random_counts


def latent_like(
    n_source: int = 90, n_types: int = 3, shift: float = 3.0, seed: int = 0
) -> ad.AnnData:
    """Cells following latent.h5ad: normal + one copy per condition, a latent, counts, split.

    Cell types are well separated clusters in a 4-d latent; the ``D`` copies are moved by
    ``shift`` along one axis, the ``N`` copies not at all (a null perturbation).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 12, (n_types, 4))
    types = np.arange(n_source) % n_types
    z0 = centres[types] + rng.normal(0, 1, (n_source, 4))
    is_test = rng.random(n_source) > 0.7
    frames, latents, blocks = [], [], []
    genes = 30
    for cond in ("normal", "D", "N"):
        z = z0 + rng.normal(0, 0.05, z0.shape)
        if cond == "D":
            z[:, 0] += shift
        latents.append(z)
        mu = np.exp(np.clip(z @ rng.normal(0, 0.2, (4, genes)), -3, 3)) * 2
        blocks.append(sp.csr_matrix(rng.poisson(mu).astype(np.int32)))
        frames.append(
            pd.DataFrame(
                {
                    "condition": cond,
                    "source_cell": [f"c{i}" for i in range(n_source)],
                    "cell_type": [f"type{t}" for t in types],
                    "split": np.where(is_test, "test", "train"),
                },
                index=[f"c{i}-{cond}" for i in range(n_source)],
            )
        )
    obs = pd.concat(frames)
    obs["condition"] = pd.Categorical(obs["condition"], categories=["normal", "D", "N"])
    x = sp.vstack(blocks).tocsr()
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(genes)]))
    adata.layers["counts"] = x.copy()
    adata.obsm["X_ldvae"] = np.vstack(latents).astype(np.float32)
    return adata


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    return latent_like()


def test_pca_baseline_fit_on_training_cells(adata):
    z, pcs = E.pca_baseline(adata, 4, seed=0)
    assert z.shape == (adata.n_obs, 4) and pcs.shape == (adata.n_vars, 4)
    assert np.isfinite(z).all()
    # training cells are centred by construction (fit on them); test cells need not be
    train = (adata.obs["split"] == "train").to_numpy()
    np.testing.assert_allclose(z[train].mean(axis=0), 0, atol=1e-3)
    # changing test cells changes nothing about the axes
    other = adata.copy()
    counts = other.layers["counts"].tolil()
    counts[np.flatnonzero(~train), 0] = 999
    other.layers["counts"] = counts.tocsr()
    z2, pcs2 = E.pca_baseline(other, 4, seed=0)
    np.testing.assert_allclose(np.abs(pcs2), np.abs(pcs), atol=1e-4)
    np.testing.assert_allclose(np.abs(z2[train]), np.abs(z[train]), atol=1e-3)
    # counts untouched
    assert adata.layers["counts"].dtype.kind == "i"


def test_pca_baseline_too_many_dims(adata):
    with pytest.raises(ValueError, match="n_latent"):
        E.pca_baseline(adata, 500)


def test_log_normalised_is_sparse_and_right(adata):
    x = E.log_normalised(adata)
    assert sp.issparse(x)
    counts = adata.layers["counts"][:3].toarray().astype(float)
    expected = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(x[:3].toarray(), expected, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    genes=st.integers(1, 12),
    chunk=st.integers(1, 25),
    seed=st.integers(0, 1000),
)
def test_log_normalise_rows_is_log_normalise_of_those_rows(n, genes, chunk, seed):
    from latentshift.data import counts as C

    rng = np.random.default_rng(seed)
    x = random_counts(n, genes, density=0.4, seed=seed)
    rows = rng.random(n) < 0.6
    got = C.log_normalise_rows(x, rows, chunk_rows=chunk)
    want = C.log_normalise(x)[rows]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_pca_of_counts_is_the_whole_matrix_pca_done_in_blocks(adata):
    """Fit on the training rows and project in blocks: what a PCA of one log-normalised copy of
    every cell gives, without that copy."""
    from sklearn.decomposition import PCA

    from latentshift.data import counts as C

    x = adata.layers["counts"]
    train = (adata.obs["split"] == "train").to_numpy()
    z, pcs = E.pca_of_counts(x, train, 4, seed=0, chunk_rows=7)
    whole = C.log_normalise(x)
    pca = PCA(n_components=4, svd_solver="arpack", random_state=0).fit(whole[train])
    np.testing.assert_allclose(pcs, pca.components_.T, atol=1e-6)
    np.testing.assert_allclose(z, pca.transform(whole), atol=1e-4)


def test_embed_recovers_cell_types():
    adata = latent_like(shift=0.0)  # no disease shift: clusters are the cell types
    a = adata.copy()
    E.embed(a, "X_ldvae", "ldvae", n_neighbors=10, resolution=0.1, seed=0)
    assert a.obsm["X_umap_ldvae"].shape == (a.n_obs, 2)
    assert "ldvae_connectivities" in a.obsp
    agree = E.cluster_agreement(a.obs["leiden_ldvae"], a.obs["cell_type"])
    assert agree["ari"] > 0.8 and agree["nmi"] > 0.8
    # seeded: the same labels twice
    b = adata.copy()
    E.embed(b, "X_ldvae", "ldvae", n_neighbors=10, resolution=0.1, seed=0)
    assert (a.obs["leiden_ldvae"] == b.obs["leiden_ldvae"]).all()


def test_cluster_agreement_bounds():
    labels = ["a"] * 5 + ["b"] * 5
    assert E.cluster_agreement(labels, labels)["ari"] == pytest.approx(1.0)
    assert E.cluster_agreement([0] * 10, labels)["ari"] == pytest.approx(0.0)


@settings(max_examples=15, deadline=None)
@given(st.permutations(list(range(6))))
def test_cluster_agreement_ignores_label_names(perm):
    labels = np.repeat(np.arange(6), 4)
    renamed = np.asarray(perm)[labels]
    assert E.cluster_agreement(renamed, labels)["ari"] == pytest.approx(1.0)
    assert E.cluster_agreement(renamed, labels)["nmi"] == pytest.approx(1.0)


def test_condition_separation_sees_shift_not_null(adata):
    table = E.condition_separation(adata, "X_ldvae", n_neighbors=5)
    assert set(table["condition"]) == {"D", "N"}
    assert len(table) == 6  # 3 cell types × 2 conditions
    d = table[table["condition"] == "D"].set_index("cell_type")
    n = table[table["condition"] == "N"].set_index("cell_type")
    assert (d["silhouette"] > n["silhouette"] + 0.2).all()
    assert (d["copy_distance_ratio"] > 1).all()
    assert (n["copy_distance_ratio"] < 0.5).all()
    assert (table["n_pairs"] == 30).all()


@settings(max_examples=8, deadline=None)
@given(st.floats(0.5, 8.0))
def test_copy_distance_grows_with_shift(shift):
    small = E.condition_separation(latent_like(30, 2, shift=shift), "X_ldvae", n_neighbors=5)
    big = E.condition_separation(latent_like(30, 2, shift=shift * 2), "X_ldvae", n_neighbors=5)
    a = small[small["condition"] == "D"]["copy_distance_ratio"].to_numpy()
    b = big[big["condition"] == "D"]["copy_distance_ratio"].to_numpy()
    assert (b > a).all()


def test_embedding_metrics_shape(adata):
    a = adata.copy()
    a.obsm["X_pca_baseline"], _ = E.pca_baseline(a, 3)
    seps = {}
    for name, rep in {"ldvae": "X_ldvae", "pca": "X_pca_baseline"}.items():
        E.embed(a, rep, name, n_neighbors=10, resolution=0.5, seed=0)
        seps[name] = E.condition_separation(a, rep, n_neighbors=5)
    m = E.embedding_metrics(a, {"ldvae": "LDVAE", "pca": "PCA"}, seps)
    assert set(m) == {"ldvae", "pca"}
    assert {"leiden_ari", "leiden_nmi", "mean_condition_silhouette"} <= set(m["ldvae"])
    assert "type0|D" in m["ldvae"]["per_cell_type"]
    long = E.side_by_side(seps, {"ldvae": "LDVAE", "pca": "PCA"})
    assert set(long["embedding"]) == {"LDVAE", "PCA"}


def test_figures_draw(adata):
    import matplotlib

    matplotlib.use("Agg")
    from latentshift.figures import embedding_plots, training_plots

    a = adata.copy()
    E.embed(a, "X_ldvae", "ldvae", n_neighbors=10, resolution=0.5, seed=0)
    a.obsm["X_pca_baseline"], _ = E.pca_baseline(a, 3)
    E.embed(a, "X_pca_baseline", "pca", n_neighbors=10, resolution=0.5, seed=0)
    assert embedding_plots.embedding_grid(a, {"ldvae": "LDVAE", "pca": "PCA"}) is not None
    assert embedding_plots.copies_vs_normal(a, "X_umap_ldvae") is not None
    sep = E.side_by_side(
        {"ldvae": E.condition_separation(a, "X_ldvae", n_neighbors=5)}, {"ldvae": "LDVAE"}
    )
    assert embedding_plots.separation_bars(sep) is not None
    hist = pd.DataFrame(
        {
            "elbo_train": [5.0, 4.0, 3.0],
            "elbo_validation": [6.0, 5.0, 4.5],
            "reconstruction_loss_train": [4.0, 3.5, 2.9],
            "kl_local_train": [1.0, 0.5, 0.1],
        },
        index=pd.Index([0, 1, 2], name="epoch"),
    )
    assert training_plots.loss_curves(hist, early_stopped=True) is not None


@pytest.mark.slow  # builds a large neighbour graph: about 40 s
def test_large_data_neighbours_use_approximate_knn_scanpy_accepts(monkeypatch):
    # above EXACT_NEIGHBOURS_BELOW, scanpy switches to pynndescent, whose csr_array output scanpy
    # 1.11.5 cannot read with scipy >= 1.17; our transformer hands it a csr_matrix instead
    monkeypatch.setattr(E, "EXACT_NEIGHBOURS_BELOW", 100)
    a = latent_like(shift=0.0)
    E.embed(a, "X_ldvae", "ldvae", n_neighbors=10, resolution=0.1, seed=0)
    dist = a.obsp["ldvae_distances"]
    assert (np.diff(dist.indptr) >= 9).all()  # at least n_neighbors - 1 per cell
    agree = E.cluster_agreement(a.obs["leiden_ldvae"], a.obs["cell_type"])
    assert agree["ari"] > 0.8


def test_neighbours_above_scanpys_exact_limit():
    import scanpy as sc

    n = E.EXACT_NEIGHBOURS_BELOW + 200
    x = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]), obsm={"X_z": x})
    sc.pp.neighbors(
        a, use_rep="X_z", n_neighbors=15, transformer=E.CSRMatrixKNN(15, n, random_state=0)
    )
    assert a.obsp["connectivities"].shape == (n, n)
    # approximate neighbours: nearly all of the exact 14 nearest are found
    from sklearn.neighbors import NearestNeighbors

    exact = (
        NearestNeighbors(n_neighbors=15).fit(x).kneighbors(x[:500], return_distance=False)[:, 1:]
    )
    d = a.obsp["distances"].tocsr()
    recall = np.mean(
        [
            len(set(exact[i]) & set(d.indices[d.indptr[i] : d.indptr[i + 1]])) / 14
            for i in range(500)
        ]
    )
    assert recall > 0.9


def test_within_group_ari_forgives_a_split_by_donor_but_not_mixed_types():
    types = np.repeat(["a", "b"], 40)
    donors = np.tile(np.repeat(["d1", "d2"], 20), 2)
    split_by_donor = np.char.add(types.astype(str), donors.astype(str))  # 4 clusters
    assert E.cluster_agreement(split_by_donor, types)["ari"] < 0.7
    assert E.within_group_ari(split_by_donor, types, donors) == pytest.approx(1.0)
    mixed = np.tile(["x", "y"], 40)  # clusters unrelated to types
    assert E.within_group_ari(mixed, types, donors) < 0.1
    # weighted by group size: one perfect donor of 60 cells, one random of 20
    t = np.r_[np.repeat(["a", "b"], 30), np.tile(["a", "b"], 10)]
    c = np.r_[np.repeat(["x", "y"], 30), np.repeat(["x", "y"], 10)]
    g = np.r_[np.repeat("d1", 60), np.repeat("d2", 20)]
    from sklearn.metrics import adjusted_rand_score

    want = (60 * 1.0 + 20 * adjusted_rand_score(t[60:], c[60:])) / 80
    assert E.within_group_ari(c, t, g) == pytest.approx(want)


def test_embedding_metrics_within_donor_only_with_donors(adata):
    a = adata.copy()
    E.embed(a, "X_ldvae", "ldvae", n_neighbors=10, resolution=0.5, seed=0)
    seps = {"ldvae": E.condition_separation(a, "X_ldvae", n_neighbors=5)}
    assert (
        E.embedding_metrics(a, {"ldvae": "LDVAE"}, seps)["ldvae"]["leiden_ari_within_donor"] is None
    )
    a.obs["donor_id"] = np.where(np.arange(a.n_obs) % 2 == 0, "d1", "d2")
    got = E.embedding_metrics(a, {"ldvae": "LDVAE"}, seps)["ldvae"]["leiden_ari_within_donor"]
    want = E.within_group_ari(a.obs["leiden_ldvae"], a.obs["cell_type"], a.obs["donor_id"])
    assert got == pytest.approx(want) and 0 <= got <= 1


def test_embedding_findings_explain_a_lead_that_comes_from_donor_splits():
    from latentshift.report import findings

    def emb(ari, within):
        return {
            "leiden_ari": ari,
            "leiden_ari_within_donor": within,
            "leiden_nmi": 0.8,
            "n_clusters": 20,
            "mean_condition_silhouette": 0.0,
            "mean_copy_distance_ratio": 0.1,
        }

    lead = findings.embedding_findings({"ldvae": emb(0.47, 0.48), "pca": emb(0.40, 0.99)}, True)
    assert any("splitting cell types by donor" in n and "0.99 vs 0.48" in n for n in lead.notes)
    assert any("within each donor" in i and "0.480 vs 0.990" in i for i in lead.items)
    fair = findings.embedding_findings({"ldvae": emb(0.80, 0.95), "pca": emb(0.40, 0.90)}, True)
    assert not any("by donor" in n for n in fair.notes)
    none = findings.embedding_findings({"ldvae": emb(0.5, None), "pca": emb(0.4, None)}, True)
    assert not any("within each donor" in i for i in none.items)
