"""The donor-level readings: pseudobulk set test and by cell type (latentshift.readings.pseudobulk),
composition (latentshift.readings.composition) and power (latentshift.readings.power)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from latentshift.design.units import units_of
from latentshift.errors import DataError
from latentshift.readings import composition, power, pseudobulk, set_tests

# --- the set test ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-6, 6), min_size=3, max_size=12),
    st.lists(st.integers(-6, 6), min_size=3, max_size=40),
    st.sampled_from(["up", "down"]),
)
def test_set_test_without_correlation_is_the_mann_whitney_test(in_set, rest, direction):
    # integers: ties, so limma's tie adjustment is exercised too
    stat = pd.Series(
        np.array(in_set + rest, dtype=float) / 2,
        index=[f"s{i}" for i in range(len(in_set))] + [f"r{i}" for i in range(len(rest))],
    )
    if stat.nunique() == 1:
        return
    table = pd.DataFrame({"stat": stat})
    got = set_tests.set_test(table, list(stat.index[: len(in_set)]), direction, correlation=0.0)
    alt = "greater" if direction == "up" else "less"
    want = mannwhitneyu(
        stat.iloc[: len(in_set)], stat.iloc[len(in_set) :], alternative=alt, method="asymptotic"
    ).pvalue
    assert got["pvalue"] == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert got["n_set"] == len(in_set)


def test_set_test_finds_a_shifted_set_and_correlation_makes_it_more_cautious():
    rng = np.random.default_rng(0)
    stat = pd.Series(rng.normal(size=500), index=[f"g{i}" for i in range(500)])
    stat.iloc[:20] += 1.0
    table = pd.DataFrame({"stat": stat})
    genes = list(stat.index[:20])
    up = set_tests.set_test(table, genes, "up")
    assert up["pvalue"] < 1e-3 and up["mean_stat"] > 0.5
    assert set_tests.set_test(table, genes, "down")["pvalue"] > 0.99
    independent = set_tests.set_test(table, genes, "up", correlation=0.0)["pvalue"]
    assert independent < up["pvalue"]  # a correlated set carries less evidence
    assert np.isnan(set_tests.set_test(table, ["not-a-gene"], "up")["pvalue"])


def test_set_correlation_sees_genes_that_move_together_across_donors():
    rng = np.random.default_rng(1)
    n_samples, n_genes = 12, 200
    factor = rng.normal(size=(n_samples, 1))  # a programme each donor runs to its own degree
    logs = 6 + rng.normal(0, 0.1, (n_samples, n_genes))
    logs[:, :20] += 0.5 * factor
    counts = np.rint(np.exp(logs)).astype(np.int64)
    obs = pd.DataFrame({"condition": ["ctrl", "stim"] * 6}, index=[str(i) for i in range(12)])
    pb = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    together = set_tests.set_correlation(pb, [f"g{i}" for i in range(20)])
    apart = set_tests.set_correlation(pb, [f"g{i}" for i in range(20, 40)])
    assert together > 0.5
    assert apart == pytest.approx(set_tests.DEFAULT_CORRELATION, abs=0.1)
    assert apart >= set_tests.DEFAULT_CORRELATION


# --- pseudobulk by cell type ----------------------------------------------------------------


def _nuclei(seed: int = 0, fold: float = 4.0, n: int = 30) -> ad.AnnData:
    """8 donors (4 disease), 2 cell types (A, B) and a rare one (C: 2 nuclei per donor), 60
    genes; g0–g9 up ``fold``× in disease donors' type A only."""
    rng = np.random.default_rng(seed)
    rows, X = [], []
    for d in range(8):
        disease = d >= 4
        size = rng.lognormal(0, 0.2, 60)
        for ct, k in (("A", n), ("B", n), ("C", 2)):
            mu = 4.0 * size
            if disease and ct == "A":
                mu[:10] *= fold
            X.append(rng.poisson(mu, (k, 60)))
            rows += [
                {"donor_id": f"d{d}", "disease": "HD" if disease else "normal", "cell_type": ct}
            ] * k
    obs = pd.DataFrame(rows)
    obs.index = obs.index.astype(str)
    counts = sp.csr_matrix(np.vstack(X).astype(np.int32))
    nuclei = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(60)]))
    nuclei.layers["counts"] = counts
    nuclei.obs["condition"] = pd.Categorical(obs["disease"], ["normal", "HD"])
    return nuclei


