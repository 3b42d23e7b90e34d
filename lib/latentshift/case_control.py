"""The case–control design: conditions from an obs column, folds that never split a donor.

In the synthetic design (:mod:`latentshift.perturb`) every condition is a copy of the same
normal cells, and the unit that must not cross a split is the source cell. In a case–control
data set (e.g. a CELLxGENE file of ALS and control motor cortex) each nucleus belongs to one
donor, and nuclei of one donor share genotype, age, post-mortem interval and batch: a split
that puts a donor's nuclei on both sides lets a classifier recognise the donor instead of the
disease. So here the unit is the **donor**:

- :func:`conditions_from_obs` reads the conditions from an obs column (CELLxGENE's
  ``disease``, the control value first) and refuses a data set that cannot be split by donor
  (a missing column, a missing control, fewer than 2 donors in a condition, a donor in two
  conditions);
- :func:`donor_folds` deals whole donors into leave-donors-out folds, stratified by
  condition (scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`), so every
  nucleus is scored once, by a model that never saw its donor; :func:`cell_folds` is the
  cell-level split, kept only to measure the leak;
- :func:`add_disease_donors` gives a simulated data set its case–control donors: the disease
  donors' nuclei carry the perturbation entries' shifts (in the entries' target cell types),
  each donor's fold change spread around the entry's, so that the design has a known answer.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from latentshift.errors import DataError

log = logging.getLogger(__name__)

#: CELLxGENE's control value and its ontology term (PATO "normal").
CONTROL = ("normal", "PATO:0000461")

#: Ontology labels of the diseases the default gene sets stand for (MONDO), by entry name.
DISEASE_TERMS: dict[str, tuple[str, str]] = {
    "ALS": ("amyotrophic lateral sclerosis", "MONDO:0004976"),
    "HD": ("Huntington disease", "MONDO:0007739"),
}


class CaseControlError(DataError):
    """A data set that cannot be analysed as a case–control design (the message says why)."""


def _column(obs: pd.DataFrame, column: str, what: str, key: str) -> pd.Series:
    if column not in obs.columns:
        close = difflib.get_close_matches(column, [str(c) for c in obs.columns], n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise CaseControlError(
            f"the case-control design needs the {what} of every nucleus in obs['{column}'], "
            f"which the data lack.{hint} obs columns: {', '.join(map(str, obs.columns))}. "
            f"Set {key} to the column that holds it."
        )
    values = obs[column]
    missing = values.isna() | values.astype(str).str.strip().isin(["", "nan"])
    if missing.any():
        raise CaseControlError(
            f"{int(missing.sum())} nuclei have no value in obs['{column}'] (the {what}); a "
            "case-control analysis cannot place them. Drop them from the file or fill them in."
        )
    return values.astype(str)


def conditions_from_obs(
    obs: pd.DataFrame,
    condition_column: str = "disease",
    control: str = "normal",
    donor_column: str = "donor_id",
) -> pd.Categorical:
    """Each nucleus's condition, read from an obs column, the control first.

    Parameters
    ----------
    obs
        The nuclei's annotations.
    condition_column
        The column with the condition (CELLxGENE: ``disease``).
    control
        Its value for control donors (CELLxGENE: ``normal``).
    donor_column
        The column with the donor (CELLxGENE: ``donor_id``).

    Returns
    -------
    pandas.Categorical
        One condition per nucleus; categories: ``control`` then the other values, sorted.

    Raises
    ------
    CaseControlError
        A missing column or value, no control nuclei, fewer than two conditions, fewer than 2
        donors in a condition, or a donor in two conditions (each with the fix).
    """
    cond = _column(obs, condition_column, "condition", "case_control.condition_column")
    donors = _column(obs, donor_column, "donor", "data.donor_column")
    values = sorted(cond.unique())
    if control not in values:
        close = difflib.get_close_matches(control, values, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise CaseControlError(
            f"no nucleus has the control value '{control}' in obs['{condition_column}'].{hint} "
            f"Its values: {', '.join(values)}. Set case_control.control to the controls' value."
        )
    if len(values) < 2:
        raise CaseControlError(
            f"obs['{condition_column}'] holds one condition only ('{control}'): a case-control "
            "analysis needs disease nuclei beside the controls."
        )
    per_donor = pd.crosstab(donors, cond) > 0
    mixed = per_donor.index[per_donor.sum(axis=1) > 1]
    if len(mixed):
        shown = ", ".join(
            f"{d} ({', '.join(per_donor.columns[per_donor.loc[d]])})" for d in mixed[:5]
        )
        raise CaseControlError(
            f"{len(mixed)} donor(s) have nuclei in two conditions of obs['{condition_column}']: "
            f"{shown}. A donor is either a case or a control; check obs['{donor_column}'] (two "
            f"donors under one id?) and obs['{condition_column}']."
        )
    n_donors = per_donor.sum(axis=0)
    few = n_donors[n_donors < 2]
    if len(few):
        shown = ", ".join(f"'{c}' ({int(n)} donor)" for c, n in few.items())
        raise CaseControlError(
            f"every condition needs at least 2 donors, so that one can be held out while "
            f"another trains; {shown}. Add donors, or leave that condition out of the file."
        )
    order = [control, *[v for v in values if v != control]]
    return pd.Categorical(cond.to_numpy(), categories=order)


def donor_folds(
    conditions: Sequence[Any] | np.ndarray,
    donors: Sequence[Any] | np.ndarray,
    n_folds: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Leave-donors-out folds: whole donors dealt into ``n_folds`` folds, stratified by condition.

    Parameters
    ----------
    conditions
        Condition per nucleus (each donor has one).
    donors
        Donor per nucleus.
    n_folds
        Number of folds; lowered (with a log line) to the number of donors in the smallest
        condition, so that every fold holds out donors of every condition.
    seed
        Seed of scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
        (``shuffle=True``).

    Returns
    -------
    numpy.ndarray
        The fold (0 … k-1) in which each nucleus is held out; all nuclei of a donor share it.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    conditions = np.asarray(conditions).astype(str)
    donors = np.asarray(donors).astype(str)
    if conditions.shape != donors.shape or conditions.ndim != 1:
        raise CaseControlError("conditions and donors must be 1-d and equally long.")
    donor_table = pd.DataFrame({"d": donors, "c": conditions}).drop_duplicates()
    if donor_table["d"].duplicated().any():
        raise CaseControlError("a donor has nuclei in two conditions; see conditions_from_obs.")
    smallest = int(donor_table["c"].value_counts().min())
    if smallest < 2:
        raise CaseControlError(
            "every condition needs at least 2 donors for leave-donors-out folds; "
            f"one has {smallest}."
        )
    k = min(int(n_folds), smallest)
    if k < n_folds:
        log.info(
            "donor folds: %d folds asked, but the smallest condition has %d donors: %d folds",
            n_folds,
            smallest,
            k,
        )
    # one row per donor: the folds are drawn over donors, then spread to their nuclei
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
    fold_of_donor = np.empty(len(donor_table), dtype=np.int64)
    for fold, (_, test) in enumerate(
        cv.split(np.zeros(len(donor_table)), donor_table["c"], donor_table["d"])
    ):
        fold_of_donor[test] = fold
    per_fold = pd.crosstab(fold_of_donor, donor_table["c"].to_numpy())
    if (per_fold.nunique(axis=0) > 1).any():
        log.warning(
            "donor folds: the folds hold unequal numbers of a condition's donors (%s). A fold that "
            "holds out more donors of one condition leaves fewer of them to train on, which pulls "
            "held-out accuracy below chance when donors differ strongly. When the donors divide "
            "evenly, choose case_control.n_folds so that every fold holds the same number of "
            "each condition's donors (e.g. 6 folds of 1 + 1 for 6 against 6).",
            "; ".join(f"{c}: {', '.join(map(str, v))}" for c, v in per_fold.items()),
        )
    lookup = pd.Series(fold_of_donor, index=donor_table["d"].to_numpy())
    return lookup.loc[donors].to_numpy()


def cell_folds(
    conditions: Sequence[Any] | np.ndarray, n_folds: int = 4, seed: int = 0
) -> np.ndarray:
    """Cell-level folds stratified by condition (donors cross the split: the leak, measured).

    Returns
    -------
    numpy.ndarray
        The fold in which each nucleus is held out.
    """
    from sklearn.model_selection import StratifiedKFold

    conditions = np.asarray(conditions).astype(str)
    cv = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed))
    folds = np.empty(conditions.size, dtype=np.int64)
    for fold, (_, test) in enumerate(cv.split(np.zeros(conditions.size), conditions)):
        folds[test] = fold
    return folds


def donors_across(folds: np.ndarray, donors: Sequence[Any] | np.ndarray) -> int:
    """How many donors have nuclei both held out and trained on in some fold (0 for a donor split)."""
    table = pd.crosstab(np.asarray(donors).astype(str), np.asarray(folds))
    return int(((table > 0).sum(axis=1) > 1).sum())


def fold_table(conditions: Sequence[Any], donors: Sequence[Any], folds: np.ndarray) -> pd.DataFrame:
    """Held-out donors and nuclei per fold and condition (rows: folds)."""
    frame = pd.DataFrame(
        {
            "fold": np.asarray(folds),
            "condition": np.asarray(conditions),
            "donor": np.asarray(donors),
        }
    )
    nuclei = pd.crosstab(frame["fold"], frame["condition"]).add_suffix(" nuclei")
    donors_per = (
        frame.drop_duplicates(["fold", "donor"])
        .pipe(lambda f: pd.crosstab(f["fold"], f["condition"]))
        .add_suffix(" donors")
    )
    return pd.concat([donors_per, nuclei], axis=1)


def _with_counts(adata: ad.AnnData, counts: Any) -> ad.AnnData:
    """A new AnnData over ``counts`` (not copied; also ``layers["counts"]``, as 01 stores them)
    with copies of ``adata``'s obs, var and uns."""
    out = ad.AnnData(X=counts, obs=adata.obs.copy(), var=adata.var.copy(), uns=dict(adata.uns))
    out.layers["counts"] = counts
    return out


