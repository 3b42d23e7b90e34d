"""Disease-state classifier on the latent space, with baselines, controls and uncertainty.

The original study trained a small feed-forward network on the LDVAE latent space and
reported 91% accuracy at telling normal from perturbed cells. This module repeats that
measurement and puts every number beside a baseline, a control and a 95% bootstrap interval:

- :func:`train_mlp` — a small torch network (Adam, cross-entropy, early stopping on a
  validation slice of the *training* split, grouped by source cell so copies of one cell never
  sit on both sides), inputs standardised with training statistics, seeded and deterministic
  on CPU.
- :func:`train_logreg` — scikit-learn logistic regression (standardised inputs).
- :func:`bootstrap_ci` / :func:`evaluate` — metrics with percentile intervals over test cells.
- :func:`disease_gene_features` — log-normalised expression of the disease-set genes only
  (library size from the full sparse row sums; only the selected gene columns are densified).
- :func:`classify_conditions` — the whole comparison the notebook ``05_classifier`` shows;
  :func:`summary_metrics` turns it into the ``classifier`` section of ``metrics.json``.

Keys of the ``classifier`` section of ``metrics.json`` (written by ``05_classifier``)
-------------------------------------------------------------------------------------------
``labels``, ``n_classes``, ``n_train``, ``n_test``, ``n_features``, ``latent_key``
    The classes (``"normal"`` first, then the perturbation entries), the split sizes and the
    input dimension of the main classifier.
``hidden_layers``, ``epochs_trained``, ``best_epoch``
    The network and where early stopping kept it.
``accuracy``, ``accuracy_low``, ``accuracy_high``
``balanced_accuracy``, ``balanced_accuracy_low``, ``balanced_accuracy_high``
``macro_f1``, ``macro_f1_low``, ``macro_f1_high``
    The MLP on the LDVAE latent, on the test split, with 95% percentile bootstrap intervals
    over test cells.
``per_class``
    ``{label: {precision, precision_low, precision_high, recall, recall_low, recall_high, support}}``.
``confusion_counts``, ``confusion_normalized``
    Confusion matrix (rows: true class, columns: predicted, in ``labels`` order); counts and
    row-normalised.
``baseline_accuracy``, ``baseline_accuracy_low``, ``baseline_accuracy_high``,
``baseline_balanced_accuracy``, ``baseline_macro_f1``
    ``{model: value}`` for every model of the baseline table: ``mlp_ldvae`` (the classifier
    above), ``logreg_ldvae``, ``mlp_pca``, ``logreg_disease_genes`` and ``majority``.
``permutation_accuracy``, ``permutation_accuracy_low``, ``permutation_accuracy_high``,
``permutation_accuracy_sd``, ``permutation_p_value``, ``n_permutations``
    The same network trained on shuffled training labels, ``n_permutations`` times: mean
    accuracy (must sit at chance), 2.5/97.5 percentiles and standard deviation of the
    permuted accuracies, and the permutation p-value of the real accuracy.
``chance_uniform``, ``chance_majority``
    ``1 / n_classes`` and the test accuracy of always predicting the training majority class.
``untouched``
    ``{n_untouched, untouched_accuracy, untouched_predicted_normal, n_perturbed_copies,
    perturbed_copies_accuracy}``: disease copies the perturbation left unchanged
    (``perturbed == False``) versus those it changed; ``None`` where there are no such cells.
``split_grouped``, ``n_leaked_source_cells``
    Whether the split was grouped by source cell, and how many source cells have copies in
    both train and test (0 when grouped).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.counts import counts_matrix, log_normalise_genes
from latentshift.errors import ClassifierError
from latentshift.evaluation import METRIC_NAMES, evaluate, permutation_control, untouched_report
from latentshift.network import MLPClassifier, train_logreg, train_majority, train_mlp
from latentshift.perturb import perturbed_genes

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


#: Keys of the ``classifier`` section that :func:`latentshift.network.train_mlp` takes.
MLP_KEYS: tuple[str, ...] = (
    "hidden_layers",
    "max_epochs",
    "lr",
    "weight_decay",
    "validation_fraction",
    "patience",
)


# --- features and the split ---------------------------------------------------------------


def disease_gene_features(
    adata: AnnData,
    genes: Sequence[str],
    layer: str = "counts",
    target_sum: float = 1e4,
) -> np.ndarray:
    """Log-normalised expression of a few genes: ``log1p(counts / library_size * target_sum)``.

    The library size is each cell's total over *all* genes (sparse row sums), so a shift
    that moves every selected gene the same way stays visible. Only the selected gene
    columns are densified.

    Parameters
    ----------
    adata
        Cells with integer counts in ``layers[layer]`` (or ``X`` when the layer is absent).
    genes
        var_names to keep (e.g. the union of ``uns["perturbation_genes"]``).
    layer
        The counts layer.
    target_sum
        Counts per cell after normalisation.

    Returns
    -------
    numpy.ndarray
        ``(n_cells, n_genes)`` float array.
    """
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise ClassifierError(
            f"{len(missing)} disease-set genes are not in var_names (e.g. {missing[:3]}); "
            "pass the var_names recorded in uns['perturbation_genes']."
        )
    if not len(genes):
        raise ClassifierError(
            "no disease-set genes given; uns['perturbation_genes'] is empty — check 02_perturb's output."
        )
    columns = adata.var_names.get_indexer(list(genes))
    return log_normalise_genes(counts_matrix(adata, layer), columns, target_sum)


#: obsm key of the disease-gene baseline's features in ``latent.h5ad`` (written by 03 from
#: every gene of ``perturbed.h5ad``, whatever genes the LDVAE reads).
DISEASE_GENES_KEY = "X_disease_genes"


def disease_gene_baseline_features(adata: AnnData) -> np.ndarray | None:
    """The disease-gene baseline's features: ``obsm["X_disease_genes"]`` when 03 stored them.

    03 computes them from ``perturbed.h5ad`` before restricting the cells to the LDVAE's genes
    (:func:`disease_gene_features` over every gene: each cell's library size is its total over
    all genes), so the baseline does not move with the gene choice under study. Without the
    stored matrix (an AnnData not written by 03) they are computed from ``adata``'s own counts.

    Returns
    -------
    numpy.ndarray or None
        Cells × disease genes (float64), or ``None`` when nothing was perturbed.
    """
    if DISEASE_GENES_KEY in adata.obsm:
        return np.asarray(adata.obsm[DISEASE_GENES_KEY], dtype=np.float64)
    genes = perturbed_genes(adata)
    if not genes:
        log.warning("uns['perturbation_genes'] is empty: no disease-gene baseline")
        return None
    log.warning(
        "obsm['%s'] is missing: the disease-gene baseline is normalised by the totals over "
        "these cells' %d genes (03_ldvae stores it over every gene)",
        DISEASE_GENES_KEY,
        adata.n_vars,
    )
    return disease_gene_features(adata, genes)


def pca_features(
    adata: AnnData, n_comps: int, train_mask: np.ndarray, seed: int = 0, layer: str = "counts"
) -> np.ndarray:
    """PCA of log-normalised counts fit on training cells (fallback when ``obsm["X_pca_baseline"]`` is absent).

    The same baseline 03_ldvae stores (:func:`latentshift.embedding.pca_of_counts`).
    """
    from latentshift.embedding import pca_of_counts

    counts = counts_matrix(adata, layer)
    return pca_of_counts(counts, train_mask, min(n_comps, counts.shape[1] - 1), seed)[0]


def split_report(obs: pd.DataFrame, declared_grouped: bool | None = None) -> dict[str, Any]:
    """Whether the split is grouped by source cell, and how many source cells leak across it.

    Parameters
    ----------
    obs
        Cells with ``split`` ("train"/"test") and ``source_cell``.
    declared_grouped
        The ``split.grouped`` setting the split was made with, if known.

    Returns
    -------
    dict
        ``split_grouped`` (declared, or inferred as "no leaks" when unknown) and
        ``n_leaked_source_cells`` (source cells with copies in both train and test).
    """
    for col in ("split", "source_cell"):
        if col not in obs:
            raise ClassifierError(
                f"obs has no '{col}' column; it is written by 02_perturb — rerun that step."
            )
    split = obs["split"].astype(str)
    src = obs["source_cell"].astype(str)
    leaked = set(src[split == "train"]) & set(src[split == "test"])
    grouped = declared_grouped if declared_grouped is not None else not leaked
    if declared_grouped and leaked:
        log.warning(
            "the split is declared grouped but %d source cells are on both sides", len(leaked)
        )
    return {"split_grouped": bool(grouped), "n_leaked_source_cells": len(leaked)}


# --- the whole comparison -------------------------------------------------------------------


@dataclass
class ClassificationResult:
    """Everything :func:`classify_conditions` measured.

    Attributes
    ----------
    labels
        Classes in display order.
    model
        The MLP on the LDVAE latent.
    main
        :func:`evaluate` output of that MLP on the test split.
    baselines
        The baseline table (one row per model, index in :data:`BASELINE_MODELS`).
    permutation
        :func:`permutation_control` output (networks trained on shuffled labels).
    untouched
        :func:`untouched_report` of the MLP.
    split
        :func:`split_report`.
    chance
        ``chance_uniform`` and ``chance_majority``.
    predictions
        Test cells' obs with ``predicted`` and ``p_<class>`` columns.
    n_train
        Training cells.
    latent_key
        The obsm key classified.
    """

    labels: list[str]
    model: MLPClassifier
    main: dict[str, Any]
    baselines: pd.DataFrame
    permutation: dict[str, Any]
    untouched: dict[str, Any]
    split: dict[str, Any]
    chance: dict[str, float]
    predictions: pd.DataFrame
    n_train: int
    latent_key: str
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _labels_of(obs: pd.DataFrame) -> list[str]:
    cond = obs["condition"]
    if isinstance(cond.dtype, pd.CategoricalDtype):
        labels = [str(c) for c in cond.cat.categories]
    else:
        labels = sorted(map(str, cond.unique()))
        if "normal" in labels:
            labels = ["normal"] + [c for c in labels if c != "normal"]
    return labels


def classify_conditions(
    adata: AnnData,
    classifier: Mapping[str, Any],
    seed: int = 0,
    latent_key: str = "X_ldvae",
    pca_key: str = "X_pca_baseline",
    declared_grouped: bool | None = None,
    baselines: bool = True,
) -> ClassificationResult:
    """Train the condition classifier on the latent and every baseline and control.

    Parameters
    ----------
    adata
        ``latent.h5ad``: obs ``condition``, ``split``, ``source_cell``, ``perturbed``;
        ``obsm[latent_key]``; for the baselines ``obsm[pca_key]`` (computed here when absent),
        ``layers["counts"]`` and ``uns["perturbation_genes"]``.
    classifier
        The resolved ``classifier`` params section (``hidden_layers``, ``max_epochs``, ``lr``,
        ``weight_decay``, ``validation_fraction``, ``patience``, ``n_bootstrap``).
    seed
        Seed of every random step (networks, label shuffle, bootstrap).
    latent_key, pca_key
        obsm keys of the latent and of the PCA baseline.
    declared_grouped
        ``split.grouped`` as configured (reported beside the measured leak count).
    baselines
        Also train the baselines (``False``: the MLP, permutation control and majority only).

    Returns
    -------
    ClassificationResult
    """
    obs = adata.obs
    for col in ("condition", "split", "source_cell"):
        if col not in obs:
            raise ClassifierError(
                f"obs has no '{col}' column; it is written by 02_perturb — rerun 02_perturb and 03_ldvae."
            )
    if latent_key not in adata.obsm:
        raise ClassifierError(
            f"obsm['{latent_key}'] is missing; it is written by 03_ldvae — rerun that step."
        )
    split = obs["split"].astype(str).to_numpy()
    train, test = split == "train", split == "test"
    if not train.any() or not test.any():
        raise ClassifierError(
            f"the split has {train.sum()} train and {test.sum()} test cells; both are needed "
            "(check split.train_fraction)."
        )
    labels = _labels_of(obs)
    y = obs["condition"].astype(str).to_numpy()
    groups = obs["source_cell"].astype(str).to_numpy()
    n_boot = int(classifier.get("n_bootstrap", 500))
    mlp_kw = {k: classifier[k] for k in MLP_KEYS if k in classifier}

    def mlp(X: np.ndarray, y_fit: np.ndarray) -> MLPClassifier:
        return train_mlp(X[train], y_fit, groups=groups[train], seed=seed, classes=labels, **mlp_kw)

    Xl = np.asarray(adata.obsm[latent_key], dtype=np.float64)
    model = mlp(Xl, y[train])
    pred = model.predict(Xl[test])
    evals: dict[str, dict[str, Any]] = {"mlp_ldvae": evaluate(y[test], pred, labels, n_boot, seed)}

    majority = train_majority(Xl[train], y[train])
    evals["majority"] = evaluate(y[test], majority.predict(Xl[test]), labels, n_boot, seed)
    if baselines:
        evals["logreg_ldvae"] = evaluate(
            y[test], train_logreg(Xl[train], y[train], seed).predict(Xl[test]), labels, n_boot, seed
        )
        if pca_key in adata.obsm:
            Xp = np.asarray(adata.obsm[pca_key], dtype=np.float64)
        else:
            log.warning(
                "obsm['%s'] is missing; computing a PCA baseline here (fit on training cells)",
                pca_key,
            )
            Xp = pca_features(adata, Xl.shape[1], train, seed)
        evals["mlp_pca"] = evaluate(
            y[test], mlp(Xp, y[train]).predict(Xp[test]), labels, n_boot, seed
        )
        Xg = disease_gene_baseline_features(adata)
        if Xg is not None:
            evals["logreg_disease_genes"] = evaluate(
                y[test],
                train_logreg(Xg[train], y[train], seed).predict(Xg[test]),
                labels,
                n_boot,
                seed,
            )

    permutation = permutation_control(
        Xl[train],
        y[train],
        groups[train],
        Xl[test],
        y[test],
        labels,
        n_permutations=int(classifier.get("n_permutations", 10)),
        seed=seed,
        observed=evals["mlp_ldvae"]["accuracy"],
        **mlp_kw,
    )

    dims = {"mlp_ldvae": Xl.shape[1], "logreg_ldvae": Xl.shape[1], "majority": 0}
    if "mlp_pca" in evals:
        dims["mlp_pca"] = Xp.shape[1]
    if "logreg_disease_genes" in evals:
        dims["logreg_disease_genes"] = Xg.shape[1]
    table = pd.DataFrame(
        [
            {
                "model": name,
                "description": BASELINE_DESCRIPTIONS[name],
                "n_features": dims[name],
                **{
                    key: evals[name][key]
                    for m in METRIC_NAMES
                    for key in (m, f"{m}_low", f"{m}_high")
                },
            }
            for name in BASELINE_MODELS
            if name in evals
        ]
    ).set_index("model")

    perturbed = obs["perturbed"].to_numpy(dtype=bool) if "perturbed" in obs else (y != "normal")
    predictions = obs.loc[
        test, [c for c in ("condition", "source_cell", "perturbed", "cell_type") if c in obs]
    ].copy()
    predictions["predicted"] = pd.Categorical(pred, categories=labels)
    proba = model.predict_proba(Xl[test])
    for i, lab in enumerate(labels):
        predictions[f"p_{lab}"] = proba[:, i]

    return ClassificationResult(
        labels=labels,
        model=model,
        main=evals["mlp_ldvae"],
        baselines=table,
        permutation=permutation,
        untouched=untouched_report(y[test], pred, perturbed[test]),
        split=split_report(obs, declared_grouped),
        chance={
            "chance_uniform": 1.0 / len(labels),
            "chance_majority": evals["majority"]["accuracy"],
        },
        predictions=predictions,
        n_train=int(train.sum()),
        latent_key=latent_key,
        evaluations=evals,
    )


def accuracy_by_epoch(
    adata: AnnData,
    classifier: Mapping[str, Any],
    seed: int = 0,
    n_bootstrap: int = 200,
) -> pd.DataFrame:
    """When in training is the shift encoded? The network's test accuracy on each snapshot.

    03 keeps the latent every ``ldvae.snapshot_every`` epochs of one training run
    (:func:`latentshift.ldvae.store_snapshots`); the same network as the headline (same
    split, same settings) is trained on each snapshot and on the final latent.

    Parameters
    ----------
    adata
        ``latent.h5ad`` with ``obsm["X_ldvae_epoch<N>"]``, ``uns["ldvae_snapshots"]`` and the
        final ``obsm["X_ldvae"]``.
    classifier
        The resolved ``classifier`` section.
    seed
        Seed of the networks and the bootstrap.
    n_bootstrap
        Bootstrap resamples of the test cells per point.

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
    split = adata.obs["split"].astype(str).to_numpy()
    train, test = split == "train", split == "test"
    y = adata.obs["condition"].astype(str).to_numpy()
    groups = adata.obs["source_cell"].astype(str).to_numpy()
    labels = _labels_of(adata.obs)
    mlp_kw = {k: classifier[k] for k in MLP_KEYS if k in classifier}
    points = [(e, f"X_ldvae_epoch{e}") for e in epochs]
    points.append((int(info.get("final_epoch", epochs[-1] + 1)), "X_ldvae"))
    rows = []
    for epoch, key in points:
        X = np.asarray(adata.obsm[key], dtype=np.float64)
        model = train_mlp(
            X[train], y[train], groups=groups[train], seed=seed, classes=labels, **mlp_kw
        )
        ev = evaluate(y[test], model.predict(X[test]), labels, n_bootstrap, seed)
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


