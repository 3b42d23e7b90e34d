"""Synthetic versus real: does a classifier of the synthetic shift recognise real disease nuclei?

The synthetic approach (``design: synthetic``) copies normal nuclei, shifts a named gene set
in the copies, and asks whether a classifier on the LDVAE latent tells copies from originals.
That only means something for disease if a model of the *synthetic* shift also recognises
*real* disease nuclei. With a case–control data set this can be tested
(:func:`synthetic_transfer`):

1. Half of the **control donors** (a seeded draw of whole donors) are set aside; no disease
   nucleus and no nucleus of those donors is used for training.
2. The synthetic pipeline runs on the other control donors' nuclei as it does on the normal
   cells: one copy per named set with the set shifted (:func:`latentshift.perturb.shift.make_perturbed`),
   the set shifted **in every cell type** — the synthetic side does not know where the disease
   acts — genes chosen label-blind on those training nuclei and their copies
   (:func:`latentshift.model.gene_choice.model_genes`), an LDVAE trained on them, and the network of
   ``05`` trained on its latent to tell originals from copies (PCA of the same genes with the
   same network beside it).
3. The held-out real nuclei — every disease donor's and the set-aside controls' — are embedded
   by that LDVAE (and that PCA) and classified. A nucleus is *called disease* when the network
   gives it any copy class. The call rate of disease nuclei against that of control nuclei, per
   cell type and per donor, is the transfer result; per cell type the two are compared over
   donors (one-sided Mann–Whitney U of the donors' call rates, Benjamini–Hochberg over the
   types), since nuclei of one donor are not independent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from latentshift.perturb.case_control import CaseControlError
from latentshift.readings.classify import MLP_KEYS

log = logging.getLogger(__name__)

#: The representations compared, with the obsm key each is stored under.
REPRESENTATIONS: dict[str, str] = {"ldvae": "X_ldvae", "pca": "X_pca_baseline"}


class TransferError(CaseControlError):
    """The transfer test cannot run on these data (no named set, too few control donors)."""


@dataclass
class TransferResult:
    """What :func:`synthetic_transfer` returns.

    Attributes
    ----------
    nuclei
        One row per held-out real nucleus: ``condition``, ``cell_type``, ``donor_id``,
        ``targeted`` (its type is in its condition's entry's ``target_cell_types``; every type
        when the entry names none), and per representation ``call_<rep>`` (called disease) and
        ``own_<rep>`` (called its own condition).
    by_cell_type
        Per disease condition and cell type: nuclei and donors on each side, the call rates of
        disease and control nuclei per representation, and the donor-level p-value (raw and
        Benjamini–Hochberg-adjusted over the cell types).
    by_donor
        Per held-out donor: condition, nuclei, call rate per representation (all nuclei and in
        the targeted types).
    summary
        Per disease condition, the call rates in targeted and untargeted types on both sides,
        and the design (donors on each side, genes, synthetic validation accuracy).
    """

    nuclei: pd.DataFrame
    by_cell_type: pd.DataFrame
    by_donor: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def heldout_control_donors(
    obs: pd.DataFrame, control: str, seed: int = 0, donor_key: str = "donor_id"
) -> list[str]:
    """Half the control donors (rounded down, at least one), drawn by seed; sorted.

    Raises
    ------
    TransferError
        Fewer than 2 control donors: one must train the synthetic side, one be held out.
    """
    donors = sorted(
        map(str, pd.unique(obs.loc[obs["condition"].astype(str) == control, donor_key]))
    )
    if len(donors) < 2:
        raise TransferError(
            f"the transfer test needs at least 2 control donors (one to train the synthetic "
            f"side, one held out); the data have {len(donors)}. Add control donors, or set "
            "case_control.transfer: false."
        )
    rng = np.random.default_rng([seed, 24])
    n_out = max(1, len(donors) // 2)
    return sorted(np.asarray(donors)[rng.permutation(len(donors))[:n_out]].tolist())


def synthetic_entries(
    adata: AnnData,
) -> tuple[list[dict[str, Any]], dict[str, list[str]], dict[str, list[str] | None]]:
    """The synthetic side's perturbation entries, from the named sets 02 stored.

    One entry per disease condition with a named set (``uns["perturbations"]``), named like the
    condition, with its set, direction and fold change, shifted in every cell type: the
    ``target_cell_types`` and ``penetrance`` of the entry are dropped (the synthetic side does
    not know where the disease acts), and returned apart as the types each entry targets.

    Raises
    ------
    TransferError
        No condition has a named set.
    """
    named = dict(adata.uns.get("perturbations", {}) or {})
    genes = dict(adata.uns.get("perturbation_genes", {}) or {})
    if not named:
        raise TransferError(
            "the transfer test shifts the named gene set of each disease condition, but no "
            "condition has one: give genesets.gmt and perturbations entries named like the "
            "conditions (e.g. HD for 'Huntington disease'), or set case_control.transfer: false."
        )
    entries, by_set, targets = [], {}, {}
    for condition, entry in named.items():
        kept = {
            k: v
            for k, v in dict(entry).items()
            if k in ("direction", "fold_change", "method", "lfc_sd") and v is not None
        }
        entries.append({"name": condition, "geneset": condition, **kept})
        by_set[condition] = list(genes[condition])
        tct = entry.get("target_cell_types")
        targets[condition] = None if tct is None else [str(t) for t in np.atleast_1d(tct)]
    return entries, by_set, targets


def _combined(synth: AnnData, real: AnnData, genes: list[str]) -> AnnData:
    """The synthetic training cells (``split`` train) over the real held-out nuclei (test)."""
    from latentshift.data.counts import counts_matrix

    parts = [counts_matrix(a)[:, a.var_names.get_indexer(genes)] for a in (synth, real)]
    X = sp.vstack(parts, format="csr")
    obs = pd.concat([synth.obs, real.obs])
    obs["split"] = pd.Categorical(
        ["train"] * synth.n_obs + ["test"] * real.n_obs, categories=["train", "test"]
    )
    out = AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    out.layers["counts"] = X
    return out


def _donor_p(rates: pd.DataFrame, disease: str, control: str, column: str) -> float:
    """One-sided Mann–Whitney U p: disease donors' call rates above the control donors'."""
    from scipy.stats import mannwhitneyu

    a = rates.loc[rates["condition"] == disease, column].dropna().to_numpy()
    b = rates.loc[rates["condition"] == control, column].dropna().to_numpy()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(mannwhitneyu(a, b, alternative="greater", method="exact").pvalue)


def call_tables(
    nuclei: pd.DataFrame, control: str, representations: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Call rates per (disease condition, cell type) and per donor from the nuclei table.

    Parameters
    ----------
    nuclei
        ``condition``, ``cell_type``, ``donor_id``, ``targeted`` and ``call_<rep>`` per nucleus.
    control
        The control condition.
    representations
        The ``<rep>`` names.

    Returns
    -------
    by_cell_type, by_donor
    """
    calls = [f"call_{r}" for r in representations]
    per_donor_type = (
        nuclei.groupby(["donor_id", "condition", "cell_type"], observed=True)[calls]
        .mean()
        .reset_index()
    )
    per_donor_type["condition"] = per_donor_type["condition"].astype(str)
    rows = []
    diseases = [c for c in pd.unique(nuclei["condition"].astype(str)) if c != control]
    for disease in sorted(diseases):
        sides = nuclei[nuclei["condition"].astype(str).isin([disease, control])]
        for cell_type, part in sides.groupby("cell_type", observed=True):
            is_d = part["condition"].astype(str) == disease
            row: dict[str, Any] = {
                "condition": disease,
                "cell_type": str(cell_type),
                "targeted": bool(part.loc[is_d, "targeted"].any()),
                "n_disease": int(is_d.sum()),
                "n_control": int((~is_d).sum()),
                "donors_disease": int(part.loc[is_d, "donor_id"].nunique()),
                "donors_control": int(part.loc[~is_d, "donor_id"].nunique()),
            }
            rates = per_donor_type[per_donor_type["cell_type"].astype(str) == str(cell_type)]
            for rep, col in zip(representations, calls, strict=True):
                row[f"{rep}_disease"] = float(part.loc[is_d, col].mean()) if is_d.any() else np.nan
                row[f"{rep}_control"] = (
                    float(part.loc[~is_d, col].mean()) if (~is_d).any() else np.nan
                )
                row[f"{rep}_donor_p"] = _donor_p(rates, disease, control, col)
            rows.append(row)
    by_type = pd.DataFrame(rows)
    if len(by_type):
        from scipy.stats import false_discovery_control

        # Benjamini–Hochberg over the cell types of each condition and representation
        for rep in representations:
            by_type[f"{rep}_donor_p_adj"] = np.nan
            for _, part in by_type.groupby("condition"):
                ok = part[f"{rep}_donor_p"].notna()
                if ok.any():
                    by_type.loc[part.index[ok], f"{rep}_donor_p_adj"] = false_discovery_control(
                        part.loc[ok, f"{rep}_donor_p"].to_numpy()
                    )
        by_type = by_type.sort_values(
            ["condition", "targeted", "n_disease"], ascending=[True, False, False]
        ).reset_index(drop=True)
    grouped = nuclei.groupby(["donor_id", "condition"], observed=True)
    by_donor = grouped[calls].mean().rename(columns=lambda c: c.replace("call_", "rate_"))
    by_donor.insert(0, "n_nuclei", grouped.size())
    targeted = nuclei[nuclei["targeted"]].groupby(["donor_id", "condition"], observed=True)[calls]
    by_donor = by_donor.join(
        targeted.mean().rename(columns=lambda c: c.replace("call_", "targeted_rate_"))
    )
    by_donor = by_donor.reset_index().sort_values(["condition", "donor_id"]).reset_index(drop=True)
    return by_type, by_donor


