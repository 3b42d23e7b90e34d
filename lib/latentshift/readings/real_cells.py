"""Synthetic against real: a model of the synthetic shift, held against real cells of another file.

The synthetic design copies normal cells and shifts a named gene set in the copies; its premise
is that this shift stands for a real one. With a file of real cells in the real conditions
(``real_transfer.path`` — e.g. Kang et al. 2018's PBMCs of two donors before and after
interferon-β — whose donors the synthetic side never saw: ``data.exclude_donors``), the premise
is tested twice, each beside its control:

1. **Calls** (:func:`real_calls`): the networks of 05 — trained to tell copies from originals on
   the LDVAE latent and on PCA — classify every real cell, which 03 embedded with its own LDVAE
   and PCA (:func:`embed_real`); a cell is *called perturbed* when a network gives it a copy
   class. The call rate of the stimulated cells against the control cells, per cell type and
   donor, with exact intervals.
2. **Direction** (:func:`direction_match`): per cell type, the synthetic displacement (a copy's
   latent minus its own source cell's, averaged) against the real one (stimulated minus control
   cells, each donor's own difference, averaged over donors): their cosine and the ratio of their
   lengths, beside a null — the same cosine for random halves of each donor's control cells,
   which differ by no condition.

The cells are matched gene by gene (:func:`gene_match`: Ensembl ids where both files have them,
else gene symbols); 01 keeps only the genes the real file holds (:func:`restrict_to_real`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.h5ad import read_h5ad_counts
from latentshift.errors import DataError
from latentshift.readings.transfer import TransferResult, call_rates_by_condition, call_tables

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}")
#: var columns that may hold Ensembl ids or gene symbols.
_ID_COLUMNS = ("ensembl_id", "gene_ids", "gene_id", "feature_id")
_SYMBOL_COLUMNS = ("feature_name", "gene_symbols", "gene_name", "symbol", "SYMBOL")
#: Fewest cells of each condition of a donor and cell type for a displacement.
MIN_CELLS = 5


def _keys(var: pd.DataFrame, symbol_column: str | None = None) -> dict[str, pd.Series]:
    """The genes' Ensembl ids and symbols (upper case), where the var table holds them."""
    names = pd.Series(var.index.astype(str), index=var.index)
    out: dict[str, pd.Series] = {}
    ensembl = [names] + [var[c].astype(str) for c in _ID_COLUMNS if c in var]
    for cand in ensembl:
        if cand.str.match(_ENSEMBL).mean() > 0.5:
            out["ensembl"] = cand.str.split(".").str[0]
            break
    columns = [symbol_column] if symbol_column else [c for c in _SYMBOL_COLUMNS if c in var]
    for cand in [var[c].astype(str) for c in columns if c in var] + [names]:
        if cand.str.match(_ENSEMBL).mean() <= 0.5:
            out["symbol"] = cand.str.upper()
            break
    return out


def gene_match(
    var: pd.DataFrame, real_var: pd.DataFrame, symbol_column: str | None = None
) -> tuple[pd.Series, str]:
    """Each gene of ``var``, the real file's gene it is (its var name; NaN when absent).

    Ensembl ids are compared when both tables have them, gene symbols otherwise; a key the
    real file holds twice is matched to its first gene.

    Returns
    -------
    match : pandas.Series
        Indexed like ``var``: the real file's var name.
    key : str
        ``"ensembl"`` or ``"symbol"``.
    """
    ours, theirs = _keys(var), _keys(real_var, symbol_column)
    key = "ensembl" if "ensembl" in ours and "ensembl" in theirs else "symbol"
    if key not in ours or key not in theirs:
        raise DataError(
            "the real cells' genes cannot be matched to the data's: neither Ensembl ids nor "
            "gene symbols are found in both var tables. Set real_transfer.symbol_column to the "
            "real file's var column of gene symbols."
        )
    lookup = pd.Series(real_var.index.astype(str), index=theirs[key].to_numpy())
    lookup = lookup[~lookup.index.duplicated()]
    return pd.Series(lookup.reindex(ours[key].to_numpy()).to_numpy(), index=var.index), key


