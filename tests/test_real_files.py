"""Real-file paths a user will hit, each on a small file made here: the right behaviour, or an
error that names the fix (issue: real cells)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentshift import errors
from latentshift.data import h5ad
from latentshift.data import load as data
from latentshift.perturb import case_control as cc
from latentshift.perturb import genesets
from latentshift.perturb.genesets import GeneSet

SET = {"IFN": GeneSet("IFN", "", ("ISG15", "MX1", "IFIT3"))}


def _file(
    tmp_path,
    *,
    var_names: list[str],
    var: dict | None = None,
    X=None,
    layers: dict | None = None,
    raw=None,
    obs: dict | None = None,
    name: str = "cells.h5ad",
):
    n, g = 30, len(var_names)
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(2.0, (n, g)).astype(np.int32))
    obs = obs or {"cell_type": np.repeat(["B cells", "NK cells"], n // 2), "donor_id": "d1"}
    adata = ad.AnnData(
        X=counts if X is None else X(counts),
        obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(var or {}, index=var_names),
    )
    for key, make in (layers or {}).items():
        adata.layers[key] = make(counts)
    if raw is not None:
        adata.raw = ad.AnnData(X=counts, var=adata.var.copy())
        adata.X = raw(counts)
    path = tmp_path / name
    with warnings.catch_warnings():  # anndata warns of the non-unique names some tests write
        warnings.simplefilter("ignore")
        adata.write_h5ad(path)
    return path, counts


def test_gene_symbols_as_var_names_without_feature_name_match_the_sets(tmp_path):
    path, _ = _file(tmp_path, var_names=["ISG15", "MX1", "IFIT3", "ACTB"])
    cells = h5ad.read_h5ad_counts(path)
    assert "feature_name" not in cells.var
    _, genes = genesets.match_genesets(cells, SET, ["IFN"])
    assert genes["IFN"] == ["ISG15", "MX1", "IFIT3"]


def test_ensembl_ids_with_a_symbol_column_are_read_through_it(tmp_path):
    ids = ["ENSG00000187608", "ENSG00000157601", "ENSG00000119917", "ENSG00000075624"]
    path, _ = _file(
        tmp_path, var_names=ids, var={"gene_symbols": ["ISG15", "MX1", "IFIT3", "ACTB"]}
    )
    cells = h5ad.read_h5ad_counts(path)  # found by its usual name, no setting needed
    assert list(cells.var["feature_name"]) == ["ISG15", "MX1", "IFIT3", "ACTB"]
    _, genes = genesets.match_genesets(cells, SET, ["IFN"])
    assert genes["IFN"] == ids[:3]
    # a 'symbol' column that only repeats the ids (as muscat's export does) is no symbol column
    path, _ = _file(tmp_path, var_names=ids, var={"symbol": ids}, name="ids_only.h5ad")
    with pytest.raises(errors.DataError, match="Set data.symbol_column"):
        h5ad.read_h5ad_counts(path)


@pytest.mark.parametrize("where", ["raw", "layer"])
def test_normalised_x_with_counts_in_raw_or_a_layer_uses_the_counts(tmp_path, where):
    def lognorm(c):
        return sp.csr_matrix(np.log1p(c.toarray() / 7.0).astype(np.float32))

    kwargs = (
        {"raw": lognorm} if where == "raw" else {"X": lognorm, "layers": {"counts": lambda c: c}}
    )
    path, counts = _file(tmp_path, var_names=["ISG15", "MX1", "IFIT3", "ACTB"], **kwargs)
    cells = h5ad.read_h5ad_counts(path)
    assert cells.uns["latentshift"]["counts_from"] == (
        "raw.X" if where == "raw" else "layers['counts']"
    )
    assert (cells.layers["counts"] != counts).nnz == 0
    # and with no counts anywhere, the error says where it looked and what to give
    only, _ = _file(tmp_path, var_names=["A", "B"], X=lognorm, name="normalised.h5ad")
    with pytest.raises(errors.DataError, match="holds no integer counts.*raw UMI counts"):
        h5ad.read_h5ad_counts(only)


def test_duplicate_gene_symbols_are_made_unique_and_each_copy_matched(tmp_path):
    path, _ = _file(tmp_path, var_names=["ISG15", "MX1", "MX1", "ACTB"])
    cells = h5ad.read_h5ad_counts(path)
    assert cells.var_names.is_unique and list(cells.var_names) == ["ISG15", "MX1", "MX1-1", "ACTB"]
    assert cells.uns["latentshift"]["duplicate_gene_names"] == 1
    _, genes = genesets.match_genesets(cells, SET, ["IFN"], min_found_fraction=0.5)
    assert genes["IFN"] == ["ISG15", "MX1", "MX1-1"]


def test_float_counts_that_are_whole_numbers_become_integers(tmp_path):
    path, counts = _file(
        tmp_path, var_names=["ISG15", "MX1", "ACTB"], X=lambda c: c.astype(np.float32)
    )
    cells = h5ad.read_h5ad_counts(path)
    assert cells.layers["counts"].dtype.kind == "i" and (cells.layers["counts"] != counts).nnz == 0


def test_a_cell_type_column_under_another_name(tmp_path):
    obs = {"celltype_author": np.repeat(["B cells", "NK cells"], 15), "donor_id": "d1"}
    path, _ = _file(tmp_path, var_names=["ISG15", "MX1"], obs=obs)
    with pytest.raises(
        errors.DataError, match=r"data.cell_type_column.*candidates: celltype_author"
    ):
        h5ad.read_h5ad_counts(path)
    cells = h5ad.read_h5ad_counts(path, cell_type_column="celltype_author")
    assert set(cells.obs["cell_type"]) == {"B cells", "NK cells"}


def test_a_condition_value_with_no_cells():
    obs = pd.DataFrame(
        {
            "donor_id": np.repeat(["a", "b", "c", "d"], 3),
            "disease": pd.Categorical(
                np.repeat(["control", "control", "stim", "stim"], 3),
                categories=["control", "stim", "unused"],
            ),
        }
    )
    # a category no cell holds is not a condition
    cond = cc.conditions_from_obs(obs, control="control")
    assert list(cond.categories) == ["control", "stim"]
    # a control value no cell holds names the column's values and the closest one
    with pytest.raises(cc.CaseControlError, match="Did you mean 'control'.*case_control.control"):
        cc.conditions_from_obs(obs, control="controls")


def test_excluded_donors_leave_the_data_and_unknown_ones_are_named(tmp_path):
    obs = {
        "cell_type": np.repeat(["B cells", "NK cells"], 15),
        "donor_id": np.tile(["a", "b", "c"], 10),
    }
    path, _ = _file(tmp_path, var_names=["ISG15", "MX1"], obs=obs)
    cfg = {"source": "h5ad", "path": str(path), "exclude_donors": ["b"], "n_cells": None}
    cells = data.load_cells(cfg, seed=0)
    assert set(cells.obs["donor_id"]) == {"a", "c"} and cells.n_obs == 20
    with pytest.raises(errors.DataError, match=r"donor\(s\) z are not in the data"):
        data.load_cells({**cfg, "exclude_donors": ["z"]}, seed=0)