def summary_metrics(result: ClassificationResult) -> dict[str, Any]:
    """The ``classifier`` section of ``metrics.json`` (keys listed in the module docstring)."""
    main = result.main
    out: dict[str, Any] = {
        "labels": result.labels,
        "n_classes": len(result.labels),
        "n_train": result.n_train,
        "n_test": main["n"],
        "n_features": int(result.model.mean_.shape[0]),
        "latent_key": result.latent_key,
        "hidden_layers": [
            int(m.out_features)
            for m in list(result.model.network)[:-1]
            if hasattr(m, "out_features")
        ],
        "epochs_trained": int(len(result.model.history)),
        "best_epoch": int(result.model.best_epoch),
    }
    for m in METRIC_NAMES:
        for key in (m, f"{m}_low", f"{m}_high"):
            out[key] = main[key]
    out["per_class"] = main["per_class"]
    out["confusion_counts"] = main["confusion_counts"]
    out["confusion_normalized"] = main["confusion_normalized"]
    table = result.baselines
    out["baseline_accuracy"] = table["accuracy"].to_dict()
    out["baseline_accuracy_low"] = table["accuracy_low"].to_dict()
    out["baseline_accuracy_high"] = table["accuracy_high"].to_dict()
    out["baseline_balanced_accuracy"] = table["balanced_accuracy"].to_dict()
    out["baseline_macro_f1"] = table["macro_f1"].to_dict()
    for key in ("accuracy", "accuracy_low", "accuracy_high", "accuracy_sd", "p_value"):
        out[f"permutation_{key}"] = result.permutation[key]
    out["n_permutations"] = result.permutation["n_permutations"]
    out.update(result.chance)
    out["untouched"] = result.untouched
    out.update(result.split)
    return out


