"""Augur-style per-cell-type AUC (latentshift.readings.detectability): known answers, grouping, seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from latentshift.design.nulls import relabel
from latentshift.design.units import Units
from latentshift.errors import CellTypeShiftError, LatentshiftError
from latentshift.readings.augur_draws import (
    auc_score,
    cv_auc,
    draw_subsamples,
    within_unit_pairs,
)
from latentshift.readings.celltype_shift import compare_representations, detectability_headline
from latentshift.readings.detectability import (
    AUC_COLUMNS,
    celltype_auc,
    celltype_auc_by_representation,
)

FAST = {"subsample_size": 10, "n_subsamples": 4, "n_folds": 3, "n_permutations": 4}


def paired_data(
    sizes: dict[str, int],
    *,
    shifted: tuple[tuple[str, str], ...] = (),
    shift: float = 10.0,
    noise: float = 0.0,
    conditions: tuple[str, ...] = ("ALS", "HD"),
    d: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Normal cells plus one copy per condition; copies = source + noise (+ shift in dim 0)."""
    rng = np.random.default_rng(seed)
    cts = np.repeat(list(sizes), list(sizes.values()))
    centers = {ct: rng.normal(0, 3, d) for ct in sizes}
    base = np.stack([centers[c] for c in cts]) + rng.normal(size=(cts.size, d))
    src = np.array([f"cell{i:04d}" for i in range(cts.size)])
    blocks = [base]
    frames = [
        pd.DataFrame(
            {"condition": "normal", "cell_type": cts, "source_cell": src, "perturbed": False}
        )
    ]
    for cond in conditions:
        z = base + noise * rng.normal(size=base.shape)
        hit = np.zeros(cts.size, bool)
        for c, t in shifted:
            if c == cond:
                hit |= cts == t
        z[hit, 0] += shift
        blocks.append(z)
        frames.append(
            pd.DataFrame(
                {"condition": cond, "cell_type": cts, "source_cell": src, "perturbed": hit}
            )
        )
    obs = pd.concat(frames, ignore_index=True)
    obs["condition"] = pd.Categorical(obs["condition"], ["normal", *conditions])
    return np.vstack(blocks), obs


# --- the AUC itself -----------------------------------------------------------------------------


def test_auc_hand_computed():
    # positives 0.35, 0.8 against negatives 0.1, 0.4: 3 of 4 pairs ordered right
    assert auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc_score([0, 1], [0.2, 0.9]) == 1.0
    assert auc_score([0, 1], [0.9, 0.2]) == 0.0
    assert auc_score([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count one half


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=4, max_size=30), st.integers(0, 10_000))
def test_auc_matches_sklearn(values, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(len(values)) % 2)
    assert auc_score(y, values) == pytest.approx(roc_auc_score(y, values))


def test_auc_needs_both_classes():
    with pytest.raises(CellTypeShiftError):
        auc_score([1, 1], [0.1, 0.2])


# --- folds and subsamples -----------------------------------------------------------------------


