"""The case–control design: conditions from an obs column, the donor as the unit.

In the synthetic design (:mod:`latentshift.perturb.shift`) every condition is a copy of the same
normal cells, and the unit that must not cross a split is the source cell. In a case–control
data set (e.g. a CELLxGENE file of ALS and control motor cortex, or PBMCs before and after a
stimulation) each nucleus belongs to one donor, and nuclei of one donor share genotype, age,
post-mortem interval and batch: a split that puts a donor's nuclei on both sides lets a
classifier recognise the donor instead of the disease. So here the unit is the **donor**, and
the conditions sit between donors (*unpaired*: a donor is a case or a control) or within them
(*paired*: every donor sampled in every condition) — ``case_control.paired``, resolved and
checked by :func:`latentshift.design.units.resolve_paired`:

- :func:`conditions_from_obs` reads the conditions from an obs column (CELLxGENE's
  ``disease``, the control value first) and refuses a data set that cannot be analysed by
  donor (a missing column or value, a missing control, too few donors, a mixed design);
- :func:`label_case_control` deals whole donors into leave-donors-out folds
  (:func:`latentshift.design.folds.unit_folds`: stratified by condition when unpaired), so every
  nucleus is scored once, by a model that never saw its donor; cell-level folds
  (:func:`latentshift.design.folds.cell_folds`) are kept only to measure the leak;
- :func:`add_disease_donors` gives a simulated data set its case–control donors: the disease
  donors' nuclei (or, paired, every donor's second sample) carry the perturbation entries'
  shifts in the entries' target cell types, each donor's fold change spread around the
  entry's, so that the design has a known answer.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from latentshift.design.folds import cell_folds, unit_folds, units_across
from latentshift.design.units import units_of
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
    paired: bool | str = "auto",
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
    paired
        ``case_control.paired``: ``"auto"`` (paired when every donor holds every condition,
        unpaired when every donor holds one), ``True`` or ``False``.

    Returns
    -------
    pandas.Categorical
        One condition per nucleus; categories: ``control`` then the other values, sorted.

    Raises
    ------
    CaseControlError
        A missing column or value, no control nuclei, fewer than two conditions.
    latentshift.errors.DesignError
        A mixed design, a design that does not fit ``paired``, or too few donors (fewer than 2
        in a condition when unpaired, fewer than 2 in all when paired); each with the fix.
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
    order = [control, *[v for v in values if v != control]]
    units_of(
        pd.DataFrame({"donor_id": donors.to_numpy(), "condition": cond.to_numpy()}),
        "donor_id",
        paired=paired,
        labels=order,
    )
    order = [control, *[v for v in values if v != control]]
    return pd.Categorical(cond.to_numpy(), categories=order)


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


def _disease_samples(
    donors: np.ndarray,
    names: list[Any],
    entries: Sequence[Mapping[str, Any]],
    n_disease_donors: int,
    paired: bool,
    rng: np.random.Generator,
) -> list[tuple[str, np.ndarray, Mapping[str, Any]]]:
    """The disease samples of :func:`add_disease_donors`: ``(name, nuclei, entry)`` each.

    Paired: every donor's nuclei dealt at random into a control sample and one sample per
    entry. Unpaired: ``n_disease_donors`` donors drawn after a seeded shuffle, dealt to the
    entries round-robin (refused when a disease would get fewer than 2 donors or fewer than 2
    donors would stay controls).
    """
    if paired:
        if len(names) < 2:
            raise CaseControlError(f"a paired design needs 2 donors; the data have {len(names)}.")
        samples = []
        for donor in names:
            nuclei = np.array_split(
                rng.permutation(np.flatnonzero(donors == donor)), len(entries) + 1
            )
            samples += [(f"{donor} ({e['name']})", nuclei[j + 1], e) for j, e in enumerate(entries)]
        return samples
    if n_disease_donors < 2 * len(entries) or len(names) - n_disease_donors < 2:
        raise CaseControlError(
            f"{len(names)} donors cannot hold {n_disease_donors} disease donors: each of the "
            f"{len(entries)} disease(s) needs 2 donors and 2 donors must stay controls."
        )
    chosen = list(rng.permutation(names)[:n_disease_donors])
    return [
        (str(d), np.flatnonzero(donors == d), entries[i % len(entries)])
        for i, d in enumerate(chosen)
    ]


def add_disease_donors(
    adata: ad.AnnData,
    entries: Sequence[Mapping[str, Any]],
    genes_by_set: Mapping[str, Sequence[str]],
    n_disease_donors: int,
    donor_lfc_sd: float = 0.0,
    seed: int = 0,
    donor_column: str = "donor_id",
    cell_type_column: str = "cell_type",
    paired: bool = False,
) -> ad.AnnData:
    """Make some donors of a simulated data set disease donors carrying a known shift.

    Unpaired: the donors are dealt to the entries round-robin after a seeded shuffle (entry 1
    gets the first disease donor, entry 2 the second, …). Paired (``paired=True``, a
    stimulation): every donor is sampled in every condition — its nuclei are dealt at random
    into a control sample and one sample per entry. A disease sample's nuclei in the entry's
    target cell types (all when none are named; ``penetrance`` below 1 shifts a seeded share of
    them) have the entry's gene set shifted by the entry's method, with the sample's own fold
    change ``exp(log(fold_change) + N(0, donor_lfc_sd))`` (kept on the entry's side of 1).

    Parameters
    ----------
    adata
        Simulated nuclei with integer counts (``layers["counts"]``) and ``obs[donor_column]``.
    entries
        Perturbation entries (see :func:`latentshift.config.validate_perturbations`): one
        disease each, its label the entry's name (or the ontology label of
        :data:`DISEASE_TERMS`).
    genes_by_set
        The ``var_names`` of each set's genes (:func:`latentshift.perturb.genesets.match_genesets`).
    n_disease_donors
        How many donors carry a disease (at least 2 per entry; at least 2 donors stay controls);
        ignored when paired.
    donor_lfc_sd
        Donor-to-donor spread of the log fold change.
    seed
        Seed of the donor choice, the fold changes and the count draws.
    donor_column, cell_type_column
        The ``obs`` columns used.
    paired
        Sample every donor in every condition.

    Returns
    -------
    anndata.AnnData
        A copy with the shifted counts (``X`` and ``layers["counts"]``), ``obs["disease"]`` and
        ``obs["disease_ontology_term_id"]`` (CELLxGENE's columns; controls ``normal``), and
        ``uns["case_control"]``: per disease donor (or donor sample) its disease, fold change
        and number of shifted nuclei.
    """
    from latentshift import config
    from latentshift.perturb.shift import cell_mask_for, perturb_counts, sparse_counts

    entries = config.validate_perturbations(list(entries))
    donors = _column(adata.obs, donor_column, "donor", "data.donor_column").to_numpy()
    names = sorted(pd.unique(donors))
    rng = np.random.default_rng([seed, 7])
    samples = _disease_samples(donors, names, entries, n_disease_donors, paired, rng)
    counts = sparse_counts(adata)
    var_pos = pd.Index(adata.var_names)
    disease = np.full(adata.n_obs, CONTROL[0], dtype=object)
    term = np.full(adata.n_obs, CONTROL[1], dtype=object)
    record: dict[str, dict[str, Any]] = {}
    for name, nuclei, entry in samples:
        label, ontology = DISEASE_TERMS.get(entry["name"], (entry["name"], "unknown"))
        idx = var_pos.get_indexer(list(genes_by_set[entry["geneset"]]))
        log_fc = np.log(entry["fold_change"]) + rng.normal(0, donor_lfc_sd)
        # the donor's fold change stays on the entry's side of 1 (thinning cannot raise counts)
        fc = float(np.exp(min(log_fc, 0.0) if entry["direction"] == "down" else max(log_fc, 0.0)))
        of_sample = np.zeros(adata.n_obs, dtype=bool)
        of_sample[nuclei] = True
        in_type = cell_mask_for(
            adata, entry["target_cell_types"], entry["penetrance"], rng, cell_type_column
        )
        mask = of_sample & in_type
        counts = perturb_counts(counts, idx, fc, entry["method"], rng, cell_mask=mask)
        disease[of_sample] = label
        term[of_sample] = ontology
        record[name] = {
            "disease": label,
            "entry": entry["name"],
            "fold_change": fc,
            "shifted_nuclei": int(mask.sum()),
        }
        log.info(
            "case-control %s %s: %s, %s × %.3f on %d of its %d nuclei",
            "sample" if paired else "donor",
            name,
            label,
            entry["geneset"],
            fc,
            int(mask.sum()),
            int(of_sample.sum()),
        )
    out = _with_counts(adata, counts)
    order = [CONTROL[0], *sorted(set(disease) - {CONTROL[0]})]
    out.obs["disease"] = pd.Categorical(disease, categories=order)
    out.obs["disease_ontology_term_id"] = pd.Categorical(term)
    out.uns["case_control"] = {
        "disease_donors": record,
        "paired": bool(paired),
        "donor_lfc_sd": float(donor_lfc_sd),
        "entries": {e["name"]: {k: v for k, v in e.items() if v is not None} for e in entries},
    }
    return out


#: The condition of the second group of a real-donor null (:func:`deal_fake_groups`).
FAKE_GROUP = "fake group"


def deal_fake_groups(
    adata: ad.AnnData,
    condition_column: str = "disease",
    control: str = "normal",
    seed: int = 0,
    donor_column: str = "donor_id",
) -> ad.AnnData:
    """The real-donor null: the donors dealt at random into two groups, one relabelled.

    Real donors differ (genotype, age, sample handling) whatever their condition; dealing them
    into two fake conditions gives a data set with those real differences and no condition at
    all — every reading must find nothing there. The donors are shuffled (seeded) and the first
    half (rounded down) become :data:`FAKE_GROUP`, the rest ``control``.

    Parameters
    ----------
    adata
        Cells with ``obs[donor_column]`` (at least 4 donors: 2 per group).
    condition_column, control
        The obs column written and the first group's value.
    seed
        Seed of the dealing.
    donor_column
        The donors' column.

    Returns
    -------
    anndata.AnnData
        The same cells (counts shared) with ``obs[condition_column]`` the dealt groups and
        ``uns["case_control"]["fake_groups"]``: each group's donors.
    """
    donors = _column(adata.obs, donor_column, "donor", "data.donor_column").to_numpy()
    names = sorted(pd.unique(donors))
    if len(names) < 4:
        raise CaseControlError(
            f"fake groups need at least 4 donors (2 per group), the data have {len(names)}."
        )
    order = np.random.default_rng([seed, 41]).permutation(names)
    fake = set(order[: len(names) // 2])
    out = _with_counts(adata, adata.layers["counts"] if "counts" in adata.layers else adata.X)
    labels = np.where(np.isin(donors, list(fake)), FAKE_GROUP, control)
    out.obs[condition_column] = pd.Categorical(labels, categories=[control, FAKE_GROUP])
    out.uns["case_control"] = {
        **dict(adata.uns.get("case_control", {})),
        "fake_groups": {control: sorted(set(names) - fake), FAKE_GROUP: sorted(fake)},
    }
    log.info(
        "fake groups (the null): %s = %s; %s = %s",
        control,
        ", ".join(sorted(set(names) - fake)),
        FAKE_GROUP,
        ", ".join(sorted(fake)),
    )
    return out


def donor_table(obs: pd.DataFrame, condition_column: str, donor_column: str) -> pd.DataFrame:
    """Nuclei per donor (rows) and condition (columns): the design at a glance."""
    table = pd.crosstab(obs[donor_column].astype(str), obs[condition_column].astype(str))
    table["nuclei"] = table.sum(axis=1)
    table.columns.name = None
    return table.sort_values("nuclei", ascending=False)


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
    paired: bool | str = "auto",
) -> ad.AnnData:
    """The case–control counterpart of :func:`latentshift.perturb.shift.make_perturbed`: no copies.

    Parameters
    ----------
    adata
        The nuclei (``cells.h5ad``) with ``obs[condition_column]`` and ``obs["donor_id"]``.
    condition_column, control, paired
        See :func:`conditions_from_obs`.
    split
        ``"donor"``: leave-donors-out folds (:func:`latentshift.design.folds.unit_folds`);
        ``"cell"``: cell-level folds (:func:`latentshift.design.folds.cell_folds`, the leak, for its
        measurement only).
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
        fold 0, ``train`` for the rest), ``uns["design"]`` (the unit, the pairing and the
        split, read by :func:`latentshift.design.units.from_adata` and
        :func:`latentshift.design.folds.folds_of`) and ``uns["case_control"]``.
    """
    if split not in ("donor", "cell"):
        raise CaseControlError(f"case_control.split must be 'donor' or 'cell' (got {split!r}).")
    conditions = conditions_from_obs(adata.obs, condition_column, control, paired=paired)
    donors = adata.obs["donor_id"].astype(str).to_numpy()
    units = units_of(
        pd.DataFrame({"donor_id": donors, "condition": conditions}), "donor_id", paired=paired
    )
    folds = (
        unit_folds(units, n_folds, seed)
        if split == "donor"
        else cell_folds(conditions, n_folds, seed)
    )
    out = _with_counts(adata, adata.layers["counts"] if "counts" in adata.layers else adata.X)
    out.obs["condition"] = conditions
    out.obs["perturbed"] = np.asarray(conditions) != control
    out.obs["source_cell"] = out.obs_names.astype(str)
    out.obs["fold"] = folds
    out.obs["split"] = pd.Categorical(
        np.where(folds == 0, "test", "train"), categories=["train", "test"]
    )
    across = units_across(folds, donors)
    out.uns["design"] = {
        "kind": "case_control",
        "unit_key": "donor_id",
        "paired": units.paired,
        "split": "units" if split == "donor" else "cells",
        "n_folds": int(folds.max()) + 1,
        "n_folds_asked": int(n_folds),
        "seed": int(seed),
    }
    out.uns["case_control"] = {
        **dict(adata.uns.get("case_control", {})),
        "condition_column": condition_column,
        "control": control,
        "paired": units.paired,
        "split": split,
        "n_folds": int(folds.max()) + 1,
        "donors_across_folds": across,
    }
    log.info(
        "case-control (%s): %d nuclei of %d donors, conditions %s, %d %s folds (%d donors on both sides)",
        "paired" if units.paired else "unpaired",
        out.n_obs,
        len(set(donors)),
        ", ".join(map(str, conditions.categories)),
        int(folds.max()) + 1,
        split,
        across,
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
    donors = obs.groupby("condition", observed=True)["donor_id"].nunique()
    return {
        "design": "case_control",
        "paired": bool(design.get("paired", False)),
        "condition_column": design.get("condition_column"),
        "control": design.get("control"),
        "split": design.get("split"),
        "n_folds": int(obs["fold"].nunique()),
        "donors_across_folds": int(design.get("donors_across_folds", -1)),
        "n_cells_per_condition": {
            str(k): int(v) for k, v in obs["condition"].value_counts().items()
        },
        "n_donors_per_condition": {str(k): int(v) for k, v in donors.items()},
        "nuclei_per_fold": {
            str(f): {str(c): int(n) for c, n in row.items()} for f, row in folds.iterrows()
        },
        "named_sets": {k: len(v) for k, v in adata.uns.get("perturbation_genes", {}).items()},
        "genesets": dict(match_summary or {}),
        "simulated_disease_donors": design.get("disease_donors", {}),
        "fake_groups": design.get("fake_groups", {}),
    }
