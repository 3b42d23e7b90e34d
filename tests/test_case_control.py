"""The case–control design: conditions from obs, donor folds, simulated disease donors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift import config
from latentshift.data.simulate import simulate_m1
from latentshift.design import folds as F
from latentshift.design import units as U
from latentshift.errors import DesignError, LatentshiftError, ParamsError
from latentshift.perturb import case_control as cc


def _obs(donor_conditions: dict[str, str], per_donor: int = 5) -> pd.DataFrame:
    rows = [(d, c) for d, c in donor_conditions.items() for _ in range(per_donor)]
    return pd.DataFrame(rows, columns=["donor_id", "disease"])


def test_conditions_come_from_the_column_with_the_control_first():
    obs = _obs({"a": "ALS", "b": "normal", "c": "ALS", "d": "normal"})
    cond = cc.conditions_from_obs(obs)
    assert list(cond.categories) == ["normal", "ALS"]
    assert (np.asarray(cond) == obs["disease"].to_numpy()).all()


@pytest.mark.parametrize(
    ("obs", "kwargs", "message"),
    [
        (
            _obs({"a": "ALS", "b": "normal"}),
            {"condition_column": "diseases"},
            "Did you mean 'disease'",
        ),
        (_obs({"a": "ALS", "b": "ALS", "c": "ctrl", "d": "ctrl"}), {}, "control value 'normal'"),
        (_obs({"a": "ALS", "b": "normal", "c": "normal"}), {}, r"'ALS' \(1 donor\)"),
        (_obs({"a": "normal", "b": "normal"}), {}, "one condition only"),
    ],
)
def test_a_data_set_that_cannot_be_split_by_donor_is_refused(obs, kwargs, message):
    with pytest.raises(LatentshiftError, match=message):
        cc.conditions_from_obs(obs, **kwargs)


def test_a_mixed_design_and_a_missing_value_are_refused():
    obs = _obs({"a": "ALS", "b": "ALS", "c": "normal", "d": "normal"})
    obs.loc[0, "disease"] = "normal"  # donor a now in both conditions, the others in one
    with pytest.raises(DesignError, match=r"mixed design: 1 donor\(s\) hold every condition"):
        cc.conditions_from_obs(obs)
    with pytest.raises(DesignError, match=r"more than one condition: a \(ALS, normal\)"):
        cc.conditions_from_obs(obs, paired=False)
    obs = _obs({"a": "ALS", "b": "ALS", "c": "normal", "d": "normal"})
    obs.loc[3, "donor_id"] = np.nan
    with pytest.raises(cc.CaseControlError, match="1 nuclei have no value in obs\\['donor_id'\\]"):
        cc.conditions_from_obs(obs)
    assert issubclass(cc.CaseControlError, LatentshiftError)


@settings(max_examples=60, deadline=None)
@given(
    n_case=st.integers(2, 8),
    n_control=st.integers(2, 8),
    n_folds=st.integers(2, 6),
    sizes=st.lists(st.integers(1, 30), min_size=16, max_size=16),
    seed=st.integers(0, 2**16),
)
def test_donor_folds_never_split_a_donor(n_case, n_control, n_folds, sizes, seed):
    conditions = {f"case{i}": "ALS" for i in range(n_case)}
    conditions |= {f"ctrl{i}": "normal" for i in range(n_control)}
    donors = np.repeat(list(conditions), sizes[: len(conditions)])
    labels = np.array([conditions[d] for d in donors])
    units = U.Units(donors, labels, ("normal", "ALS"), False, "donor")
    folds = F.unit_folds(units, n_folds, seed)
    assert F.units_across(folds, donors) == 0
    k = min(n_folds, n_case, n_control)
    assert sorted(np.unique(folds)) == list(range(k))
    for fold in range(k):  # every fold holds out donors of both conditions
        assert set(labels[folds == fold]) == {"ALS", "normal"}
    assert (F.unit_folds(units, n_folds, seed) == folds).all()


def test_folds_of_unequal_make_up_are_named_with_the_fix(caplog):
    donors = np.repeat([f"d{i}" for i in range(12)], 3)
    labels = np.repeat(["HD"] * 6 + ["normal"] * 6, 3)
    units = U.Units(donors, labels, ("normal", "HD"), False, "donor")
    with caplog.at_level("WARNING", logger="latentshift.design.units"):
        folds = F.unit_folds(units, 6, seed=0)
    assert not caplog.records  # 6 folds of 1 + 1
    assert (pd.crosstab(folds, labels) == 3).all().all()
    with caplog.at_level("WARNING", logger="latentshift.design.units"):
        F.unit_folds(units, 4, seed=0)
    assert "unequal numbers" in caplog.text and "case_control.n_folds" in caplog.text


def test_cell_folds_put_donors_on_both_sides():
    donors = np.repeat(["a", "b", "c", "d"], 50)
    labels = np.repeat(["ALS", "ALS", "normal", "normal"], 50)
    folds = F.cell_folds(labels, 4, seed=0)
    assert F.units_across(folds, donors) == 4
    table = cc.fold_table(labels, donors, folds)
    assert table["ALS nuclei"].sum() == 100 and (table["ALS donors"] == 2).all()


GENES = {"ALS_SET": ["SOD1", "TARDBP", "FUS", "OPTN", "VCP"]}
ENTRY = {"name": "ALS", "geneset": "ALS_SET", "direction": "down", "fold_change": 0.3}


def _sim(seed=0):
    adata = simulate_m1(400, 300, seed=0, required_genes=GENES["ALS_SET"], n_donors=8)
    genes = {"ALS_SET": [g for g in GENES["ALS_SET"] if g in adata.var_names]}
    return cc.add_disease_donors(adata, [ENTRY], genes, 4, donor_lfc_sd=0.2, seed=seed), genes


def test_simulated_disease_donors_are_reproducible_and_shift_only_their_nuclei():
    before = simulate_m1(400, 300, seed=0, required_genes=GENES["ALS_SET"], n_donors=8)
    out, genes = _sim()
    again, _ = _sim()
    assert (out.layers["counts"] != again.layers["counts"]).nnz == 0
    assert out.obs["disease"].equals(again.obs["disease"])
    other, _ = _sim(seed=1)
    assert not out.obs["disease"].equals(other.obs["disease"])  # the seed chooses the donors
    assert list(out.obs["disease"].cat.categories) == ["normal", "amyotrophic lateral sclerosis"]
    sick = (out.obs["disease"] != "normal").to_numpy()
    assert out.obs.loc[sick, "donor_id"].nunique() == 4
    assert set(out.obs.loc[sick, "disease_ontology_term_id"]) == {"MONDO:0004976"}
    # control nuclei and the other genes are untouched; the set's genes fall in disease donors
    cols = before.var_names.get_indexer(genes["ALS_SET"])
    diff = (out.layers["counts"] != before.layers["counts"]).tocoo()
    assert set(np.unique(diff.col)) <= set(cols) and sick[diff.row].all()
    old = np.asarray(before.layers["counts"][sick][:, cols].sum())
    new = np.asarray(out.layers["counts"][sick][:, cols].sum())
    assert 0.15 < new / old < 0.5
    assert out.layers["counts"] is out.X and out.X.dtype == before.X.dtype
    fcs = [r["fold_change"] for r in out.uns["case_control"]["disease_donors"].values()]
    assert len(set(fcs)) == 4 and all(f <= 1 for f in fcs)  # spread, on the entry's side of 1


def test_too_few_donors_for_the_diseases_is_refused():
    adata = simulate_m1(100, 200, seed=0, n_donors=3)
    with pytest.raises(cc.CaseControlError, match="3 donors cannot hold 2 disease donors"):
        cc.add_disease_donors(adata, [ENTRY], {"ALS_SET": []}, 2)


def test_the_design_keys_are_validated():
    assert config.validate({})["design"] == "synthetic"
    with pytest.raises(ParamsError, match="'design' is 'case-control'.*'case_control'"):
        config.validate({"design": "case-control"})
    with pytest.raises(ParamsError, match="case_control.split.*'donor'"):
        config.validate({"design": "case_control", "case_control": {"split": "nuclei"}})
    with pytest.raises(ParamsError, match="disease donors belong to the case-control design"):
        config.validate({"data": {"simulate_n_donors": 12, "simulate_disease_donors": 6}})
    with pytest.raises(ParamsError, match="at least 2 disease donors per disease"):
        config.validate(
            {
                "design": "case_control",
                "data": {"simulate_n_donors": 4, "simulate_disease_donors": 3},
            }
        )
    sim = {"simulate_n_donors": 12, "simulate_disease_donors": 6}
    with pytest.raises(ParamsError, match="batch_key' is 'donor_id'.*absorb the disease"):
        config.validate({"design": "case_control", "data": sim, "ldvae": {"batch_key": "donor_id"}})
    ok = config.validate({"design": "case_control", "data": sim})
    assert ok["case_control"]["split"] == "donor" and ok["case_control"]["transfer"] is True
    with pytest.raises(ParamsError, match="case_control.transfer.*true or false"):
        config.validate({"design": "case_control", "data": sim, "case_control": {"transfer": 2}})
    with pytest.raises(ParamsError, match="simulate_donor_gene_sd.*>= 0"):
        config.validate({"data": {"simulate_donor_gene_sd": -0.1}})


def test_label_case_control_keeps_each_donor_in_one_fold_and_shares_the_counts():
    out, _ = _sim()
    labelled = cc.label_case_control(out, n_folds=3, seed=0)
    assert labelled.layers["counts"] is out.layers["counts"]  # no copy of the counts
    assert list(labelled.obs["condition"].cat.categories)[0] == "normal"
    assert labelled.uns["case_control"]["donors_across_folds"] == 0
    test_donors = set(labelled.obs.loc[labelled.obs["split"] == "test", "donor_id"])
    train_donors = set(labelled.obs.loc[labelled.obs["split"] == "train", "donor_id"])
    assert test_donors and not test_donors & train_donors
    leaky = cc.label_case_control(out, split="cell", n_folds=3)
    assert leaky.uns["case_control"]["donors_across_folds"] == 8


def test_simulated_paired_donors_hold_every_condition_and_label_a_paired_design():
    adata = simulate_m1(400, 300, seed=0, required_genes=GENES["ALS_SET"], n_donors=3)
    genes = {"ALS_SET": [g for g in GENES["ALS_SET"] if g in adata.var_names]}
    out = cc.add_disease_donors(adata, [ENTRY], genes, 0, donor_lfc_sd=0.2, seed=0, paired=True)
    per_donor = pd.crosstab(out.obs["donor_id"], out.obs["disease"])
    assert (per_donor > 0).all().all() and per_donor.shape == (3, 2)
    assert len(out.uns["case_control"]["disease_donors"]) == 3 and out.uns["case_control"]["paired"]
    labelled = cc.label_case_control(out, n_folds=3, seed=0)
    assert labelled.uns["design"]["paired"] is True and labelled.uns["case_control"]["paired"]
    assert F.units_across(labelled.obs["fold"].to_numpy(), labelled.obs["donor_id"]) == 0
    first = out.obs["donor_id"].iloc[0]
    gone = (out.obs["donor_id"] == first) & (out.obs["disease"] != "normal")
    with pytest.raises(DesignError, match=rf"lack a condition: {first} \(normal\)"):
        cc.label_case_control(out[~gone.to_numpy()].copy(), paired=True)
    with pytest.raises(DesignError, match="mixed design"):
        cc.label_case_control(out[~gone.to_numpy()].copy())
