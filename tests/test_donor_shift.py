"""Per-cell-type AUC and E-test with the donor as the unit (the case–control design)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentshift import donor_shift as ds
from latentshift.errors import CellTypeShiftError


def test_donor_labellings_enumerate_every_choice_when_there_are_few():
    labellings, exact = ds.donor_labellings(4, 2, 1000)
    assert exact and labellings.shape == (6, 4)
    assert (labellings.sum(axis=1) == 2).all()
    assert len({tuple(r) for r in labellings}) == 6
    random, exact = ds.donor_labellings(12, 6, 100, rng=0)
    assert not exact and random.shape == (100, 12) and (random.sum(axis=1) == 6).all()
    with pytest.raises(CellTypeShiftError, match="both sides"):
        ds.donor_labellings(3, 0, 10)


def test_the_donor_e_test_on_a_hand_computable_case():
    # donors a, b (the condition) sit at 0, donors c, d (controls) at 10, three nuclei each.
    # E = 2 (mean_x - mean_y)^2 = 200. Of the 6 ways to choose 2 of 4 donors, {a,b} and
    # {c,d} give 200 and the 4 mixed ones give 0: p = 2/6 exactly, the smallest possible.
    Z = np.repeat([[0.0], [0.0], [10.0], [10.0]], 3, axis=0)
    donors = np.repeat(list("abcd"), 3)
    is_x = np.repeat([True, True, False, False], 3)
    res = ds.donor_edistance_test(Z, is_x, donors, n_permutations=1000)
    assert res["edistance"] == pytest.approx(200.0)
    assert res["exact"] and res["n_permutations"] == 6
    assert res["pvalue"] == pytest.approx(2 / 6) and res["min_pvalue"] == pytest.approx(2 / 6)
    assert res["null_mean"] == pytest.approx(400 / 6)
    with pytest.raises(CellTypeShiftError, match="both sides"):
        ds.donor_edistance_test(Z, np.arange(12) < 4, donors)


def test_donor_e_test_p_values_are_uniform_under_the_null_where_nucleus_shuffles_are_not():
    rng = np.random.default_rng(0)
    donors = np.repeat([f"d{i}" for i in range(8)], 15)
    is_x = np.repeat(np.arange(8) < 4, 15)
    p_donor, p_nucleus = [], []
    for _ in range(120):
        # strong donor effects, no condition effect
        Z = rng.normal(0, 1, (8, 3))[np.repeat(np.arange(8), 15)] + rng.normal(0, 0.5, (120, 3))
        p_donor.append(ds.donor_edistance_test(Z, is_x, donors, n_permutations=1000)["pvalue"])
        # the nucleus-level null for comparison: every nucleus its own "donor"
        p_nucleus.append(
            ds.donor_edistance_test(Z, is_x, np.arange(120), n_permutations=99, seed=rng)["pvalue"]
        )
    p_donor, p_nucleus = np.array(p_donor), np.array(p_nucleus)
    assert 0.02 <= (p_donor <= 0.05).mean() <= 0.10  # about 5 % below 0.05
    assert 0.4 <= np.median(p_donor) <= 0.65
    assert (p_nucleus <= 0.05).mean() > 0.5  # degenerate: donor effects read as disease


def _toy(shift_type: str, shift: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, Z = [], []
    for d in range(12):
        disease = "ALS" if d < 6 else "normal"
        offset = rng.normal(0, 0.3, 4)
        for ct in ("A", "B"):
            n = 60
            z = rng.normal(0, 1, (n, 4)) + offset
            if disease == "ALS" and ct == shift_type:
                z[:, 0] += shift
            Z.append(z)
            rows += [(f"d{d}", disease, ct)] * n
    obs = pd.DataFrame(rows, columns=["donor_id", "condition", "cell_type"])
    obs["condition"] = pd.Categorical(obs["condition"], categories=["normal", "ALS"])
    return obs, np.vstack(Z)


def test_the_shifted_cell_type_ranks_first_and_the_null_stays_at_chance():
    obs, Z = _toy("B", 3.0)
    table = ds.celltype_auc_by_donor(
        {"LDVAE": Z}, obs, "normal", subsample_size=20, n_subsamples=8, n_permutations=8
    )
    by_type = table.set_index("cell_type")
    assert by_type.loc["B", "rank"] == 1 and by_type.loc["B", "above_null"]
    assert by_type.loc["B", "auc_mean"] > 0.9
    assert not by_type.loc["A", "above_null"] and abs(by_type.loc["A", "auc_mean"] - 0.5) < 0.15
    assert (table["n_donors_condition"] == 6).all()
    etest = ds.edistance_table_by_donor({"LDVAE": Z}, obs, "normal", n_permutations=1000)
    e = etest.set_index("cell_type")
    assert e.loc["B", "pvalue"] < 0.01 and e.loc["B", "exact"]
    assert e.loc["A", "pvalue_adj"] > 0.05
    assert e.loc["all", "scope"] == "condition"


def test_a_cell_type_with_one_donor_on_a_side_is_listed_untested():
    obs, Z = _toy("B", 1.0)
    keep = ~((obs["cell_type"] == "A") & (obs["donor_id"] != "d0") & (obs["condition"] == "ALS"))
    table = ds.celltype_auc_by_donor(
        {"LDVAE": Z[keep.to_numpy()]},
        obs[keep].reset_index(drop=True),
        "normal",
        n_subsamples=2,
        n_permutations=2,
    )
    row = table.set_index("cell_type").loc["A"]
    assert not row["testable"] and "(60 nuclei from 1 donor(s) vs 360 from 6)" in row["reason"]