def _pairs(n: int = 50) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows 0..n-1 normal cells, 100..100+n-1 their copies; unit u<i> for each pair."""
    unit = np.array([f"u{i % 100:03d}" for i in range(100 + n)])
    pairs = within_unit_pairs(np.arange(n), np.arange(100, 100 + n), unit, np.random.default_rng(0))
    return unit, pairs


@pytest.mark.parametrize("permute", [False, True])
def test_draws_keep_pairs_together_and_balanced(permute):
    unit, pairs = _pairs()
    partner = dict(zip(pairs["normal"], pairs["copy"], strict=True))
    partner |= {v: k for k, v in partner.items()}
    is_cond = np.arange(len(unit)) >= 100
    if permute:  # one relabelling of the pairs' units: labels swapped within some pairs
        cells = np.concatenate([pairs["normal"], pairs["copy"]])
        units = Units(
            unit[cells], np.where(is_cond[cells], "ALS", "normal"), ("normal", "ALS"), True
        )
        is_cond = is_cond.copy()
        is_cond[cells] = relabel(units, 1, 3).conditions(0) == "ALS"
    draws = draw_subsamples(
        unit, is_cond, pairs=pairs, pool=None, subsample_size=12, n_draws=5, n_folds=3, rng=3
    )
    for d in draws:
        assert d.cells.size == 24 and d.labels.sum() == 12  # equal-sized: 12 per condition
        assert (is_cond[d.cells] == d.labels).all()
        for i in range(12):  # pair i: its two cells, one of each label, in the same unit
            assert partner[d.cells[i]] == d.cells[12 + i] and d.groups[i] == d.groups[12 + i]
        for train, test in d.folds:  # a copy and its source are never on opposite sides
            assert not set(d.cells[train]) & {partner[c] for c in d.cells[test]}
            assert not set(d.groups[train]) & set(d.groups[test])
        if not permute:
            assert set(d.cells[:12]) < set(range(50)) and set(d.cells[12:]) < set(range(100, 150))


def test_permuted_draws_do_permute():
    unit, pairs = _pairs(40)
    cells = np.concatenate([pairs["normal"], pairs["copy"]])
    units = Units(unit[cells], np.where(cells >= 100, "ALS", "normal"), ("normal", "ALS"), True)
    is_cond = np.zeros(len(unit), bool)
    is_cond[cells] = relabel(units, 1, 0).conditions(0) == "ALS"
    (draw,) = draw_subsamples(
        unit, is_cond, pairs=pairs, pool=None, subsample_size=20, n_draws=1, n_folds=2, rng=0
    )
    assert (draw.cells[:20] >= 100).any()  # some copies now carry the reference label


def test_within_unit_pairs_pair_each_units_cells():
    unit = np.array(["s1", "s2", "s1", "s3", "d1", "d1", "d1", "d1", "d1"])
    # a source cell: one cell each side; s2 has no copy, s3 no normal cell
    pairs = within_unit_pairs(np.array([0, 1]), np.array([2, 3]), unit, np.random.default_rng(0))
    assert pairs.to_dict("list") == {"unit": ["s1"], "normal": [0], "copy": [2]}
    # a donor with 2 reference and 3 condition nuclei: 2 pairs of its own nuclei, matched at random
    pairs = within_unit_pairs(np.array([4, 5]), np.array([6, 7, 8]), unit, np.random.default_rng(0))
    assert len(pairs) == 2 and set(pairs["normal"]) == {4, 5} and set(pairs["copy"]) < {6, 7, 8}


# --- known answers on whole tables --------------------------------------------------------------


def test_perfectly_separable_gives_auc_one():
    Z, obs = paired_data(
        {"shifted": 30, "plain": 30}, shifted=(("ALS", "shifted"),), conditions=("ALS",)
    )
    table = celltype_auc(Z, obs, **FAST).set_index("cell_type")
    hit = table.loc["shifted"]
    assert hit["auc_mean"] == 1.0 and hit["auc_sd"] == 0.0 and hit["auc_low"] == 1.0
    assert hit["null_mean"] < 0.9 and hit["above_null"] and hit["rank"] == 1
    assert hit["n_perturbed"] == 30 and hit["n_source_cells"] == 30 and hit["n_cells"] == 60
    # identical copies: a copy and its source get the same score, so the AUC is exactly 0.5
    plain = table.loc["plain"]
    assert plain["auc_mean"] == 0.5 and plain["null_mean"] == 0.5 and not plain["above_null"]
    assert plain["n_perturbed"] == 0


def test_null_auc_within_permutation_spread():
    Z, obs = paired_data({"a": 40, "b": 40}, noise=1.0, conditions=("ALS",), seed=2)
    table = celltype_auc(Z, obs, subsample_size=20, n_subsamples=6, n_permutations=12)
    assert table["testable"].all()
    for _, row in table.iterrows():
        assert row["null_low"] <= row["auc_mean"] <= row["null_high"]
        assert abs(row["null_mean"] - 0.5) < 0.12


def test_small_cell_types_are_listed_not_dropped():
    Z, obs = paired_data({"big": 20, "tiny": 6}, conditions=("ALS",))
    table = celltype_auc(Z, obs, **FAST).set_index("cell_type")
    assert list(table.columns) == [c for c in AUC_COLUMNS if c != "cell_type"]
    tiny = table.loc["tiny"]
    assert not tiny["testable"] and "fewer than 10 pairs" in tiny["reason"]
    assert "(6)" in tiny["reason"]
    assert np.isnan(tiny["auc_mean"]) and pd.isna(tiny["rank"])
    assert table.loc["big", "testable"] and table.loc["big", "reason"] == ""


def test_deterministic_for_a_seed_and_independent_of_other_units():
    Z, obs = paired_data({"a": 25, "b": 25}, noise=1.0, shifted=(("ALS", "a"),), shift=1.0, seed=4)
    one = celltype_auc(Z, obs, seed=7, **FAST)
    two = celltype_auc(Z, obs, seed=7, **FAST)
    pd.testing.assert_frame_equal(one, two)
    other = celltype_auc(Z, obs, seed=8, **FAST)
    assert not np.allclose(one["auc_mean"], other["auc_mean"])
    # a unit's draws depend only on the seed and its names, not on the other conditions
    only_als = celltype_auc(Z, obs, conditions=["ALS"], seed=7, **FAST)
    pd.testing.assert_frame_equal(only_als, one[one["condition"] == "ALS"].reset_index(drop=True))


def test_representations_side_by_side_share_draws():
    Z, obs = paired_data({"a": 25, "b": 25}, noise=1.0, shifted=(("HD", "b"),), shift=3.0, seed=5)
    table = celltype_auc_by_representation(
        {"LDVAE": Z, "copy": Z.copy(), "PCA": Z[:, ::-1]}, obs, **FAST
    )
    assert list(pd.unique(table["representation"])) == ["LDVAE", "copy", "PCA"]
    a = table[table["representation"] == "LDVAE"].reset_index(drop=True)
    b = table[table["representation"] == "copy"].reset_index(drop=True)
    pd.testing.assert_series_equal(a["auc_mean"], b["auc_mean"])
    wide = compare_representations(table)
    assert list(wide.columns) == ["LDVAE", "copy", "PCA"]
    head = detectability_headline(table)
    top = head[(head["representation"] == "LDVAE") & (head["condition"] == "HD")].iloc[0]
    assert (
        top["top_cell_type"] == "b" and top["auc_mean"] > top["null_high"] and top["top_above_null"]
    )
    assert top["n_tested"] == 2 and top["n_untested"] == 0


def test_cv_auc_of_a_draw():
    Z, obs = paired_data({"a": 20}, shifted=(("ALS", "a"),), conditions=("ALS",))
    unit = obs["source_cell"].to_numpy()
    cond = obs["condition"].astype(str).to_numpy()
    normal, copy = np.flatnonzero(cond == "normal"), np.flatnonzero(cond == "ALS")
    pairs = within_unit_pairs(normal, copy, unit, np.random.default_rng(0))
    (draw,) = draw_subsamples(
        unit, cond == "ALS", pairs=pairs, pool=None, subsample_size=12, n_draws=1, rng=0
    )
    assert cv_auc(Z, draw) == 1.0
    assert cv_auc(Z, draw, classifier="random_forest") == 1.0


# --- errors -------------------------------------------------------------------------------------


def test_errors_are_user_fixable():
    Z, obs = paired_data({"a": 12}, conditions=("ALS",))
    with pytest.raises(CellTypeShiftError, match="rows but obs has"):
        celltype_auc(Z[:-1], obs)
    with pytest.raises(CellTypeShiftError, match="no column"):
        celltype_auc(Z, obs.drop(columns="source_cell"))
    with pytest.raises(CellTypeShiftError, match="not conditions to test"):
        celltype_auc(Z, obs, conditions=["PD"])
    with pytest.raises(CellTypeShiftError, match="reference"):
        celltype_auc(Z, obs, conditions=["normal"])
    with pytest.raises(CellTypeShiftError, match="min_cells"):
        celltype_auc(Z, obs, min_cells=5, subsample_size=10)
    with pytest.raises(CellTypeShiftError, match="unknown classifier"):
        celltype_auc(Z, obs, classifier="svm")
    bad = Z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(LatentshiftError, match="NaN"):
        celltype_auc(bad, obs)
    assert issubclass(CellTypeShiftError, ValueError)


def test_auc_figure_lists_untested_cell_types():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentshift.figures.shift_plots import plot_celltype_auc, plot_pvalue_uniformity

    Z, obs = paired_data({"a": 20, "b": 20, "tiny": 4}, shifted=(("ALS", "a"),), noise=0.5)
    table = celltype_auc_by_representation({"LDVAE": Z, "PCA": Z[:, ::-1]}, obs, **FAST)
    fig = plot_celltype_auc(table)
    assert len(fig.axes) == 4  # conditions x representations
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].startswith("a ") and labels[-1] == "tiny (4)"
    assert any(t.get_text() == "not tested" for t in fig.axes[0].texts)
    assert plot_pvalue_uniformity(table, column="auc_pvalue") is not None
    plt.close("all")
