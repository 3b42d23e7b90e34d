"""E-distance and E-test (latentshift.readings.edistance): hand-computed cases, properties, the table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist
from scipy.stats import kstest

from latentshift.errors import CellTypeShiftError
from latentshift.readings.edistance import EDISTANCE_COLUMNS, edistance_table
from latentshift.readings.etest import edistance, edistance_test
from tests.test_detectability import paired_data


def by_definition(X, Y, metric, unbiased=False):
    """E = 2 delta - sigma_X - sigma_Y straight from the pairwise matrices."""
    X, Y = np.atleast_2d(X), np.atleast_2d(Y)
    dxx, dyy, dxy = (cdist(a, b, metric=metric) for a, b in ((X, X), (Y, Y), (X, Y)))
    n, m = len(X), len(Y)
    if unbiased:
        return 2 * dxy.mean() - dxx.sum() / (n * (n - 1)) - dyy.sum() / (m * (m - 1))
    return 2 * dxy.mean() - dxx.mean() - dyy.mean()


# --- hand-computed ------------------------------------------------------------------------------


def test_edistance_hand_computed_1d():
    X, Y = [[0.0], [2.0]], [[3.0], [5.0]]
    # squared: delta = (9 + 25 + 1 + 9) / 4 = 11; sigma_X = (0 + 4 + 4 + 0) / 4 = 2 = sigma_Y
    assert edistance(X, Y) == pytest.approx(2 * 11 - 2 - 2)  # 18 = 2 * (1 - 4)^2
    # unbiased (i != j): sigma_X = sigma_Y = 4
    assert edistance(X, Y, unbiased=True) == pytest.approx(22 - 4 - 4)
    # euclidean: delta = (3 + 5 + 1 + 3) / 4 = 3; sigma = (0 + 2 + 2 + 0) / 4 = 1
    assert edistance(X, Y, metric="euclidean") == pytest.approx(6 - 1 - 1)
    assert edistance(X, Y, metric="euclidean", unbiased=True) == pytest.approx(6 - 2 - 2)


def test_edistance_hand_computed_2d_three_points():
    X, Y = [[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0]]
    # euclidean: delta = (1 + sqrt 2) / 2, sigma_X = (0 + 1 + 1 + 0) / 4, sigma_Y = 0
    assert edistance(X, Y, metric="euclidean") == pytest.approx(1 + math.sqrt(2) - 0.5)
    # squared: delta = (1 + 2) / 2, sigma_X = 2 / 4: 3 - 0.5 = 2.5 = 2 * |(0.5, 0) - (0, 1)|^2
    assert edistance(X, Y) == pytest.approx(2.5)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_edistance_matches_the_pairwise_definition(metric, unbiased):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(17, 5)), rng.normal(0.4, 1.3, size=(11, 5))
    assert edistance(X, Y, metric=metric, unbiased=unbiased) == pytest.approx(
        by_definition(X, Y, metric, unbiased), rel=1e-10
    )


finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 8), st.just(3)), elements=finite),
    arrays(np.float64, st.tuples(st.integers(1, 8), st.just(3)), elements=finite),
    arrays(np.float64, (3,), elements=finite),
    st.sampled_from(["sqeuclidean", "euclidean"]),
)
def test_edistance_properties(X, Y, shift, metric):
    e = edistance(X, Y, metric=metric)
    scale = 1.0 + np.abs(np.vstack([X, Y])).max() ** 2
    assert e >= -1e-9 * scale  # the V-statistic is a squared distance of empirical laws
    assert e == pytest.approx(edistance(Y, X, metric=metric), abs=1e-9 * scale)  # symmetric
    assert e == pytest.approx(edistance(X + shift, Y + shift, metric=metric), abs=1e-8 * scale)
    assert edistance(X, X, metric=metric) == pytest.approx(0.0, abs=1e-9 * scale)
    assert e == pytest.approx(by_definition(X, Y, metric), abs=1e-8 * scale)


# --- the permutation test -----------------------------------------------------------------------


def test_donor_e_test_is_exact_on_a_hand_computable_case():
    # 4 donors, 2 against 2, donor effects but no condition effect: C(4, 2) = 6 relabellings,
    # the observed one and its mirror give the same E, so p >= 2/6
    Z = np.repeat([[0.0], [10.0], [0.5], [9.5]], 5, axis=0)
    donors = np.repeat(["a", "b", "c", "d"], 5)
    X, Y = Z[:10], Z[10:]  # a, b against c, d: E is near 0, any other split is far apart
    res = edistance_test(
        X, Y, n_permutations=100, seed=0, pairs=(donors[:10], donors[10:]), paired=False
    )
    assert res.exact and res.n_permutations == 6 and res.min_pvalue == pytest.approx(2 / 6)
    assert res.pvalue == 1.0
    X, Y = Z[[*range(5), *range(10, 15)]], Z[[*range(5, 10), *range(15, 20)]]  # a, c vs b, d
    res = edistance_test(
        X,
        Y,
        n_permutations=100,
        seed=0,
        pairs=(donors[[*range(5), *range(10, 15)]], donors[[*range(5, 10), *range(15, 20)]]),
        paired=False,
    )
    assert res.pvalue == pytest.approx(2 / 6)  # the largest E: only it and its mirror


def test_paired_donor_e_test_has_two_to_the_donors_relabellings():
    rng = np.random.default_rng(0)
    donors = np.repeat(["a", "b", "c"], 10)
    Y = rng.normal(size=(30, 2)) + np.repeat([[0.0, 0], [5, 0], [0, 5]], 10, axis=0)
    X = Y + np.array([3.0, 0])  # every donor shifted the same way
    res = edistance_test(X, Y, n_permutations=100, seed=0, pairs=(donors, donors), paired=True)
    assert res.exact and res.n_permutations == 2**3
    assert res.pvalue == res.min_pvalue == pytest.approx(2 / 8)


def test_identical_groups_give_zero_and_large_p():
    X = np.random.default_rng(1).normal(size=(30, 4))
    res = edistance_test(X, X.copy(), n_permutations=99, seed=0)
    assert res.edistance == pytest.approx(0.0, abs=1e-12)
    assert res.pvalue == 1.0  # every relabelling is at least as far apart
    paired = edistance_test(
        X, X.copy(), n_permutations=99, seed=0, pairs=(np.arange(30), np.arange(30))
    )
    assert paired.pvalue == 1.0 and paired.null_sd == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_shifted_groups_reach_the_smallest_p(pairs, metric):
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(40, 3))
    X = Y + 0.1 * rng.normal(size=Y.shape) + np.array([3.0, 0, 0])
    blocks = (np.arange(40), np.arange(40)) if pairs else None
    res = edistance_test(
        X, Y, n_permutations=199, seed=0, pairs=blocks, metric=metric, n_bootstrap=50
    )
    assert res.pvalue == res.min_pvalue == 1 / 200
    assert res.edistance == pytest.approx(edistance(X, Y, metric=metric))
    assert res.edistance > res.null_high and res.edistance_sd > 0
    assert res.edistance_low < res.edistance_high
    assert res.design == ("paired" if pairs else "unpaired")


def test_etest_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(25, 3)), rng.normal(0.2, 1, size=(25, 3))
    a = edistance_test(X, Y, n_permutations=99, seed=5, n_bootstrap=20)
    b = edistance_test(X, Y, n_permutations=99, seed=5, n_bootstrap=20)
    assert a == b


@pytest.mark.parametrize("paired", [False, True])
def test_null_pvalues_are_uniform(paired):
    rng = np.random.default_rng(4)
    ps = []
    for _ in range(150):
        base = rng.normal(size=(20, 2))
        if paired:  # exchangeable pairs: copy and source differ by symmetric noise
            X, Y = (
                base + 0.5 * rng.normal(size=base.shape),
                base + 0.5 * rng.normal(size=base.shape),
            )
            blocks = (np.arange(20), np.arange(20))
        else:
            X, Y, blocks = base, rng.normal(size=(20, 2)), None
        ps.append(edistance_test(X, Y, n_permutations=49, seed=rng, pairs=blocks).pvalue)
    ps = np.array(ps)
    assert kstest(ps, "uniform").pvalue > 0.001
    assert 0.0 < np.mean(ps <= 0.1) < 0.22


# --- the table ----------------------------------------------------------------------------------

FAST = {"n_permutations": 99, "n_bootstrap": 20, "min_cells": 10, "max_cells": 200}


def test_table_demo_like_shift():
    Z, obs = paired_data(
        {"shifted": 30, "plain": 30, "tiny": 5},
        noise=0.3,
        shifted=(("ALS", "shifted"), ("HD", "shifted")),
        shift=2.0,
    )
    table = edistance_table({"LDVAE": Z, "PCA": Z[:, ::-1] * 2}, obs, **FAST)
    assert list(table.columns) == list(EDISTANCE_COLUMNS)
    pooled = table[table["scope"] == "condition"]
    assert len(pooled) == 4 and (pooled["cell_type"] == "all").all()
    assert (pooled["pvalue"] == 1 / 100).all() and pooled["at_min_pvalue"].all()
    hit = table[table["cell_type"] == "shifted"]
    assert (hit["pvalue"] == 1 / 100).all() and hit["significant"].all()
    plain = table[table["cell_type"] == "plain"]
    assert (plain["pvalue"] > 0.01).all()
    tiny = table[table["cell_type"] == "tiny"]
    assert not tiny["testable"].any() and tiny["reason"].str.contains("fewer than 10").all()
    assert tiny["pvalue_adj"].isna().all() and not tiny["significant"].any()
    # BH within each representation
    for _, part in table[table["testable"]].groupby("representation"):
        assert (part["pvalue_adj"] >= part["pvalue"] - 1e-15).all()
    assert (table.loc[table["testable"], "n_x"] <= 200).all()
    assert (table["n_perturbed"][table["cell_type"] == "plain"] == 0).all()


def test_table_on_identical_copies_never_rejects():
    Z, obs = paired_data({"a": 30, "b": 25}, noise=0.0)
    paired = edistance_table({"Z": Z}, obs, **FAST)
    assert (paired.loc[paired["testable"], "pvalue"] == 1.0).all()  # degenerate: p = 1 exactly
    unpaired = edistance_table({"Z": Z}, obs, design="unpaired", **FAST)
    tested = unpaired[unpaired["testable"]]
    assert len(tested) == 6 and (tested["pvalue_adj"] >= 0.01).all()
    assert (tested["n_x"] == tested["n_pairs"] // 2).all()


def test_table_max_cells_and_determinism():
    Z, obs = paired_data({"a": 120, "b": 40}, noise=0.5, shifted=(("ALS", "a"),), shift=0.5)
    kw = {**FAST, "max_cells": 50}
    one = edistance_table({"Z": Z}, obs, seed=3, **kw)
    two = edistance_table({"Z": Z}, obs, seed=3, **kw)
    pd.testing.assert_frame_equal(one, two)
    assert (one.loc[one["testable"], ["n_x", "n_y"]] <= 50).all().all()
    assert set(one.loc[one["testable"], "n_x"]) == {50, 40}
    three = edistance_table({"Z": Z}, obs, seed=4, **kw)
    assert not np.allclose(one["null_mean"].fillna(0), three["null_mean"].fillna(0))


def test_table_errors():
    Z, obs = paired_data({"a": 12}, conditions=("ALS",))
    with pytest.raises(CellTypeShiftError, match="design"):
        edistance_table({"Z": Z}, obs, design="crossed")
    with pytest.raises(CellTypeShiftError, match="metric"):
        edistance_table({"Z": Z}, obs, metric="cosine")
    with pytest.raises(CellTypeShiftError, match="rows but obs has"):
        edistance_table({"Z": Z[:5]}, obs)
    with pytest.raises(CellTypeShiftError, match="columns"):
        edistance(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(CellTypeShiftError, match="two cells"):
        edistance([[0.0]], [[1.0], [2.0]], unbiased=True)


def test_edistance_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentshift.figures.shift_plots import (
        plot_edistance,
        plot_pvalue_uniformity,
        significance_mark,
    )

    Z, obs = paired_data({"a": 20, "b": 20, "tiny": 4}, shifted=(("ALS", "a"),), noise=0.5)
    table = edistance_table({"LDVAE": Z, "PCA": Z * 3}, obs, **FAST)
    fig = plot_edistance(table)
    assert len(fig.axes) == 4
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "all cell types (44)" and labels[1].startswith("a ")
    assert any("min" in t.get_text() for t in fig.axes[0].texts)
    assert plot_edistance(table, value="edistance_excess", log_scale=True) is not None
    assert plot_pvalue_uniformity(table) is not None
    assert [significance_mark(p) for p in (0.0005, 0.005, 0.02, 0.2, float("nan"))] == [
        "***",
        "**",
        "*",
        "ns",
        "",
    ]
    plt.close("all")