def test_by_cell_type_finds_the_set_where_it_moved_and_lists_the_untestable_types():
    nuclei = _nuclei()
    u = units_of(nuclei.obs, "donor_id")
    genes = {"HD": [f"g{i}" for i in range(10)]}
    tables, summary = pseudobulk.by_cell_type(nuclei, u, genes, {"HD": "up"})
    rows = summary.set_index("cell_type")
    assert set(tables) == {("HD", "A"), ("HD", "B")}
    assert rows.loc["A", "set_pvalue_adj"] < 0.01
    assert rows.loc["B", "set_pvalue_adj"] > 0.05
    # nothing moved in B: its gene-level p-values are uniform; the check reads the genes with
    # counts enough for a continuous p (here every gene: ~4 counts × 40 nuclei per donor)
    assert rows.loc["B", "pvalue_uniform_ks"] > 0.01
    assert rows.loc["B", "n_genes_uniform"] == rows.loc["B", "n_genes"] == 60
    assert rows.loc["B", "pvalue_uniform_ks_all"] == rows.loc["B", "pvalue_uniform_ks"]
    assert not rows.loc["C", "testable"] and "fewer than 3 donors" in rows.loc["C", "reason"]
    # 8 unpaired samples: intercept and condition leave 6 residual degrees of freedom
    assert rows.loc["A", "n_samples"] == 8 and rows.loc["A", "residual_df"] == 6
    assert not rows.loc["A", "paired"]
    metrics = pseudobulk.summary_metrics(summary)
    assert set(metrics["by_type"]["HD"]) == {"A", "B"} and "C" in metrics["untested"]["HD"]
    assert metrics["by_type"]["HD"]["A"]["residual_df"] == 6


def test_deseq_reads_the_wald_statistic_against_a_t_with_residual_and_prior_df():
    from scipy.special import polygamma
    from scipy.stats import norm
    from scipy.stats import t as student

    nuclei = _nuclei(fold=1.0)
    pb = pseudobulk.aggregate(
        nuclei[nuclei.obs["cell_type"] == "A"].copy(), ["donor_id", "condition"]
    )
    table = pseudobulk.deseq(pb).dropna(subset=["pvalue"])
    residual = pseudobulk.residual_df(pb)  # 8 samples less intercept and condition
    assert residual == 6
    # every gene's df is the residual df, plus the prior's for the genes DESeq2 shrinks:
    # one value above 6 shared by the shrunk genes, whose trigamma matches a prior variance
    # no smaller than PyDESeq2's floor of 0.25 (so at most ~9 prior df)
    shrunk = table["df"][table["df"] > residual]
    assert len(shrunk) > len(table) / 2 and shrunk.nunique() == 1
    prior = float(shrunk.iloc[0]) - residual
    assert 0 < prior and polygamma(1, prior / 2) >= 0.25 - 1e-9
    assert set(table["df"].unique()) <= {float(residual), float(residual + prior)}
    stat = table["stat"].abs()
    assert np.allclose(table["pvalue"], 2 * student.sf(stat, table["df"]))
    assert np.allclose(table["pvalue_normal"], 2 * norm.sf(stat))
    # the t's heavier tail: never smaller than the normal's p, and BH over the t p-values
    assert (table["pvalue"] >= table["pvalue_normal"] - 1e-12).all()
    assert (table["padj"] >= table["pvalue"] - 1e-12).all()


