"""Tests of latentshift.data.artifacts: counts stored once in .h5ad files, matrix comparison."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift.data import artifacts


def _counts(n=30, g=20, seed=0):
    rng = np.random.default_rng(seed)
    return sp.random(
        n, g, density=0.2, format="csr", random_state=rng, data_rvs=lambda k: rng.integers(1, 9, k)
    ).astype(np.int32)


def _adata(x):
    obs = pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])])
    var = pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])])
    return ad.AnnData(X=x, obs=obs, var=var)


def test_counts_equal_to_x_are_stored_once_and_restored_as_the_same_object(tmp_path):
    x = _counts()
    a = _adata(x)
    a.layers["counts"] = x.copy()  # equal values, a separate matrix
    path = artifacts.write_h5ad(a, tmp_path / "a.h5ad")
    with h5py.File(path, "r") as f:
        assert "counts" not in f["layers"] and "X" in f
    assert (
        "counts" in a.layers and artifacts.COUNTS_IN_X not in a.uns
    )  # the caller's object is unchanged
    back = artifacts.read_h5ad(path)
    assert back.layers["counts"] is back.X
    assert (back.layers["counts"] != x).nnz == 0 and back.X.dtype == np.int32
    assert artifacts.COUNTS_IN_X not in back.uns


def test_counts_different_from_x_are_kept(tmp_path):
    x = _counts()
    a = _adata(x.astype(np.float32) / 2)  # e.g. normalised X
    a.layers["counts"] = x
    path = artifacts.write_h5ad(a, tmp_path / "a.h5ad")
    with h5py.File(path, "r") as f:
        assert "counts" in f["layers"]
    back = artifacts.read_h5ad(path)
    assert back.layers["counts"] is not back.X and (back.layers["counts"] != x).nnz == 0


def test_read_h5ad_names_the_notebook_that_writes_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="written by notebook 02_perturb"):
        artifacts.read_h5ad(tmp_path / "perturbed.h5ad", made_by="02_perturb")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    g=st.integers(1, 30),
    chunk=st.integers(1, 50),
)
def test_same_matrix_matches_elementwise_equality(seed, n, g, chunk):
    x = _counts(n, g, seed)
    assert artifacts.same_matrix(x, x.copy(), chunk=chunk)
    assert artifacts.same_matrix(x.toarray(), x.toarray())
    assert not artifacts.same_matrix(x, x.toarray())
    assert not artifacts.same_matrix(x, None)
    if x.nnz:
        y = x.copy()
        y.data[np.random.default_rng(seed).integers(x.nnz)] += 1
        assert not artifacts.same_matrix(x, y, chunk=chunk)
    bigger = sp.vstack([x, x]).tocsr()
    assert not artifacts.same_matrix(x, bigger)


def test_a_relative_run_folder_is_taken_from_the_project_root(tmp_path, monkeypatch):
    """`--run-dir runs/x` names one folder whether the caller runs in the root (make) or in
    notebooks/ (papermill's kernels): relative run folders are resolved from the project root."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(root / "notebooks")
    folder = artifacts.run_dir("demo", "runs/elsewhere", root=root)
    assert folder == root / "runs" / "elsewhere" and folder.is_dir()
    assert not (root / "notebooks" / "runs").exists()
