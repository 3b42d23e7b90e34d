"""Case–control classification scored per nucleus and per donor, every donor held out once.

The synthetic design trains once on the training source cells and tests on the rest
(:mod:`latentshift.classify`). With real disease labels the unit is the donor, and a handful of
donors per condition makes a single 70/30 split a lottery. So :func:`classify_by_donor`

- runs the leave-donors-out folds of ``02_perturb`` (``obs["fold"]``): for each fold, every
  model is trained on the other folds' donors (their conditions subsampled to equal size, so no
  model learns the other folds' prior) and predicts the fold's nuclei, so each nucleus is
  scored once, by models that never saw its donor;
- scores **per nucleus** (accuracy with a bootstrap interval that resamples donors) and **per
  donor** (a donor is called by the mean of its nuclei's class probabilities; accuracy over
  donors with its exact Clopper–Pearson interval);
- puts beside each the **donor-permutation control**: the conditions are dealt anew among the
  donors (each donor keeps its nuclei; how many donors each condition has is kept) and the
  whole cross-validation is repeated. Shuffling nuclei instead would leave each donor's nuclei
  mostly with its own label, and a classifier that recognises donors would look informative.

The same folds serve the baselines: logistic regression on the latent, the same network on
the PCA of the counts, logistic regression on the named gene sets' genes (when 03 stored them)
and the majority class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.classify import BASELINE_DESCRIPTIONS, DISEASE_GENES_KEY, MLP_KEYS
from latentshift.errors import ClassifierError
from latentshift.evaluation import bootstrap_ci
from latentshift.network import train_logreg, train_majority, train_mlp

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: The models scored, in display order, with the obsm key each reads.
MODELS: dict[str, str] = {
    "mlp_ldvae": "X_ldvae",
    "logreg_ldvae": "X_ldvae",
    "mlp_pca": "X_pca_baseline",
    "logreg_disease_genes": DISEASE_GENES_KEY,
    "majority": "X_ldvae",
}


@dataclass
class DonorClassification:
    """What :func:`classify_by_donor` measured.

    Attributes
    ----------
    labels
        Conditions, the control first.
    table
        One row per model (index: :data:`MODELS` names present): ``description``,
        ``accuracy`` [``accuracy_low``, ``accuracy_high``] per nucleus, ``donor_accuracy``
        [``donor_accuracy_low``, ``donor_accuracy_high``] and ``n_donors``.
    donors
        One row per donor: ``condition``, ``fold``, ``nuclei``, the network's ``predicted``
        condition and mean ``p_<condition>``.
    permutation
        The donor-permutation control of the network on the latent: ``accuracy`` and
        ``donor_accuracy`` (means), their 2.5/97.5 % ranges, the single values, and
        ``p_value`` / ``donor_p_value`` against the observed.
    predictions
        Per nucleus: ``condition``, ``donor_id``, ``cell_type``, ``fold``, ``predicted``,
        ``p_<condition>`` (the network on the latent).
    split
        ``unit`` (donor or cell), ``n_folds``, ``donors_across_folds``.
    chance
        ``chance_uniform`` (1 / classes) and ``chance_donors`` (the majority condition's share
        of donors).
    """

    labels: list[str]
    table: pd.DataFrame
    donors: pd.DataFrame
    permutation: dict[str, Any]
    predictions: pd.DataFrame
    split: dict[str, Any]
    chance: dict[str, float]


def balanced_rows(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions with every class subsampled to the smallest class's size (sorted).

    Leave-donors-out folds hold different shares of each condition, so a model trained on the
    other folds learns their prior, which is the held-out fold's minority: with a weak signal it
    would score *below* chance. Equal classes in training remove that prior.
    """
    classes, counts = np.unique(y, return_counts=True)
    n = int(counts.min())
    keep = [rng.choice(np.flatnonzero(y == c), n, replace=False) for c in classes]
    return np.sort(np.concatenate(keep))


def out_of_fold(
    X: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    labels: list[str],
    seed: int = 0,
) -> np.ndarray:
    """Class probabilities of every row from a model fit on the other folds (class-balanced).

    Parameters
    ----------
    X, y
        Features and labels of every nucleus.
    folds
        Fold per nucleus.
    fit
        ``fit(X_train, y_train, train_index) -> model`` with ``predict_proba``.
    labels
        Classes: the columns of the result.
    seed
        Seed of the class balancing (:func:`balanced_rows`) of each fold's training rows.

    Returns
    -------
    numpy.ndarray
        Nuclei × classes.
    """
    proba = np.zeros((len(y), len(labels)))
    for fold in np.unique(folds):
        test = folds == fold
        train_idx = np.flatnonzero(~test)
        train_idx = train_idx[balanced_rows(y[train_idx], np.random.default_rng([seed, int(fold)]))]
        model = fit(X[train_idx], y[train_idx], train_idx)
        p = model.predict_proba(X[test])
        classes = [str(c) for c in getattr(model, "classes_", labels)]
        for j, c in enumerate(classes):
            proba[test, labels.index(c)] = p[:, j]
    return proba