# --- the simulated case-control donors ------------------------------------------------------


def add_disease_donors(
    adata: ad.AnnData,
    entries: Sequence[Mapping[str, Any]],
    genes_by_set: Mapping[str, Sequence[str]],
    n_disease_donors: int,
    donor_lfc_sd: float = 0.0,
    seed: int = 0,
    donor_column: str = "donor_id",
    cell_type_column: str = "cell_type",
) -> ad.AnnData:
    """Make some donors of a simulated data set disease donors carrying a known shift.

    The donors are dealt to the entries round-robin after a seeded shuffle (entry 1 gets the
    first disease donor, entry 2 the second, …). A disease donor's nuclei in the entry's target
    cell types (all when none are named; ``penetrance`` below 1 shifts a seeded share of them)
    have the entry's gene set shifted by the entry's method, with the donor's own fold change
    ``exp(log(fold_change) + N(0, donor_lfc_sd))`` (kept on the entry's side of 1).

    Parameters
    ----------
    adata
        Simulated nuclei with integer counts (``layers["counts"]``) and ``obs[donor_column]``.
    entries
        Perturbation entries (see :func:`latentshift.config.validate_perturbations`): one
        disease each, its label the entry's name (or the ontology label of
        :data:`DISEASE_TERMS`).
    genes_by_set
        The ``var_names`` of each set's genes (:func:`latentshift.genesets.match_genesets`).
    n_disease_donors
        How many donors carry a disease (at least 2 per entry; at least 2 donors stay controls).
    donor_lfc_sd
        Donor-to-donor spread of the log fold change.
    seed
        Seed of the donor choice, the fold changes and the count draws.
    donor_column, cell_type_column
        The ``obs`` columns used.

    Returns
    -------
    anndata.AnnData
        A copy with the shifted counts (``X`` and ``layers["counts"]``), ``obs["disease"]`` and
        ``obs["disease_ontology_term_id"]`` (CELLxGENE's columns; controls ``normal``), and
        ``uns["case_control"]``: per donor its disease, fold change and number of shifted nuclei.
    """
    from latentshift import config
    from latentshift.perturb import _counts_of, cell_mask_for, perturb_counts

    entries = config.validate_perturbations(list(entries))
    donors = _column(adata.obs, donor_column, "donor", "data.donor_column").to_numpy()
    names = sorted(pd.unique(donors))
    if n_disease_donors < 2 * len(entries) or len(names) - n_disease_donors < 2:
        raise CaseControlError(
            f"{len(names)} donors cannot hold {n_disease_donors} disease donors: each of the "
            f"{len(entries)} disease(s) needs 2 donors and 2 donors must stay controls."
        )
    rng = np.random.default_rng([seed, 7])
    chosen = list(rng.permutation(names)[:n_disease_donors])
    counts = _counts_of(adata)
    var_pos = pd.Index(adata.var_names)
    disease = np.full(adata.n_obs, CONTROL[0], dtype=object)
    term = np.full(adata.n_obs, CONTROL[1], dtype=object)
    record: dict[str, dict[str, Any]] = {}
    for i, donor in enumerate(chosen):
        entry = entries[i % len(entries)]
        label, ontology = DISEASE_TERMS.get(entry["name"], (entry["name"], "unknown"))
        idx = var_pos.get_indexer(list(genes_by_set[entry["geneset"]]))
        log_fc = np.log(entry["fold_change"]) + rng.normal(0, donor_lfc_sd)
        # the donor's fold change stays on the entry's side of 1 (thinning cannot raise counts)
        fc = float(np.exp(min(log_fc, 0.0) if entry["direction"] == "down" else max(log_fc, 0.0)))
        of_donor = donors == donor
        in_type = cell_mask_for(
            adata, entry["target_cell_types"], entry["penetrance"], rng, cell_type_column
        )
        mask = of_donor & in_type
        counts = perturb_counts(counts, idx, fc, entry["method"], rng, cell_mask=mask)
        disease[of_donor] = label
        term[of_donor] = ontology
        record[str(donor)] = {
            "disease": label,
            "entry": entry["name"],
            "fold_change": fc,
            "shifted_nuclei": int(mask.sum()),
        }
        log.info(
            "case-control donor %s: %s, %s × %.3f on %d of its %d nuclei",
            donor,
            label,
            entry["geneset"],
            fc,
            int(mask.sum()),
            int(of_donor.sum()),
        )
    out = _with_counts(adata, counts)
    order = [CONTROL[0], *sorted(set(disease) - {CONTROL[0]})]
    out.obs["disease"] = pd.Categorical(disease, categories=order)
    out.obs["disease_ontology_term_id"] = pd.Categorical(term)
    out.uns["case_control"] = {
        "disease_donors": record,
        "donor_lfc_sd": float(donor_lfc_sd),
        "entries": {e["name"]: {k: v for k, v in e.items() if v is not None} for e in entries},
    }
    return out