def test_an_unpaired_type_needs_three_donors_a_side_and_a_paired_one_two_pairs():
    # type B thinned to 5 nuclei (under MIN_CELLS) in all but 2 control and 3 disease donors:
    # 3 residual degrees of freedom, too few for DESeq2's dispersion prior
    nuclei = _nuclei()
    thin = (nuclei.obs["cell_type"] == "B") & nuclei.obs["donor_id"].isin(["d2", "d3"])
    keep = ~thin | (nuclei.obs.groupby(["donor_id", "cell_type"]).cumcount() < 5)
    nuclei = nuclei[keep.to_numpy()].copy()
    nuclei = nuclei[
        ~((nuclei.obs["cell_type"] == "B") & (nuclei.obs["donor_id"] == "d7")).to_numpy()
    ].copy()
    u = units_of(nuclei.obs, "donor_id")
    _, summary = pseudobulk.by_cell_type(nuclei, u, {"HD": ["g0"]}, {"HD": "up"})
    b = summary.set_index("cell_type").loc["B"]
    assert not b["testable"]
    assert "fewer than 3 donors" in b["reason"] and "normal: 2, HD: 3" in b["reason"]
    # the same samples pass when the caller asks for 2 a side (the old rule): 3 residual df
    _, loose = pseudobulk.by_cell_type(nuclei, u, {"HD": ["g0"]}, {"HD": "up"}, min_units=2)
    assert loose.set_index("cell_type").loc["B", "residual_df"] == 3

    # paired: 2 donors, each with both conditions, is enough (the donor in the design)
    two = _nuclei()
    two = two[two.obs["donor_id"].isin(["d0", "d1", "d4", "d5"]).to_numpy()].copy()
    twin = {"d4": "d0", "d5": "d1"}  # the disease samples become the second condition of d0, d1
    two.obs["donor_id"] = two.obs["donor_id"].astype(str).replace(twin)
    pu = units_of(two.obs, "donor_id")
    assert pu.paired
    _, summary = pseudobulk.by_cell_type(
        two, pu, {"HD": [f"g{i}" for i in range(10)]}, {"HD": "up"}
    )
    a = summary.set_index("cell_type").loc["A"]
    # 4 samples less intercept, condition and one donor coefficient
    assert a["testable"] and a["paired"] and a["residual_df"] == 1
    c = summary.set_index("cell_type").loc["C"]
    assert not c["testable"] and "fewer than 3 donors" in c["reason"]


# --- composition ----------------------------------------------------------------------------


def test_composition_test_on_a_hand_made_table():
    # 4 donors per condition, 8 types; disease donors keep half their type-C nuclei
    base = np.array([500, 300, 40, 200, 150, 120, 80, 60])
    jitter = np.array([[1.0, 1.04, 0.96, 1.02], [0.98, 1.03, 0.97, 1.01]])  # donor noise
    rows = []
    for cond, lost, wobble in (("normal", 1.0, jitter[0]), ("ALS", 0.5, jitter[1])):
        for i in range(4):
            counts = np.round(base * np.roll(wobble, i)[np.arange(8) % 4]).astype(int)
            counts[2] = round(counts[2] * lost)
            rows.append(
                {
                    "unit": f"{cond}{i}",
                    "condition": cond,
                    **dict(zip("ABCDEFGH", counts, strict=True)),
                }
            )
    table = pd.DataFrame(rows)
    result = composition.composition_test(table, "normal", "ALS").set_index("cell_type")
    # halving a type of 3 % moves its logit by about log(1/2), the others' by about 0.02
    assert result.loc["C", "logit_change"] == pytest.approx(np.log(0.5), abs=0.05)
    assert result.loc["C", "pvalue"] < 1e-3 and result.loc["C", "pvalue_adj"] < 0.01
    assert result.drop(index="C")["pvalue_adj"].min() > 0.01
    assert result.loc["C", "share_condition"] < result.loc["C", "share_reference"]
    # the logit of each type, by hand: log((count + 0.5) / (rest + 0.5))
    n = table[list("ABCDEFGH")].to_numpy()
    hand = np.log((n[:, 2] + 0.5) / (n.sum(axis=1) - n[:, 2] + 0.5))
    assert result.loc["C", "logit_change"] == pytest.approx(hand[4:].mean() - hand[:4].mean())
    # a centred log-ratio would have called every other type (each moved by log(2)/8)
    # paired: each donor its own control
    paired = table.assign(unit=[f"d{i % 4}" for i in range(8)])
    result = composition.composition_test(paired, "normal", "ALS", paired=True)
    assert result.set_index("cell_type").loc["C", "pvalue"] < 1e-3
    with pytest.raises(DataError, match="2 units per condition"):
        composition.composition_test(table.iloc[3:], "normal", "ALS")


def _donors(seed: int = 0) -> ad.AnnData:
    """8 donors (4 disease), 5 cell types at Poisson-drawn counts per donor (obs only)."""
    rng = np.random.default_rng(seed)
    sizes = {"A": 400, "B": 300, "D": 200, "E": 100, "R": 80}
    rows = []
    for d in range(8):
        for ct, n in sizes.items():
            rows += [
                {"donor_id": f"d{d}", "disease": "HD" if d >= 4 else "normal", "cell_type": ct}
            ] * int(rng.poisson(n))
    obs = pd.DataFrame(rows)
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=sp.csr_matrix((len(obs), 2), dtype=np.int32), obs=obs)