def donor_calls(
    proba: np.ndarray, donors: np.ndarray, labels: list[str]
) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Each donor's call: the class of highest mean probability over its nuclei.

    Returns
    -------
    donors : pandas.Index
        Donor ids.
    mean_proba : numpy.ndarray
        Donors × classes.
    called : numpy.ndarray
        The called class per donor.
    """
    frame = pd.DataFrame(proba, columns=labels).groupby(np.asarray(donors), sort=True).mean()
    return frame.index, frame.to_numpy(), np.asarray(labels)[frame.to_numpy().argmax(axis=1)]


def _donor_truth(y: np.ndarray, donors: np.ndarray) -> pd.Series:
    return pd.Series(y).groupby(np.asarray(donors), sort=True).first()


def _scores(
    y: np.ndarray, proba: np.ndarray, donors: np.ndarray, labels: list[str], n_boot: int, seed: int
) -> dict[str, Any]:
    from scipy.stats import binomtest

    pred = np.asarray(labels)[proba.argmax(axis=1)]
    acc, low, high = bootstrap_ci(y, pred, "accuracy", n_boot, seed, groups=donors, labels=labels)
    index, _, called = donor_calls(proba, donors, labels)
    truth = _donor_truth(y, donors).loc[index].to_numpy()
    k, n = int((called == truth).sum()), len(truth)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "accuracy": acc,
        "accuracy_low": low,
        "accuracy_high": high,
        "donor_accuracy": k / n,
        "donor_accuracy_low": float(ci.low),
        "donor_accuracy_high": float(ci.high),
        "n_donors": n,
    }


def permute_among_donors(y: np.ndarray, donors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The nuclei's labels after dealing the donors' conditions anew among the donors."""
    truth = _donor_truth(y, donors)
    shuffled = pd.Series(rng.permutation(truth.to_numpy()), index=truth.index)
    return shuffled.loc[np.asarray(donors)].to_numpy()


def classify_by_donor(
    adata: AnnData,
    classifier: Mapping[str, Any],
    seed: int = 0,
    n_permutations: int | None = None,
) -> DonorClassification:
    """Leave-donors-out classification of the conditions, per nucleus and per donor.

    Parameters
    ----------
    adata
        ``latent.h5ad`` of a case–control run: obs ``condition``, ``donor_id``, ``fold``
        (``02_perturb``), obsm ``X_ldvae`` (and ``X_pca_baseline``, ``X_disease_genes`` for
        the baselines), ``uns["case_control"]``.
    classifier
        The resolved ``classifier`` params section.
    seed
        Seed of the networks, the bootstrap and the permutations.
    n_permutations
        Donor-permutation repeats (default ``classifier["n_permutations"]``).

    Returns
    -------
    DonorClassification
    """
    obs = adata.obs
    for col in ("condition", "donor_id", "fold"):
        if col not in obs:
            raise ClassifierError(
                f"obs has no '{col}' column; a case-control run writes it in 02_perturb "
                "(design: case_control) — rerun 02_perturb and 03_ldvae."
            )
    labels = [str(c) for c in obs["condition"].cat.categories]
    y = obs["condition"].astype(str).to_numpy()
    donors = obs["donor_id"].astype(str).to_numpy()
    folds = obs["fold"].to_numpy()
    design = dict(adata.uns.get("case_control", {}))
    unit = str(design.get("split", "donor"))
    # the network's early-stopping slice: nuclei of the training donors (the held-out fold's
    # donors stay unseen). A slice of whole donors would, with a handful of donors, often hold
    # one condition only and stop the network on a one-class loss.
    groups = adata.obs_names.astype(str).to_numpy()
    n_boot = int(classifier.get("n_bootstrap", 500))
    mlp_kw = {k: classifier[k] for k in MLP_KEYS if k in classifier}

    def mlp(s: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], Any]:
        return lambda X, yy, idx: train_mlp(
            X, yy, groups=groups[idx], seed=s, classes=labels, **mlp_kw
        )

    fits: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Any]] = {
        "mlp_ldvae": mlp(seed),
        "logreg_ldvae": lambda X, yy, idx: train_logreg(X, yy, seed),
        "mlp_pca": mlp(seed),
        "logreg_disease_genes": lambda X, yy, idx: train_logreg(X, yy, seed),
        "majority": lambda X, yy, idx: train_majority(X, yy),
    }
    rows, probas = [], {}
    for name, key in MODELS.items():
        if key not in adata.obsm:
            log.info("%s: obsm['%s'] is missing; left out", name, key)
            continue
        X = np.asarray(adata.obsm[key], dtype=np.float64)
        probas[name] = out_of_fold(X, y, folds, fits[name], labels, seed)
        rows.append(
            {
                "model": name,
                "description": BASELINE_DESCRIPTIONS[name],
                "n_features": 0 if name == "majority" else X.shape[1],
                **_scores(y, probas[name], donors, labels, n_boot, seed),
            }
        )
        log.info("%s: per-nucleus accuracy %.3f", name, rows[-1]["accuracy"])
    table = pd.DataFrame(rows).set_index("model")

    n_perm = int(classifier.get("n_permutations", 10) if n_permutations is None else n_permutations)
    X = np.asarray(adata.obsm["X_ldvae"], dtype=np.float64)
    perm_acc, perm_donor = [], []
    for i in range(n_perm):
        rng = np.random.default_rng([seed, 11, i])
        shuffled = permute_among_donors(y, donors, rng)
        p = out_of_fold(X, shuffled, folds, mlp(seed + i + 1), labels, seed + i + 1)
        s = _scores(shuffled, p, donors, labels, 10, seed)
        perm_acc.append(s["accuracy"])
        perm_donor.append(s["donor_accuracy"])
    observed = table.loc["mlp_ldvae"]
    permutation = {
        "n_permutations": n_perm,
        "unit": "donor",
        **_summary("accuracy", perm_acc, float(observed["accuracy"])),
        **_summary("donor_accuracy", perm_donor, float(observed["donor_accuracy"])),
    }

    proba = probas["mlp_ldvae"]
    predictions = obs[
        [c for c in ("condition", "donor_id", "cell_type", "fold") if c in obs]
    ].copy()
    predictions["predicted"] = pd.Categorical(
        np.asarray(labels)[proba.argmax(axis=1)], categories=labels
    )
    for j, lab in enumerate(labels):
        predictions[f"p_{lab}"] = proba[:, j]
    index, mean_p, called = donor_calls(proba, donors, labels)
    donor_frame = pd.DataFrame(
        {
            "condition": _donor_truth(y, donors).loc[index].to_numpy(),
            "fold": pd.Series(folds).groupby(donors, sort=True).first().loc[index].to_numpy(),
            "nuclei": pd.Series(donors).value_counts().loc[index].to_numpy(),
            "predicted": called,
            **{f"p_{lab}": mean_p[:, j] for j, lab in enumerate(labels)},
        },
        index=pd.Index(index, name="donor_id"),
    ).sort_values(["condition", "fold"])
    truth = _donor_truth(y, donors)
    return DonorClassification(
        labels=labels,
        table=table,
        donors=donor_frame,
        permutation=permutation,
        predictions=predictions,
        split={
            "unit": unit,
            "n_folds": int(len(np.unique(folds))),
            "donors_across_folds": int(design.get("donors_across_folds", -1)),
        },
        chance={
            "chance_uniform": 1.0 / len(labels),
            "chance_donors": float(truth.value_counts(normalize=True).max()),
        },
    )