def read_real(cfg: Mapping[str, Any]) -> AnnData:
    """The real cells of ``real_transfer.path``: counts, and ``obs`` ``condition`` (the control
    first), ``donor_id`` and ``cell_type``.

    Raises
    ------
    DataError
        A missing column, no control cell, or a single condition.
    """
    adata = read_h5ad_counts(
        cfg["path"],
        symbol_column=cfg.get("symbol_column"),
        cell_type_column=cfg["cell_type_column"],
        donor_column=cfg["donor_column"],
    )
    column, control = cfg["condition_column"], cfg["control"]
    if column not in adata.obs:
        raise DataError(
            f"real_transfer.condition_column '{column}' is not an obs column of the real file; "
            f"its columns: {', '.join(map(str, adata.obs.columns))}."
        )
    values = sorted(set(adata.obs[column].astype(str)))
    if control not in values or len(values) < 2:
        raise DataError(
            f"the real file's obs['{column}'] holds {', '.join(values)}: real_transfer needs "
            f"the control value '{control}' (real_transfer.control) and another condition."
        )
    if "donor_id" not in adata.obs:
        raise DataError(
            f"the real file has no donor column '{cfg['donor_column']}' "
            "(real_transfer.donor_column): its cells are compared donor by donor."
        )
    order = [control, *[v for v in values if v != control]]
    adata.obs["condition"] = pd.Categorical(adata.obs[column].astype(str), categories=order)
    return adata


def restrict_to_real(adata: AnnData, cfg: Mapping[str, Any]) -> tuple[AnnData, dict[str, Any]]:
    """The data's genes that the real file holds (01), and what was matched.

    The synthetic side then models only genes it can read in the real cells.

    Raises
    ------
    DataError
        A donor of the real file is among the data's (it would be trained on), or fewer than
        half of the data's genes are in the real file.
    """
    import anndata as ad

    from latentshift.data.counts import subset

    backed = ad.read_h5ad(cfg["path"], backed="r")  # obs and var only; the counts stay on disk
    real_var, real_obs = backed.var.copy(), backed.obs.copy()
    backed.file.close()
    if cfg["donor_column"] in real_obs and "donor_id" in adata.obs:
        shared = sorted(
            set(real_obs[cfg["donor_column"]].astype(str)) & set(adata.obs["donor_id"].astype(str))
        )
        if shared:
            raise DataError(
                f"donor(s) {', '.join(shared)} are both in the data and in the real file: the "
                "synthetic side would train on them. List them in data.exclude_donors."
            )
    match, key = gene_match(adata.var, real_var, cfg.get("symbol_column"))
    keep = match.notna().to_numpy()
    if keep.mean() < 0.5:
        raise DataError(
            f"only {int(keep.sum())} of the data's {adata.n_vars} genes are in the real file "
            f"(matched on {key}); check that both files are of the same species and annotation."
        )
    info = {
        "matched_on": key,
        "genes_common": int(keep.sum()),
        "genes_dropped": int((~keep).sum()),
        "real_file_genes": int(len(real_var)),
    }
    log.info("genes in the real file too (matched on %s): %d of %d", key, keep.sum(), adata.n_vars)
    return subset(adata, cols=keep), info


def embed_real(
    model: Any, model_cells: AnnData, cfg: Mapping[str, Any], n_latent: int, seed: int = 0
) -> AnnData:
    """The real cells in 03's LDVAE latent and PCA baseline (never trained on).

    Parameters
    ----------
    model
        The trained ``LinearSCVI``.
    model_cells
        The cells it was trained with (its genes, ``layers["counts"]``, ``obs["split"]``): the
        PCA baseline is fit again on their training rows, as 03 fits it.
    cfg
        The resolved ``real_transfer`` section.
    n_latent
        The PCA baseline's dimensions.
    seed
        The PCA's solver seed (03's).

    Returns
    -------
    AnnData
        The real cells with the model's genes (counts of a gene the real file lacks: 0),
        ``obsm["X_ldvae"]``, ``obsm["X_pca_baseline"]`` and ``uns["real_transfer"]``.
    """
    import anndata as ad

    from latentshift.data.counts import counts_matrix
    from latentshift.model import embedding
    from latentshift.model import ldvae as L

    real = read_real(cfg)
    match, key = gene_match(model_cells.var, real.var, cfg.get("symbol_column"))
    cols = real.var_names.get_indexer(match.fillna("").to_numpy())
    found = cols >= 0
    # a 0/1 selection (real genes × model genes): the real counts in the model's gene order
    select = sp.csc_matrix(
        (np.ones(int(found.sum()), dtype=np.int32), (cols[found], np.flatnonzero(found))),
        shape=(real.n_vars, model_cells.n_vars),
    )
    X = (counts_matrix(real).astype(np.int32) @ select).tocsr()
    obs = real.obs[["condition", "donor_id", "cell_type"]].copy()
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=model_cells.var_names.copy()))
    out.layers["counts"] = out.X
    out.obsm["X_ldvae"] = L.latent_representation(model, out)
    train = (model_cells.obs["split"].astype(str) == "train").to_numpy()
    pca = embedding.fit_pca(counts_matrix(model_cells), train, n_latent, seed)
    out.obsm["X_pca_baseline"] = embedding.project_pca(pca, X)
    out.uns["real_transfer"] = {
        "matched_on": key,
        "model_genes": int(model_cells.n_vars),
        "model_genes_in_real_file": int(found.sum()),
        "conditions": [str(c) for c in obs["condition"].cat.categories],
    }
    log.info(
        "real cells embedded: %d cells of %d donors, %d of the model's %d genes found",
        out.n_obs,
        obs["donor_id"].nunique(),
        int(found.sum()),
        model_cells.n_vars,
    )
    return out


