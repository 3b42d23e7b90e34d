"""The units engine (latentshift.design.units): pairing, folds, the label null, bootstrap, unit scores."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift.design import folds as F
from latentshift.design import nulls as N
from latentshift.design import units as U
from latentshift.errors import DesignError, LatentshiftError


def _units(per_unit: dict[str, list[str]], paired: bool, labels=("normal", "ALS")) -> U.Units:
    """Units from {unit: [condition of each of its cells]}."""
    unit = np.array([u for u, cs in per_unit.items() for _ in cs])
    cond = np.array([c for cs in per_unit.values() for c in cs])
    return U.Units(unit, cond, tuple(labels), paired, "donor")


# --- pairing --------------------------------------------------------------------------------


def test_paired_auto_on_paired_unpaired_and_mixed_inputs():
    donors = ["a", "a", "b", "b", "c", "c"]
    assert U.resolve_paired(["n", "s"] * 3, donors) is True
    assert U.resolve_paired(["n", "n", "s", "s", "n", "n"], donors) is False
    mixed = ["n", "s", "s", "s", "n", "n"]  # a in both, b and c in one
    with pytest.raises(
        DesignError, match=r"1 donor\(s\) hold every condition, 2 hold one only"
    ) as e:
        U.resolve_paired(mixed, donors)
    assert "b (s)" in str(e.value) and "c (n)" in str(e.value)
    assert issubclass(DesignError, LatentshiftError)


def test_a_pairing_that_does_not_fit_is_refused_with_the_fix():
    donors = ["a", "a", "b", "b"]
    with pytest.raises(DesignError, match="lack a condition.*b"):
        U.resolve_paired(["n", "s", "n", "n"], donors, paired=True)
    with pytest.raises(DesignError, match="more than one condition.*paired: auto"):
        U.resolve_paired(["n", "s", "n", "s"], donors, paired=False)


def test_units_of_counts_the_units_a_design_needs():
    obs = pd.DataFrame({"donor_id": list("aabb"), "condition": ["n", "s", "n", "s"]})
    units = U.units_of(obs, "donor_id", labels=["n", "s"])
    assert units.paired and units.name == "donor" and units.n_units == 2
    one = pd.DataFrame({"donor_id": list("aabc"), "condition": ["n", "n", "s", "s"]})
    with pytest.raises(DesignError, match="'n' \\(1 donor\\)"):
        U.units_of(one, "donor_id")
    with pytest.raises(DesignError, match="no 'fold'|no 'donor_x'"):
        U.units_of(obs, "donor_x")


# --- folds ----------------------------------------------------------------------------------


def test_group_kfold_never_splits_a_group():
    groups = np.repeat(np.arange(30), 2)
    labels = np.tile([0, 1], 30)
    folds = F.group_kfold(labels, groups, n_folds=3, seed=1)
    assert len(folds) == 3
    seen = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(seen), np.arange(60))  # every cell tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(labels[test]) == {0, 1}
    again = F.group_kfold(labels, groups, n_folds=3, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    with pytest.raises(DesignError, match="number of groups"):
        F.group_kfold([0, 1, 0, 1], [0, 0, 1, 1], n_folds=3)


@settings(max_examples=40, deadline=None)
@given(
    n_units=st.integers(2, 9),
    paired=st.booleans(),
    n_folds=st.integers(2, 6),
    sizes=st.lists(st.integers(1, 6), min_size=9, max_size=9),
    seed=st.integers(0, 1000),
)
def test_unit_folds_never_split_a_unit(n_units, paired, n_folds, sizes, seed):
    per_unit = {}
    for i in range(n_units):
        if paired:
            per_unit[f"u{i}"] = ["normal"] * sizes[i] + ["ALS"] * sizes[-1 - i]
        else:
            per_unit[f"u{i}"] = ["ALS" if i % 2 else "normal"] * sizes[i]
    units = _units(per_unit, paired)
    if not paired and n_units < 4:
        with pytest.raises(DesignError, match="at least 2"):
            F.unit_folds(units, n_folds, seed)
        return
    folds = F.unit_folds(units, n_folds, seed)
    assert F.units_across(folds, units.unit) == 0
    k = np.unique(folds).size
    assert 2 <= k <= n_folds
    # every training side keeps both conditions
    assert F.Folds(folds, tuple(range(k)), "units", n_folds, seed).problem(units.condition) is None
    assert (F.unit_folds(units, n_folds, seed) == folds).all()  # seeded


def test_cell_folds_put_units_on_both_sides():
    units = _units({u: ["normal", "ALS"] * 10 for u in "abcd"}, True)
    folds = F.cell_folds(units.condition, 4, seed=0)
    assert F.units_across(folds, units.unit) == 4


def test_held_out_fraction_takes_whole_units_per_stratum():
    unit = np.repeat([f"s{i}" for i in range(20)], 3)
    strata = np.repeat(["a"] * 10 + ["b"] * 10, 3)
    train = F.held_out_fraction(unit, strata, 0.7, seed=0)
    assert F.units_across(train, unit) == 0
    assert train[strata == "a"].sum() == train[strata == "b"].sum() == 21  # 7 units of 3 cells


def test_folds_are_dealt_again_for_an_unpaired_relabelling():
    # 4 cases, 2 controls, 2 folds: fixed folds would let a relabelling put both 'controls' in
    # one fold, so that the other fold trains on cases only
    units = _units({f"d{i}": ["ALS" if i < 4 else "normal"] * 5 for i in range(6)}, False)
    folds = F.Folds(F.unit_folds(units, 2, seed=0), (0, 1), "units", 2, 0)
    rel = N.relabel(units, 100, 0)
    assert rel.exact and len(rel) == 15
    fixed = [folds.problem(rel.conditions(i)) for i in range(len(rel))]
    assert any(fixed)  # the bug the re-dealing fixes
    for i in range(len(rel)):
        redealt = folds.redeal(units.with_conditions(rel.conditions(i)))
        assert redealt.problem(rel.conditions(i)) is None


# --- the label null -------------------------------------------------------------------------


def test_relabelling_within_units_moves_labels_only_inside_a_unit():
    units = _units({"a": ["normal", "ALS"], "b": ["ALS", "normal"], "c": ["normal", "ALS"]}, True)
    rel = N.relabel(units, 5, rng=0)  # 2^3 = 8 > 5: sampled
    assert not rel.exact and len(rel) == 5 and rel.min_pvalue == pytest.approx(1 / 6)
    for i in range(len(rel)):
        new = rel.conditions(i)
        for u in "abc":
            assert sorted(new[units.unit == u]) == ["ALS", "normal"]
    many = N.relabel(_units({f"u{i}": ["normal", "ALS"] for i in range(30)}, True), 50, 0)
    assert len({row.tobytes() for row in many.codes}) > 40  # the units do get shuffled


def test_paired_null_on_a_tiny_case_is_exact():
    # 3 donors, each shifted up by its own amount; statistic: the mean within-donor difference.
    units = _units({d: ["normal"] * 2 + ["ALS"] * 2 for d in "abc"}, True)
    value = np.repeat([0.0, 1.0, 0.0, 2.0, 0.0, 4.0], 2)  # shifts 1, 2, 4

    def stat(cond: np.ndarray) -> float:
        diffs = [
            value[(units.unit == d) & (cond == "ALS")].mean()
            - value[(units.unit == d) & (cond == "normal")].mean()
            for d in "abc"
        ]
        return float(np.mean(diffs))

    rel = N.relabel(units, 100, 0)
    assert rel.exact and len(rel) == 8 and rel.n_equivalent == 2
    null = [stat(rel.conditions(i)) for i in range(len(rel))]
    # by hand: the 8 sign flips of (1, 2, 4) / 3; only all-plus reaches 7/3
    expected = sorted(
        sum(s * x for s, x in zip(signs, (1, 2, 4), strict=True)) / 3
        for signs in itertools.product((1, -1), repeat=3)
    )
    assert sorted(null) == pytest.approx(expected)
    assert rel.pvalue(stat(units.condition), null) == pytest.approx(2 / 8)  # it and its mirror
    assert rel.min_pvalue == pytest.approx(2 / 8)
    # a statistic with its own noise: the relabellings that give the observed grouping back
    # still count as at least as extreme (p never below the design's floor)
    noisy = [v - 10 if same else v for v, same in zip(null, rel.equivalent, strict=True)]
    assert rel.pvalue(stat(units.condition), noisy) == pytest.approx(2 / 8)


def test_unpaired_null_with_four_donors_has_six_relabellings():
    units = _units(
        {d: [c] * 3 for d, c in zip("abcd", ["normal", "normal", "ALS", "ALS"], strict=True)}, False
    )
    rel = N.relabel(units, 10, 0)
    assert rel.exact and len(rel) == 6 and rel.n_equivalent == 2
    assert rel.min_pvalue == pytest.approx(2 / 6)
    # every row relabels whole donors, keeping two donors per condition
    for i in range(6):
        per_donor = pd.Series(rel.conditions(i)).groupby(units.unit).nunique()
        assert (per_donor == 1).all()
        assert (pd.Series(rel.conditions(i)).groupby(units.unit).first() == "ALS").sum() == 2
    unequal = _units(
        {d: [c] for d, c in zip("abcde", ["normal"] * 2 + ["ALS"] * 3, strict=True)}, False
    )
    assert N.relabel(unequal, 100, 0).min_pvalue == pytest.approx(1 / 10)  # C(5, 2), no mirror


def test_a_large_design_is_sampled_and_says_so():
    units = _units(
        {f"u{i}": ["normal", "ALS", "HD"] for i in range(40)}, True, ("normal", "ALS", "HD")
    )
    rel = N.relabel(units, 10, 0)
    assert (
        not rel.exact
        and np.isinf(rel.n_distinct)
        and rel.log10_distinct == pytest.approx(40 * np.log10(6))
    )
    assert "random relabellings of about 10^31" in rel.describe()


# --- bootstrap and unit scores --------------------------------------------------------------


def test_bootstrap_samples_resample_whole_units():
    groups = np.repeat(["a", "b", "c"], [2, 3, 4])
    for sample in U.bootstrap_samples(9, 20, seed=0, groups=groups):
        counts = pd.Series(groups[sample]).value_counts()
        assert all(
            counts[g] % size == 0 for g, size in (("a", 2), ("b", 3), ("c", 4)) if g in counts
        )
    assert U.bootstrap_samples(5, 3, seed=0).shape == (3, 5)


def test_unit_scores_are_an_accuracy_when_paired_and_a_call_when_not():
    paired = _units({"a": ["normal", "ALS"], "b": ["normal", "ALS"]}, True)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    table = U.unit_scores(paired, proba)
    assert table["accuracy"].tolist() == [1.0, 0.5]
    assert U.unit_summary(table, True, n_boot=0)["unit_accuracy"] == 0.75
    unpaired = _units({"a": ["normal", "normal"], "b": ["ALS", "ALS"]}, False)
    table = U.unit_scores(unpaired, proba)
    assert table["predicted"].tolist() == ["normal", "ALS"] and table["correct"].all()
    summary = U.unit_summary(table, False)
    assert summary["unit_accuracy"] == 1.0 and summary["unit_accuracy_low"] == pytest.approx(
        0.158, abs=1e-3
    )
