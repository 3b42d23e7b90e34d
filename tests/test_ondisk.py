"""Tests of latentshift.data.ondisk: a counts file written block by block, opened backed, and the
LDVAE trained from it as from the same counts in memory."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentshift import errors
from latentshift.data import ondisk, simulate_h5ad
from latentshift.model import ldvae
from tests.test_ldvae import FAST, perturbed_like


def _blocks(counts: sp.csr_matrix, size: int):
    for lo in range(0, counts.shape[0], size):
        yield counts[lo : lo + size]


@pytest.fixture(scope="module")
def cells() -> ad.AnnData:
    return perturbed_like()


@pytest.fixture(scope="module")
def counts_file(cells, tmp_path_factory):
    path = tmp_path_factory.mktemp("ondisk") / "cells.h5ad"
    counts = cells.layers["counts"]
    return ondisk.write_counts_h5ad(path, _blocks(counts, 37), cells.obs, cells.var)


def test_written_blocks_read_back_as_the_counts(cells, counts_file):
    back = ad.read_h5ad(counts_file)
    assert (back.X != cells.layers["counts"]).nnz == 0
    assert back.X.dtype == cells.layers["counts"].dtype
    pd.testing.assert_frame_equal(back.obs.astype(str), cells.obs.astype(str))
    assert list(back.var_names) == list(cells.var_names)
    assert not back.layers and back.raw is None


def test_blocks_that_do_not_add_up_are_refused_and_leave_no_file(cells, tmp_path):
    path = tmp_path / "short.h5ad"
    counts = cells.layers["counts"]
    with pytest.raises(errors.DataError, match="rows"):
        ondisk.write_counts_h5ad(path, _blocks(counts[:-5], 50), cells.obs, cells.var)
    with pytest.raises(errors.DataError, match="columns"):
        ondisk.write_counts_h5ad(path, _blocks(counts[:, 1:], 50), cells.obs, cells.var)
    assert list(tmp_path.iterdir()) == []


def test_open_counts_is_backed_and_checks_the_values(counts_file, cells, tmp_path):
    backed = ondisk.open_counts(counts_file)
    try:
        assert backed.isbacked and backed.n_obs == cells.n_obs
    finally:
        backed.file.close()
    bad = cells.layers["counts"].astype(np.float32)
    bad.data[3] = 0.5
    path = ondisk.write_counts_h5ad(tmp_path / "bad.h5ad", [bad], cells.obs, cells.var)
    with pytest.raises(errors.DataError, match="not counts"):
        ondisk.open_counts(path)


def test_open_counts_refuses_a_file_whose_layers_backed_mode_would_load(cells, tmp_path):
    path = tmp_path / "layers.h5ad"
    cells.write_h5ad(path)
    with pytest.raises(errors.DataError, match="layers"):
        ondisk.open_counts(path)


def test_model_counts_file_takes_the_genes_from_a_cellxgene_file(tmp_path):
    source = simulate_h5ad.write_simulated_h5ad(tmp_path / "sim.h5ad", 300, 120, seed=1)
    full = ad.read_h5ad(source)
    genes = list(full.var_names[[5, 2, 40]])
    rows = np.array([250, 3, 7, 100])
    path = ondisk.model_counts_file(source, tmp_path / "model.h5ad", genes, rows, chunk_rows=2)
    out = ondisk.open_counts(path)
    try:
        assert list(out.var_names) == genes
        assert list(out.obs_names) == list(full.obs_names[np.sort(rows)])
        expected = full.raw.X[np.sort(rows)][:, [5, 2, 40]].toarray()
        np.testing.assert_array_equal(out.X[:].toarray(), expected)
    finally:
        out.file.close()
    with pytest.raises(errors.DataError, match="not var_names"):
        ondisk.model_counts_file(source, tmp_path / "no.h5ad", ["NOT_A_GENE"])


def test_training_from_disk_matches_training_in_memory(cells, counts_file):
    params = {**FAST, "max_epochs": 6}
    test = np.flatnonzero((cells.obs["split"] == "test").to_numpy())
    in_memory = ldvae.train_ldvae(cells, params, seed=4, progress_bar=False)
    backed = ondisk.open_counts(counts_file)
    try:
        on_disk = ldvae.train_ldvae(backed, params, seed=4, progress_bar=False)
        # scvi-tools feeds the model the file's rows: the same counts as in memory
        loader = on_disk.model._make_data_loader(backed, indices=test, shuffle=False)
        fed = np.vstack([batch["X"].numpy() for batch in loader])
        np.testing.assert_array_equal(fed, cells.layers["counts"][test].toarray())
        np.testing.assert_allclose(
            on_disk.model.module.library_log_means, in_memory.model.module.library_log_means
        )
        untrained = ldvae.train_ldvae(backed, {**params, "max_epochs": 1}, seed=4)
        start = float(untrained.history["elbo_validation"].iloc[0])
        a = float(in_memory.model.get_elbo(indices=test))
        b = float(on_disk.model.get_elbo(indices=test))
    finally:
        backed.file.close()
    # the same minibatches, but scvi-tools sorts a backed minibatch's rows, so each cell gets
    # another draw of the latent noise: equal within training noise, far from where it started
    assert abs(a - b) < 0.05 * abs(a)
    assert abs(a - b) < 0.25 * abs(-start - a)
