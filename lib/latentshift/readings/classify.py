"""Telling the conditions apart from the latent: the classifier, its baselines, null and intervals.

The original study trained a small feed-forward network on the LDVAE latent space and
reported 91% accuracy at telling normal from perturbed cells. :func:`classify_conditions`
repeats that measurement, in every design, through the units engine
(:mod:`latentshift.design.units`): each model is trained on the cells of some units and scores the
cells of units it never saw (02's held-out fraction of source cells, or every fold of its
leave-donors-out folds, each scored by a model trained on the other folds), and every number
sits beside a baseline, the design's label null and a 95% interval that resamples units:

- the models: the network on the latent (:func:`latentshift.readings.network.train_mlp`), logistic
  regression on the latent, the same network on PCA of the counts, logistic regression on the
  named sets' genes (it is told where to look) and the majority class; training rows are
  class-balanced (:func:`balanced_rows`), so no model learns the other folds' prior;
- **per cell** (accuracy, balanced accuracy, macro F1, per-class precision and recall, the
  confusion matrix) and **per unit** (:func:`latentshift.design.units.unit_scores`: a held-out unit's
  accuracy when the conditions sit within units, its call when they sit between them);
- **the label null**: the whole evaluation repeated under the design's relabellings
  (:func:`latentshift.design.nulls.relabel`: labels permuted within units when paired, whole units
  relabelled when not; enumerated exactly when they are few), the folds dealt again for each
  relabelled design so that no training side is left with one condition.

Keys of the ``classifier`` section of ``metrics.json`` (written by ``05_classifier``)
-------------------------------------------------------------------------------------------
``labels``, ``n_classes``, ``n_train``, ``n_test``, ``n_features``, ``latent_key``
    The classes (the reference first), the training cells of the first scored fold, the
    scored cells and the input dimension of the network.
``hidden_layers``, ``epochs_trained``, ``best_epoch``
    The network (of the first scored fold) and where early stopping kept it.
``accuracy``, ``accuracy_low``, ``accuracy_high``
``balanced_accuracy``, ``balanced_accuracy_low``, ``balanced_accuracy_high``
``macro_f1``, ``macro_f1_low``, ``macro_f1_high``
    The network on the latent, over the scored cells, with 95% percentile bootstrap intervals
    that resample units.
``per_class``, ``confusion_counts``, ``confusion_normalized``
    Per-class precision and recall with intervals and support; the confusion matrix (rows:
    true class) in counts and row-normalised.
``unit``, ``paired``, ``unit_accuracy``, ``unit_accuracy_low``, ``unit_accuracy_high``, ``n_units``
    The unit and the pairing; the per-unit score of the network (:func:`latentshift.design.units.unit_summary`).
``baseline_accuracy``, ``baseline_accuracy_low``, ``baseline_accuracy_high``, ``baseline_balanced_accuracy``, ``baseline_macro_f1``, ``baseline_unit_accuracy``
    ``{model: value}`` for every model of the baseline table.
``permutation_accuracy``, ``permutation_accuracy_low``, ``permutation_accuracy_high``, ``permutation_accuracy_sd``, ``permutation_p_value``
``permutation_unit_accuracy``, ``permutation_unit_accuracy_low``, ``permutation_unit_accuracy_high``, ``permutation_unit_p_value``
    The network under the design's label null: mean and 2.5/97.5 percentiles of the relabelled
    accuracies (per cell, per unit), the p-values of the observed ones.
``n_permutations``, ``permutation_exact``, ``n_relabellings``, ``log10_relabellings``, ``permutation_min_p_value``, ``permutation_invalid``
    Relabellings scored, whether they are every distinct one, how many the design has (null
    beyond 10^15) and its log10, the smallest attainable p-value, and the relabellings no fold
    could score.
``chance_uniform``, ``chance_majority``, ``chance_units``
    ``1 / n_classes``, the majority-class model's accuracy, and the largest condition's share
    of units (unpaired; ``1 / n_classes`` when paired).
``untouched``
    Disease copies the perturbation left unchanged (``perturbed == False``) versus those it
    changed (:func:`latentshift.readings.evaluation.untouched_report`).
``split``, ``split_grouped``, ``units_across``
    The split (``scheme``, ``unit``, ``paired``, ``n_folds``, ``units_across``): whether it
    keeps units whole (as declared, or measured) and how many units sit on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.design.folds import Folds, folds_of, units_across
from latentshift.design.nulls import relabel
from latentshift.design.units import Units, from_adata, unit_scores, unit_summary
from latentshift.errors import ClassifierError
from latentshift.model.features import (
    DISEASE_GENES_KEY,
    disease_gene_baseline_features,
    pca_features,
)
from latentshift.readings.evaluation import METRIC_NAMES, evaluate, untouched_report
from latentshift.readings.network import MLPClassifier, train_logreg, train_majority, train_mlp

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Rows of the baseline table, in display order.
BASELINE_MODELS: tuple[str, ...] = (
    "mlp_ldvae",
    "logreg_ldvae",
    "mlp_pca",
    "logreg_disease_genes",
    "majority",
)

BASELINE_DESCRIPTIONS: dict[str, str] = {
    "mlp_ldvae": "MLP on the LDVAE latent (the classifier)",
    "logreg_ldvae": "logistic regression on the LDVAE latent",
    "mlp_pca": "same MLP on PCA of log-normalised counts",
    "logreg_disease_genes": "logistic regression on disease-set genes (knows where to look)",
    "majority": "majority class (chance)",
}


#: Keys of the ``classifier`` section that :func:`latentshift.readings.network.train_mlp` takes.
MLP_KEYS: tuple[str, ...] = (
    "hidden_layers",
    "max_epochs",
    "lr",
    "weight_decay",
    "validation_fraction",
    "patience",
)


#: The obsm key each model reads (the latent's key is the caller's).
FEATURE_KEYS: dict[str, str] = {
    "mlp_ldvae": "latent",
    "logreg_ldvae": "latent",
    "mlp_pca": "X_pca_baseline",
    "logreg_disease_genes": DISEASE_GENES_KEY,
    "majority": "latent",
}

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]


# --- training out of fold -------------------------------------------------------------------


def balanced_rows(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions with every class subsampled to the smallest class's size (sorted).

    Leave-units-out folds can hold different shares of each condition, so a model trained on
    the other folds would learn their prior, which is the held-out fold's minority: with a weak
    signal it would score *below* chance. Equal classes in training remove that prior (when the
    classes are already equal, as with copies, every row is kept).
    """
    classes, counts = np.unique(y, return_counts=True)
    n = int(counts.min())
    keep = [rng.choice(np.flatnonzero(y == c), n, replace=False) for c in classes]
    return np.sort(np.concatenate(keep))


