"""Tests of latentshift.data.simulate: real genes at real levels, M1 depth and composition, bytes."""

from __future__ import annotations

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from latentshift.data import counts, fidelity, reference, simulate, simulate_counts
from latentshift.errors import DataError

REQUIRED = ["APOE", "HOXA5", "PITX1", "NEFL", "SLC16A12", "IL17RB", "GFAP", "TARDBP", "SOD1"]


@pytest.fixture(scope="module")
def sim() -> ad.AnnData:
    """A small simulation over every reference gene: realistic depth per nucleus."""
    return simulate.simulate_m1(1500, 28_000, seed=0, required_genes=REQUIRED)


@pytest.fixture(scope="module")
def panel() -> ad.AnnData:
    """A demo-sized panel: the most expressed genes plus markers and required genes."""
    return simulate.simulate_m1(1500, 3000, seed=0, required_genes=REQUIRED + ["HOXA10"])


def _col(adata: ad.AnnData, gene: str) -> np.ndarray:
    return adata.layers["counts"][:, adata.var_names.get_loc(gene)].toarray().ravel()


def _digest(a: ad.AnnData) -> str:
    c = a.layers["counts"]
    h = hashlib.sha256()
    for arr in (c.indptr, c.indices, c.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(pd.util.hash_pandas_object(a.obs.astype(str), index=True).values.tobytes())
    h.update(pd.util.hash_pandas_object(a.var.astype(str), index=True).values.tobytes())
    return h.hexdigest()


# --- shape ---------------------------------------------------------------------------------


def test_shape_types_and_sparsity(panel: ad.AnnData) -> None:
    c = panel.layers["counts"]
    assert panel.shape == (1500, 3000)
    assert sp.isspmatrix_csr(c) and c.dtype == np.int32 and c.data.min() > 0
    assert panel.X is c  # one matrix in memory
    assert isinstance(panel.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert {"cell_class", "supercluster_term", "donor_id", "sample_id"} <= set(panel.obs)
    assert panel.obs["donor_id"].nunique() == 4
    assert panel.obs["sample_id"].nunique() > 4
    assert panel.uns["latentshift"] == {
        "simulated": True,
        "source": "simulate_m1(n_cells=1500, n_genes=3000, seed=0, composition='m1')",
    }
    assert panel.var_names.is_unique
    assert not panel.var["feature_is_filtered"].any()


def test_every_gene_is_a_real_gene_with_its_ensembl_id(sim: ad.AnnData) -> None:
    levels = reference.gene_levels()
    ids = dict(zip(levels["gene_id"], levels["symbol"], strict=True))
    assert sim.n_vars == 28_000
    assert sim.var["gene_ids"].is_unique
    assert sim.var["gene_ids"].str.fullmatch(r"ENSG\d{11}").all()
    assert all(
        ids[g] == s for g, s in zip(sim.var["gene_ids"], sim.var["feature_name"], strict=True)
    )
    assert not (sim.var["gene_group"] == "filler").any()


def test_fillers_only_beyond_the_reference_table() -> None:
    n_ref = len(reference.gene_levels())
    a = simulate.simulate_m1(40, n_ref + 50, seed=0)
    fill = a.var["gene_group"] == "filler"
    assert fill.sum() == 50 and a.var_names[fill].str.startswith("SIMG").all()
    real = a.var.loc[~fill, "reference_level"]
    # fillers sit in the lower half of the real levels
    assert a.var.loc[fill, "reference_level"].max() <= real.median()


# --- the genes a profile asks for ----------------------------------------------------------


def test_panel_keeps_markers_required_and_the_most_expressed(panel: ad.AnnData) -> None:
    symbols = set(panel.var["feature_name"])
    markers = {g for genes in simulate.M1_MARKERS.values() for g in genes}
    assert markers <= symbols
    assert {"APOE", "NEFL", "SOD1", "HOXA10", "PITX1"} <= symbols
    top = reference.gene_levels(mito_fraction=simulate.MITO_FRACTION)
    assert set(top["symbol"].iloc[:2000]) <= symbols


def test_non_genes_are_missing_as_from_a_real_file(caplog) -> None:
    caplog.set_level("INFO", logger="latentshift.data.simulate")
    a = simulate.simulate_m1(50, 300, seed=0, required_genes=["NOTAGENE1", "NOTAGENE2", "NEFL"])
    assert "NOTAGENE1" not in set(a.var["feature_name"]) and "NEFL" in a.var_names
    assert "NOTAGENE1" in caplog.text


def test_required_genes_are_matched_case_insensitively() -> None:
    a = simulate.simulate_m1(60, 200, seed=0, required_genes=["apoe", "C21orf62"])
    assert "APOE" in a.var_names
    assert "C21orf62".upper() in set(a.var["feature_name"].str.upper())


def test_too_few_genes_keeps_markers_and_required_with_warning() -> None:
    with pytest.warns(UserWarning, match="smaller than"):
        a = simulate.simulate_m1(60, 10, seed=0, required_genes=REQUIRED)
    assert set(REQUIRED) <= set(a.var_names)


# --- calibration ---------------------------------------------------------------------------


def test_depth_per_class_within_25_percent_of_the_published_figures(sim: ad.AnnData) -> None:
    m = fidelity.fidelity_metrics(sim)
    assert m["median_umis_neurons"] == pytest.approx(reference.NEURON_UMI_DEPTH, rel=0.25)
    assert m["median_umis_non_neurons"] == pytest.approx(reference.NON_NEURON_UMI_DEPTH, rel=0.25)
    # and much closer than 25 % in fact: the calibration, not the tolerance, puts them there
    assert m["median_umis_neurons"] == pytest.approx(reference.NEURON_UMI_DEPTH, rel=0.08)


def test_neuron_fraction_and_the_tissue_composition() -> None:
    m1 = simulate.simulate_m1(3000, 300, seed=1)
    tissue = simulate.simulate_m1(3000, 300, seed=1, composition="tissue")
    neurons = (m1.obs["cell_class"] != "Non-neuronal").mean()
    assert neurons == pytest.approx(reference.M1_NEURON_FRACTION, abs=0.03)
    assert (tissue.obs["cell_class"] != "Non-neuronal").mean() == pytest.approx(0.622, abs=0.03)
    shares = m1.obs["cell_type"].value_counts(normalize=True)
    for spec in simulate.m1_cell_types("m1"):
        assert abs(shares[spec.name] - spec.proportion) < 0.002 + 0.05 * spec.proportion
    with pytest.raises(DataError, match="composition"):
        simulate.simulate_m1(10, 100, composition="brain")


def test_set_genes_keep_their_real_relative_level(panel: ad.AnnData) -> None:
    means = pd.Series(counts.gene_means(panel.layers["counts"]), index=panel.var_names)
    for high in ("SOD1", "NEFL", "SLC1A2"):
        for low in ("HOXA10", "PITX1"):
            assert means[high] >= 20 * max(means[low], 1e-9), (high, low)
    # the tissue mixture keeps the bulk level: SOD1 and NEFL keep their bulk ratio roughly
    levels = reference.gene_levels().set_index("symbol")["level"]
    ratio = means["NEFL"] / means["SOD1"]
    bulk = levels["NEFL"] / levels["SOD1"]
    assert 0.33 * bulk < ratio < 3 * bulk


def test_markers_enriched_in_their_type(sim: ad.AnnData) -> None:
    types = sim.obs["cell_type"].to_numpy()
    totals = counts.row_sums(sim.layers["counts"]).astype(float)
    for name, markers in simulate.M1_MARKERS.items():
        own = types == name
        x = _col(sim, markers[0]) / totals
        assert x[own].mean() > 5 * x[~own].mean(), (name, markers[0])


def test_counts_are_negative_binomial_within_a_type(sim: ad.AnnData) -> None:
    trend = fidelity.dispersion_trend(sim)
    # theta is drawn around THETA_MEDIAN; donors and depth add a little overdispersion
    assert 0.5 * simulate.THETA_MEDIAN < trend["theta_median"] < 1.5 * simulate.THETA_MEDIAN


def test_sample_nb_matches_negative_binomial_moments() -> None:
    rng = np.random.default_rng(0)
    mean = np.array([0.2, 3.0, 25.0], dtype=np.float32)
    theta = np.array([0.5, 1.5, 4.0], dtype=np.float32)
    x = simulate_counts.sample_nb(rng, np.tile(mean, (60_000, 1)), theta).toarray()
    var = mean + mean**2 / theta
    assert np.allclose(x.mean(axis=0), mean, rtol=0.03)
    assert np.allclose(x.var(axis=0), var, rtol=0.08)
    p0 = (theta / (theta + mean)) ** theta
    assert np.allclose((x == 0).mean(axis=0), p0, atol=0.01)


# --- bytes ---------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = simulate.simulate_m1(300, 400, seed=3, required_genes=REQUIRED)
    b = simulate.simulate_m1(300, 400, seed=3, required_genes=REQUIRED)
    c = simulate.simulate_m1(300, 400, seed=4, required_genes=REQUIRED)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_a_gene_has_the_same_expression_whatever_the_panel() -> None:
    small = simulate.simulate_m1(200, 500, seed=0, required_genes=REQUIRED)
    large = simulate.simulate_m1(200, 2000, seed=0, required_genes=REQUIRED)
    # same per-gene parameters: the mean of a shared gene agrees within sampling noise
    m_small = pd.Series(counts.gene_means(small.X), index=small.var_names)
    m_large = pd.Series(counts.gene_means(large.X), index=large.var_names)
    assert m_small["NEFL"] == pytest.approx(m_large["NEFL"], rel=0.25)


def test_cellxgene_schema() -> None:
    a = simulate.simulate_m1(200, 300, seed=1, schema="cellxgene")
    assert a.var_names.str.fullmatch(r"ENSG\d{11}").all()
    assert "CUX2" in set(a.var["feature_name"])
    assert {"feature_name", "feature_is_filtered"} <= set(a.var)
    assert {"cell_type", "supercluster_term", "donor_id", "sample_id"} <= set(a.obs)
    assert a.X.dtype == np.float32 and sp.issparse(a.X)
    assert not np.array_equal(a.X.data, np.round(a.X.data))
    raw = a.raw.X
    assert raw.dtype == np.float32 and np.array_equal(raw.data, np.round(raw.data))
    plain = simulate.simulate_m1(200, 300, seed=1)
    assert (sp.csr_matrix(raw) != plain.layers["counts"]).nnz == 0


# --- gene sets behave as on a real file -----------------------------------------------------


def test_unknown_symbols_of_a_set_are_reported_missing_and_a_set_of_non_genes_stops():
    from latentshift.errors import GeneSetError
    from latentshift.perturb import genesets as gs

    sets = {
        "MIXED": gs.GeneSet("MIXED", "", ["SOD1", "NEFL", "NOTAGENE1", "NOTAGENE2"]),
        "FAKE": gs.GeneSet("FAKE", "", [f"NOTAGENE{i}" for i in range(1, 6)]),
    }
    required = sorted({g for s in sets.values() for g in s.genes})
    a = simulate.simulate_m1(100, 400, seed=0, required_genes=required)
    table, genes = gs.match_genesets(a, sets, ["MIXED"])
    assert table.loc["MIXED", "n_found"] == 2 and table.loc["MIXED", "missing"] == [
        "NOTAGENE1",
        "NOTAGENE2",
    ]
    with pytest.raises(GeneSetError, match="gene set 'FAKE'.*none of its genes"):
        gs.match_genesets(a, sets, ["FAKE"])


def _donor_spread(adata: ad.AnnData) -> float:
    """Median over well-expressed genes of the sd across donors of the log pseudobulk."""
    X = sp.csr_matrix(adata.X)
    donors = adata.obs["donor_id"].to_numpy()
    bulks = np.vstack([np.asarray(X[donors == d].sum(axis=0)).ravel() for d in np.unique(donors)])
    bulks = bulks / bulks.sum(axis=1, keepdims=True)
    keep = bulks.min(axis=0) * X.sum() / len(bulks) > 200  # enough counts: little Poisson noise
    return float(np.median(np.log(bulks[:, keep]).std(axis=0)))


def test_donor_gene_effects_grow_with_donor_gene_sd_and_default_to_the_calibrated_value():
    kw = {"n_cells": 1200, "n_genes": 300, "seed": 0, "n_donors": 6}
    default = simulate.simulate_m1(**kw)
    assert _digest(default) == _digest(simulate.simulate_m1(**kw, donor_gene_sd=0.1))
    flat = _donor_spread(simulate.simulate_m1(**kw, donor_gene_sd=0.0))
    wide = _donor_spread(simulate.simulate_m1(**kw, donor_gene_sd=0.5))
    assert wide > 0.3 and wide > 3 * flat
    with pytest.raises(DataError, match="donor_gene_sd >= 0"):
        simulate.simulate_m1(**kw, donor_gene_sd=-1.0)