def test_lose_cells_takes_the_share_of_each_disease_donor_and_the_test_finds_it():
    nuclei = _donors()
    disease = (nuclei.obs["disease"] == "HD").to_numpy()
    fewer = composition.lose_cells(nuclei, {"R": 0.5}, seed=1)  # the disease donors' nuclei
    before = nuclei.obs.groupby(["donor_id", "cell_type"]).size().unstack()
    after = fewer.obs.groupby(["donor_id", "cell_type"]).size().unstack()
    cases, controls = ["d4", "d5", "d6", "d7"], ["d0", "d1", "d2", "d3"]
    lost = (before.loc[cases, "R"] * 0.5).round()  # each disease donor loses half its R nuclei
    assert (after.loc[cases, "R"] == before.loc[cases, "R"] - lost).all()
    assert after.loc[controls].equals(before.loc[controls])
    assert after.drop(columns="R").equals(before.drop(columns="R"))
    assert fewer.uns["case_control"]["type_loss"] == {"R": 0.5}
    table, tests = composition.by_donor(fewer.obs)
    result = tests["HD"].set_index("cell_type")
    assert len(table) == 8
    assert result.loc["R", "pvalue_adj"] < 0.01
    assert result.drop(index="R")["pvalue_adj"].min() > 0.05
    _, tests = composition.by_donor(nuclei.obs)  # its null: no type lost
    assert tests["HD"]["pvalue_adj"].min() > 0.05
    with pytest.raises(DataError, match="L5 ET"):
        composition.lose_cells(nuclei, {"L5 ET": 0.5}, eligible=disease)


# --- power ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_power(root):
    from latentshift import config

    params = config.load_params(root / "params" / "case_control_sim.yaml")
    params["data"]["simulate_n_genes"] = 300
    points = [power.Point(4, 60, 1.0), power.Point(4, 60, 3.0)]
    return power.run_power(params, points, reps=20, seed=0, readings=["pseudobulk set test"])


@pytest.mark.slow  # 40 simulated studies, about 3 min on 2 cores
def test_a_tiny_power_grid_holds_its_level_at_fold_1_and_rises_with_the_fold(tiny_power):
    table = power.power_table(tiny_power).set_index("fold")
    null, shifted = table.loc[1.0], table.loc[3.0]
    assert null["replicates"] == 20
    # fold 1 is the null: its false-positive rate's exact interval holds 0.05
    assert null["power_low"] <= power.ALPHA <= null["power_high"]
    assert shifted["power"] > null["power"] and shifted["power"] >= 0.8
    needed = power.donors_needed(power.power_table(tiny_power)).set_index("fold")
    assert needed.loc[3.0, "donors_per_arm"] == 4 and np.isnan(needed.loc[1.0, "donors_per_arm"])


@pytest.mark.slow  # a small power study through the CLI
def test_the_power_command_writes_its_table_figure_and_provenance(root, tmp_path, caplog):
    import logging

    from latentshift.run import cli

    caplog.set_level(logging.INFO)
    out = tmp_path / "power"
    args = ["power", str(root / "params" / "case_control_smoke.yaml"), "--out", str(out)]
    grid = ["--donors", "3", "--nuclei", "60", "--fold", "1,2", "--reps", "2", "--genes", "200"]
    assert cli.main(args + grid) == 0
    table = pd.read_csv(out / "power.csv")
    assert set(table["reading"]) == set(power.CHEAP_READINGS)
    assert set(table["fold"]) == {1.0, 2.0} and (table["replicates"] <= 2).all()
    assert table["git_commit"].notna().all()
    assert (out / "power.png").is_file() and (out / "donors_needed.csv").is_file()
    assert "machine" in pd.read_json(out / "machine.json", typ="series")
    assert any("power 4/4" in r.getMessage() for r in caplog.records)  # progress as it runs
    # a synthetic profile has no donors to draw
    assert cli.main(["power", str(root / "params" / "demo.yaml"), "--out", str(out)]) == 2
    assert "simulated case-control profile" in caplog.text


# --- the docs' donor-level tables ----------------------------------------------------------


