"""Tests of latentshift.data.load and latentshift.data.h5ad: .h5ad reading, QC, subsampling, summary."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift import errors
from latentshift.data import artifacts, counts, h5ad, simulate, simulate_h5ad
from latentshift.data import load as data
from tests.conftest import random_counts

REQUIRED = ["APOE", "HOXA5", "PITX1", "NEFL", "SLC16A12", "IL17RB", "GFAP", "TARDBP"]


@pytest.fixture(scope="module")
def sim() -> ad.AnnData:
    return simulate.simulate_m1(2000, 1500, seed=0, required_genes=REQUIRED)  # QC & co.


def _col(adata: ad.AnnData, gene: str) -> np.ndarray:
    return adata.layers["counts"][:, adata.var_names.get_loc(gene)].toarray().ravel()


# --- reading .h5ad -----------------------------------------------------------------------


def test_read_counts_from_raw_with_ensembl_ids(tmp_path) -> None:
    src = simulate.simulate_m1(150, 200, seed=2, schema="cellxgene")
    src.obs = src.obs.rename(columns={"cell_type": "author_cell_type"}).assign(
        cell_type=src.obs["cell_type"]
    )
    path = tmp_path / "cxg.h5ad"
    src.write_h5ad(path)
    got = h5ad.read_h5ad_counts(path)
    assert list(got.var_names) == list(src.var_names)
    assert got.var_names[0].startswith("ENSG")
    assert list(got.var["feature_name"]) == list(src.var["feature_name"])
    assert sp.isspmatrix_csr(got.layers["counts"])
    assert got.layers["counts"].dtype.kind == "i"
    assert (got.layers["counts"] != sp.csr_matrix(src.raw.X)).nnz == 0
    assert (got.X != got.layers["counts"]).nnz == 0
    # a file written from the simulator keeps its "simulated" label
    assert got.uns["latentshift"]["simulated"] is True
    assert got.uns["latentshift"]["simulated_by"].startswith("simulate_m1(")
    assert got.uns["latentshift"]["source"] == str(path)
    assert got.uns["latentshift"]["counts_from"] == "raw.X"
    assert "donor_id" in got.obs and isinstance(got.obs["cell_type"].dtype, pd.CategoricalDtype)


def test_read_counts_from_layer_and_custom_columns(tmp_path) -> None:
    src = simulate.simulate_m1(120, 150, seed=0)
    src.X = counts.log_normalise(src.layers["counts"])
    src.obs["celltype"] = src.obs["cell_type"].astype(str)
    src.obs = src.obs.drop(columns=["cell_type"])
    src.var = src.var.rename(columns={"feature_name": "symbol"})
    path = tmp_path / "layer.h5ad"
    src.write_h5ad(path)
    got = h5ad.read_h5ad_counts(path, symbol_column="symbol", cell_type_column="celltype")
    assert got.uns["latentshift"]["counts_from"] == "layers['counts']"
    assert (got.layers["counts"] != src.layers["counts"]).nnz == 0
    assert list(got.var["feature_name"]) == list(src.var["symbol"])
    assert list(got.obs["cell_type"]) == list(src.obs["celltype"])


def test_read_dense_integer_x(tmp_path) -> None:
    x = np.array([[0, 2, 0], [1, 0, 5]], dtype=np.float32)
    a = ad.AnnData(X=x, obs=pd.DataFrame({"cell_type": ["a", "b"]}, index=["c1", "c2"]))
    path = tmp_path / "dense.h5ad"
    a.write_h5ad(path)
    got = h5ad.read_h5ad_counts(path, donor_column=None)
    assert sp.isspmatrix_csr(got.X) and got.X.dtype == np.int32
    assert np.array_equal(got.X.toarray(), x.astype(int))


def test_normalized_only_file_is_refused(tmp_path) -> None:
    src = simulate.simulate_m1(100, 120, seed=0)
    norm = ad.AnnData(X=counts.log_normalise(src.layers["counts"]), obs=src.obs, var=src.var)
    path = tmp_path / "norm.h5ad"
    norm.write_h5ad(path)
    with pytest.raises(errors.DataError, match="no integer counts") as err:
        h5ad.read_h5ad_counts(path)
    msg = str(err.value)
    assert "X: non-integer" in msg and "raw-count file" in msg


def test_negative_or_nan_counts_are_refused(tmp_path) -> None:
    obs = pd.DataFrame({"cell_type": ["a", "b"]}, index=["c1", "c2"])
    for bad, words in ((-1.0, "negative"), (np.nan, "NaN")):
        x = sp.csr_matrix(np.array([[1.0, 0.0], [bad, 2.0]]))
        path = tmp_path / f"bad{words}.h5ad"
        ad.AnnData(X=x, obs=obs).write_h5ad(path)
        with pytest.raises(errors.DataError, match=words):
            h5ad.read_h5ad_counts(path)


def test_missing_symbol_column_lists_var_columns(tmp_path) -> None:
    src = simulate.simulate_m1(60, 80, seed=0)
    path = tmp_path / "s.h5ad"
    src.write_h5ad(path)
    with pytest.raises(errors.DataError, match="gene_symbols") as err:
        h5ad.read_h5ad_counts(path, symbol_column="gene_symbols")
    assert "feature_name" in str(err.value) and "gene_ids" in str(err.value)


def test_missing_cell_type_column_lists_obs_columns(tmp_path) -> None:
    src = simulate.simulate_m1(60, 80, seed=0)
    path = tmp_path / "s.h5ad"
    src.write_h5ad(path)
    with pytest.raises(errors.DataError, match="cluster_label") as err:
        h5ad.read_h5ad_counts(path, cell_type_column="cluster_label")
    assert "cell_type" in str(err.value) and "donor_id" in str(err.value)


def test_missing_and_non_h5ad_files(tmp_path) -> None:
    with pytest.raises(errors.DataError, match="does not exist"):
        h5ad.read_h5ad_counts(tmp_path / "nope.h5ad")
    txt = tmp_path / "cells.h5ad"
    txt.write_text("not hdf5")
    with pytest.raises(errors.DataError, match="not an HDF5"):
        h5ad.read_h5ad_counts(txt)


# --- QC, subsample, summary, load_cells --------------------------------------------------


def test_qc_filter(sim: ad.AnnData) -> None:
    genes_per_cell = np.diff(sim.layers["counts"].indptr)
    low = int(np.quantile(genes_per_cell, 0.1))  # a threshold that drops the shallowest tenth
    out, stats = data.qc_filter(sim, min_genes=low, min_cells=20)
    assert stats["cells_before"] == 2000 and stats["genes_before"] == 1500
    assert stats["cells_after"] == int((genes_per_cell >= low).sum()) == out.n_obs
    assert 0 < stats["cells_after"] < 2000
    assert stats["genes_after"] == out.n_vars < 1500
    kept = sim[genes_per_cell >= low].layers["counts"]
    assert out.n_vars == int(((kept > 0).sum(axis=0) >= 20).sum())
    assert (np.diff(out.layers["counts"].indptr) == out.obs["n_genes"]).all()
    assert sp.isspmatrix_csr(out.layers["counts"]) and out.layers["counts"].dtype.kind == "i"
    table = data.qc_table(stats)
    assert table.loc["cells", "after QC"] == out.n_obs


def test_qc_removing_everything_is_an_error(sim: ad.AnnData) -> None:
    with pytest.raises(errors.DataError, match="min_genes"):
        data.qc_filter(sim, min_genes=10_000, min_cells=0)


def test_subsample_stratified_and_deterministic(sim: ad.AnnData) -> None:
    a = data.subsample(sim, 500, seed=1)
    b = data.subsample(sim, 500, seed=1)
    c = data.subsample(sim, 500, seed=2)
    assert a.n_obs == 500
    assert list(a.obs_names) == list(b.obs_names)
    assert list(a.obs_names) != list(c.obs_names)
    assert a.obs_names.is_monotonic_increasing
    full = sim.obs["cell_type"].value_counts()
    part = a.obs["cell_type"].value_counts()
    for t in full.index:
        assert abs(part[t] - full[t] * 500 / 2000) <= 1


def test_subsample_none_all_and_too_many(sim: ad.AnnData) -> None:
    assert data.subsample(sim, None, seed=0).n_obs == sim.n_obs
    with pytest.raises(
        errors.DataError,
        match=r"data.n_cells is 5000, but only 2000 cells are available.*at most 2000, or to null",
    ):
        data.subsample(sim, 5000, seed=0)
    plain = data.subsample(sim, 300, seed=0, stratify_by=None)
    assert plain.n_obs == 300 and plain.obs_names.is_unique


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=6),
    frac=st.floats(0.05, 0.95),
    seed=st.integers(0, 10),
)
def test_subsample_property(sizes: list[int], frac: float, seed: int) -> None:
    labels = np.repeat([f"t{i}" for i in range(len(sizes))], sizes)
    n = len(labels)
    adata = ad.AnnData(
        X=sp.csr_matrix((n, 2), dtype=np.int32),
        obs=pd.DataFrame({"cell_type": pd.Categorical(labels)}, index=[f"c{i}" for i in range(n)]),
    )
    k = max(1, int(frac * n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = data.subsample(adata, k, seed=seed)
    assert out.n_obs == min(k, n)
    assert out.obs_names.is_unique
    counts = out.obs["cell_type"].value_counts()
    for i, s in enumerate(sizes):
        assert abs(counts.get(f"t{i}", 0) - s * out.n_obs / n) < 1 + 1e-9


def test_summarize(sim: ad.AnnData) -> None:
    s = data.summarize(sim)
    c = sim.layers["counts"]
    assert s["n_cells"] == 2000 and s["n_genes"] == 1500
    assert s["fraction_zeros"] == pytest.approx(1 - c.nnz / (2000 * 1500))
    assert s["median_genes_per_cell"] == np.median(np.diff(c.indptr))
    assert s["median_counts_per_cell"] == np.median(np.asarray(c.sum(axis=1)).ravel())
    assert sum(s["cell_type_counts"].values()) == 2000
    assert s["simulated"] is True


def test_load_cells_dispatch(tmp_path) -> None:
    from latentshift import config

    cfg = config.section("data", {"simulate_n_cells": 100, "simulate_n_genes": 120})
    a = data.load_cells(cfg, seed=5, required_genes=["APOE"])
    assert a.shape == (100, 120) and "APOE" in a.var_names
    assert a.uns["latentshift"]["source"].endswith("seed=5, composition='m1')")
    path = tmp_path / "x.h5ad"
    a.write_h5ad(path)
    cfg = config.section("data", {"source": "h5ad", "path": str(path)})
    b = data.load_cells(cfg, seed=0, required_genes=[])
    assert (b.layers["counts"] != a.layers["counts"]).nnz == 0
    assert b.uns["latentshift"]["simulated"] is True  # the file's own label is kept
    del a.uns["latentshift"]
    a.write_h5ad(path)
    assert data.load_cells(cfg, seed=0).uns["latentshift"]["simulated"] is False


def test_bad_value_beyond_the_sample_is_caught(tmp_path, monkeypatch) -> None:
    values = np.arange(1, 1001, dtype=np.float64)
    values[500] = np.nan
    x = sp.csr_matrix((values, (np.zeros(1000, int), np.arange(1000))), shape=(1, 1000))
    obs = pd.DataFrame({"cell_type": ["a"]}, index=["c1"])
    path = tmp_path / "late_nan.h5ad"
    ad.AnnData(X=x, obs=obs).write_h5ad(path)
    monkeypatch.setattr(h5ad, "_SAMPLE_VALUES", 8)
    with pytest.raises(errors.DataError, match="beyond the sampled values"):
        h5ad.read_h5ad_counts(path)


# --- simulated files, reading only a sample of rows ----------------------------------------


@pytest.fixture(scope="module")
def cxg_file(tmp_path_factory) -> tuple:
    """A CELLxGENE-shaped file (Ensembl IDs, feature_name, counts only in raw/X) and its source."""
    path = tmp_path_factory.mktemp("cxg") / "cxg.h5ad"
    simulate_h5ad.write_simulated_h5ad(path, 900, 1000, seed=3, required_genes=REQUIRED)
    return path, simulate.simulate_m1(
        900, 1000, seed=3, required_genes=REQUIRED, schema="cellxgene"
    )


def test_write_simulated_h5ad_equals_simulate_m1(cxg_file, tmp_path) -> None:
    path, src = cxg_file
    got = ad.read_h5ad(path)
    assert got.var_names[0].startswith("ENSG") and "feature_name" in got.var
    assert got.obs.equals(src.obs) and got.var.equals(src.var)
    assert (sp.csr_matrix(got.raw.X) != src.raw.X).nnz == 0
    assert np.array_equal(got.X.data, src.X.data) and np.array_equal(got.X.indptr, src.X.indptr)
    assert got.uns["latentshift"]["simulated"] is True
    plain = simulate_h5ad.write_simulated_h5ad(
        tmp_path / "plain.h5ad", 120, 150, seed=1, schema="latentshift"
    )
    a, b = ad.read_h5ad(plain), simulate.simulate_m1(120, 150, seed=1)
    assert list(a.var_names) == list(b.var_names)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0 and a.layers[
        "counts"
    ].dtype == np.int32


@pytest.mark.parametrize(("kind", "chunk"), [("csr", 7), ("csr", 10**6), ("dense", 7), ("csc", 7)])
def test_read_rows_equals_full_read_then_subset(tmp_path, monkeypatch, kind, chunk) -> None:
    import h5py

    monkeypatch.setattr(h5ad, "_READ_CHUNK", chunk)  # values read per chunk: many or one

    rng = np.random.default_rng(0)
    dense = np.ceil(sp.random(300, 40, density=0.2, random_state=1).toarray() * 9)
    dense[5] = 0  # an empty row
    full = sp.csr_matrix(dense)
    x = {"csr": full, "dense": full.toarray(), "csc": full.tocsc()}[kind]
    path = tmp_path / f"{kind}.h5ad"
    ad.AnnData(X=x, obs=pd.DataFrame(index=[f"c{i}" for i in range(300)])).write_h5ad(path)
    rows = np.r_[rng.choice(300, 60, replace=False), np.arange(100, 120), 5, 299, 0]  # runs, ends
    with h5py.File(path) as f:
        got = h5ad.read_rows(f["X"], rows)
        assert h5ad.read_rows(f["X"], []).shape == (0, 40)
        with pytest.raises(errors.DataError, match="row indices"):
            h5ad.read_rows(f["X"], [300])
    want = full[np.unique(rows)]
    assert sp.isspmatrix_csr(got) and got.dtype == np.int32 and got.shape == want.shape
    assert got.indices.dtype == got.indptr.dtype == np.int32
    assert (got != want).nnz == 0


def test_whole_file_read_shares_one_counts_matrix_and_equals_the_stored_values(
    tmp_path, monkeypatch
) -> None:
    """read_h5ad_counts reads float32 raw.X chunk by chunk into int32, X and counts one object."""
    monkeypatch.setattr(h5ad, "_READ_CHUNK", 11)
    path = tmp_path / "cxg_small.h5ad"
    simulate_h5ad.write_simulated_h5ad(path, 60, 80, seed=2, required_genes=REQUIRED)
    got = h5ad.read_h5ad_counts(path)
    stored = ad.read_h5ad(path).raw.X
    assert stored.dtype == np.float32 and got.X.dtype == np.int32
    assert got.layers["counts"] is got.X
    assert (got.X != sp.csr_matrix(stored).astype(np.int32)).nnz == 0
    values = np.asarray(stored.data, dtype=np.float64)
    np.testing.assert_array_equal(got.X.data, values[values != 0])


def test_sample_reads_the_same_cells_as_full_read_then_subset(cxg_file) -> None:
    path, _ = cxg_file
    full = h5ad.read_h5ad_counts(path)
    low = int(np.quantile(np.diff(full.layers["counts"].indptr), 0.2))
    passing = full[np.diff(full.layers["counts"].indptr) >= low].copy()
    assert 0 < passing.n_obs < full.n_obs  # the cell filter matters here
    for strat in ("cell_type", "donor_id", None):
        got = h5ad.read_h5ad_sample(path, 300, seed=4, stratify_by=strat, min_genes=low)
        want = data.subsample(passing, 300, seed=4, stratify_by=strat)
        assert list(got.obs_names) == list(want.obs_names)
        assert (got.layers["counts"] != want.layers["counts"]).nnz == 0
        assert (got.X != got.layers["counts"]).nnz == 0
        assert got.obs.equals(want.obs) and got.var.equals(want.var)
        assert got.layers["counts"].dtype.kind == "i" and sp.isspmatrix_csr(got.layers["counts"])
    info = got.uns["latentshift"]
    assert info["counts_from"] == "raw.X" and info["symbol_column"] == "feature_name"
    assert info["sample"] == {
        "cells_in_file": 900,
        "cells_passing_min_genes": passing.n_obs,
        "min_genes": low,
        "n_cells": 300,
        "seed": 4,
        "stratify_by": None,
    }
    assert "seeded sample" in data.describe_loading(got) and "simulated" in data.describe_loading(
        got
    )


def test_sample_stratified_and_deterministic(cxg_file) -> None:
    path, src = cxg_file
    a = h5ad.read_h5ad_sample(path, 250, seed=1)
    b = h5ad.read_h5ad_sample(path, 250, seed=1)
    c = h5ad.read_h5ad_sample(path, 250, seed=2)
    assert a.n_obs == 250 and list(a.obs_names) == list(b.obs_names) != list(c.obs_names)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    full = src.obs["cell_type"].value_counts()
    part = a.obs["cell_type"].value_counts()
    for t in full.index:
        assert abs(part.get(t, 0) - full[t] * 250 / 900) <= 1, t
    donors = (
        h5ad.read_h5ad_sample(path, 200, seed=1, stratify_by="donor_id")
        .obs["donor_id"]
        .value_counts()
    )
    for d, n in src.obs["donor_id"].value_counts().items():
        assert abs(donors[d] - n * 200 / 900) <= 1
    everything = h5ad.read_h5ad_sample(path, None, seed=0)
    assert everything.n_obs == 900 and everything.obs_names.equals(src.obs_names)


def test_sample_errors(cxg_file, tmp_path) -> None:
    path, src = cxg_file
    with pytest.raises(errors.DataError, match="author_label") as err:
        h5ad.read_h5ad_sample(path, 100, seed=0, cell_type_column="author_label")
    assert "cell_type, cell_class, supercluster_term, donor_id" in str(err.value)
    assert "candidates: cell_type, cell_class" in str(err.value)
    with pytest.raises(errors.DataError, match="stratify.*'batch'.*cell_class"):
        h5ad.read_h5ad_sample(path, 100, seed=0, stratify_by="batch")
    with pytest.raises(errors.DataError, match="min_genes"):
        h5ad.read_h5ad_sample(path, 100, seed=0, min_genes=10_000)
    # Ensembl IDs and no symbol column
    bare = src.copy()
    bare.var = bare.var.drop(columns=["feature_name"])
    bare.raw = None
    bare.layers["counts"] = sp.csr_matrix(src.raw.X).astype(np.int32)
    nosym = tmp_path / "nosym.h5ad"
    bare.write_h5ad(nosym)
    for reader in (h5ad.read_h5ad_counts, lambda p: h5ad.read_h5ad_sample(p, 50, seed=0)):
        with pytest.raises(errors.DataError, match="Ensembl IDs.*no 'feature_name'") as err:
            reader(nosym)
        assert "gene_ids, feature_is_filtered, gene_group" in str(
            err.value
        ) and "data.symbol_column" in str(err.value)
    # no integer counts anywhere (only the normalised X)
    norm = ad.AnnData(X=src.X, obs=src.obs, var=src.var)
    normp = tmp_path / "norm.h5ad"
    norm.write_h5ad(normp)
    with pytest.raises(errors.DataError, match="no integer counts.*X: non-integer"):
        h5ad.read_h5ad_sample(normp, 50, seed=0)


def test_load_cells_reads_only_a_sample_when_the_file_is_larger(cxg_file) -> None:
    from latentshift import config

    path, _ = cxg_file
    cfg = config.section(
        "data", {"source": "h5ad", "path": str(path), "n_cells": 200, "min_genes": 20}
    )
    a = data.load_cells(cfg, seed=0)
    assert a.n_obs == 200 and a.uns["latentshift"]["sample"]["cells_in_file"] == 900
    assert h5ad.h5ad_n_obs(path) == 900
    cfg = config.section("data", {"source": "h5ad", "path": str(path), "n_cells": 900})
    b = data.load_cells(cfg, seed=0)
    assert b.n_obs == 900 and "sample" not in b.uns["latentshift"]


def test_01_data_end_to_end_on_a_cellxgene_file(cxg_file, tmp_path, root) -> None:
    import json
    import subprocess
    import sys

    import yaml

    path, _ = cxg_file
    profile = tmp_path / "cxg_tiny.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "data": {
                    "source": "h5ad",
                    "path": str(path),
                    "symbol_column": "feature_name",
                    "n_cells": 400,
                    "min_genes": 20,
                },
            }
        )
    )
    run_dir, report_dir = tmp_path / "run", tmp_path / "report"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentshift",
            "run",
            str(profile),
            "--only",
            "01",
            "--run-dir",
            str(run_dir),
            "--report-dir",
            str(report_dir),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    cells = artifacts.read_h5ad(run_dir / "cells.h5ad")
    assert cells.n_obs == 400 and cells.var_names[0].startswith("ENSG")
    assert cells.layers["counts"].dtype.kind == "i" and sp.isspmatrix_csr(cells.layers["counts"])
    assert "APOE" in set(cells.var["feature_name"])
    assert cells.uns["latentshift"]["counts_from"] == "raw.X"
    assert cells.uns["latentshift"]["simulated"] is True
    metrics = json.loads((run_dir / "metrics.json").read_text())["data"]
    assert metrics["cells_in_file"] == 900 and metrics["n_cells"] == 400
    assert (report_dir / "01_data.html").is_file()


def test_subset_copies_shared_counts_once_and_matches_anndata():
    sim = simulate.simulate_m1(300, 200, seed=2)
    assert sim.layers["counts"] is sim.X
    rows = np.zeros(sim.n_obs, dtype=bool)
    rows[::3] = True
    cols = np.arange(0, sim.n_vars, 2)
    got = counts.subset(sim, rows, cols)
    want = sim[rows][:, cols].copy()
    assert got.layers["counts"] is got.X and got.X is not sim.X
    assert (got.X != want.X).nnz == 0
    pd.testing.assert_frame_equal(got.obs, want.obs)
    pd.testing.assert_frame_equal(got.var, want.var)
    assert list(got.obs["cell_type"].cat.categories) == list(want.obs["cell_type"].cat.categories)
    # the input is untouched; a separate counts layer takes anndata's own path
    assert sim.n_obs == 300 and sim.layers["counts"] is sim.X
    sep = sim.copy()
    assert sep.layers["counts"] is not sep.X
    assert (counts.subset(sep, rows).layers["counts"] != sim.X[rows]).nnz == 0
    assert data.subsample(sim, None, seed=0) is sim  # nothing dropped, nothing copied


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 50), g=st.integers(1, 30))
def test_one_index_dtype_keeps_the_matrix_and_shares_its_counts(seed, n, g):
    # as anndata reads a file written block by block: 64-bit indptr, 32-bit indices
    x = sp.random(n, g, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    mixed = x.copy()  # (scipy's constructor would make the two agree; anndata sets them)
    mixed.indices, mixed.indptr = x.indices.astype(np.int32), x.indptr.astype(np.int64)
    assert mixed.indptr.dtype == np.int64 and mixed.indices.dtype == np.int32
    one = counts.one_index_dtype(mixed)
    assert one.indptr.dtype == one.indices.dtype == np.int32
    if x.nnz:  # the counts and their columns are the input's own arrays
        assert np.shares_memory(one.data, mixed.data)
        assert np.shares_memory(one.indices, mixed.indices)
    assert (one != x).nnz == 0
    rows = np.random.default_rng(seed).integers(0, n, 7)
    assert (one[rows] != x[rows]).nnz == 0  # what scvi-tools' minibatches do
    csc = x.tocsc()
    csc.indptr = csc.indptr.astype(np.int64)
    csc = counts.one_index_dtype(csc)
    assert csc.format == "csc" and csc.indptr.dtype == csc.indices.dtype
    assert counts.one_index_dtype(x) is x and counts.one_index_dtype(x.toarray()) is not None


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    g=st.integers(1, 30),
    chunk=st.integers(1, 200),
    density=st.floats(0.0, 0.6),
)
def test_row_sums_match_scipy_in_any_chunking(seed, n, g, chunk, density):
    rng = np.random.default_rng(seed)
    x = sp.random(
        n,
        g,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda k: rng.integers(1, 50, k),
    ).astype(np.int32)
    got = counts.row_sums(x, chunk_nnz=chunk)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.asarray(x.sum(axis=1)).ravel())
    np.testing.assert_array_equal(counts.row_sums(x.tocsc()), got)
    np.testing.assert_allclose(counts.row_sums(x.astype(np.float32)), got)
    np.testing.assert_array_equal(counts.row_sums(x.toarray()), got)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.integers(1, 50), density=st.floats(0.0, 0.6))
def test_gene_means_equal_dense_means_over_the_chosen_rows(seed, chunk, density):
    rng = np.random.default_rng(seed)
    dense = (rng.random((40, 12)) < density) * rng.integers(1, 9, size=(40, 12))
    rows = rng.random(40) < 0.5
    rows[0] = True
    mat = sp.csr_matrix(dense.astype(np.int32))
    expected = dense[rows].mean(axis=0)
    np.testing.assert_allclose(counts.gene_means(mat, rows, chunk_rows=chunk), expected)
    np.testing.assert_allclose(counts.gene_means(mat.tocsc(), np.flatnonzero(rows)), expected)
    np.testing.assert_allclose(counts.gene_means(dense, rows), expected)
    np.testing.assert_allclose(counts.gene_means(mat), dense.mean(axis=0))
    with pytest.raises(errors.DataError, match="non-empty"):
        counts.gene_means(mat, np.zeros(40, dtype=bool))


# --- cells without a label ----------------------------------------------------------------


def _unlabelled(n_missing: int, values=(np.nan, "", "nan", "Unknown")) -> ad.AnnData:
    adata = simulate.simulate_m1(200, 150, seed=0)
    types = adata.obs["cell_type"].astype(object).to_numpy()
    for i in range(n_missing):
        types[i] = values[i % len(values)]
    adata.obs["cell_type"] = pd.Categorical(types)
    return adata


def test_cells_without_a_cell_type_are_left_out_and_counted():
    adata = _unlabelled(8)
    kept, dropped = data.drop_unlabelled(adata, ["cell_type"], ["unknown"], max_fraction=0.05)
    assert dropped == {"cell_type": 8} and kept.n_obs == 192
    assert kept.obs["cell_type"].notna().all()
    assert not {"", "nan", "Unknown"} & set(kept.obs["cell_type"].cat.categories)
    # "Unknown" is a label unless the profile lists it
    _, dropped = data.drop_unlabelled(adata, ["cell_type"], max_fraction=0.05)
    assert dropped == {"cell_type": 6}
    labelled = simulate.simulate_m1(100, 150, seed=0)
    same, dropped = data.drop_unlabelled(labelled, ["cell_type", "donor_id"])
    assert same is labelled and dropped == {"cell_type": 0, "donor_id": 0}


def test_too_many_cells_without_a_label_stop_with_the_column_and_the_count():
    # 40 changed, 30 missing ("Unknown" is a label unless the profile lists it)
    with pytest.raises(errors.DataError, match=r"30 of 200 cells \(15.0%\) have no 'cell_type'"):
        data.drop_unlabelled(_unlabelled(40), ["cell_type"], max_fraction=0.05)
    no_donors = _unlabelled(0)
    del no_donors.obs["donor_id"]
    with pytest.raises(errors.DataError, match="no 'donor_id' column; set data.donor_column"):
        data.drop_unlabelled(no_donors, ["cell_type", "donor_id"])


def test_a_file_s_missing_cell_types_stay_missing_and_01_leaves_them_out(tmp_path, root):
    import json
    import subprocess
    import sys

    import yaml

    src = simulate.simulate_m1(300, 400, seed=0, required_genes=REQUIRED)
    types = src.obs["cell_type"].astype(object).to_numpy()
    types[:9] = np.nan  # 3 %: left out
    types[9:12] = ""
    src.obs["cell_type"] = pd.Categorical(types)
    path = tmp_path / "unlabelled.h5ad"
    src.write_h5ad(path)
    got = h5ad.read_h5ad_counts(path)
    assert got.obs["cell_type"].isna().sum() == 9  # not the label "nan"
    assert "nan" not in set(got.obs["cell_type"].cat.categories)

    def run_01(max_fraction: float) -> subprocess.CompletedProcess:
        profile = tmp_path / f"unlabelled_{max_fraction}.yaml"
        data_cfg = {"source": "h5ad", "path": str(path), "min_genes": 20, "n_cells": None}
        data_cfg["max_unlabelled_fraction"] = max_fraction
        profile.write_text(yaml.safe_dump({"seed": 0, "data": data_cfg}))
        return subprocess.run(
            [sys.executable, "-m", "latentshift", "run", str(profile), "--only", "01"]
            + ["--run-dir", str(tmp_path / f"run{max_fraction}")]
            + ["--report-dir", str(tmp_path / f"rep{max_fraction}")],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    res = run_01(0.05)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "run0.05" / "metrics.json").read_text())["data"]
    assert metrics["unlabelled"] == {"cell_type": 12}
    page = (tmp_path / "rep0.05" / "01_data.html").read_text()
    assert "12 nuclei without a cell type were left out" in page
    cells = artifacts.read_h5ad(tmp_path / "run0.05" / "cells.h5ad")
    assert cells.obs["cell_type"].notna().all() and "nan" not in set(cells.obs["cell_type"])
    res = run_01(0.01)
    assert res.returncode != 0
    assert "12 of 300 cells" in res.stderr and "'cell_type'" in res.stderr
    assert not (tmp_path / "run0.01" / "cells.h5ad").exists()


def _cellxgene_labels(labels: list[str]) -> ad.AnnData:
    adata = simulate.simulate_m1(300, 200, seed=0)
    adata.obs = adata.obs.drop(columns=["cell_class", "supercluster_term"])
    adata.obs["cell_type"] = pd.Categorical(np.resize(labels, adata.n_obs))
    return adata


def test_the_neuron_split_is_read_from_labels_that_name_their_class_never_guessed():
    from latentshift.data import fidelity

    # the M1 atlas's type names beside Cell Ontology labels: every label names its class
    named = _cellxgene_labels(["L2/3 IT", "MGE interneuron", "CGE interneuron", "astrocyte"])
    measured = fidelity.fidelity_metrics(named)
    assert (
        measured["neuron_fraction"] == pytest.approx(0.75) and not measured["unclassified_labels"]
    )
    # one label that names no class: no neuron fraction, and the table says which label
    partial = _cellxgene_labels(["L2/3 IT", "MGE interneuron", "mystery cell"])
    measured = fidelity.fidelity_metrics(partial)
    assert measured["neuron_fraction"] is None and measured["median_umis_neurons"] is None
    assert measured["unclassified_labels"] == ["mystery cell"]
    table = fidelity.fidelity_table(measured, partial.n_vars)
    assert pd.isna(table.loc["neuron fraction", "this data"])
    assert "mystery cell" in table.loc["neuron fraction", "source"]
    assert "mystery cell" in table.loc["UMIs per nucleus, neurons (median)", "source"]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 80),
    genes=st.integers(1, 15),
    min_genes=st.integers(0, 6),
    min_cells=st.integers(0, 8),
    chunk=st.integers(1, 30),
    seed=st.integers(0, 1000),
)
def test_qc_in_blocks_gives_scanpys_whole_matrix_answer(
    n, genes, min_genes, min_cells, chunk, seed
):
    import scanpy as sc

    from latentshift.data.load import _qc_masks

    x = random_counts(n, genes, density=0.3, seed=seed)
    cells, genes_kept = _qc_masks(x, min_genes, min_cells, chunk_rows=chunk)
    want_cells, _ = sc.pp.filter_cells(x, min_genes=min_genes, inplace=False)
    np.testing.assert_array_equal(cells, want_cells)
    if want_cells.any():
        want_genes, _ = sc.pp.filter_genes(x[want_cells], min_cells=min_cells, inplace=False)
        np.testing.assert_array_equal(genes_kept, want_genes)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    genes=st.integers(1, 12),
    chunk=st.integers(1, 50),
    seed=st.integers(0, 1000),
)
def test_compact_is_subsetting_in_place(n, genes, chunk, seed):
    rng = np.random.default_rng(seed)
    x = random_counts(n, genes, density=0.4, seed=seed)
    rows, cols = rng.random(n) < 0.7, rng.random(genes) < 0.7
    want = x[rows][:, cols].toarray()
    got = counts.compact(x.copy(), rows, cols, chunk_nnz=chunk)
    assert got.shape == want.shape and got.dtype == np.int32
    np.testing.assert_array_equal(got.toarray(), want)


def test_qc_filter_without_a_copy_gives_the_same_cells(sim: ad.AnnData) -> None:
    low = int(np.percentile(np.diff(sim.layers["counts"].indptr), 10))
    want, stats = data.qc_filter(sim, min_genes=low, min_cells=20)
    mine = sim.copy()
    mine.layers["counts"] = mine.X  # one matrix, as 01 reads it
    got, stats2 = data.qc_filter(mine, min_genes=low, min_cells=20, copy=False)
    assert stats == stats2 and got.shape == want.shape
    assert got.layers["counts"] is got.X
    np.testing.assert_array_equal(got.X.toarray(), want.layers["counts"].toarray())
    pd.testing.assert_frame_equal(got.obs, want.obs)
    assert mine.X is None  # consumed