def out_of_fold(
    X: np.ndarray, y: np.ndarray, folds: Folds, fit: Fit, labels: list[str], seed: int = 0
) -> tuple[np.ndarray, dict[int, Any]]:
    """Class probabilities of the scored cells, each from a model fit on the other folds.

    Parameters
    ----------
    X, y
        Features and labels of every cell.
    folds
        The split (:class:`latentshift.design.folds.Folds`): each scored fold is predicted by a model
        trained on the cells outside it (class-balanced, :func:`balanced_rows`).
    fit
        ``fit(X_train, y_train, train_index) -> model`` with ``predict_proba``.
    labels
        Classes: the columns of the result.
    seed
        Seed of the class balancing of each fold's training rows.

    Returns
    -------
    proba : numpy.ndarray
        Cells × classes (zeros outside the scored folds).
    models : dict
        The model of each scored fold.
    """
    proba = np.zeros((len(y), len(labels)))
    models = {}
    for fold in folds.scored:
        test = folds.fold == fold
        train_idx = np.flatnonzero(~test)
        train_idx = train_idx[balanced_rows(y[train_idx], np.random.default_rng([seed, int(fold)]))]
        model = fit(X[train_idx], y[train_idx], train_idx)
        p = model.predict_proba(X[test])
        for j, c in enumerate(str(c) for c in getattr(model, "classes_", labels)):
            proba[test, labels.index(c)] = p[:, j]
        models[int(fold)] = model
    return proba, models