def test_donor_level_tables_show_each_type_mark_the_targets_and_name_a_missing_section():
    from latentshift.report import donor_level_summary as dls

    rec = {
        "profile": "cc",
        "params": {
            "perturbations": [{"fold_change": 2.0, "target_cell_types": ["L2/3 IT"]}],
        },
        "metrics": {
            "pseudobulk": {
                "by_type": {
                    "HD": {
                        "L2/3 IT": {
                            "n_samples": 12,
                            "residual_df": 10,
                            "set_pvalue": 1e-6,
                            "set_pvalue_adj": 1e-5,
                            "set_correlation": 0.01,
                            "n_genes_fdr05": 12,
                            "n_genes": 800.0,
                            "pvalue_uniform_ks": 0.5,
                            "share_p05": 0.2,
                            "n_genes_uniform": 600,
                            "pvalue_uniform_ks_all": 0.0002,
                        },
                        "Astro": {
                            "set_pvalue": 0.4,
                            "set_pvalue_adj": 0.8,
                            "set_correlation": None,
                            "n_genes_fdr05": 0,
                            "n_genes": 800,
                            "pvalue_uniform_ks": 0.2,
                        },
                    }
                },
                "untested": {"HD": {"Endo": "fewer than 2 donors per condition"}},
            },
            "composition": {
                "HD": {
                    "L5 ET": {
                        "share_reference": 0.008,
                        "share_condition": 0.004,
                        "logit_change": -0.69,
                        "pvalue": 0.0004,
                        "pvalue_adj": 0.005,
                    }
                }
            },
        },
    }
    table = dls.pseudobulk_markdown([rec]).splitlines()
    assert len(table) == 2 + 3
    assert (
        "| cc | HD | L2/3 IT ★ | 12 (10) | 1e-06 | 1e-05 | 0.010 | 12 of 800 | 0.500 (600 genes) "
        "| 20.0% | 0.0002 |" in table
    )
    # a record made before the samples were kept shows '–' there
    assert any("| Astro | – | 0.400 |" in row and "★" not in row for row in table)
    assert any("Endo" in row and "fewer than 2 donors" in row for row in table)
    comp = dls.composition_markdown([rec]).splitlines()
    assert comp[2] == "| cc | HD | L5 ET | 0.80% | 0.40% | -0.69 | 0.0004 | 0.005 |"
    with pytest.raises(dls.DonorLevelTableError, match="make results PROFILE"):
        dls.pseudobulk_markdown([{"profile": "demo", "metrics": {}}])
    # the sentences under the tables read the same numbers
    said = dls.pseudobulk_sentences([rec])
    assert said.startswith("**cc**, HD: the set test gives the targeted types p = 1e-06 (L2/3 IT)")
    assert "the other 1 type: none at adjusted p < 0.05 (smallest 0.800, Astro)" in said
    assert "uniform (KS p > 0.01, genes with a mean count of 10 or more) in 2 of 2 types" in said
    assert "genes at FDR 0.05 in 1 of 2 types (at most 12 in one); 1 type untested" in said
    rec["params"]["data"] = {"simulate_disease_type_loss": {"L5 ET": 0.5}}
    rec["metrics"]["composition"]["HD"]["Astro"] = {
        "share_reference": 0.02,
        "share_condition": 0.021,
        "pvalue": 0.5,
        "pvalue_adj": 0.6,
    }
    comp_said = dls.composition_sentences([rec])
    assert comp_said == (
        "**cc**, HD: L5 ET, of which each disease donor lost 50 %, goes from 0.80% to 0.40% of "
        "the nuclei (p = 0.0004, adjusted 0.005); the other 1 type: none at adjusted "
        "p < 0.05 (smallest 0.600, Astro)."
    )


def test_power_table_marks_a_reading_whose_null_cannot_reach_alpha_as_untestable():
    # 3 against 3 donors: 20 relabellings, 2 of them the observed grouping -> p >= 0.1
    assert power.null_floor("E-test (PCA)", 3) == pytest.approx(0.1)
    assert power.null_floor("per-type AUC (LDVAE)", 3) == pytest.approx(0.1)
    assert power.null_floor("E-test (PCA)", 6) < power.ALPHA  # sampled: 1/201
    assert power.null_floor("pseudobulk set test", 3) == 0.0
    rows = [
        {
            "reading": r,
            "donors": d,
            "nuclei": 300,
            "fold": 2.0,
            "replicates": 50,
            "detected": 0,
            "power": 0.0,
            "power_low": 0.0,
            "power_high": 0.07,
        }
        for r in ("E-test (PCA)", "pseudobulk set test")
        for d in (3, 6)
    ]
    text = power.power_markdown(pd.DataFrame(rows))
    etest = next(line for line in text.splitlines() if line.startswith("| E-test (PCA)"))
    pseudo = next(line for line in text.splitlines() if line.startswith("| pseudobulk"))
    assert "untestable: p ≥ 0.1 with 3 donors per arm" in etest
    assert etest.count("untestable") == 1  # 6 donors per arm can reach 0.05
    assert "untestable" not in pseudo