def call_rates_by_condition(
    nuclei: pd.DataFrame, control: str, representations: list[str]
) -> dict[str, dict[str, float]]:
    """Per disease condition: call rates of disease and control nuclei, targeted or not.

    Parameters
    ----------
    nuclei
        One row per scored nucleus: ``condition``, ``cell_type``, ``targeted``, and per
        representation ``call_<rep>`` and ``own_<rep>``.
    control
        The control condition.
    representations
        The representations whose calls are summarised.

    Returns
    -------
    dict
        Disease condition → ``<rep>_<targeted|untargeted>_<disease|control>`` (the mean call of
        those nuclei; NaN when there are none) and ``<rep>_own`` (the share of the disease's
        nuclei called their own condition).
    """
    out: dict[str, dict[str, float]] = {}
    cond = nuclei["condition"].astype(str)
    for disease in sorted(set(cond) - {control}):
        row: dict[str, float] = {}
        # control nuclei of the disease's targeted types (its entry's, read from its nuclei)
        types = set(nuclei.loc[(cond == disease) & nuclei["targeted"], "cell_type"].astype(str))
        in_types = nuclei["cell_type"].astype(str).isin(types)
        for rep in representations:
            call = nuclei[f"call_{rep}"]
            for where, mask in (("targeted", in_types), ("untargeted", ~in_types)):
                for side, is_side in (("disease", cond == disease), ("control", cond == control)):
                    sel = mask & is_side
                    row[f"{rep}_{where}_{side}"] = float(call[sel].mean()) if sel.any() else np.nan
            row[f"{rep}_own"] = float(nuclei.loc[cond == disease, f"own_{rep}"].mean())
        out[disease] = row
    return out