def donor_table(obs: pd.DataFrame, condition_column: str, donor_column: str) -> pd.DataFrame:
    """One row per donor: its condition and number of nuclei (the design at a glance)."""
    frame = obs[[donor_column, condition_column]].astype(str)
    table = frame.groupby(donor_column, observed=True).agg(
        condition=(condition_column, "first"), nuclei=(condition_column, "size")
    )
    return table.sort_values(["condition", "nuclei"], ascending=[True, False])


def design_metrics(obs: pd.DataFrame, condition_column: str, control: str) -> dict[str, Any]:
    """The case-control design in ``metrics.json``: donors and nuclei per condition."""
    cond = obs[condition_column].astype(str)
    return {
        "condition_column": condition_column,
        "control": control,
        "donors": {str(c): int(n) for c, n in obs.groupby(cond)["donor_id"].nunique().items()},
        "nuclei": {str(c): int(n) for c, n in cond.value_counts().sort_index().items()},
    }


def label_case_control(
    adata: ad.AnnData,
    condition_column: str = "disease",
    control: str = "normal",
    split: str = "donor",
    n_folds: int = 4,
    seed: int = 0,
) -> ad.AnnData:
    """The case–control counterpart of :func:`latentshift.perturb.make_perturbed`: no copies.

    Parameters
    ----------
    adata
        The nuclei (``cells.h5ad``) with ``obs[condition_column]`` and ``obs["donor_id"]``.
    condition_column, control
        See :func:`conditions_from_obs`.
    split
        ``"donor"``: leave-donors-out folds (:func:`donor_folds`); ``"cell"``: cell-level
        folds (:func:`cell_folds`, the leak, for its measurement only).
    n_folds
        Number of folds.
    seed
        Seed of the folds.

    Returns
    -------
    anndata.AnnData
        The same nuclei (counts shared, not copied) with ``obs["condition"]`` (the control
        first), ``obs["perturbed"]`` (not a control), ``obs["source_cell"]`` (the nucleus
        itself: no copies), ``obs["fold"]`` and ``obs["split"]`` (``test`` for the nuclei of
        fold 0, ``train`` for the rest), and ``uns["case_control"]`` with the design.
    """
    conditions = conditions_from_obs(adata.obs, condition_column, control)
    donors = adata.obs["donor_id"].astype(str).to_numpy()
    if split == "donor":
        folds = donor_folds(conditions, donors, n_folds, seed)
    elif split == "cell":
        folds = cell_folds(conditions, n_folds, seed)
    else:
        raise CaseControlError(f"case_control.split must be 'donor' or 'cell' (got {split!r}).")
    out = _with_counts(adata, adata.layers["counts"] if "counts" in adata.layers else adata.X)
    out.obs["condition"] = conditions
    out.obs["perturbed"] = np.asarray(conditions) != control
    out.obs["source_cell"] = out.obs_names.astype(str)
    out.obs["fold"] = folds
    out.obs["split"] = pd.Categorical(
        np.where(folds == 0, "test", "train"), categories=["train", "test"]
    )
    out.uns["case_control"] = {
        **dict(adata.uns.get("case_control", {})),
        "condition_column": condition_column,
        "control": control,
        "split": split,
        "n_folds": int(folds.max()) + 1,
        "donors_across_folds": donors_across(folds, donors),
    }
    log.info(
        "case-control: %d nuclei of %d donors, conditions %s, %d %s folds (%d donors on both sides)",
        out.n_obs,
        len(set(donors)),
        ", ".join(map(str, conditions.categories)),
        int(folds.max()) + 1,
        split,
        out.uns["case_control"]["donors_across_folds"],
    )
    return out