# --- the calls ------------------------------------------------------------------------------


def paired_conditions(entries: list[str], real_conditions: list[str]) -> list[tuple[str, str]]:
    """Which real condition each synthetic entry stands for: ``(real condition, entry)``.

    Named alike, or — one entry and one real condition besides the control — each other.

    Raises
    ------
    DataError
        Neither: the entries cannot be told apart.
    """
    same = [(c, c) for c in real_conditions if c in entries]
    if same:
        return same
    if len(entries) == 1 and len(real_conditions) == 1:
        return [(real_conditions[0], entries[0])]
    raise DataError(
        f"the real file's conditions ({', '.join(real_conditions)}) cannot be matched to the "
        f"perturbation entries ({', '.join(entries)}): name each entry like the real condition "
        "it stands for."
    )


def _interval(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def real_calls(
    networks: Mapping[str, Any], real: AnnData, control: str, copy_classes: list[str]
) -> TransferResult:
    """Every real cell called by the networks trained on the synthetic copies.

    Parameters
    ----------
    networks
        ``{representation: fitted network}``: ``ldvae`` reads ``obsm["X_ldvae"]``, ``pca``
        ``obsm["X_pca_baseline"]`` (05's networks of the first scored fold).
    real
        :func:`embed_real`'s cells.
    control
        The real control condition.
    copy_classes
        The networks' copy classes (the perturbation entries): a cell called one of them is
        *called perturbed*.

    Returns
    -------
    TransferResult
        ``nuclei`` (per cell: condition, cell type, donor, ``call_<rep>``), ``by_cell_type``
        (per real condition and cell type: call rates of its cells and of the control cells,
        their exact 95 % intervals over cells, the donors' one-sided Mann–Whitney p),
        ``by_donor`` and ``summary`` (``by_condition``: call rates of each side).
    """
    keys = {"ldvae": "X_ldvae", "pca": "X_pca_baseline"}
    nuclei = real.obs[["condition", "cell_type", "donor_id"]].copy()
    nuclei["condition"] = nuclei["condition"].astype(str)
    nuclei["targeted"] = nuclei["condition"] != control
    for rep, net in networks.items():
        pred = np.asarray(net.predict(np.asarray(real.obsm[keys[rep]]))).astype(str)
        nuclei[f"call_{rep}"] = np.isin(pred, copy_classes)
        nuclei[f"own_{rep}"] = np.isin(pred, copy_classes) == nuclei["targeted"].to_numpy()
    reps = list(networks)
    by_type, by_donor = call_tables(nuclei, control, reps)
    for rep in reps:
        for side, n_col in (("disease", "n_disease"), ("control", "n_control")):
            k = (by_type[f"{rep}_{side}"] * by_type[n_col]).round().astype(int)
            bounds = [_interval(int(a), int(b)) for a, b in zip(k, by_type[n_col], strict=True)]
            by_type[f"{rep}_{side}_low"] = [b[0] for b in bounds]
            by_type[f"{rep}_{side}_high"] = [b[1] for b in bounds]
    summary = {
        "control": control,
        "n_real_cells": int(real.n_obs),
        "real_donors": sorted(map(str, pd.unique(nuclei["donor_id"].astype(str)))),
        "by_condition": call_rates_by_condition(nuclei, control, reps),
    }
    return TransferResult(nuclei=nuclei, by_cell_type=by_type, by_donor=by_donor, summary=summary)


# --- the direction --------------------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _real_displacement(
    Z: np.ndarray, obs: pd.DataFrame, mask: np.ndarray, stimulated: str, control: str
) -> tuple[np.ndarray | None, int]:
    """Each donor's stimulated minus control mean latent (in ``mask``), averaged over donors."""
    diffs = []
    for _, part in obs[mask].groupby("donor_id", observed=True):
        rows = np.flatnonzero(mask)[obs.index[mask].get_indexer(part.index)]
        cond = part["condition"].astype(str).to_numpy()
        stim, ctrl = rows[cond == stimulated], rows[cond == control]
        if stim.size >= MIN_CELLS and ctrl.size >= MIN_CELLS:
            diffs.append(Z[stim].mean(axis=0) - Z[ctrl].mean(axis=0))
    return (np.mean(diffs, axis=0), len(diffs)) if diffs else (None, 0)