def synthetic_transfer(
    adata: AnnData,
    ldvae_params: Mapping[str, Any],
    classifier_params: Mapping[str, Any],
    *,
    seed: int = 0,
) -> TransferResult:
    """Train the synthetic pipeline on control donors; classify held-out real nuclei.

    Parameters
    ----------
    adata
        ``perturbed.h5ad`` of a case–control run: every gene, integer counts, ``obs``
        ``condition`` (the control first), ``donor_id``, ``cell_type``; ``uns["perturbations"]``
        and ``uns["perturbation_genes"]`` (02's named sets) and ``uns["case_control"]``.
    ldvae_params
        The resolved ``ldvae`` section (genes, latent size, training); its snapshots are off here.
    classifier_params
        The resolved ``classifier`` section (the network's shape and training).
    seed
        Seed of the held-out donors, the copies, the LDVAE, PCA and the networks.

    Returns
    -------
    TransferResult

    Raises
    ------
    TransferError
        No named set, or fewer than 2 control donors.
    """
    from latentshift.data.counts import subset
    from latentshift.model import embedding, gene_choice
    from latentshift.model import ldvae as L
    from latentshift.perturb import shift as perturb
    from latentshift.readings.network import train_mlp

    control = str(
        adata.uns.get("case_control", {}).get("control", adata.obs["condition"].cat.categories[0])
    )
    entries, genes_by_set, targets = synthetic_entries(adata)
    held_donors = heldout_control_donors(adata.obs, control, seed)
    cond = adata.obs["condition"].astype(str).to_numpy()
    donor = adata.obs["donor_id"].astype(str).to_numpy()
    train_rows = (cond == control) & ~np.isin(donor, held_donors)
    log.info(
        "transfer: synthetic side on %d nuclei of %d control donors; %d real nuclei held out "
        "(%d control donors, %d disease donors)",
        int(train_rows.sum()),
        len(set(donor[train_rows])),
        int((~train_rows).sum()),
        len(held_donors),
        len(set(donor[cond != control])),
    )
    base = subset(adata, rows=train_rows)
    base.obs = base.obs[["cell_type", "donor_id"]].copy()
    synth = perturb.make_perturbed(base, entries, genes_by_set, seed)
    cfg = {**dict(ldvae_params), "snapshot_every": None}
    synth.obs["split"] = "train"
    genes = gene_choice.model_genes(synth, cfg)  # hvg_cells "normal" reads the copies' labels
    if control != "normal":
        synth.obs["condition"] = synth.obs["condition"].cat.rename_categories({"normal": control})
    real = subset(adata, rows=~train_rows)
    real.obs = real.obs[["cell_type", "donor_id", "condition"]].copy()
    real.obs["source_cell"] = real.obs_names.astype(str)
    both = _combined(synth, real, genes)
    both.uns["latentshift"] = dict(adata.uns.get("latentshift", {}))
    fit = L.train_ldvae(both, cfg, seed=seed)
    both.obsm["X_ldvae"] = L.latent_representation(fit.model, both)
    both.obsm["X_pca_baseline"], _ = embedding.pca_baseline(both, cfg["n_latent"], seed=seed)

    train = (both.obs["split"] == "train").to_numpy()
    y = both.obs["condition"].astype(str).to_numpy()
    classes = [control, *[e["name"] for e in entries]]
    mlp_kw = {k: classifier_params[k] for k in MLP_KEYS if k in classifier_params}
    nuclei = real.obs[["condition", "cell_type", "donor_id"]].copy()
    nuclei["condition"] = nuclei["condition"].astype(str)
    nuclei["targeted"] = [
        c != control and (targets.get(c) is None or str(t) in targets[c])
        for c, t in zip(nuclei["condition"], nuclei["cell_type"].astype(str), strict=True)
    ]
    validation: dict[str, float] = {}
    for rep, key in REPRESENTATIONS.items():
        X = both.obsm[key]
        net = train_mlp(
            X[train],
            y[train],
            groups=both.obs["source_cell"].to_numpy()[train],
            seed=seed,
            classes=classes,
            **mlp_kw,
        )
        pred = np.asarray(net.predict(X[~train])).astype(str)
        nuclei[f"call_{rep}"] = pred != control
        nuclei[f"own_{rep}"] = pred == nuclei["condition"].to_numpy()
        validation[rep] = float(net.history["val_accuracy"].iloc[net.best_epoch - 1])
    reps = list(REPRESENTATIONS)
    by_type, by_donor = call_tables(nuclei, control, reps)
    summary = {
        "control": control,
        "heldout_control_donors": held_donors,
        "n_training_control_donors": int(len(set(donor[train_rows]))),
        "n_training_nuclei": int(train_rows.sum()),
        "n_synthetic_cells": int(synth.n_obs),
        "n_heldout_nuclei": int((~train_rows).sum()),
        "n_genes": len(genes),
        "ldvae_epochs": int(len(fit.history)),
        "synthetic_validation_accuracy": validation,
        "targets": dict(targets),
        "by_condition": call_rates_by_condition(nuclei, control, reps),
    }
    return TransferResult(nuclei=nuclei, by_cell_type=by_type, by_donor=by_donor, summary=summary)


def headline_table(result: TransferResult) -> pd.DataFrame:
    """Disease and control call rates in the targeted and the other types, per representation."""
    rows = []
    for disease, row in result.summary["by_condition"].items():
        for rep in REPRESENTATIONS:
            for where in ("targeted", "untargeted"):
                rows.append(
                    {
                        "condition": disease,
                        "representation": rep,
                        "cell types": where,
                        "called disease: disease nuclei": row[f"{rep}_{where}_disease"],
                        "called disease: control nuclei": row[f"{rep}_{where}_control"],
                    }
                )
    return pd.DataFrame(rows)
