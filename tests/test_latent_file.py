"""Tests of latentshift.readings.latent_file: latent.h5ad written without counts, and what replaces them."""

from __future__ import annotations

import numpy as np
import pytest

from latentshift import errors
from latentshift.data import artifacts
from latentshift.data.counts import gene_means
from latentshift.model import ldvae
from latentshift.readings import latent_file, loadings
from tests.test_ldvae import FAST, perturbed_like


@pytest.fixture(scope="module")
def trained():
    adata = perturbed_like(n_source=60, n_genes=30)
    fit = ldvae.train_ldvae(adata, {**FAST, "max_epochs": 2}, seed=0, progress_bar=False)
    return adata, fit.model


def test_latent_file_has_no_counts_but_what_06_needs(trained, tmp_path):
    adata, model = trained
    cells = adata.copy()
    cells.obsm["X_ldvae"] = ldvae.latent_representation(model, cells)
    latent_file.store_gene_summaries(cells, model)
    path = artifacts.write_h5ad(cells, tmp_path / "latent.h5ad", counts=False)
    back = artifacts.read_h5ad(path)
    assert back.X is None and not len(back.layers)
    assert back.shape == cells.shape
    np.testing.assert_array_equal(back.obsm["X_ldvae"], cells.obsm["X_ldvae"])
    # the loadings are the model's own, the means the normal cells' mean counts
    want = loadings.ldvae_loadings(model)
    got = latent_file.model_loadings(back, tmp_path / "no-model-needed")
    assert list(got.columns) == list(want.columns) and list(got.index) == list(want.index)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    normal = (adata.obs["condition"] == "normal").to_numpy()
    np.testing.assert_allclose(
        latent_file.reference_means(back), gene_means(adata.layers["counts"], normal)
    )
    # the caller's object keeps its counts
    assert cells.layers["counts"] is not None


def test_without_stored_summaries_they_come_from_the_counts(trained, tmp_path):
    adata, model = trained
    model.save(str(tmp_path / "model"), save_anndata=False)
    normal = (adata.obs["condition"] == "normal").to_numpy()
    np.testing.assert_allclose(
        latent_file.reference_means(adata), gene_means(adata.layers["counts"], normal)
    )
    w = latent_file.model_loadings(adata, tmp_path / "model")
    np.testing.assert_allclose(w.to_numpy(), loadings.ldvae_loadings(model).to_numpy())
    bare = adata.copy()
    bare.X = None
    del bare.layers["counts"]
    with pytest.raises(errors.LoadingsError, match="rerun 03_ldvae"):
        latent_file.reference_means(bare)


def test_reference_is_the_first_condition(trained):
    adata, _ = trained
    assert latent_file.reference_condition(adata.obs) == "normal"