def named_sets(
    entries: Sequence[Mapping[str, Any]],
    genes_by_set: Mapping[str, Sequence[str]],
    conditions: Sequence[str] | pd.Categorical,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """The named gene set of each disease condition, for the gene-set baseline and recovery.

    An entry stands for the condition named like it, or like its ontology label in
    :data:`DISEASE_TERMS` (entry ``ALS`` ↔ condition ``amyotrophic lateral sclerosis``); its
    ``direction`` is the expected sign of the change (on a simulated data set, the known one).
    Conditions without an entry have no named set.

    Returns
    -------
    entries : dict
        Condition → entry (``uns["perturbations"]``, h5ad-storable).
    genes : dict
        Condition → the set's genes (``uns["perturbation_genes"]``).
    """
    present = {str(c) for c in pd.unique(np.asarray(conditions, dtype=object))}
    out_entries: dict[str, dict[str, Any]] = {}
    out_genes: dict[str, list[str]] = {}
    for entry in entries:
        label = DISEASE_TERMS.get(entry["name"], (entry["name"], ""))[0]
        for name in (entry["name"], label):
            if name in present and entry["geneset"] in genes_by_set:
                out_entries[name] = {k: v for k, v in entry.items() if v is not None}
                out_genes[name] = list(genes_by_set[entry["geneset"]])
    return out_entries, out_genes


def perturb_metrics(
    adata: ad.AnnData, match_summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``perturb`` section of ``metrics.json`` for a case–control run (no copies made)."""
    obs = adata.obs
    design = dict(adata.uns.get("case_control", {}))
    folds = pd.crosstab(obs["fold"], obs["condition"])
    donors = obs.drop_duplicates("donor_id")
    return {
        "design": "case_control",
        "condition_column": design.get("condition_column"),
        "control": design.get("control"),
        "split": design.get("split"),
        "n_folds": int(obs["fold"].nunique()),
        "donors_across_folds": int(design.get("donors_across_folds", -1)),
        "n_cells_per_condition": {
            str(k): int(v) for k, v in obs["condition"].value_counts().items()
        },
        "n_donors_per_condition": {
            str(k): int(v) for k, v in donors["condition"].value_counts().items()
        },
        "nuclei_per_fold": {
            str(f): {str(c): int(n) for c, n in row.items()} for f, row in folds.iterrows()
        },
        "named_sets": {k: len(v) for k, v in adata.uns.get("perturbation_genes", {}).items()},
        "genesets": dict(match_summary or {}),
        "simulated_disease_donors": design.get("disease_donors", {}),
    }