def _null_displacements(
    Z: np.ndarray, obs: pd.DataFrame, mask: np.ndarray, control: str, draws: int, rng: Any
) -> list[np.ndarray]:
    """Random halves of each donor's control cells: their difference, averaged over donors."""
    groups = []
    for _, part in obs[mask & (obs["condition"].astype(str) == control).to_numpy()].groupby(
        "donor_id", observed=True
    ):
        rows = obs.index.get_indexer(part.index)
        if rows.size >= 2 * MIN_CELLS:
            groups.append(rows)
    out = []
    for _ in range(draws if groups else 0):
        diffs = []
        for rows in groups:
            order = rng.permutation(rows)
            half = order.size // 2
            diffs.append(Z[order[:half]].mean(axis=0) - Z[order[half : 2 * half]].mean(axis=0))
        out.append(np.mean(diffs, axis=0))
    return out


def direction_match(
    latent: AnnData,
    real: AnnData,
    condition: str,
    stimulated: str,
    control: str,
    *,
    draws: int = 200,
    seed: int = 0,
    key: str = "X_ldvae",
) -> pd.DataFrame:
    """Does the synthetic shift point the way the real one does? Per cell type and pooled.

    Parameters
    ----------
    latent
        05's ``latent.h5ad`` (copies and their source cells; ``obs["split"]``).
    real
        :func:`embed_real`'s cells, in the same latent.
    condition
        The synthetic copies' condition (the perturbation entry).
    stimulated, control
        The real conditions compared.
    draws
        Random halvings of the control cells for the null.
    seed
        Seed of the halvings.
    key
        The representation (``X_ldvae`` or ``X_pca_baseline``).

    Returns
    -------
    pandas.DataFrame
        One row per cell type (and ``all``): ``cosine`` of the synthetic displacement (copy
        minus its own source cell, test cells, averaged) with the real one (stimulated minus
        control, per donor, averaged), ``length_ratio`` (synthetic over real length),
        ``null_mean`` and ``null_high`` (97.5 %) of the cosine with random halves of the
        control cells, ``pvalue`` ((1 + #null ≥ cosine) / (1 + draws)), ``n_units`` (source
        cells) and ``n_donors``.
    """
    from latentshift.design.units import from_adata
    from latentshift.readings.factor_shifts import paired_differences

    units = from_adata(latent)
    Z, obs = np.asarray(latent.obsm[key], dtype=np.float64), latent.obs
    Zr, robs = np.asarray(real.obsm[key], dtype=np.float64), real.obs
    rng = np.random.default_rng([seed, 51])
    types = ["all", *sorted(set(robs["cell_type"].astype(str)) & set(obs["cell_type"].astype(str)))]
    rows = []
    for ct in types:
        mask = (
            np.ones(len(obs), bool)
            if ct == "all"
            else (obs["cell_type"].astype(str) == ct).to_numpy()
        )
        rmask = (
            np.ones(len(robs), bool)
            if ct == "all"
            else (robs["cell_type"].astype(str) == ct).to_numpy()
        )
        row: dict[str, Any] = {"cell_type": ct}
        try:
            synth = paired_differences(
                Z[mask], obs[mask], condition, cells="test", units=units.take(mask)
            )
        except Exception:  # noqa: BLE001 - a type without test pairs: not tested
            synth = np.empty((0, Z.shape[1]))
        real_d, n_donors = _real_displacement(Zr, robs, rmask, stimulated, control)
        row.update(n_units=int(len(synth)), n_donors=n_donors)
        if not len(synth) or real_d is None:
            row.update(
                cosine=np.nan,
                length_ratio=np.nan,
                null_mean=np.nan,
                null_high=np.nan,
                pvalue=np.nan,
            )
            rows.append(row)
            continue
        s = synth.mean(axis=0)
        cos = _cosine(s, real_d)
        null = np.array(
            [_cosine(s, d) for d in _null_displacements(Zr, robs, rmask, control, draws, rng)]
        )
        null = null[np.isfinite(null)]
        row.update(
            cosine=cos,
            length_ratio=float(np.linalg.norm(s) / np.linalg.norm(real_d)),
            null_mean=float(null.mean()) if null.size else np.nan,
            null_high=float(np.percentile(null, 97.5)) if null.size else np.nan,
            pvalue=float((1 + (null >= cos).sum()) / (1 + null.size)) if null.size else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def direction_summary(table: pd.DataFrame) -> dict[str, Any]:
    """The pooled row and the cell types whose cosine lies above their null's 97.5 %."""
    pooled = table[table["cell_type"] == "all"].iloc[0].to_dict()
    tested = table[(table["cell_type"] != "all") & table["cosine"].notna()]
    above = tested[tested["cosine"] > tested["null_high"]]
    return {
        "cosine": pooled["cosine"],
        "length_ratio": pooled["length_ratio"],
        "null_mean": pooled["null_mean"],
        "null_high": pooled["null_high"],
        "pvalue": pooled["pvalue"],
        "n_types_tested": int(len(tested)),
        "types_above_null": [str(t) for t in above["cell_type"]],
        "by_cell_type": {
            str(r["cell_type"]): {k: r[k] for k in ("cosine", "length_ratio", "null_high")}
            for _, r in tested.iterrows()
        },
    }


# --- the converse ---------------------------------------------------------------------------


def real_response(
    cfg: Mapping[str, Any],
    sets: Mapping[str, Any],
    pairs: list[tuple[str, str]],
    directions: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """The converse: the real response's top genes (pseudobulk by donor) against each set.

    The real cells' counts are summed per donor and condition
    (:func:`latentshift.readings.pseudobulk.aggregate`); PyDESeq2 tests each gene, stimulated against
    control, with the donor in the design when every donor holds both conditions; each entry's
    gene set — as the GMT file gives it, matched in the real file — is ranked among all genes by
    the Wald statistic (:func:`latentshift.readings.set_tests.set_rank`).

    Parameters
    ----------
    cfg
        The resolved ``real_transfer`` section.
    sets
        Entry → its :class:`latentshift.perturb.genesets.GeneSet`.
    pairs
        :func:`paired_conditions`.
    directions
        Entry → ``up``/``down``.

    Returns
    -------
    dict
        Real condition → :func:`latentshift.readings.set_tests.set_rank` and ``paired`` (donor in the
        design), ``n_samples``, ``n_genes_tested``, ``n_set_in_file``.
    """
    from latentshift.perturb import genesets
    from latentshift.readings import pseudobulk, set_tests

    real = read_real(cfg)
    pb = pseudobulk.aggregate(real, ["donor_id", "condition"])
    held = pd.crosstab(pb.obs["donor_id"].astype(str), pb.obs["condition"].astype(str)) > 0
    out: dict[str, dict[str, Any]] = {}
    for stimulated, entry in pairs:
        both = bool(held[stimulated].all() and held[cfg["control"]].all())
        table = pseudobulk.deseq(
            pb, reference=cfg["control"], test=stimulated, donor="donor_id" if both else None
        )
        _, genes = genesets.match_genesets(
            real, {entry: sets[entry]}, [entry], symbol_column=cfg.get("symbol_column")
        )
        ranked = set_tests.set_rank(table, genes[entry], directions[entry])
        out[stimulated] = {
            **ranked,
            "paired": both,
            "n_samples": int(pb.n_obs),
            "n_genes_tested": int(len(table)),
            "n_set_in_file": len(genes[entry]),
            "n_set": len(sets[entry].genes),
        }
    return out