def _summary(name: str, values: list[float], observed: float) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    low, high = np.percentile(arr, [2.5, 97.5]) if arr.size else (np.nan, np.nan)
    p = "p_value" if name == "accuracy" else f"{name.removesuffix('_accuracy')}_p_value"
    return {
        name: float(arr.mean()) if arr.size else np.nan,
        f"{name}_low": float(low),
        f"{name}_high": float(high),
        f"{name}_values": [float(v) for v in arr],
        p: float((1 + (arr >= observed - 1e-12).sum()) / (1 + arr.size)),
    }


def summary_metrics(result: DonorClassification) -> dict[str, Any]:
    """The ``classifier`` section of ``metrics.json`` for a case–control run.

    Keys as in the synthetic design where they mean the same (``accuracy``,
    ``accuracy_low``, ``accuracy_high``, ``permutation_accuracy``, ``chance_uniform``,
    ``baseline_accuracy``), plus ``design`` = ``"case_control"``, ``donor_accuracy`` with its
    interval, ``permutation_donor_accuracy``, ``per_model`` (the whole table), ``split``.
    """
    main = result.table.loc["mlp_ldvae"]
    perm = result.permutation
    return {
        "design": "case_control",
        "accuracy": float(main["accuracy"]),
        "accuracy_low": float(main["accuracy_low"]),
        "accuracy_high": float(main["accuracy_high"]),
        "donor_accuracy": float(main["donor_accuracy"]),
        "donor_accuracy_low": float(main["donor_accuracy_low"]),
        "donor_accuracy_high": float(main["donor_accuracy_high"]),
        "n_donors": int(main["n_donors"]),
        "permutation_accuracy": perm["accuracy"],
        "permutation_accuracy_low": perm["accuracy_low"],
        "permutation_accuracy_high": perm["accuracy_high"],
        "permutation_donor_accuracy": perm["donor_accuracy"],
        "permutation_donor_accuracy_low": perm["donor_accuracy_low"],
        "permutation_donor_accuracy_high": perm["donor_accuracy_high"],
        "permutation_p_value": perm["p_value"],
        "permutation_donor_p_value": perm["donor_p_value"],
        "chance_uniform": result.chance["chance_uniform"],
        "chance_donors": result.chance["chance_donors"],
        "baseline_accuracy": {m: float(v) for m, v in result.table["accuracy"].items()},
        "baseline_donor_accuracy": {m: float(v) for m, v in result.table["donor_accuracy"].items()},
        "split": result.split,
        "labels": result.labels,
    }