def split_report(
    units: Units, folds: Folds, declared_grouped: bool | None = None
) -> dict[str, Any]:
    """How the split treats the units: ``scheme``, ``unit``, ``paired``, ``n_folds``,
    ``units_across`` (units with cells on both sides: 0 unless units are split) and ``grouped``
    (as declared by ``split.grouped``, else measured)."""
    across = units_across(folds.fold, units.unit)
    grouped = declared_grouped if declared_grouped is not None else across == 0
    if grouped and across:
        log.warning(
            "the split is declared grouped but %d %ss are on both sides", across, units.name
        )
    return {
        "scheme": folds.scheme if grouped or folds.scheme != "held-out" else "held-out (cells)",
        "unit": units.name,
        "paired": units.paired,
        "n_folds": len(np.unique(folds.fold)),
        "units_across": across,
        "grouped": bool(grouped) and folds.scheme != "cells",
    }


# --- the whole comparison -------------------------------------------------------------------


@dataclass
class ClassificationResult:
    """Everything :func:`classify_conditions` measured.

    Attributes
    ----------
    labels
        Classes in display order (the reference first).
    units, folds
        The design's units and the split scored.
    model
        The network on the latent trained for the first scored fold.
    main
        :func:`latentshift.readings.evaluation.evaluate` of that network over the scored cells.
    baselines
        One row per model (index in :data:`BASELINE_MODELS`): accuracy, balanced accuracy and
        macro F1 with intervals, ``unit_accuracy`` with its interval.
    permutation
        The label null of the network on the latent (see :func:`label_null`).
    unit_table
        :func:`latentshift.design.units.unit_scores` of the network, one row per scored unit.
    untouched
        :func:`latentshift.readings.evaluation.untouched_report` of the network.
    split
        :func:`split_report`.
    chance
        ``chance_uniform``, ``chance_majority``, ``chance_units``.
    predictions
        The scored cells' obs with ``fold``, ``predicted`` and ``p_<class>`` columns.
    n_train
        Training cells of the first scored fold.
    latent_key
        The obsm key classified.
    evaluations
        :func:`latentshift.readings.evaluation.evaluate` of every model.
    models
        Every model trained for the first scored fold (e.g. to call other cells with).
    """

    labels: list[str]
    units: Units
    folds: Folds
    model: MLPClassifier
    main: dict[str, Any]
    baselines: pd.DataFrame
    permutation: dict[str, Any]
    unit_table: pd.DataFrame
    untouched: dict[str, Any]
    split: dict[str, Any]
    chance: dict[str, float]
    predictions: pd.DataFrame
    n_train: int
    latent_key: str
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)


def _fits(
    units: Units, classifier: Mapping[str, Any], seed: int, groups: np.ndarray
) -> dict[str, Fit]:
    """Each model's ``fit(X, y, train_index)``; the network's early-stopping slice keeps
    ``groups`` (copies of one cell) whole."""
    labels = list(units.labels)
    mlp_kw = {k: classifier[k] for k in MLP_KEYS if k in classifier}

    def mlp(X: np.ndarray, y: np.ndarray, idx: np.ndarray) -> MLPClassifier:
        return train_mlp(X, y, groups=groups[idx], seed=seed, classes=labels, **mlp_kw)

    return {
        "mlp_ldvae": mlp,
        "logreg_ldvae": lambda X, y, idx: train_logreg(X, y, seed),
        "mlp_pca": mlp,
        "logreg_disease_genes": lambda X, y, idx: train_logreg(X, y, seed),
        "majority": lambda X, y, idx: train_majority(X, y),
    }


def _features(adata: AnnData, latent_key: str, pca_key: str, folds: Folds, seed: int) -> dict:
    """Each model's features (a model whose features are missing is left out)."""
    Xl = np.asarray(adata.obsm[latent_key], dtype=np.float64)
    out = {"mlp_ldvae": Xl, "logreg_ldvae": Xl, "majority": Xl}
    if pca_key in adata.obsm:
        out["mlp_pca"] = np.asarray(adata.obsm[pca_key], dtype=np.float64)
    else:
        log.warning("obsm['%s'] is missing; computing a PCA baseline here", pca_key)
        train = ~np.isin(folds.fold, folds.scored[:1])
        out["mlp_pca"] = pca_features(adata, Xl.shape[1], train, seed)
    genes = disease_gene_baseline_features(adata)
    if genes is not None:
        out["logreg_disease_genes"] = genes
    return out


