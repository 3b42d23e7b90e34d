"""A classification result as 05_classifier records and shows it.

- :func:`summary_metrics` and :data:`SUMMARY_KEYS` — the ``classifier`` section of
  ``metrics.json`` (its keys are described in :mod:`latentshift.readings.classify`);
- :func:`metric_table`, :func:`per_class_table`, :func:`unit_table_view` and
  :func:`controls_table` — the tables of the notebook's page.

The result itself is measured by :func:`latentshift.readings.classify.classify_conditions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from latentshift.design.units import UNITS_SHOWN
from latentshift.readings.evaluation import METRIC_NAMES

if TYPE_CHECKING:
    from latentshift.readings.classify import ClassificationResult


def summary_metrics(result: ClassificationResult) -> dict[str, Any]:
    """The ``classifier`` section of ``metrics.json`` (keys listed in the docstring of
    :mod:`latentshift.readings.classify`)."""
    main, table, perm = result.main, result.baselines, result.permutation
    net = table.loc["mlp_ldvae"]
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
    out["unit"] = result.units.name
    out["paired"] = result.units.paired
    for key in ("unit_accuracy", "unit_accuracy_low", "unit_accuracy_high"):
        out[key] = float(net[key])
    out["n_units"] = int(net["n_units"])
    for key in ("accuracy", "accuracy_low", "accuracy_high"):
        out[f"baseline_{key}"] = table[key].to_dict()
    out["baseline_balanced_accuracy"] = table["balanced_accuracy"].to_dict()
    out["baseline_macro_f1"] = table["macro_f1"].to_dict()
    out["baseline_unit_accuracy"] = table["unit_accuracy"].to_dict()
    for key in ("accuracy", "accuracy_low", "accuracy_high", "accuracy_sd", "p_value"):
        out[f"permutation_{key}"] = perm[key]
    for key in ("unit_accuracy", "unit_accuracy_low", "unit_accuracy_high", "unit_p_value"):
        out[f"permutation_{key}"] = perm[key]
    out["n_permutations"] = perm["n_permutations"]
    out["permutation_exact"] = perm["exact"]
    out["n_relabellings"] = perm["n_relabellings"]  # inf (null in JSON) beyond 10^15
    out["log10_relabellings"] = perm["log10_relabellings"]
    out["permutation_min_p_value"] = perm["min_p_value"]
    out["permutation_invalid"] = perm["invalid"]
    out.update(result.chance)
    out["untouched"] = result.untouched
    out["split"] = result.split
    out["split_grouped"] = result.split["grouped"]
    out["units_across"] = result.split["units_across"]
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
    *(k for m in METRIC_NAMES for k in (m, f"{m}_low", f"{m}_high")),
    "per_class",
    "confusion_counts",
    "confusion_normalized",
    "unit",
    "paired",
    "unit_accuracy",
    "unit_accuracy_low",
    "unit_accuracy_high",
    "n_units",
    "baseline_accuracy",
    "baseline_accuracy_low",
    "baseline_accuracy_high",
    "baseline_balanced_accuracy",
    "baseline_macro_f1",
    "baseline_unit_accuracy",
    "permutation_accuracy",
    "permutation_accuracy_low",
    "permutation_accuracy_high",
    "permutation_accuracy_sd",
    "permutation_p_value",
    "permutation_unit_accuracy",
    "permutation_unit_accuracy_low",
    "permutation_unit_accuracy_high",
    "permutation_unit_p_value",
    "n_permutations",
    "permutation_exact",
    "n_relabellings",
    "log10_relabellings",
    "permutation_min_p_value",
    "permutation_invalid",
    "chance_uniform",
    "chance_majority",
    "chance_units",
    "untouched",
    "split",
    "split_grouped",
    "units_across",
)


# --- tables for the notebook -------------------------------------------------------------


def unit_table_view(table: pd.DataFrame) -> pd.DataFrame:
    """The per-unit table as a page shows it: every unit when there are at most
    :data:`latentshift.design.units.UNITS_SHOWN`, else a summary of their columns."""
    return table if len(table) <= UNITS_SHOWN else table.describe()


def metric_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Headline metrics of one :func:`latentshift.readings.evaluation.evaluate` output: rows metrics, columns value/low/high."""
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
    """The controls in one table: the label null (per cell and per unit), chance, the split."""
    p, u, split = result.permutation, result.units, result.split
    within = f"labels permuted within each {u.name}" if u.paired else f"{u.name}s relabelled"
    rows = {
        f"label null ({within}): mean accuracy of {p['n_permutations']}": (
            p["accuracy"],
            p["accuracy_low"],
            p["accuracy_high"],
            "at chance",
        ),
        f"label null: mean per-{u.name} accuracy": (
            p["unit_accuracy"],
            p["unit_accuracy_low"],
            p["unit_accuracy_high"],
            "at chance",
        ),
        "p-value of the network (per cell)": (p["p_value"], None, None, "small"),
        f"p-value of the network (per {u.name})": (p["unit_p_value"], None, None, "small"),
        "smallest p-value the design allows": (p["min_p_value"], None, None, p["description"]),
        "chance: 1 / n_classes": (result.chance["chance_uniform"], None, None, ""),
        "chance: majority class": (result.chance["chance_majority"], None, None, ""),
        f"split keeps each {u.name} whole": (split["grouped"], None, None, "True"),
        f"{u.name}s on both sides of a split": (split["units_across"], None, None, "0"),
    }
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["value", "low (2.5%)", "high (97.5%)", "expected"]
    )