# --- gene-level calibration by donors per arm ------------------------------------------------


def test_calibration_table_summarises_the_null_studies_per_donor_count():
    from latentshift.readings import gene_calibration as gc

    reps = pd.DataFrame(
        {
            "donors": [2, 2, 6, 6],
            "nuclei": [100] * 4,
            "rep": [0, 1, 0, 1],
            "residual_df": [2, 2, 10, 10],
            "n_genes": [500, 520, 600, 610],
            "share_p05": [0.01, 0.03, 0.05, 0.06],
            "ks_pvalue": [1e-9, 0.002, 0.4, 0.03],
            "n_genes_fdr05": [0, 0, 1, 0],
            "wald_df": [11.0, 11.0, 19.0, 19.0],
            "share_p05_normal": [0.02, 0.04, 0.06, 0.07],
            "ks_pvalue_normal": [1e-9, 0.02, 0.4, 0.005],
            "n_genes_fdr05_normal": [0, 2, 3, 1],
            "seconds": [1.0, 3.0, 2.0, 2.0],
        }
    )
    table = gc.calibration_table(reps).set_index("donors")
    assert table.loc[2, "share_p05"] == pytest.approx(0.02)
    assert (table.loc[2, "share_p05_low"], table.loc[2, "share_p05_high"]) == (0.01, 0.03)
    assert table.loc[2, "uniform"] == 0 and table.loc[6, "uniform"] == 2
    # by_cell_type leaves a type with 2 donors a side untested, tests one with 6
    assert not table.loc[2, "tested_by_cell_type"] and table.loc[6, "tested_by_cell_type"]
    text = gc.calibration_markdown(table.reset_index())
    assert table.loc[6, "with_fdr05"] == 1 and table.loc[2, "with_fdr05"] == 0
    assert "| 2 | 2 (11.0) | 2.0% [1.0, 3.0] | 0 of 2 | 0 of 2 | 3.0%; 1 of 2; 1 of 2 | no:" in text
    assert (
        "| 6 | 10 (19.0) | 5.5% [5.0, 6.0] | 2 of 2 | 1 of 2 | 6.5%; 1 of 2; 2 of 2 | yes |" in text
    )


def test_the_calibration_command_records_null_studies_and_refuses_one_donor(root, tmp_path):
    from latentshift.readings.power import PowerError
    from latentshift.run import cli

    out = tmp_path / "calibration"
    args = ["calibration", str(root / "params" / "case_control_smoke.yaml"), "--out", str(out)]
    assert (
        cli.main(args + ["--donors", "3", "--nuclei", "60", "--reps", "2", "--genes", "200"]) == 0
    )
    reps = pd.read_csv(out / "replicates.csv")
    assert len(reps) == 2 and (reps["donors"] == 3).all()
    # 6 donors with enough nuclei of the type: 6 samples, intercept and condition
    assert (reps["residual_df"] == 4).all() and (reps["n_genes"] > 0).all()
    assert reps["share_p05"].between(0, 1).all() and reps["ks_pvalue"].between(0, 1).all()
    assert (reps["n_genes_fdr05"] >= 0).all()
    table = pd.read_csv(out / "calibration.csv")
    assert table["git_commit"].notna().all() and table.loc[0, "replicates"] == 2
    # recorded like a power study: the table, beside the others in results/
    recorded = tmp_path / "results" / "calibration.csv"
    assert cli.main(["results", str(out), "--out", str(recorded)]) == 0
    assert pd.read_csv(recorded)["share_p05"].tolist() == table["share_p05"].tolist()
    from latentshift import config
    from latentshift.readings import gene_calibration as gc

    params = config.load_params(root / "params" / "case_control_smoke.yaml")
    with pytest.raises(PowerError, match="at least 2 donors"):
        gc.run_calibration(params, [1], reps=1)