def _scores(
    units: Units, y: np.ndarray, proba: np.ndarray, scored: np.ndarray, n_boot: int, seed: int
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """Per-cell evaluation (bootstrap over units), per-unit table and its summary."""
    labels = list(units.labels)
    pred = np.asarray(labels)[proba[scored].argmax(axis=1)]
    ev = evaluate(y[scored], pred, labels, n_boot, seed, groups=units.unit[scored])
    table = unit_scores(units.take(scored), proba[scored])
    return ev, table, unit_summary(table, units.paired, n_boot, seed)


def _scorable_folds(folds: Folds, y: np.ndarray) -> tuple[Folds, dict[int, str]]:
    """The folds that can be scored and why the others cannot (refusing a split with none)."""
    skipped = folds.problems(y)
    if skipped:  # untestable folds are left out and said; the others are scored
        log.warning("folds not scored: %s", "; ".join(skipped.values()))
        folds = folds.without(list(skipped))
    if not folds.scored:
        raise ClassifierError(
            f"no fold of the split can be scored ({'; '.join(skipped.values())}). 02_perturb "
            "deals the folds; give every condition enough units (see the fold table on its "
            "page), or fewer folds."
        )
    return folds, skipped


def _prediction_table(
    obs: pd.DataFrame, folds: Folds, proba: np.ndarray, pred: np.ndarray, labels: list[str]
) -> pd.DataFrame:
    """The scored cells' obs with ``fold``, ``predicted`` and ``p_<class>`` columns."""
    scored = folds.scored_mask
    keep = [
        c for c in ("condition", "source_cell", "donor_id", "perturbed", "cell_type") if c in obs
    ]
    predictions = obs.loc[scored, keep].copy()
    predictions["fold"] = folds.fold[scored]
    predictions["predicted"] = pd.Categorical(pred[scored], categories=labels)
    for j, lab in enumerate(labels):
        predictions[f"p_{lab}"] = proba[scored, j]
    return predictions


def classify_conditions(
    adata: AnnData,
    classifier: Mapping[str, Any],
    seed: int = 0,
    units: Units | None = None,
    folds: Folds | None = None,
    latent_key: str = "X_ldvae",
    pca_key: str = "X_pca_baseline",
    declared_grouped: bool | None = None,
    baselines: bool = True,
) -> ClassificationResult:
    """Train the condition classifier on the latent beside every baseline, with its null.

    Parameters
    ----------
    adata
        ``latent.h5ad``: obs ``condition``, the unit column, ``fold`` or ``split``,
        ``source_cell``; ``obsm[latent_key]``; for the baselines ``obsm[pca_key]`` (computed
        here when absent) and ``obsm["X_disease_genes"]`` or the named sets' genes.
    classifier
        The resolved ``classifier`` params section (network settings, ``n_bootstrap``,
        ``n_permutations``).
    seed
        Seed of every random step (networks, class balancing, bootstrap, relabellings).
    units, folds
        The design and its split (default: what 02 recorded, :func:`latentshift.design.units.from_adata`
        and :func:`latentshift.design.folds.folds_of`).
    latent_key, pca_key
        obsm keys of the latent and of the PCA baseline.
    declared_grouped
        ``split.grouped`` as configured (reported beside the measured count of split units).
    baselines
        Also train the baselines (``False``: the network, its null and the majority only).

    Returns
    -------
    ClassificationResult
    """
    if latent_key not in adata.obsm:
        raise ClassifierError(
            f"obsm['{latent_key}'] is missing; it is written by 03_ldvae — rerun that step."
        )
    units = units if units is not None else from_adata(adata)
    folds = folds if folds is not None else folds_of(adata.obs, adata.uns.get("design"))
    labels = list(units.labels)
    y = units.condition
    folds, skipped = _scorable_folds(folds, y)
    copies = (
        adata.obs["source_cell"].astype(str).to_numpy()
        if "source_cell" in adata.obs
        else adata.obs_names.astype(str).to_numpy()
    )
    fits = _fits(units, classifier, seed, copies)
    features = _features(adata, latent_key, pca_key, folds, seed)
    scored = folds.scored_mask
    n_boot = int(classifier.get("n_bootstrap", 500))
    wanted = BASELINE_MODELS if baselines else ("mlp_ldvae", "majority")
    evals, rows, probas, unit_tables, models = {}, [], {}, {}, {}
    for name in (m for m in wanted if m in features):
        X = features[name]
        probas[name], models[name] = out_of_fold(X, y, folds, fits[name], labels, seed)
        evals[name], unit_tables[name], per_unit = _scores(
            units, y, probas[name], scored, n_boot, seed
        )
        rows.append(
            {
                "model": name,
                "description": BASELINE_DESCRIPTIONS[name],
                "n_features": 0 if name == "majority" else X.shape[1],
                **{k: evals[name][k] for m in METRIC_NAMES for k in (m, f"{m}_low", f"{m}_high")},
                **per_unit,
            }
        )
        log.info("%s: accuracy %.3f over %d cells", name, evals[name]["accuracy"], scored.sum())
    table = pd.DataFrame(rows).set_index("model")
    main = table.loc["mlp_ldvae"]
    permutation = label_null(
        features["mlp_ldvae"],
        units,
        folds,
        lambda s: _fits(units, classifier, s, copies)["mlp_ldvae"],
        int(classifier.get("n_permutations", 10)),
        seed,
        observed=(float(main["accuracy"]), float(main["unit_accuracy"])),
    )

    proba = probas["mlp_ldvae"]
    pred = np.asarray(labels)[proba.argmax(axis=1)]
    obs = adata.obs
    perturbed = obs["perturbed"].to_numpy(dtype=bool) if "perturbed" in obs else y != labels[0]
    predictions = _prediction_table(obs, folds, proba, pred, labels)
    first = folds.scored[0]
    share = pd.Series(y).groupby(units.unit).first().value_counts(normalize=True)
    return ClassificationResult(
        labels=labels,
        units=units,
        folds=folds,
        model=models["mlp_ldvae"][first],
        main=evals["mlp_ldvae"],
        baselines=table,
        permutation=permutation,
        unit_table=unit_tables["mlp_ldvae"],
        untouched=untouched_report(y[scored], pred[scored], perturbed[scored], labels[0]),
        split={**split_report(units, folds, declared_grouped), "folds_not_scored": skipped},
        chance={
            "chance_uniform": 1.0 / len(labels),
            "chance_majority": float(evals["majority"]["accuracy"]),
            "chance_units": 1.0 / len(labels) if units.paired else float(share.max()),
        },
        predictions=predictions,
        n_train=int((folds.fold != first).sum()),
        latent_key=latent_key,
        evaluations=evals,
        models={name: by_fold[first] for name, by_fold in models.items()},
    )


def label_null(
    X: np.ndarray,
    units: Units,
    folds: Folds,
    make_fit: Callable[[int], Fit],
    n_permutations: int = 10,
    seed: int = 0,
    observed: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The network on the latent under the design's label null.

    Each relabelling of :func:`latentshift.design.nulls.relabel` (within units when paired, whole
    units when not; every distinct one when they are at most ``n_permutations``) is scored
    exactly as the observed labels are: the folds dealt again for the relabelled design
    (:meth:`latentshift.design.folds.Folds.redeal`), a network trained out of fold with its own seed
    (``make_fit(seed)``), accuracy per cell and per unit against the relabelled conditions. A
    relabelling that no fold can score (a training side with one condition) is counted and
    left out.

    Returns
    -------
    dict
        ``accuracy`` and ``unit_accuracy`` (means over relabellings) with ``_low``/``_high``
        (2.5/97.5 %) and ``_sd``, ``accuracies`` and ``unit_accuracies`` (each relabelling's),
        ``p_value`` and ``unit_p_value`` of ``observed``, ``n_permutations`` (scored),
        ``exact``, ``n_relabellings`` (distinct ones of the design), ``min_p_value``,
        ``invalid`` and ``description`` (the null in words).
    """
    labels = list(units.labels)
    relabellings = relabel(units, n_permutations, np.random.default_rng([seed, 11]))
    accs, unit_accs, invalid = [], [], 0
    for i in range(len(relabellings)):
        y_i = relabellings.conditions(i)
        u_i = units.with_conditions(y_i)
        f_i = folds.redeal(u_i)
        if f_i.problem(y_i):
            invalid += 1
            accs.append(np.nan)
            unit_accs.append(np.nan)
            continue
        p_i, _ = out_of_fold(X, y_i, f_i, make_fit(seed + i + 1), labels, seed + i + 1)
        s_i = f_i.scored_mask
        accs.append(float((np.asarray(labels)[p_i[s_i].argmax(axis=1)] == y_i[s_i]).mean()))
        table = unit_scores(u_i.take(s_i), p_i[s_i])
        unit_accs.append(unit_summary(table, units.paired, 0)["unit_accuracy"])
    out: dict[str, Any] = {
        "n_permutations": len(accs) - invalid,
        "exact": relabellings.exact,
        "n_relabellings": relabellings.n_distinct,
        "log10_relabellings": relabellings.log10_distinct,
        "min_p_value": relabellings.min_pvalue,
        "invalid": invalid,
        "description": relabellings.describe(units.name),
        "within_units": units.paired,
    }
    for name, values, obs in (
        ("accuracy", accs, observed[0] if observed else None),
        ("unit_accuracy", unit_accs, observed[1] if observed else None),
    ):
        aligned = np.asarray(values, dtype=np.float64)
        arr = aligned[np.isfinite(aligned)]
        low, high = np.percentile(arr, [2.5, 97.5]) if arr.size else (np.nan, np.nan)
        prefix = "" if name == "accuracy" else "unit_"
        out[name] = float(arr.mean()) if arr.size else float("nan")
        out[f"{name}_low"], out[f"{name}_high"] = float(low), float(high)
        out[f"{name}_sd"] = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        out[f"{prefix}accuracies"] = [float(v) for v in arr]
        out[f"{prefix}p_value"] = None if obs is None else relabellings.pvalue(obs, aligned)
    return out


def accuracy_by_epoch(
    adata: AnnData,
    classifier: Mapping[str, Any],
    seed: int = 0,
    n_bootstrap: int = 200,
    units: Units | None = None,
    folds: Folds | None = None,
) -> pd.DataFrame:
    """When in training is the shift encoded? The network's held-out accuracy on each snapshot.

    03 keeps the latent every ``ldvae.snapshot_every`` epochs of one training run
    (:func:`latentshift.model.ldvae.store_snapshots`); the same network as the headline is trained on
    each snapshot and on the final latent, on the cells outside the first scored fold (the
    cells the LDVAE trained on), and scored on that fold.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, ``accuracy``, ``accuracy_low``, ``accuracy_high``,
        ``final`` (the headline latent); empty when no snapshot was kept.
    """
    info = adata.uns.get("ldvae_snapshots") or {}
    epochs = [int(e) for e in np.atleast_1d(info.get("epochs", []))]
    if not epochs:
        return pd.DataFrame(columns=["epoch", "accuracy", "accuracy_low", "accuracy_high", "final"])
    units = units if units is not None else from_adata(adata)
    folds = folds if folds is not None else folds_of(adata.obs, adata.uns.get("design"))
    first = Folds(folds.fold, folds.scored[:1], folds.scheme, folds.n_folds, folds.seed)
    copies = adata.obs["source_cell"].astype(str).to_numpy()
    fit = _fits(units, classifier, seed, copies)["mlp_ldvae"]
    scored = first.scored_mask
    points = [(e, f"X_ldvae_epoch{e}") for e in epochs]
    points.append((int(info.get("final_epoch", epochs[-1] + 1)), "X_ldvae"))
    rows = []
    for epoch, key in points:
        X = np.asarray(adata.obsm[key], dtype=np.float64)
        proba, _ = out_of_fold(X, units.condition, first, fit, list(units.labels), seed)
        pred = np.asarray(units.labels)[proba[scored].argmax(axis=1)]
        ev = evaluate(
            units.condition[scored],
            pred,
            units.labels,
            n_bootstrap,
            seed,
            groups=units.unit[scored],
        )
        rows.append(
            {
                "epoch": epoch,
                "accuracy": ev["accuracy"],
                "accuracy_low": ev["accuracy_low"],
                "accuracy_high": ev["accuracy_high"],
                "final": key == "X_ldvae",
            }
        )
        log.info("accuracy at epoch %d: %.3f", epoch, ev["accuracy"])
    return pd.DataFrame(rows)
