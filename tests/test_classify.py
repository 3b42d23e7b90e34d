"""Tests of latentshift.readings.classify on synthetic data that follow the latent.h5ad contract."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from latentshift import errors
from latentshift.design import folds, units
from latentshift.model import features
from latentshift.perturb import shift as perturb
from latentshift.readings import classify, classify_summary, evaluation, network
from latentshift.report import readings_findings

CLASSIFIER = {
    "hidden_layers": [16],
    "max_epochs": 80,
    "lr": 1e-2,
    "weight_decay": 1e-4,
    "validation_fraction": 0.15,
    "patience": 10,
    "n_bootstrap": 200,
    "n_permutations": 3,
}


def make_latent(
    n_source: int = 1000,
    shift: float = 1.5,
    n_latent: int = 6,
    n_genes: int = 60,
    penetrance: float = 0.9,
    grouped: bool = True,
    seed: int = 0,
) -> ad.AnnData:
    """A synthetic latent.h5ad: normal + ALS + HD copies of each source cell.

    The latent of a copy is its source cell's latent plus a class-dependent shift (absent for
    untouched copies); counts are negative binomial with the ALS genes lowered and the HD
    genes raised by ``exp(shift / 2)``.
    """
    rng = np.random.default_rng(seed)
    conditions = ["normal", "ALS", "HD"]
    base = rng.normal(size=(n_source, n_latent))
    directions = {
        "normal": np.zeros(n_latent),
        "ALS": np.eye(n_latent)[0],
        "HD": np.eye(n_latent)[1],
    }
    als_genes, hd_genes = list(range(0, 8)), list(range(8, 16))
    mu_base = rng.gamma(2.0, 2.0, size=n_genes)
    rows, obs_rows, counts = [], [], []
    sources = [f"cell{i}" for i in range(n_source)]
    if grouped:
        test_src = set(rng.choice(n_source, size=int(0.3 * n_source), replace=False).tolist())
    for c in conditions:
        touched = (rng.random(n_source) < penetrance) if c != "normal" else np.zeros(n_source, bool)
        latent = base + 0.3 * rng.normal(size=base.shape) + shift * touched[:, None] * directions[c]
        mu = np.tile(mu_base, (n_source, 1))
        fc = np.exp(shift / 2)
        if c == "ALS":
            mu[np.ix_(touched, als_genes)] /= fc
        if c == "HD":
            mu[np.ix_(touched, hd_genes)] *= fc
        r = 5.0
        counts.append(rng.negative_binomial(r, r / (r + mu)))
        rows.append(latent)
        for i in range(n_source):
            if grouped:
                split = "test" if i in test_src else "train"
            else:
                split = "test" if rng.random() < 0.3 else "train"
            obs_rows.append(
                {
                    "condition": c,
                    "source_cell": sources[i],
                    "perturbed": bool(touched[i]),
                    "cell_type": "L2/3 IT" if i % 2 else "Oligo",
                    "split": split,
                }
            )
    obs = pd.DataFrame(obs_rows)
    obs.index = [f"{r.source_cell}-{r.condition}" for r in obs.itertuples()]
    obs["condition"] = pd.Categorical(obs["condition"], categories=conditions)
    X = sp.csr_matrix(np.vstack(counts).astype(np.int64))
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))
    adata.layers["counts"] = X.copy()
    latent = np.vstack(rows)
    adata.obsm["X_ldvae"] = latent
    # a weaker view of the same shift, standing in for the PCA baseline
    adata.obsm["X_pca_baseline"] = latent * 0.5 + rng.normal(size=latent.shape)
    adata.uns["perturbation_genes"] = {
        "ALS": [f"g{j}" for j in als_genes],
        "HD": [f"g{j}" for j in hd_genes],
    }
    adata.uns["latentshift"] = {"simulated": True, "source": "test"}
    return adata


@pytest.fixture(scope="module")
def strong() -> classify.ClassificationResult:
    return classify.classify_conditions(
        make_latent(shift=2.0), CLASSIFIER, seed=0, declared_grouped=True
    )


@pytest.fixture(scope="module")
def null() -> classify.ClassificationResult:
    cfg = {**CLASSIFIER, "n_permutations": 1}
    return classify.classify_conditions(
        make_latent(shift=0.0, seed=1), cfg, seed=0, baselines=False
    )


def test_strong_shift_beats_chance(strong):
    chance = strong.chance["chance_uniform"]
    assert strong.main["accuracy"] > chance + 0.3
    assert strong.main["accuracy_low"] > strong.chance["chance_majority"] + 0.2
    # every model but the majority class sees the shift; the majority sits at chance
    table = strong.baselines
    assert table.loc["logreg_ldvae", "accuracy"] > chance + 0.3
    assert table.loc["logreg_disease_genes", "accuracy"] > chance + 0.2
    assert abs(table.loc["majority", "accuracy"] - chance) < 0.05


def test_label_null_sits_at_chance(strong):
    perm = strong.permutation
    assert perm["n_permutations"] == len(perm["accuracies"]) == 3 and perm["within_units"]
    assert not perm["exact"] and perm["invalid"] == 0
    assert abs(perm["accuracy"] - strong.chance["chance_uniform"]) < 0.08
    assert perm["accuracy_low"] <= perm["accuracy"] <= perm["accuracy_high"]
    # every relabelled network falls short of the real one: the smallest possible p-value
    assert max(perm["accuracies"]) < strong.main["accuracy"] - 0.2
    assert perm["p_value"] == perm["min_p_value"] == pytest.approx(1 / 4)
    assert abs(perm["unit_accuracy"] - 1 / 3) < 0.08


def test_no_shift_sits_at_chance(null):
    assert abs(null.main["accuracy"] - null.chance["chance_uniform"]) < 0.08
    assert null.main["accuracy_low"] < null.chance["chance_uniform"] + 0.02


def test_untouched_cells_reported_separately(strong):
    u = strong.untouched
    assert u["n_untouched"] > 0 and u["n_perturbed_copies"] > 0
    assert u["perturbed_copies_accuracy"] > 0.7
    # untouched copies look normal, so the classifier calls most of them normal
    assert u["untouched_predicted_normal"] > 0.5
    assert u["untouched_accuracy"] < u["perturbed_copies_accuracy"]


def test_metrics_dict_has_documented_keys(strong):
    m = classify_summary.summary_metrics(strong)
    assert set(classify_summary.SUMMARY_KEYS) <= set(m)
    for key in classify_summary.SUMMARY_KEYS:
        assert f"``{key}``" in classify.__doc__, f"{key} is not documented in the module docstring"
    assert m["labels"] == ["normal", "ALS", "HD"]
    assert set(m["baseline_accuracy"]) == set(classify.BASELINE_MODELS)
    assert m["split_grouped"] is True and m["units_across"] == 0
    assert m["unit"] == "source cell" and m["paired"] is True and m["n_units"] == 300
    assert m["hidden_layers"] == [16]
    assert np.asarray(m["confusion_counts"]).sum() == m["n_test"]
    assert np.allclose(np.asarray(m["confusion_normalized"]).sum(axis=1), 1.0)
    for name in classify.METRIC_NAMES:
        assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"]


def test_split_report_counts_leaks():
    leaky = make_latent(n_source=100, grouped=False)
    u, f = units.from_adata(leaky), folds.folds_of(leaky.obs)
    report = classify.split_report(u, f, declared_grouped=False)
    assert report["grouped"] is False and report["units_across"] > 0
    whole = make_latent(n_source=100)
    report = classify.split_report(units.from_adata(whole), folds.folds_of(whole.obs))
    assert report["grouped"] is True and report["units_across"] == 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 400), frac=st.floats(0.05, 0.5), seed=st.integers(0, 10_000))
def test_grouped_validation_split_never_leaks(n, frac, seed):
    groups = np.repeat(np.arange(n), 3)
    fit, val = network.grouped_validation_split(groups, frac, seed)
    assert len(fit) + len(val) == len(groups) and len(val) > 0 and len(fit) > 0
    assert not set(groups[fit]) & set(groups[val])


def test_mlp_is_deterministic_and_respects_classes():
    data = make_latent(n_source=200)
    train = (data.obs["split"] == "train").to_numpy()
    X, y = data.obsm["X_ldvae"][train], data.obs["condition"].astype(str).to_numpy()[train]
    groups = data.obs["source_cell"].to_numpy()[train]
    kw = {"hidden_layers": [7], "max_epochs": 30, "seed": 3, "classes": ["normal", "ALS", "HD"]}
    a, b = network.train_mlp(X, y, groups, **kw), network.train_mlp(X, y, groups, **kw)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert list(a.classes_) == ["normal", "ALS", "HD"]
    assert a.predict_proba(X).shape == (len(X), 3)
    assert np.allclose(a.predict_proba(X).sum(axis=1), 1.0)
    assert a.n_parameters == 6 * 7 + 7 + 7 * 3 + 3
    with pytest.raises(errors.ClassifierError, match="not among classes"):
        network.train_mlp(X, y, groups, classes=["normal", "ALS"], max_epochs=2)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(30, 300),
    k=st.integers(2, 4),
    p_correct=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_bootstrap_interval_contains_point(n, k, p_correct, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < p_correct, y, rng.integers(0, k, n))
    point, lo, hi = evaluation.bootstrap_ci(y, pred, "accuracy", n_boot=200, seed=seed)
    assert lo <= point <= hi
    assert point == pytest.approx(skm.accuracy_score(y, pred))


def test_fast_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 3, 500))
    pred[pred == 3] = 0  # class 3 is never predicted: precision 0 by convention
    m = evaluation.metrics_from_confusion(skm.confusion_matrix(y, pred, labels=[0, 1, 2, 3]))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    # a callable metric goes through the same resamples
    point, lo, hi = evaluation.bootstrap_ci(
        y, pred, lambda a, b: skm.f1_score(a, b, average="macro", zero_division=0), n_boot=50
    )
    assert lo <= point <= hi
    result = evaluation.evaluate(y, pred, labels=[0, 1, 2, 3], n_boot=100)
    assert result["macro_f1"] == pytest.approx(m["macro_f1"])
    assert result["per_class"]["3"]["precision"] == 0.0
    with pytest.raises(errors.ClassifierError, match="unknown metric"):
        evaluation.bootstrap_ci(y, pred, "auc")


def test_grouped_bootstrap_is_wider_for_correlated_copies():
    # copies of one source share their outcome: resampling cells understates the uncertainty
    rng = np.random.default_rng(0)
    correct = np.repeat(rng.random(100) < 0.7, 5)
    y = np.zeros(500, int)
    pred = np.where(correct, 0, 1)
    groups = np.repeat(np.arange(100), 5)
    _, lo_c, hi_c = evaluation.bootstrap_ci(y, pred, n_boot=300, labels=[0, 1])
    _, lo_g, hi_g = evaluation.bootstrap_ci(y, pred, n_boot=300, groups=groups, labels=[0, 1])
    assert hi_g - lo_g > 1.5 * (hi_c - lo_c)


def test_disease_gene_features_use_full_library_size():
    data = make_latent(n_source=50)
    genes = perturb.perturbed_genes(data)
    assert genes[:2] == ["g0", "g1"] and len(genes) == 16
    X = features.disease_gene_features(data, genes)
    counts = data.layers["counts"].toarray()
    expected = np.log1p(counts[:, :16] / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(X, expected)
    with pytest.raises(errors.ClassifierError, match="not in var_names"):
        features.disease_gene_features(data, ["nope"])


def test_missing_latent_names_the_step():
    data = make_latent(n_source=20)
    del data.obsm["X_ldvae"]
    with pytest.raises(errors.ClassifierError, match="03_ldvae"):
        classify.classify_conditions(data, CLASSIFIER)


def test_pca_fallback_fits_on_training_cells():
    data = make_latent(n_source=100, shift=2.0)
    train = (data.obs["split"] == "train").to_numpy()
    X = features.pca_features(data, 5, train, seed=0)
    assert X.shape == (data.n_obs, 5) and np.isfinite(X).all()
    # centred on the training cells: their scores average to zero, the test cells' need not
    np.testing.assert_allclose(X[train].mean(axis=0), 0, atol=1e-4)
    assert sp.issparse(data.layers["counts"])  # the input was not densified in place


def test_a_fold_that_cannot_be_trained_is_left_out_and_said():
    # fold 2 holds every ALS copy: its training side has no ALS cell left
    adata = make_latent(n_source=120, seed=3)
    u = units.from_adata(adata)
    fold = np.where(adata.obs["split"].astype(str) == "test", 0, 1)
    fold[u.condition == "ALS"] = 2
    folds_ = folds.Folds(fold, (0, 1, 2), "units", 3)
    result = classify.classify_conditions(
        adata, {**CLASSIFIER, "n_permutations": 1}, units=u, folds=folds_, baselines=False
    )
    assert set(result.split["folds_not_scored"]) == {2}
    assert set(result.predictions["fold"]) == {0, 1}
    box = readings_findings.classifier_findings(result, 6, True)
    assert any(
        "Not scored: the training side of fold 2 holds no 'ALS' cell" in n for n in box.notes
    )