#: Keys :func:`summary_metrics` always writes (the documented ``classifier`` section).
SUMMARY_KEYS: tuple[str, ...] = (
    "labels",
    "n_classes",
    "n_train",
    "n_test",
    "n_features",
    "latent_key",
    "hidden_layers",
    "epochs_trained",
    "best_epoch",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "balanced_accuracy",
    "balanced_accuracy_low",
    "balanced_accuracy_high",
    "macro_f1",
    "macro_f1_low",
    "macro_f1_high",
    "per_class",
    "confusion_counts",
    "confusion_normalized",
    "baseline_accuracy",
    "baseline_accuracy_low",
    "baseline_accuracy_high",
    "baseline_balanced_accuracy",
    "baseline_macro_f1",
    "permutation_accuracy",
    "permutation_accuracy_low",
    "permutation_accuracy_high",
    "permutation_accuracy_sd",
    "permutation_p_value",
    "n_permutations",
    "chance_uniform",
    "chance_majority",
    "untouched",
    "split_grouped",
    "n_leaked_source_cells",
)


# --- tables for the notebook -------------------------------------------------------------


def metric_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Headline metrics of one :func:`evaluate` output: rows metrics, columns value/low/high."""
    return pd.DataFrame(
        {
            m: {
                "value": evaluation[m],
                "low (2.5%)": evaluation[f"{m}_low"],
                "high (97.5%)": evaluation[f"{m}_high"],
            }
            for m in METRIC_NAMES
        }
    ).T


def per_class_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Per-class precision and recall with intervals and support (rows: classes)."""
    return pd.DataFrame(evaluation["per_class"]).T


def controls_table(result: ClassificationResult) -> pd.DataFrame:
    """The controls in one table: label permutation, chance levels, the split check."""
    p = result.permutation
    rows = {
        f"label permutation (mean accuracy of {p['n_permutations']})": (
            p["accuracy"],
            p["accuracy_low"],
            p["accuracy_high"],
            "at chance",
        ),
        "permutation p-value of the classifier": (p["p_value"], None, None, "small"),
        "chance: 1 / n_classes": (result.chance["chance_uniform"], None, None, ""),
        "chance: majority class": (result.chance["chance_majority"], None, None, ""),
        "split grouped by source cell": (result.split["split_grouped"], None, None, "True"),
        "source cells in both train and test": (
            result.split["n_leaked_source_cells"],
            None,
            None,
            "0 when grouped",
        ),
    }
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["value", "low (2.5%)", "high (97.5%)", "expected"]
    )
