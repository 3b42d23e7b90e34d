"""Condition shifts per latent factor (latentshift.readings.factor_shifts), the unit counted once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentshift.design import folds as F
from latentshift.design import units as U
from latentshift.errors import LoadingsError
from latentshift.readings import factor_shifts as FS


def test_paired_differences_pairs_by_source_cell():
    obs = pd.DataFrame(
        {
            "condition": ["D", "normal", "normal", "D", "D"],
            "source_cell": ["b", "a", "b", "a", "c"],
            "split": ["test"] * 5,
            "perturbed": [True, False, False, True, True],
        }
    )
    latent = np.array([[10.0], [1.0], [2.0], [30.0], [99.0]])
    d = FS.paired_differences(latent, obs, "D", cells="all")
    # c has no normal cell and is dropped; b: 10-2, a: 30-1
    assert sorted(d.ravel().tolist()) == [8.0, 29.0]


def test_paired_differences_test_cells_only_and_unperturbed_dropped():
    obs = pd.DataFrame(
        {
            "condition": ["normal", "D", "normal", "D", "normal", "D"],
            "source_cell": ["a", "a", "b", "b", "c", "c"],
            "split": ["test", "test", "train", "train", "test", "test"],
            "perturbed": [False, True, False, True, False, False],
        }
    )
    latent = np.array([[0.0], [1.0], [0.0], [5.0], [0.0], [7.0]])
    assert FS.paired_differences(latent, obs, "D", cells="test").ravel().tolist() == [1.0]
    assert sorted(FS.paired_differences(latent, obs, "D", cells="all").ravel().tolist()) == [
        1.0,
        5.0,
    ]
    assert sorted(
        FS.paired_differences(latent, obs, "D", cells="test", perturbed_only=False).ravel().tolist()
    ) == [1.0, 7.0]


def test_paired_differences_bad_input_names_fix():
    obs = pd.DataFrame({"condition": ["normal"], "source_cell": ["a"]})
    with pytest.raises(LoadingsError, match="not in obs"):
        FS.paired_differences(np.zeros((1, 2)), obs, "ALS", cells="all")
    with pytest.raises(LoadingsError, match="'test' or 'all'"):
        FS.paired_differences(np.zeros((1, 2)), obs, "normal", cells="some")


def _donors(paired: bool, shift: float = 2.0, n: int = 6, seed: int = 0):
    """Donors with 20 nuclei each on 3 factors; the condition moves factor 0 by ``shift``."""
    rng = np.random.default_rng(seed)
    donor = np.repeat([f"d{i}" for i in range(n)], 20)
    if paired:
        cond = np.tile(np.repeat(["normal", "ALS"], 10), n)
    else:
        cond = np.repeat(["ALS" if i < n // 2 else "normal" for i in range(n)], 20)
    latent = rng.normal(0, 0.3, (n, 3))[np.repeat(np.arange(n), 20)] + rng.normal(
        0, 0.2, (n * 20, 3)
    )
    latent[cond == "ALS", 0] += shift
    obs = pd.DataFrame({"condition": cond, "source_cell": [f"n{i}" for i in range(n * 20)]})
    units = U.Units(donor, cond, ("normal", "ALS"), paired, "donor")
    return latent, obs, units


@pytest.mark.parametrize("paired", [True, False])
def test_a_donor_design_counts_each_donor_once(paired):
    latent, obs, units = _donors(paired)
    shifts = FS.factor_shifts(latent, obs, ["ALS"], ["a", "b", "c"], cells="all", units=units)
    top = shifts.set_index("factor").loc["a"]
    assert top["rank"] == 1 and top["mean_shift"] == pytest.approx(2.0, abs=0.6)
    assert top["n_pairs"] == (6 if paired else 3)
    assert top["ci_low"] < top["mean_shift"] < top["ci_high"]


def test_paired_donor_differences_are_each_donors_own():
    latent, obs, units = _donors(True, shift=0.0, n=3)
    latent[:] = 0.0
    latent[units.condition == "ALS", 1] = np.repeat([1.0, 2.0, 3.0], 10)  # per-donor shifts
    diffs = FS.paired_differences(latent, obs, "ALS", cells="all", units=units)
    assert diffs[:, 1].tolist() == [1.0, 2.0, 3.0] and (diffs[:, [0, 2]] == 0).all()


def test_unpaired_shift_by_hand():
    # two donors per side with donor means 0, 2 (controls) and 5, 7 (cases) on one factor
    donor = np.repeat(["a", "b", "c", "d"], 2)
    cond = np.repeat(["normal", "normal", "ALS", "ALS"], 2)
    latent = np.array([[-1.0], [1.0], [2.0], [2.0], [5.0], [5.0], [6.0], [8.0]])
    units = U.Units(donor, cond, ("normal", "ALS"), False, "donor")
    obs = pd.DataFrame({"condition": cond, "source_cell": list("abcdefgh")})
    row = FS.factor_shifts(latent, obs, ["ALS"], cells="all", units=units).iloc[0]
    assert row["mean_shift"] == pytest.approx(5.0)  # (5 + 7) / 2 - (0 + 2) / 2
    assert row["sd_shift"] == pytest.approx(np.sqrt(2.0))  # pooled sd of the donor means
    assert row["effect_size"] == pytest.approx(5.0 / np.sqrt(2.0))
    with pytest.raises(LoadingsError, match="2 donors per side"):
        FS.factor_shifts(
            latent[:6], obs.iloc[:6], ["ALS"], cells="all", units=units.take(np.arange(6))
        )


def test_auto_cells_are_test_for_a_held_out_fraction_and_all_for_folds():
    fold = np.array([0, 1, 1])
    assert FS.resolve_cells("auto", F.Folds(fold, (0,), "held-out", 2)) == "test"
    assert FS.resolve_cells("auto", F.Folds(fold, (0, 1), "units", 2)) == "all"
    assert FS.resolve_cells("test", F.Folds(fold, (0, 1), "units", 2)) == "test"
    with pytest.raises(LoadingsError, match="loadings.cells"):
        FS.resolve_cells("some", None)
